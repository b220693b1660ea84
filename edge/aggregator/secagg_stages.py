"""The aggregator's secure-aggregation round over MQTT: stages, deadlines, what to publish.

It drives one ``SecAggRound`` (edge/secagg/server.py, the protocol itself) through
advert -> roster -> shares -> inboxes -> masked updates -> survivor list -> reveals,
each stage ending when every device still in the round has answered or when its
deadline passes (those that did not answer are dropouts). It holds no connection:
``take`` receives a device's message, ``advance`` returns what to publish.

What it takes is handed to the caller for durable commit (``staged``) before the
messages are acknowledged, and each stage it reaches is recorded before that stage's
directive goes out (RoundManager): an aggregator restarted during a secagg round
``replay``s that record and continues at the stage it was in, with the very directives
it signed before (Ed25519 signatures and the neighbour graph are deterministic)
(docs/secagg.md, "Crash safety").
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import BadState, EdgeError, TooFewSurvivors
from edge.formats.envelope import Kind, parse_envelope
from edge.formats.secagg import ADVERT_SIZE, MAX_REVEALS_SIZE, MAX_SHARES_SIZE
from edge.protocol import (
    secagg_device_topic,
    secagg_fleet_topic,
    secagg_from_device_topic,
    secagg_inbox_topic,
)
from edge.secagg.server import SecAggRound

from .config import SecAggSettings
from .verify import UpdateRefused

log = logging.getLogger("edge.aggregator")

STAGES = ("advert", "shares", "masked", "reveals", "done", "failed")
_MESSAGES = {"advert": (Kind.SECAGG_ADVERT, ADVERT_SIZE),
             "shares": (Kind.SECAGG_SHARES, MAX_SHARES_SIZE),
             "reveals": (Kind.SECAGG_REVEALS, MAX_REVEALS_SIZE)}


class SecAggStages:
    """One secure-aggregation round of the aggregator, stage by stage."""

    def __init__(self, settings: SecAggSettings, fleet: str, round_id: int, nonce: bytes,
                 model_version: int, cohort: list[bytes], certificates: Mapping[bytes, bytes],
                 aggregator_key: Ed25519PrivateKey, registrar_pub: bytes,
                 clock: Callable[[], float]):
        self.fleet = fleet
        self.round_id = round_id
        self.cohort = sorted(cohort)
        self.stage_timeout_s = settings.stage_timeout_s
        self.clock = clock
        self.srv = SecAggRound(settings.params, fleet, round_id, nonce, model_version,
                               {d: certificates[d] for d in self.cohort}, aggregator_key,
                               registrar_pub=registrar_pub)
        self.stage = "advert"
        self.deadline = clock() + self.stage_timeout_s
        self.reason: str | None = None
        self.ended: dict[str, float] = {}
        self._awaited: set[bytes] = set(self.cohort)
        self._shared: set[bytes] = set()
        self._masked: set[bytes] = set()
        self._result: tuple[np.ndarray, list[bytes]] | None = None
        # A root's (docs/scale-out.md): the newest combination of its workers' masked
        # partial sums, each device in it once: Σ words mod 2^32 and device -> update id.
        self._cohort_sum: tuple[np.ndarray, dict[bytes, bytes]] | None = None
        self._directive: bytes | None = None  # the current stage's roster or survivor list
        self._online: set[bytes] = set()  # came (back) online since the last advance
        # Device messages taken, by (stage, device): a redelivered copy changes nothing.
        self._taken: dict[tuple[str, bytes], bytes] = {}
        # Taken since the last ``staged``: messages, and masked updates (device -> id).
        self._new: list[tuple[str, bytes, bytes]] = []
        self._new_masked: dict[bytes, bytes] = {}

    # -- messages ------------------------------------------------------------------
    def take(self, topic: str, payload: bytes) -> bytes:
        """Take a device's advert, shares or reveals; UpdateRefused names the class."""
        try:
            device_id, what = secagg_from_device_topic(self.fleet, topic)
        except EdgeError as exc:
            raise UpdateRefused("malformed", str(exc)) from None
        kind, max_len = _MESSAGES[what]
        try:
            env = parse_envelope(payload, kind=kind, max_len=max_len)
        except EdgeError as exc:
            raise UpdateRefused(exc.refusal, f"secagg {what}: {exc}", device_id=device_id) \
                from None
        if not hmac.compare_digest(env.signer_key_id, device_id):
            raise UpdateRefused("topic-mismatch", f"secagg {what}: signer key id "
                                f"{env.signer_key_id.hex()} is not the device of the topic",
                                device_id=device_id)
        if self._taken.get((what, device_id)) == payload:
            # The broker's redelivery of a message taken (and committed) already, maybe
            # after its stage ended (a restart between commit and acknowledgement).
            return device_id
        if self.stage != what:
            raise UpdateRefused("bad-state", f"secagg {what} of round {self.round_id} while "
                                f"the round is at the {self.stage} stage", device_id=device_id)
        add = {"advert": self.srv.add_advert, "shares": self.srv.add_shares,
               "reveals": self.srv.add_reveal}[what]
        try:
            dev = add(payload)
        except EdgeError as exc:
            raise UpdateRefused(exc.refusal, f"secagg {what}: {exc}", device_id=device_id) \
                from None
        self._awaited.discard(dev)
        if what == "shares":
            self._shared.add(dev)
        if (what, dev) not in self._taken:
            self._taken[(what, dev)] = payload
            self._new.append((what, dev, payload))
        return dev

    def add_masked(self, payload: bytes, device_id: bytes) -> None:
        """Add a verified masked update (edge.aggregator.verify) to the sum mod 2^32."""
        if self.stage != "masked":
            raise UpdateRefused("bad-state", f"masked update of round {self.round_id} while "
                                f"the round is at the {self.stage} stage", device_id=device_id)
        try:
            self.srv.add_masked(payload)
        except EdgeError as exc:
            raise UpdateRefused(exc.refusal, f"masked update: {exc}", device_id=device_id) \
                from None
        self._awaited.discard(device_id)
        if device_id not in self._masked:
            self._masked.add(device_id)
            uid = self.srv.masked_id(device_id)
            assert uid is not None  # add_masked just summed it
            self._new_masked[device_id] = uid

    def staged(self) -> tuple[list[tuple[str, bytes, bytes]], np.ndarray | None,
                              dict[bytes, bytes]]:
        """What was taken since the last call, for the caller's commit: device messages
        (stage, device id, payload), and if masked updates were added, the masked sum mod
        2^32 with them and the devices they came from (device id -> update id)."""
        new, self._new = self._new, []
        masked, self._new_masked = self._new_masked, {}
        return new, (self.srv.masked_sum() if masked else None), masked

    def replay(self, messages: list[tuple[str, bytes, bytes]], reached: str,
               masked: tuple[np.ndarray, dict[bytes, bytes]] | None, *, from_workers: bool,
               ended: Mapping[str, float], deadline: float) -> None:
        """Rebuild this (new) round from its durable record: the device messages taken
        (each verified again), the masked sum with its contributors (a root's: its workers'
        combination), and the stage ``reached``, whose stages before it are ended again as
        they were. EdgeError (or UpdateRefused) if the record does not replay."""
        by_stage: dict[str, list[tuple[str, bytes]]] = {}
        for what, dev, payload in messages:
            by_stage.setdefault(what, []).append(
                (secagg_device_topic(self.fleet, dev, what), payload))
        for stage in STAGES[:4]:
            if stage == "masked" and masked is not None:
                if from_workers:
                    if not self.take_cohort_sum(*masked):
                        raise BadState(f"secagg round {self.round_id}: the recorded cohort "
                                       "sum does not fit the recorded shares")
                else:
                    self.srv.add_masked_sum(*masked)
                    self._masked = set(masked[1])
                    self._awaited -= self._masked
            for topic, payload in by_stage.get(stage, []):
                self.take(topic, payload)
            if stage == reached:
                break
            self._next()
            if self.stage != STAGES[STAGES.index(stage) + 1]:
                raise BadState(f"secagg round {self.round_id}: the recorded {stage} stage "
                               f"does not replay ({self.reason})")
        self._new, self._new_masked = [], {}
        self.ended, self.deadline = dict(ended), deadline

    @property
    def maskers(self) -> list[bytes] | None:
        """The devices that shared (U2), whose masked updates count; None before."""
        return sorted(self._shared) if self.stage not in ("advert", "shares") else None

    def take_cohort_sum(self, total: np.ndarray, covered: Mapping[bytes, bytes]) -> bool:
        """A root's combination of its workers' masked partials (each device once) replaces
        the previous one; it enters ``SecAggRound`` when the masked stage ends. False
        (logged) if the stage is over or it names a device that did not share."""
        if self.stage != "masked":
            return False
        strangers = set(covered) - self._shared
        if strangers:
            log.warning("secagg round %d: a cohort sum covers %d device(s) that did not "
                        "share (not-for-this-device); ignored", self.round_id, len(strangers))
            return False
        self._cohort_sum = (total, dict(covered))
        self._masked = set(covered)
        self._awaited = self._shared - self._masked
        return True

    # -- stages --------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once the round has its result or failed."""
        return self.stage in ("done", "failed")

    def advance(self) -> list[tuple[str, bytes]]:
        """End the current stage if everyone answered or its deadline passed; returns the
        directives to publish (roster, inboxes, survivor list)."""
        out: list[tuple[str, bytes]] = []
        while not self.finished and (not self._awaited or self.clock() >= self.deadline):
            try:
                out += self._next()
            except TooFewSurvivors as exc:
                self._fail(f"too-few-survivors at the {self.stage} stage: {exc}")
                return []
        back, self._online = self._online, set()
        if not out and back:
            out = self.pending(back)
            if out:
                log.info("secagg round %d: the %s stage's directive sent again to %d devices "
                         "back online", self.round_id, self.stage,
                         len(back & self._awaited))
        return out

    def device_online(self, device_id: bytes) -> None:
        """A device announced itself online: if the current stage still waits for it, its
        directive goes out again at the next ``advance`` (it may have missed it while away,
        or a restarted daemon lost it before answering)."""
        if device_id in self._awaited:
            self._online.add(device_id)

    def pending(self, devices: set[bytes] | None = None) -> list[tuple[str, bytes]]:
        """The current stage's directives for the devices it still waits for (all of them,
        or those in ``devices``): re-sent after an aggregator reconnect, on a timer and when
        a device comes back online. Each TA answers a repeated directive as the first time
        or refuses it; nothing in a round changes by a re-send."""
        waiting = self._awaited if devices is None else self._awaited & devices
        if self.finished or not waiting:
            return []
        if self.stage == "shares":
            assert self._directive is not None
            return [(secagg_fleet_topic(self.fleet, "roster"), self._directive)]
        if self.stage == "masked":
            return [(secagg_inbox_topic(self.fleet, d), self.srv.inbox_for(d))
                    for d in sorted(waiting)]
        if self.stage == "reveals":
            assert self._directive is not None
            return [(secagg_fleet_topic(self.fleet, "survivors"), self._directive)]
        return []  # adverts: the round's tickets are re-sent instead

    def _fail(self, reason: str) -> None:
        self.ended[self.stage] = self.clock()
        self.stage, self.reason = "failed", reason
        log.warning("secagg round %d failed: %s", self.round_id, reason)

    def _next(self) -> list[tuple[str, bytes]]:
        now = self.clock()
        self.ended[self.stage] = now
        self.deadline = now + self.stage_timeout_s
        if self.stage == "advert":
            roster = self._directive = self.srv.roster()
            self.stage, self._awaited = "shares", set(self.srv.advertised)
            self._log_stage(len(self.srv.advertised))
            return [(secagg_fleet_topic(self.fleet, "roster"), roster)]
        if self.stage == "shares":
            shared = sorted(self._shared)
            out = [(secagg_inbox_topic(self.fleet, d), self.srv.inbox_for(d)) for d in shared]
            self.stage, self._awaited = "masked", set(shared)
            self._log_stage(len(shared))
            return out
        if self.stage == "masked":
            if self._cohort_sum is not None:
                self.srv.add_masked_sum(*self._cohort_sum)
            survivors = self._directive = self.srv.survivors()
            u3 = sorted(self._masked)
            self.stage, self._awaited = "reveals", set(u3)
            self._log_stage(len(u3))
            return [(secagg_fleet_topic(self.fleet, "survivors"), survivors)]
        assert self.stage == "reveals"
        self._result = self.srv.result()
        self.stage = "done"
        self._log_stage(len(self._result[1]))
        return []

    def _log_stage(self, count: int) -> None:
        log.info("secagg round %d: %d devices at the %s stage", self.round_id, count,
                 self.stage)

    def result(self) -> tuple[np.ndarray, list[bytes]]:
        """The float32 sum of the survivors' updates, and the survivors (stage 'done')."""
        if self._result is None:
            raise RuntimeError(f"secagg round {self.round_id} has no result ({self.stage})")
        return self._result
