"""A cohort worker (``edge aggregator worker``): one member of the fleet's MQTT 5 shared
subscription to updates, verifying its share with the one verifier and summing it durably.

Crash-safe like the aggregator: accepted updates and the sum after them are committed in
one transaction, and their messages are acknowledged only then, so a SIGKILL loses nothing
(the broker keeps the unacknowledged ones in the worker's session and delivers them when it
restarts under the same id) and counts nothing twice (a redelivered update is a duplicate
in the worker's own database). After each commit it publishes its partial sum, retained,
tagged with the cohort key; the root combines them (``edge.aggregator.cohort``).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import ChainMap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from edge.errors import EdgeError, StateError
from edge.formats.device import DeviceRecord, parse_device_record
from edge.formats.update import MaskedUpdate, parse_any_update, parse_update
from edge.mqtt import PubAcks, connect_async, log_connect_failure, make_client
from edge.protocol import update_topic

from . import fedavg
from .cohort import (
    NAMED_REFUSALS,
    Announcement,
    Contribution,
    PartialSum,
    WorkerRefusal,
    check_worker,
    drop_topic,
    read_drop,
    round_topic,
    shared_update_subscription,
    sum_dtype,
    sum_topic,
    update_round,
)
from .config import AggregatorConfig
from .verify import AcceptedMasked, UpdateRefused, verify

log = logging.getLogger("edge.aggregator.worker")

BATCH = 256
TICK_S = 0.05
# The broker keeps a worker's session (and what it did not acknowledge) this long after
# it went away: above the longest outage of a worker you accept (docs/scale-out.md).
SESSION_EXPIRY_S = 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sums (round_id INTEGER PRIMARY KEY, total BLOB NOT NULL,
    weight REAL NOT NULL, seq INTEGER NOT NULL, refused INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS accepted (round_id INTEGER NOT NULL, device_id BLOB NOT NULL,
    update_id BLOB NOT NULL, example_count INTEGER NOT NULL, steps INTEGER NOT NULL,
    total_steps INTEGER NOT NULL, noise REAL NOT NULL, weight REAL NOT NULL,
    payload BLOB NOT NULL, dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (round_id, device_id));
CREATE TABLE IF NOT EXISTS refusals (round_id INTEGER NOT NULL, n INTEGER NOT NULL,
    device_id BLOB, topic TEXT NOT NULL, refusal TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (round_id, n));
"""


def _masked_words(payload: bytes) -> np.ndarray:
    """The words of a masked update this worker accepted (verified before it was stored)."""
    m = parse_any_update(payload)
    assert isinstance(m, MaskedUpdate)
    return m.words


class WorkerStore:
    """The worker's SQLite database: per round its sum and the updates in it."""

    def __init__(self, path: Path) -> None:
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StateError(f"worker state {path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def load(self, round_id: int, params: int,
             masked: bool = False) -> tuple[PartialSum, dict[bytes, bytes]]:
        """The round's committed partial sum (empty if none) and its accepted update ids
        (``masked``: a secure-aggregation round, whose sum is uint32 words mod 2^32)."""
        row = self.db.execute("SELECT total, weight, seq, refused FROM sums WHERE round_id = ?",
                              (round_id,)).fetchone()
        rows = self.db.execute(
            "SELECT device_id, update_id, example_count, steps, total_steps, noise FROM accepted"
            " WHERE round_id = ? AND dropped = 0 ORDER BY device_id", (round_id,)).fetchall()
        contributions = tuple(Contribution(bytes(d), bytes(u), n, s, t, z)
                              for d, u, n, s, t, z in rows)
        # Dropped ones too: a redelivery of one is a duplicate here, not a new update.
        ids = {bytes(d): bytes(u) for d, u in self.db.execute(
            "SELECT device_id, update_id FROM accepted WHERE round_id = ?", (round_id,))}
        refusals = tuple(WorkerRefusal(bytes(d) if d else None, t, r, why)
                         for d, t, r, why in self.db.execute(
                             "SELECT device_id, topic, refusal, reason FROM refusals WHERE "
                             "round_id = ? ORDER BY n", (round_id,)))
        dtype = sum_dtype(masked)
        if row is None:
            return PartialSum(round_id, "", 0, np.zeros(params, dtype), 0.0, (), 0, masked,
                              refusals), ids
        total = np.frombuffer(row[0], dtype=dtype).copy()
        return PartialSum(round_id, "", row[2], total, row[1], contributions, row[3],
                          masked, refusals), ids

    def commit(self, partial: PartialSum, rows: list[tuple[Any, ...]]) -> None:
        """One transaction: the new accepted rows and the sum after them."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO accepted VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                                rows)
            self.db.executemany("INSERT OR IGNORE INTO refusals VALUES (?, ?, ?, ?, ?, ?)",
                                [(partial.round_id, n, r.device_id, r.topic, r.refusal,
                                  r.reason) for n, r in enumerate(partial.refusals)])
            self._put_sum(partial)

    def drop(self, partial: PartialSum, devices: list[bytes]) -> None:
        """One transaction: these devices' updates out, the sum without them."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("UPDATE accepted SET dropped = 1 WHERE round_id = ? AND "
                                "device_id = ?", [(partial.round_id, d) for d in devices])
            self._put_sum(partial)

    def _put_sum(self, p: PartialSum) -> None:
        self.db.execute("INSERT OR REPLACE INTO sums VALUES (?, ?, ?, ?, ?)",
                        (p.round_id,
                         np.ascontiguousarray(p.total, dtype=sum_dtype(p.masked)).tobytes(),
                         p.weight, p.seq, p.refused))

    def dropped_delta(self, round_id: int, device: bytes,
                      masked: bool = False) -> tuple[np.ndarray, float] | None:
        """weight·Δ of a device's update still in the round's sum, and its weight (masked:
        its words, to take out of the sum mod 2^32, and 1)."""
        row = self.db.execute("SELECT payload, weight FROM accepted WHERE round_id = ? AND "
                              "device_id = ? AND dropped = 0", (round_id, device)).fetchone()
        if row is None:
            return None
        if masked:
            return _masked_words(bytes(row[0])).astype(np.uint32), float(row[1])
        delta = parse_update(bytes(row[0])).delta.astype(np.float64)
        return delta * row[1], float(row[1])


class CohortWorker:
    """One worker process of a fleet: shared subscription, verify, durable sum, publish."""

    def __init__(self, config: AggregatorConfig, worker: str, state: Path, key: bytes) -> None:
        self.config = config
        self.worker = check_worker(worker)
        self.key = key
        self.store = WorkerStore(state)
        self.client_id = f"edge-worker-{config.fleet}-{worker}"
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._held: list[mqtt.MQTTMessage] = []  # updates of a round not announced yet
        self._acks = PubAcks()
        self._client: mqtt.Client | None = None
        self._records: dict[bytes, DeviceRecord] = {}  # verified once per record
        self.announced: Announcement | None = None
        self.partial: PartialSum | None = None
        self._ids: dict[bytes, bytes] = {}
        self._devices: dict[bytes, DeviceRecord] = {}
        self._view: Any = None
        self._maskers: frozenset[bytes] = frozenset()
        self.connected = threading.Event()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self.store.close()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("worker %s: broker refused the connection: %s", self.worker, reason)
            return
        client.subscribe([(shared_update_subscription(self.config.fleet), 1),
                          (round_topic(self.config.fleet), 1),
                          (drop_topic(self.config.fleet, self.worker), 1)])
        self.connected.set()
        log.info("worker %s connected as %s", self.worker, self.client_id)

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set."""
        client = make_client(self.config.broker, self.client_id, clean_session=False,
                             manual_ack=True, mqtt5=True,
                             on_failure=log_connect_failure(log, "worker",
                                                            self.config.broker.url))
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *_a: self.connected.clear()
        client.on_message = lambda _c, _u, m: self._inbox.put(m)
        self._acks.attach(client)
        connect_async(client, self.config.broker, session_expiry_s=SESSION_EXPIRY_S)
        client.loop_start()
        self._client = client
        try:
            while not stop.is_set():
                self._drain(client)
        finally:
            self.close()

    def _drain(self, client: mqtt.Client) -> None:
        """Stage what arrives in one tick (or BATCH messages), commit, ack, publish."""
        batch: list[mqtt.MQTTMessage] = []
        rows: list[tuple[Any, ...]] = []
        staged: dict[bytes, bytes] = {}
        deadline = time.monotonic() + TICK_S
        while len(batch) < BATCH:
            try:
                msg = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if msg.topic == round_topic(self.config.fleet):
                self._commit(client, batch, rows)  # the old round's batch first
                batch, rows, staged = [], [], {}
                self._announce(bytes(msg.payload))
                client.ack(msg.mid, msg.qos)
                for held in self._take_held():
                    self._inbox.put(held)
            elif msg.topic == drop_topic(self.config.fleet, self.worker):
                self._commit(client, batch, rows)
                batch, rows, staged = [], [], {}
                self._drop(client, bytes(msg.payload))
                client.ack(msg.mid, msg.qos)
            else:
                if self._hold(msg):
                    continue
                self._stage(msg, rows, staged)
                batch.append(msg)
        self._commit(client, batch, rows)

    def _hold(self, msg: mqtt.MQTTMessage) -> bool:
        """Keep (unacknowledged) an update of a round newer than the one announced."""
        named = update_round(bytes(msg.payload))
        ann = self.announced
        current = ann.round_id if ann else None
        # In a secure-aggregation round, masked updates wait for the root to name the
        # devices that shared (the masked stage): only theirs may be summed.
        waiting = ann is not None and named == current and ann.secagg and ann.maskers is None
        if named is not None and (current is None or named > current or waiting):
            self._held.append(msg)
            return True
        return False

    def _take_held(self) -> list[mqtt.MQTTMessage]:
        held, self._held = self._held, []
        return held

    def _announce(self, data: bytes) -> None:
        try:
            ann = Announcement.from_message(self.key, self.config.fleet, data)
        except EdgeError as exc:
            log.warning("worker %s: refused a round announcement: %s: %s", self.worker,
                        exc.refusal, exc)
            return
        self.announced = ann
        if ann.round_id is None:
            self.partial, self._view = None, None
            return
        devices = {}
        for record in ann.records:
            dev = self._records.get(record)
            if dev is None:
                dev = self._records[record] = parse_device_record(record)
            devices[dev.device_id] = dev
        self._devices = devices
        self._view = ann.view(frozenset(devices))
        self._maskers = frozenset(ann.maskers or ())
        if self.partial is not None and self.partial.round_id == ann.round_id:
            return  # the same round, announced again (a secagg round's masked stage)
        stored, self._ids = self.store.load(ann.round_id, ann.params, ann.secagg)
        self.partial = replace(stored, worker=self.worker)
        log.info("worker %s: round %d, %d updates summed so far", self.worker, ann.round_id,
                 len(self._ids))

    def _stage(self, msg: mqtt.MQTTMessage, rows: list[tuple[Any, ...]],
               staged: dict[bytes, bytes]) -> None:
        payload = bytes(msg.payload)
        p = self.partial
        try:
            acc = verify(self.config.fleet, msg.topic, payload, self._devices, self._view,
                         ChainMap(staged, self._ids))
        except UpdateRefused as refused:
            log.debug("worker %s: refused update on %s: %s", self.worker, msg.topic[:256],
                      refused.refusal)
            self._refuse(refused.device_id, msg.topic, refused.refusal, str(refused))
            return
        assert p is not None and self.announced is not None
        if isinstance(acc, AcceptedMasked):
            self._stage_masked(acc, payload, rows, staged)
            return
        weight = fedavg.update_weight(acc.example_count, self.announced.central_noise)
        fedavg.add_into(p.total, acc.delta, weight, np.empty_like(p.total))
        u = acc.update
        c = Contribution(acc.device_id, acc.update_id, acc.example_count, u.steps,
                         u.total_steps, u.noise_multiplier)
        self.partial = replace(p, weight=p.weight + weight, contributions=(*p.contributions, c))
        staged[acc.device_id] = acc.update_id
        rows.append((p.round_id, acc.device_id, acc.update_id, acc.example_count, u.steps,
                     u.total_steps, u.noise_multiplier, weight, payload))

    def _refuse(self, device_id: bytes | None, topic: str, refusal: str, reason: str) -> None:
        """Count a refusal in the partial, and name it while under NAMED_REFUSALS."""
        p = self.partial
        if p is None:
            return
        named = p.refusals
        if len(named) < NAMED_REFUSALS:
            named = (*named, WorkerRefusal(device_id, topic[:256], refusal, reason[:1000]))
        self.partial = replace(p, refused=p.refused + 1, refusals=named)

    def _stage_masked(self, acc: AcceptedMasked, payload: bytes, rows: list[tuple[Any, ...]],
                      staged: dict[bytes, bytes]) -> None:
        """Add a verified masked update's words to the sum mod 2^32 (SecAggRound's rule: only
        a device that shared counts); a refusal is counted like the verifier's."""
        p = self.partial
        assert p is not None
        if acc.device_id not in self._maskers:
            log.debug("worker %s: refused masked update of %s: not-for-this-device",
                      self.worker, acc.device_id.hex())
            self._refuse(acc.device_id, update_topic(self.config.fleet, acc.device_id),
                         "not-for-this-device", f"masked update: {acc.device_id.hex()} did "
                         f"not share in round {p.round_id}")
            return
        m = acc.update
        np.add(p.total, m.words, out=p.total)  # uint32: wraps mod 2^32
        c = Contribution(acc.device_id, acc.update_id, m.example_count, 0, 0,
                         m.noise_multiplier)
        self.partial = replace(p, weight=p.weight + 1.0, contributions=(*p.contributions, c))
        staged[acc.device_id] = acc.update_id
        rows.append((p.round_id, acc.device_id, acc.update_id, m.example_count, 0, 0,
                     m.noise_multiplier, 1.0, payload))

    def _commit(self, client: mqtt.Client, batch: list[mqtt.MQTTMessage],
                rows: list[tuple[Any, ...]]) -> None:
        """Commit the batch's effect, then acknowledge its messages, then publish the sum."""
        if not batch:
            return
        p = self.partial
        if p is not None:
            p = self.partial = replace(p, seq=p.seq + 1)
            try:
                self.store.commit(p, rows)
            except sqlite3.Error as exc:
                # Not acknowledged: the broker delivers them again; the memory is reloaded.
                log.error("worker %s: commit failed (%s); reloading", self.worker, exc)
                stored, self._ids = self.store.load(p.round_id, len(p.total), p.masked)
                self.partial = replace(stored, worker=self.worker)
                return
            self._ids.update({r[1]: r[2] for r in rows})
        for msg in batch:
            client.ack(msg.mid, msg.qos)
        if p is not None:
            self._publish(client, p)

    def _publish(self, client: mqtt.Client, p: PartialSum) -> None:
        self._acks.publish(client, sum_topic(self.config.fleet, self.worker),
                           p.to_message(self.key, self.config.fleet), retain=True)

    def _drop(self, client: mqtt.Client, data: bytes) -> None:
        """Take the updates the root says another worker owns out of this worker's sum."""
        try:
            round_id, devices = read_drop(self.key, self.config.fleet, self.worker, data)
        except EdgeError as exc:
            log.warning("worker %s: refused a drop: %s: %s", self.worker, exc.refusal, exc)
            return
        p = self.partial
        if p is None or round_id != p.round_id:
            return
        total, weight, gone = p.total.copy(), p.weight, []
        for device in devices:
            found = self.store.dropped_delta(round_id, device, p.masked)
            if found is not None:
                total -= found[0]  # masked: uint32, exact mod 2^32
                weight -= found[1]
                gone.append(device)
        p = replace(p, seq=p.seq + 1, total=total, weight=weight,
                    contributions=tuple(c for c in p.contributions if c.device_id not in gone))
        self.store.drop(p, gone)
        self.partial = p
        log.info("worker %s: round %d: dropped %d update(s) another worker owns", self.worker,
                 round_id, len(gone))
        self._publish(client, p)
