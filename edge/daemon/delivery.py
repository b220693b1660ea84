"""Delivery of sealed updates and skip reports: kept in the outbox, published with QoS 1
until their round closes.

Used by the daemon's worker thread only (paho's network thread just records
PUBACKs in ``PubAcks``), so it needs no lock of its own.
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt

from edge.daemon.outbox import Entry, Outbox
from edge.mqtt import Pending, PubAcks


class Delivery:
    """The outbox of one device and the publishes of its updates on its update topic."""

    def __init__(self, client: mqtt.Client, topic: str, outbox: Outbox,
                 acks: PubAcks | None = None) -> None:
        """Report ``client``'s PUBACKs here (or to ``acks``, shared with another Delivery of
        the same client: paho has one on_publish); publish on ``topic``."""
        self.client = client
        self.topic = topic
        self.outbox = outbox
        if acks is None:
            acks = PubAcks()
            acks.attach(client)
        self.acks = acks
        self._inflight: dict[int, Pending] = {}
        self._sent_at: dict[int, float] = {}  # round -> when its update last went out

    def keep(self, sealed: bytes) -> Entry:
        """Write a sealed update to the outbox (synced); OSError if the disk refuses it."""
        return self.outbox.put(sealed)

    def unkept(self, sealed: bytes) -> Entry:
        """An entry for an update the outbox could not keep (published once, not again)."""
        round_id, model_version = self.outbox.key(sealed)
        return Entry(round_id, model_version, sealed, None)

    def kept(self, round_id: int) -> Entry | None:
        """The kept update of a round, if any."""
        return self.outbox.get(round_id)

    def send(self, entry: Entry) -> tuple[Pending | None, bool]:
        """Publish an update unless paho still holds an unacknowledged copy of it.

        Returns the pending publish (None if paho's queue refused it) and whether a
        new copy went out. A copy waiting for its PUBACK is re-sent by paho itself
        after a reconnect; a second one would only be refused as a duplicate.
        """
        pending = self._inflight.get(entry.round_id)
        if pending is not None and not self.acks.done(pending):
            return pending, False
        pending = self.acks.publish(self.client, self.topic, entry.sealed)
        if pending is not None:
            self._inflight[entry.round_id] = pending
            self._sent_at[entry.round_id] = time.monotonic()
        return pending, pending is not None

    def sent_at(self, round_id: int) -> float | None:
        """When (``time.monotonic()``) this process last published the round's update."""
        return self._sent_at.get(round_id)

    def wait(self, pending: Pending, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the PUBACK; True if it came."""
        return self.acks.wait(pending, timeout)

    def entries(self) -> list[Entry]:
        """Every kept update, oldest round first."""
        return self.outbox.entries()

    def forget_closed(self, model_version: int, before_round: int | None = None) -> list[Entry]:
        """Drop kept updates whose round is over; returns them.

        Over means: the TA holds a model newer than the one the update trained (a new
        version is made only when no round is open), or an authentic ticket names a
        later round (a round opens only after the previous one closed or failed).
        """
        gone = [e for e in self.outbox.entries()
                if e.model_version < model_version
                or (before_round is not None and e.round_id < before_round)]
        for entry in gone:
            self.outbox.remove(entry)
            self._inflight.pop(entry.round_id, None)
            self._sent_at.pop(entry.round_id, None)
        return gone
