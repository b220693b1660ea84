"""The round manager: cohort, tickets, updates, quorum and deadline, next model package.

It holds no network connection: it returns the messages to publish and takes the
messages received. ``handle`` commits a message's effect to the Store before it returns;
``stage`` and ``commit`` do the same for a batch (group commit: one transaction for the
batch's update rows and the running sum after them, kept in memory between commits).
"""

from __future__ import annotations

import io
import logging
import math
import os
import random
import time
from collections import ChainMap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.errors import ConfigError, EdgeError, StateError
from edge.formats.device import DeviceRecord
from edge.formats.package_builder import Release, build_package, head_plaintext
from edge.formats.secagg import fleet_id
from edge.formats.ticket import NONCE_SIZE, RoundTicket, build_ticket, parse_ticket
from edge.keyfiles import load_private_key, load_public_key
from edge.protocol import (
    OFFLINE,
    ONLINE,
    device_from_status_topic,
    model_topic,
    ticket_topic,
    wrap_topic,
)
from edge.secagg import distributed_dp
from edge.tee_abi import UpdateMode

from . import backbone_check, device_budget, fedavg, names, skips
from .audit import RefusalLedger
from .cohort import Announcement, Combined, WorkerRefusal
from .config import AggregatorConfig
from .metrics import Holdout, RoundMetrics
from .registry import Registry
from .secagg_certs import load_certificates
from .secagg_stages import SecAggStages
from .store import Checkpoint, OpenRound, Store
from .verify import Accepted, AcceptedMasked, RoundView, UpdateRefused, verify

log = logging.getLogger("edge.aggregator")


@dataclass
class _Batch:
    """Accepted updates not yet committed: the running sum with them, their rows and ids."""

    total: np.ndarray
    weight: float
    rows: list[tuple[bytes, bytes, int]] = field(default_factory=list)
    ids: dict[bytes, bytes] = field(default_factory=dict)
    # (device id, steps, total steps, noise multiplier) of each: the views' budget burn-down
    steps: list[tuple[bytes, int, int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Publication:
    """What must go out for the newest model to reach every enrolled device.

    ``package`` is None when the broker holds the release's package already
    (retained): then only the key wraps of devices enrolled since go out, and
    no device downloads the package again.
    """

    version: int
    package: tuple[str, bytes] | None
    wraps: list[tuple[str, bytes]]
    recipients: list[str]  # hex ids of every device with a wrap once this is out


@dataclass(frozen=True)
class Outcome:
    """What became of one received update."""

    accepted: bool
    refusal: str | None
    reason: str
    device_id: bytes | None


def load_head(path: os.PathLike[str] | str) -> tuple[np.ndarray, np.ndarray]:
    """Read the initial head (npz with W of shape I x O and b of shape O)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            W, b = np.asarray(data["W"]), np.asarray(data["b"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"aggregator.initial_head: {path} is not an npz with arrays W and b "
                          f"({exc})") from None
    head_plaintext(W, b)  # shape and finiteness checks
    return W.astype(np.float32), b.astype(np.float32)


class RoundManager:
    """Runs rounds for one fleet over a Store; publishing is the caller's job."""

    def __init__(self, config: AggregatorConfig, store: Store, registry: Registry, *,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.store = store
        self.registry = registry
        self.clock = clock
        self.aggregator_key = load_private_key(config.aggregator_key)
        self.signer_key = load_private_key(config.model_signer_key)
        self.holdout = Holdout(config.holdout) if config.holdout else None
        self.device_budget = device_budget.load(config, self.signer_key)
        self.metadata = backbone_check.load_metadata(config)
        latest = store.latest_checkpoint()
        # Before anything is written: a mismatch fails the start, not every board's round.
        backbone_check.check_backbone(config, self.metadata,
                                      latest.W.shape[0] if latest is not None
                                      else load_head(config.initial_head)[0].shape[0])
        self.ledger = RefusalLedger(store, rows_per_source=config.audit.rows_per_source,
                                    rows_per_round=config.audit.rows_per_round,
                                    clock=clock)
        self._devices: dict[bytes, DeviceRecord] = {}
        self._names: dict[bytes, str] = {}
        self._strangers: set[bytes] = set()  # online but not enrolled, warned about
        # The newest model's release (package and its keys, to wrap for newcomers); lost
        # on restart, when a newcomer then gets the same head as the next version.
        self._release: tuple[Release, bytes] | None = None
        self._round: OpenRound | None = None
        self._view: RoundView | None = None
        self._running: fedavg.RunningSum | None = None
        self._accepted: dict[bytes, bytes] = {}
        self._batch: _Batch | None = None
        self._scratch: np.ndarray | None = None
        self._secagg: SecAggStages | None = None
        self.registrar_pub = (load_public_key(config.secagg.registrar)
                              if config.secagg is not None else None)
        # Devices whose last announced presence is offline (edge.protocol.status_topic);
        # a device that never announced one counts as live, as before presence existed.
        self._offline = {d for d, (st, _) in store.presence().items() if st == "offline"}
        self._presence_rows: dict[bytes, tuple[str, float]] = {}  # staged for commit()
        self._fleet_seen = 0  # the newest model version a board reported holding
        cp = self.ensure_model()
        device_budget.check_noise_room(config, self.device_budget, cp.W.size + cp.b.size)
        if self.holdout is not None:
            # At start, not at the first close: a round that cannot close stays open forever.
            self.holdout.check_head(cp.W.shape[0], cp.W.shape[1])
        self._load_open()

    # model
    def ensure_model(self) -> Checkpoint:
        """The newest checkpoint, above the fleet's version (``aggregator.fleet_version``, or
        what boards reported): on first start the initial head as the version after it."""
        cp = self.store.latest_checkpoint()
        floor = max(self.config.fleet_version, self._fleet_seen)
        if cp is None or cp.version <= floor:
            W, b = load_head(self.config.initial_head) if cp is None else (cp.W, cp.b)
            with self.store.transaction() as db:
                self.store.add_checkpoint(db, floor + 1, None, W, b)
            if cp is not None:
                # A restored or replaced database: every board would refuse our version
                # as a rollback and every ticket as wrong-model, silently.
                log.info("model v%d of %s is not above the fleet's v%d: its head is issued "
                         "as v%d", cp.version, self.store.path, floor, floor + 1)
            cp = self.store.latest_checkpoint()
            assert cp is not None
        return cp

    def model_is_out(self) -> bool:
        """True when the newest model was published to exactly the enrolled devices."""
        ids = sorted(d.hex() for d in self.refresh_devices())
        cp = self.ensure_model()
        return not ids or (cp.published is not None and cp.recipients is not None
                           and list(cp.recipients) == ids)

    def pending_publication(self) -> Publication | None:
        """What to publish when the newest model is not yet out to every enrolled device."""
        if self.model_is_out():
            return None
        devices = self._devices
        cp = self.ensure_model()
        recipients = sorted(d.hex() for d in devices)
        release = self._release if (self._release is not None and
                                    self._release[0].manifest.version == cp.version) else None
        if release is not None and cp.published is not None:
            # The package is out: only newcomers' wraps (no device downloads it again).
            have = set(cp.recipients or ())
            wraps = [(wrap_topic(self.config.fleet, d), release[0].wrap_for(rec))
                     for d, rec in devices.items() if d.hex() not in have]
            return Publication(cp.version, None, wraps, recipients)
        if release is None:
            if cp.published is not None:
                if self._round is not None:
                    return None  # enrolled during a round: the next package reaches them
                # Enrolled after a restart lost the release's keys: re-issue the same head
                # as the next version.
                with self.store.transaction() as db:
                    self.store.add_checkpoint(db, cp.version + 1, None, cp.W, cp.b)
                cp = self.ensure_model()
            buf = io.BytesIO()
            built = build_package(buf, signer=self.signer_key, version=cp.version, W=cp.W,
                                  b=cp.b, package_id=cp.package_id,
                                  backbone=self.config.backbone,
                                  encrypt_backbone=self.config.encrypt_backbone,
                                  metadata=self.metadata)
            release = self._release = (built, buf.getvalue())
        wraps = [(wrap_topic(self.config.fleet, d), release[0].wrap_for(rec))
                 for d, rec in devices.items()]
        return Publication(cp.version, (model_topic(self.config.fleet), release[1]), wraps,
                           recipients)

    def refresh_devices(self) -> dict[bytes, DeviceRecord]:
        """Re-read the enrolled devices (enrollment may come from another process)."""
        self._devices = self.registry.devices()
        self._names = self.store.names()
        return self._devices

    # rounds
    @property
    def open_round(self) -> OpenRound | None:
        """The open round, if any."""
        return self._round

    def _load_open(self) -> None:
        """Load the open round (after a restart: resume it) into memory."""
        self.refresh_devices()
        r = self.store.open_round()
        self._round = r
        self._batch = None
        if r is None:
            self._view, self._running, self._accepted = None, None, {}
            return
        cp = self.store.latest_checkpoint()
        assert cp is not None
        params = cp.W.size + cp.b.size
        tickets = self.store.tickets(r.round_id)
        # Every ticket of a round carries the same training fields and package id.
        first = parse_ticket(next(iter(tickets.values())))
        secagg = first.update_mode == UpdateMode.SECAGG
        if secagg and (self._secagg is None or self._secagg.round_id != r.round_id):
            try:
                self._secagg = self._resume_secagg(r, first, sorted(tickets))
            except (EdgeError, UpdateRefused) as exc:
                self._abandon(r, f"abandoned: the aggregator restarted during this secure-"
                              f"aggregation round and cannot resume it: {exc}")
                return
        self._view = RoundView(r.round_id, r.nonce, r.model_version, params, r.update_clip,
                               frozenset(tickets), first.noise_multiplier, first.example_clip,
                               first.package_id, secagg)
        self._accepted = self.store.accepted(r.round_id)
        total = r.sum if r.sum is not None else np.zeros(params, dtype=np.float64)
        self._running = fedavg.RunningSum(total, r.weight, r.count)
        self._scratch = np.empty(params, dtype=np.float64)

    def _resume_secagg(self, r: OpenRound, ticket: RoundTicket,
                       cohort: list[bytes]) -> SecAggStages:
        """The open secagg round rebuilt from the store, at the stage it was in (a restart).

        EdgeError names why it cannot be: opened by a release that kept secagg rounds in
        memory only, settings that no longer match its tickets, or a record that does not
        replay (each message is verified again)."""
        sa = self.config.secagg
        if sa is None or self.registrar_pub is None:
            raise ConfigError("the configuration no longer enables secure aggregation")
        rec = self.store.secagg_round(r.round_id)
        if rec is None:
            raise StateError("it was opened by a release that kept secagg rounds in memory "
                             "only (nothing of it is recorded)")
        p = sa.params
        if (p.t, p.k, p.cohort, p.scale_log2) != (
                ticket.secagg_threshold, ticket.secagg_neighbours, ticket.secagg_cohort,
                ticket.secagg_scale_log2):
            raise ConfigError(f"[secagg] t, k, cohort or scale changed since its tickets "
                              f"(t={ticket.secagg_threshold}, k={ticket.secagg_neighbours}, "
                              f"cohort={ticket.secagg_cohort}, "
                              f"scale=2^{ticket.secagg_scale_log2})")
        st = SecAggStages(sa, self.config.fleet, r.round_id, r.nonce, r.model_version, cohort,
                          rec.certificates, self.aggregator_key, self.registrar_pub,
                          self.clock)
        masked = (rec.masked_sum, rec.masked) if rec.masked_sum is not None else None
        # The stage still awaited gets a whole stage from now: its directive may not have
        # reached the devices before the kill, and it is sent again after the reconnect.
        st.replay(rec.messages, rec.stage, masked, from_workers=self.config.workers_key
                  is not None, ended=rec.ended,
                  deadline=max(rec.deadline, self.clock() + sa.stage_timeout_s))
        log.info("secagg round %d resumed at the %s stage: %d message(s) and %d masked "
                 "update(s) replayed from %s", r.round_id, st.stage, len(rec.messages),
                 len(rec.masked), self.store.path)
        return st

    def _abandon(self, r: OpenRound, reason: str) -> None:
        """Record an open round failed (nothing of it counts) and load no round."""
        m = RoundMetrics(round=r.round_id, participants=0,
                         refused=self.store.refusals(r.round_id), failed=True,
                         model_version=self.ensure_model().version, opened_at=r.opened,
                         closed_at=self.clock(), seconds=self.clock() - r.opened, reason=reason)
        with self.store.transaction() as db:
            self.store.finish_round(db, r.round_id, "failed", m.to_json())
            self.store.forget_secagg_round(db, r.round_id)
        log.warning("round %d %s", r.round_id, reason)
        self._round, self._view, self._running, self._accepted = None, None, None, {}
        self._secagg = None

    @property
    def secagg(self) -> SecAggStages | None:
        """The open round's secure-aggregation stages (None outside a secagg round)."""
        return self._secagg

    def secagg_message(self, topic: str, payload: bytes) -> Outcome:
        """Take a device's advert, shares or reveals; a refusal goes to the audit log."""
        try:
            if self._secagg is None or self._secagg.finished:
                raise UpdateRefused("bad-state", "no secure-aggregation round is at a stage "
                                    "that takes device messages")
            dev = self._secagg.take(topic, payload)
        except UpdateRefused as refused:
            return self._refused(topic, refused)
        return Outcome(True, None, "accepted", dev)

    def secagg_advance(self) -> list[tuple[str, bytes]]:
        """Directives to publish now that a stage ended (roster, inboxes, survivors).

        The stage reached is committed before they are returned (with what was taken and
        not yet committed): a restart continues there and never signs a second, different
        roster or survivor list for the round."""
        st = self._secagg
        if st is None:
            return []
        before = st.stage
        out = st.advance()
        if st.stage != before and st.stage != "failed":
            assert self._round is not None
            self.commit()
            with self.store.transaction() as db:
                self.store.set_secagg_stage(db, self._round.round_id, st.stage, st.deadline,
                                            st.ended)
        return out

    def missing_tickets(self) -> list[tuple[str, bytes]]:
        """The open round's tickets of devices whose update is not accepted yet, to re-send;
        past a secagg round's adverts, its current directive for the devices not yet heard."""
        if self._round is None:
            return []
        if self._secagg is not None:
            # Only while adverts are taken: a device cannot join a secagg round later.
            if self._secagg.stage != "advert":
                return self._secagg.pending()
            return [(ticket_topic(self.config.fleet, d), t)
                    for d, t in sorted(self.store.tickets(self._round.round_id).items())
                    if d not in self._secagg.srv.advertised]
        return [(ticket_topic(self.config.fleet, d), t)
                for d, t in sorted(self.store.tickets(self._round.round_id).items())
                if d not in self._accepted]

    def presence(self, topic: str, payload: bytes, *, defer: bool = False) -> None:
        """Record a device's announced presence (its retained status or last will).

        With ``defer`` the row waits for the next ``commit`` (one transaction for a batch:
        1,000 boards reconnecting cost a commit each before); it counts at once."""
        try:
            device_id = device_from_status_topic(self.config.fleet, topic)
        except EdgeError as exc:
            log.warning("ignored presence on %s: %s", topic[:256], exc)
            return
        status = {ONLINE: "online", OFFLINE: "offline"}.get(payload)
        if status is None:
            log.warning("ignored presence of device %s: payload is not online or offline",
                        device_id.hex())
            return
        if defer:
            self._presence_rows[device_id] = (status, self.clock())
        else:
            with self.store.transaction() as db:
                self.store.set_presence(db, device_id, status, self.clock())
        if device_id not in self._devices and status == "online" \
                and device_id not in self._strangers:
            # A board that runs but was never enrolled (or was revoked) would wait forever for
            # a model: say so where the operator looks, once per board and process.
            self._strangers.add(device_id)
            revoked = self.store.revoked_at(device_id) is not None
            log.warning("device %s is online on the fleet's broker but %s: it gets no model "
                        "and no tickets (%s)", device_id.hex(),
                        "was revoked" if revoked else "is not enrolled",
                        "edge aggregator enroll --readmit" if revoked else
                        "edge aggregator enroll --config FILE --name NAME DEVICE.pub")
        was_offline = device_id in self._offline
        if status == "offline":
            self._offline.add(device_id)
        else:
            self._offline.discard(device_id)
        if was_offline != (status == "offline"):
            log.info("%s is %s", self.label(device_id), status)
        if status == "online" and self._secagg is not None:
            self._secagg.device_online(device_id)

    def skip(self, topic: str, payload: bytes) -> Outcome:
        """Verify and record one skip report (committed before it returns): the device's
        answer to a round's ticket, named by its TA. A device that holds a newer model than
        ours raises the version our next package gets (docs/aggregator.md, Backup)."""
        rnd = None
        try:
            report = skips.verify_report(self.config.fleet, topic, payload, self._devices)
            rnd = self.store.get_round(report.round_id)
            skips.check_round(report, rnd,
                              self.store.tickets(rnd.round_id) if rnd is not None else {})
        except UpdateRefused as refused:
            round_id = rnd.round_id if rnd is not None else (
                self._round.round_id if self._round else None)
            self.ledger.record(round_id=round_id, device_id=refused.device_id,
                               topic=topic[:256], refusal=refused.refusal,
                               reason=str(refused)[:1000])
            self.ledger.flush()
            log.warning("refused skip report on %s: %s: %s", topic[:256], refused.refusal,
                        refused)
            return Outcome(False, refused.refusal, str(refused), refused.device_id)
        described = report.describe()
        with self.store.transaction() as db:
            fresh = self.store.add_skip(db, report.round_id, report.device_id, report.refusal,
                                        described, report.model_version, bytes(payload))
        if fresh:
            log.info("%s skipped round %d: %s", self.label(report.device_id),
                     report.round_id, described)
        cp = self.store.latest_checkpoint()
        if cp is not None and report.model_version >= cp.version \
                and report.model_version > self._fleet_seen:
            # The TA signed what it holds: our database is older than the fleet.
            log.info("device %s holds model v%d (package %s), ours is v%d: the next model is "
                     "issued as v%d", report.device_id.hex(), report.model_version,
                     report.package_id.hex(), cp.version, report.model_version + 1)
            self._fleet_seen = report.model_version
        return Outcome(False, report.refusal, described, report.device_id)

    def label(self, device_id: bytes) -> str:
        """The device as the views name it: ``board-7 (3f2a9c1e)`` (edge.aggregator.names)."""
        return names.label(device_id.hex(), self._names.get(device_id))

    def live_devices(self) -> list[bytes]:
        """Enrolled devices not announced offline, in id order."""
        return [d for d in sorted(self._devices) if d not in self._offline]

    def open_next(self) -> list[tuple[str, bytes]]:
        """Open the next round for a seeded-random cohort of live devices; returns the
        tickets to publish."""
        if self._round is not None:
            raise RuntimeError(f"round {self._round.round_id} is still open")
        enrolled = sorted(self.refresh_devices())
        devices = self.live_devices()
        rs, dp, sa = self.config.rounds, self.config.dp, self.config.secagg
        certs: dict[bytes, bytes] = {}
        if sa is not None:
            assert self.registrar_pub is not None
            certs = load_certificates(sa.certificates, self.config.fleet, self.registrar_pub)
            # only certified devices can take part: their neighbours check their keys
            devices = [d for d in devices if d in certs]
            if len(devices) < max(rs.min_updates, sa.params.t):
                return []
        if len(devices) < rs.min_updates:
            return []
        cp = self.ensure_model()
        if sa is not None:
            # Again before every secagg round (the head's size is the model's): a round the
            # boards would all refuse at seal (noise-share-unfit) is not opened.
            device_budget.check_noise_room(self.config, self.device_budget,
                                           cp.W.size + cp.b.size)
        round_id = self.store.last_round_id() + 1
        rng = random.Random(f"edge-cohort/{rs.seed}/{round_id}")
        cohort = sorted(rng.sample(devices, min(rs.cohort_size, len(devices))))
        now = self.clock()
        # A secagg round has four stages, each with its own deadline; the ticket (checked
        # again when the masked update is sealed) must outlive them.
        span = rs.timeout_s if sa is None else max(rs.timeout_s, 4 * sa.stage_timeout_s)
        issued, deadline = int(now), math.ceil(now + span)
        nonce = os.urandom(NONCE_SIZE)
        extra: dict[str, object] = {}
        if sa is not None:
            extra = sa.params.ticket_fields(fleet_id(self.config.fleet))
            extra.pop("update_clip")
        tickets = {d: build_ticket(self.aggregator_key, round_id=round_id,
                                   model_version=cp.version, package_id=cp.package_id,
                                   nonce=nonce, issued_at=issued,
                                   deadline=deadline, example_clip=dp.example_clip,
                                   noise_multiplier=dp.noise_multiplier,
                                   update_clip=dp.update_clip, learning_rate=dp.learning_rate,
                                   epochs=dp.local_epochs, batch_size=dp.batch_size,
                                   **extra)  # type: ignore[arg-type]
                   for d in cohort}
        # The accountant's sampling rate is over every enrolled device: presence decides
        # who is asked, not who could have been.
        r = OpenRound(round_id, cp.version, nonce, issued, deadline,
                      float(np.float32(dp.update_clip)), len(cohort) / len(enrolled),
                      dp.central_noise_multiplier, "open", now, None, 0.0, 0)
        stages = None
        if sa is not None:
            assert self.registrar_pub is not None
            stages = SecAggStages(sa, self.config.fleet, round_id, nonce, cp.version,
                                  cohort, certs, self.aggregator_key, self.registrar_pub,
                                  self.clock)
        with self.store.transaction() as db:
            self.store.insert_round(db, r, tickets)
            if stages is not None:
                self.store.add_secagg_round(db, round_id, {d: certs[d] for d in cohort},
                                            stages.deadline)
        self._secagg = stages
        self._load_open()
        log.info("round %d opened: model v%d, cohort of %d of %d live devices (%d enrolled), "
                 "deadline in %.0f s", round_id, cp.version, len(cohort), len(devices),
                 len(enrolled), rs.timeout_s)
        return [(ticket_topic(self.config.fleet, d), tickets[d]) for d in cohort]

    def handle(self, topic: str, payload: bytes, *, defer: bool = False) -> Outcome:
        """Verify one update and commit its effect (accepted sum, or the refusal).

        With ``defer`` a refusal waits in ``self.ledger`` for the caller's ``ledger.flush()``
        (one commit for many refused messages); an accepted update always commits here.
        """
        out = self.stage(topic, payload)
        if out.accepted:
            self.commit()
        elif not defer:
            self.ledger.flush()
        return out

    def stage(self, topic: str, payload: bytes) -> Outcome:
        """Verify one update: an accepted one joins the batch that ``commit`` makes durable,
        a refusal waits in ``self.ledger``. Nothing is durable (or to be acked) before
        ``commit`` returns."""
        try:
            acc = self._verify(topic, payload)
            if isinstance(acc, AcceptedMasked):
                assert self._secagg is not None  # verify takes mode 2 only in a secagg round
                self._secagg.add_masked(payload, acc.device_id)
        except UpdateRefused as refused:
            return self._refused(topic, refused)
        if isinstance(acc, AcceptedMasked):
            # In the round's masked sum; ``commit`` makes it durable with its contributor.
            return Outcome(True, None, "accepted", acc.device_id)
        assert self._round is not None and self._running is not None
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch(self._running.total.copy(), self._running.weight)
        weight = fedavg.update_weight(acc.example_count, self._round.central_noise)
        delta = acc.delta
        if self._round.central_noise > 0.0:  # summed on the grid of the discrete noise
            delta = fedavg.on_grid(delta, self._round.update_clip)
        fedavg.add_into(batch.total, delta, weight, self._scratch)
        batch.weight += weight
        batch.rows.append((acc.device_id, acc.update_id, acc.example_count))
        batch.ids[acc.device_id] = acc.update_id
        batch.steps.append((acc.device_id, acc.update.steps, acc.update.total_steps,
                            acc.update.noise_multiplier))
        return Outcome(True, None, "accepted", acc.device_id)

    def _refused(self, topic: str, refused: UpdateRefused) -> Outcome:
        """Record a refusal in the ledger (flushed with the next commit) and the log."""
        round_id = self._round.round_id if self._round else self.store.last_round_id() or None
        stored = self.ledger.record(round_id=round_id, device_id=refused.device_id,
                                    topic=topic[:256], refusal=refused.refusal,
                                    reason=str(refused)[:1000])
        # Past the audit bound a source is only counted: so is its log line.
        log.log(logging.WARNING if stored else logging.DEBUG, "refused message on %s: %s: %s",
                topic[:256], refused.refusal, refused)
        return Outcome(False, refused.refusal, str(refused), refused.device_id)

    @property
    def committed(self) -> int:
        """Updates of the open round committed so far (0 without an open round)."""
        return 0 if self._running is None else self._running.count

    @property
    def staged(self) -> int:
        """Accepted updates waiting for ``commit``."""
        return 0 if self._batch is None else len(self._batch.rows)

    def announcement(self) -> Announcement:
        """The open round as a root announces it to its cohort workers (or none open)."""
        r, view = self._round, self._view
        if r is None or view is None:
            return Announcement(None)
        enrolled = self.registry.records()
        records = tuple(enrolled[d] for d in sorted(view.cohort) if d in enrolled)
        maskers = self._secagg.maskers if self._secagg is not None else None
        return Announcement(r.round_id, r.nonce, r.model_version, view.param_count,
                            r.update_clip, view.noise_multiplier, view.example_clip,
                            r.central_noise, records, view.package_id, view.secagg,
                            None if maskers is None else tuple(maskers))

    def worker_refusals(self, round_id: int, worker: str,
                        refusals: Sequence[WorkerRefusal]) -> None:
        """Record refusals a cohort worker named in the audit table, as if the root had
        refused those messages itself (the reason says which worker did).

        ``refusals`` is every refusal the worker named for the round so far (its partials
        repeat them): those recorded already, by this process or before a restart, are
        skipped, and the count recorded commits with the new audit rows."""
        recorded = self.store.worker_refusals_recorded(round_id).get(worker, 0)
        if len(refusals) <= recorded:
            return
        for r in refusals[recorded:]:
            stored = self.ledger.record(round_id=round_id, device_id=r.device_id,
                                        topic=r.topic, refusal=r.refusal,
                                        reason=f"worker {worker}: {r.reason}"[:1000])
            log.log(logging.WARNING if stored else logging.DEBUG,
                    "worker %s refused a message on %s: %s: %s", worker, r.topic, r.refusal,
                    r.reason)
        self.ledger.flush(also=lambda db: self.store.set_worker_refusals(
            db, round_id, worker, len(refusals)))

    def apply_cohort(self, combined: Combined) -> int:
        """A root's commit: the round's running sum becomes the workers' combined sum, and
        the devices it newly covers are recorded (one transaction); returns how many.

        In a secure-aggregation round the combined masked sum goes to the round's stages
        instead, and is recorded (with the devices it covers) for a restart to resume."""
        assert self._round is not None and self._running is not None
        if self._secagg is not None:
            if not combined.masked:
                return 0
            covered = {d: c.update_id for d, c in combined.contributions.items()}
            if not self._secagg.take_cohort_sum(combined.total, covered):
                return 0
            # Durable before the partial that made it is acknowledged: a restarted root
            # resumes the round with it (and with the newer partials the broker keeps).
            with self.store.transaction() as db:
                self.store.set_secagg_masked(db, self._round.round_id, combined.total,
                                             covered, replace=True)
            return len(covered)
        if combined.masked:
            return 0
        new = [c for d, c in sorted(combined.contributions.items()) if d not in self._accepted]
        with self.store.transaction() as db:
            self.store.add_updates(db, self._round.round_id,
                                   [(c.device_id, c.update_id, c.example_count) for c in new],
                                   combined.total, combined.weight)
            self.store.add_update_steps(db, self._round.round_id,
                                        [(c.device_id, c.steps, c.total_steps,
                                          c.noise_multiplier) for c in new])
        self._running = fedavg.RunningSum(np.array(combined.total, dtype=np.float64),
                                          combined.weight, self._running.count + len(new))
        self._accepted.update({c.device_id: c.update_id for c in new})
        return len(new)

    def commit(self) -> int:
        """Make the staged updates (one transaction: their rows and the running sum after
        them), staged presence and the pending refusals durable; returns the number of
        updates committed.

        After it returns, the messages staged since the last commit may be acknowledged. If
        it raises, the staged updates are dropped from memory too (their messages are not
        acknowledged, so the broker delivers them again).
        """
        batch, self._batch = self._batch, None
        presence, self._presence_rows = self._presence_rows, {}
        if self._secagg is not None:
            assert self._round is not None
            messages, total, masked = self._secagg.staged()
            if messages or masked or presence:
                try:
                    with self.store.transaction() as db:
                        for device_id, (status, at) in presence.items():
                            self.store.set_presence(db, device_id, status, at)
                        self.store.add_secagg_messages(db, self._round.round_id, messages)
                        if total is not None:
                            self.store.set_secagg_masked(db, self._round.round_id, total,
                                                         masked, replace=False)
                except BaseException:
                    # Taken in memory, not durable (nor acknowledged): back to the record.
                    self._secagg = None
                    self._load_open()
                    raise
                presence = {}
        if presence and batch is None:
            with self.store.transaction() as db:
                for device_id, (status, at) in presence.items():
                    self.store.set_presence(db, device_id, status, at)
        if batch is not None:
            assert self._round is not None and self._running is not None
            with self.store.transaction() as db:
                for device_id, (status, at) in presence.items():
                    self.store.set_presence(db, device_id, status, at)
                self.store.add_updates(db, self._round.round_id, batch.rows, batch.total,
                                       batch.weight)
                self.store.add_update_steps(db, self._round.round_id, batch.steps)
            self._running = fedavg.RunningSum(batch.total, batch.weight,
                                              self._running.count + len(batch.rows))
            self._accepted.update(batch.ids)
        self.ledger.flush()
        return 0 if batch is None else len(batch.rows)

    def _verify(self, topic: str, payload: bytes) -> Accepted | AcceptedMasked:
        """Verify against the open round, re-reading enrollment once for an unknown device."""
        accepted = self._accepted if self._batch is None \
            else ChainMap(self._batch.ids, self._accepted)
        try:
            return verify(self.config.fleet, topic, payload, self._devices, self._view,
                          accepted)
        except UpdateRefused as refused:
            # Re-read the devices only when their number changed: a flood of updates from
            # unenrolled keys must not cost a read of the whole table each.
            if refused.refusal != "unknown-device" \
                    or self.store.device_count() == len(self._devices):
                raise
        self.refresh_devices()
        return verify(self.config.fleet, topic, payload, self._devices, self._view, accepted)

    def due(self) -> str | None:
        """Why the open round should close now: 'quorum', 'offline' (every device still
        awaited is offline), 'deadline' or 'failed'; else None."""
        r = self._round
        if r is None or self._running is None:
            return None
        if self._secagg is not None:
            return ("secagg" if self._secagg.stage == "done" else "failed") \
                if self._secagg.finished else None
        cohort = len(self._view.cohort) if self._view else 0
        quorum = min(self.config.rounds.quorum, cohort)
        count = self._running.count + self.staged  # close() commits the staged ones first
        if count >= quorum:
            return "quorum"
        waiting = set(self._view.cohort if self._view else ()) - set(self._accepted) \
            - set(self._batch.ids if self._batch else ())
        if waiting and waiting <= self.store.skipped(r.round_id):
            # Every device answered, with an update or a signed skip: nothing more comes.
            return "answered" if count >= min(self.config.rounds.min_updates, cohort) \
                else "skipped"
        if waiting and waiting <= self._offline \
                and count >= min(self.config.rounds.min_updates, cohort):
            return "offline"  # every device still awaited announced it went offline
        if self.clock() >= r.deadline:
            enough = count >= min(self.config.rounds.min_updates, cohort)
            return "deadline" if enough else "failed"
        return None

    def close(self) -> RoundMetrics:
        """Close the open round: aggregate and checkpoint, or record it as failed."""
        why = self.due()
        if self._round is None or self._running is None or why is None:
            raise RuntimeError("no round is open, or it is not due to close")
        self.commit()  # staged updates count; the refusal counts are part of the metrics row
        r, running = self._round, self._running
        cp = self.ensure_model()
        failed = why in ("failed", "skipped")  # skipped: all answered, too few updates
        reason = None
        mean: np.ndarray | None = None
        published_noise = r.central_noise
        if self._secagg is not None:
            reason = self._secagg.reason
            if not failed:
                # FedAvg under secure aggregation: the unweighted mean of the survivors'
                # updates (docs/secagg.md); the sum is all the aggregator ever saw.
                total, survivors = self._secagg.result()
                running = fedavg.RunningSum(total.astype(np.float64), float(len(survivors)),
                                            len(survivors))
                mean = fedavg.aggregate_masked(
                    total, len(survivors), central_noise=r.central_noise,
                    update_clip=r.update_clip,
                    scale_log2=int(self._secagg.srv.params.scale_log2 or 0))
                published_noise = self._published_noise(r.central_noise, len(survivors))
        dp = self.config.dp
        privacy = self.store.round_privacy()
        if failed:
            W, b, version = cp.W, cp.b, cp.version
        else:
            if mean is None:
                mean = fedavg.aggregate(running, central_noise=r.central_noise,
                                        update_clip=r.update_clip)
            W, b = fedavg.apply_to_head(cp.W, cp.b, mean)
            version = cp.version + 1
            privacy.append((r.sampling_rate, published_noise))
        epsilon = fedavg.fleet_epsilon(privacy, dp.delta)
        accuracy = self.holdout.accuracy(W, b) if self.holdout else None
        now = self.clock()
        device_eps = None
        if self.device_budget is not None:
            spent = self.store.latest_steps()
            # the worst device: ε grows with steps under one policy
            device_eps = self.device_budget.epsilon(max(spent.values(), default=0))
        m = RoundMetrics(round=r.round_id, participants=running.count,
                         refused=self.store.refusals(r.round_id),
                         skipped=self.store.skip_counts(r.round_id), accuracy=accuracy,
                         epsilon=epsilon, delta=dp.delta, seconds=now - r.opened,
                         model_version=version, failed=failed, opened_at=r.opened,
                         closed_at=now, device_epsilon=device_eps, reason=reason)
        with self.store.transaction() as db:
            if not failed:
                self.store.add_checkpoint(db, version, r.round_id, W, b)
                if published_noise != r.central_noise:
                    self.store.set_published_noise(db, r.round_id, published_noise)
            self.store.finish_round(db, r.round_id, "failed" if failed else "closed",
                                    m.to_json())
            self.store.forget_secagg_round(db, r.round_id)
        self._secagg = None
        self._load_open()
        return m

    def _published_noise(self, central: float, survivors: int) -> float:
        """The multiplier a secure-aggregation round's model carries: the survivors' shares
        of distributed noise (the device policy's min_noise_share z: sqrt(n)·z, accounted
        with the survivors' count) combined with central noise, independent Gaussians."""
        share = 0.0 if self.device_budget is None else self.device_budget.policy.min_noise_share
        if share <= 0.0:
            return central
        return distributed_dp.combined_multiplier(central, share, survivors)

    def closed_rounds(self) -> int:
        """Rounds closed so far (successful or failed)."""
        counts = self.store.round_counts()
        return counts.get("closed", 0) + counts.get("failed", 0)
