"""The board daemon: receives model packages and round tickets, trains in the TA, publishes.

paho's network thread only queues messages; one worker thread does every TA
call in arrival order (the TA holds one ticket per session), so verify/train
pairs never interleave and the network never blocks on training.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from edge import protocol, tee_abi
from edge.daemon.config import DaemonConfig
from edge.daemon.datasource import open_source
from edge.daemon.delivery import Delivery
from edge.daemon.outbox import SKIP_SUFFIX, Entry, Outbox, skip_key
from edge.daemon.store import SampleStore
from edge.errors import BackboneNotPublished, EdgeError, Malformed, Rollback, StateError
from edge.formats.device import parse_device_record
from edge.formats.envelope import parse_envelope
from edge.formats.keywrap import KEY_WRAP_SIZE, read_key_wrap
from edge.formats.manifest import PackageManifest
from edge.formats.package import parse_package
from edge.formats.skip import parse_skip
from edge.formats.ticket import parse_ticket
from edge.logformat import kv_value
from edge.mqtt import client_id, connect_async, make_client, session_secret
from edge.sdnotify import Notifier
from edge.state_files import write_durably
from edge.stopping import WAKE_S, stop_requested
from edge.tee import LoadedModel, TaStatus, TrustedApp
from edge.tee_abi import SkipReason

log = logging.getLogger("edge.daemon")
PUBLISH_TIMEOUT = 60.0
STOP_GRACE = 5.0
INFER_BATCH = 256
SEEN_TICKETS = 64
# Tickets naming a model newer than the TA holds, kept until that model is loaded.
PARKED_TICKETS = 8
# A clean stop waits this long at most for the broker to take its OFFLINE status.
OFFLINE_WAIT_S = 1.0
# The aggregator publishes a package and every recipient's key wrap together: a package held
# this long without this device's wrap means the aggregator does not serve this device.
WRAP_WAIT_S = 30.0
# The model is retained: a board subscribed this long without one hears no aggregator.
MODEL_WAIT_S = 60.0
SECAGG_TICKET = "secagg-ticket.bin"


@dataclass
class DaemonStats:
    """Counters a test or the demo can read while the daemon runs."""

    models_loaded: int = 0
    models_refused: int = 0
    rounds_published: list[int] = field(default_factory=list)
    republished: int = 0
    rounds_skipped: dict[int, str] = field(default_factory=dict)
    skips_reported: list[int] = field(default_factory=list)  # rounds of published reports
    connects: int = 0


class Daemon:
    """One board: a TA session, a sample store, a data source and an MQTT client."""

    def __init__(self, config: DaemonConfig, *,
                 gate: threading.Semaphore | None = None) -> None:
        """Open the TA, the store and the source; nothing touches the network yet.

        ``gate``, shared by the daemons of one process (a simulated fleet's device host),
        bounds how many of them work at once; a board runs one daemon and needs none.
        """
        self.config = config
        self._gate = gate
        try:
            config.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(f"paths.work_dir: cannot create {config.work_dir}: "
                             f"{exc.strerror}") from None
        self.ta = TrustedApp(config.tee_backend,
                             config.tee_state_dir if config.tee_backend == "sim" else None)
        self._status: TaStatus | None = None  # see _held
        # (backbone, sample revision, cap, head shape) -> (features, labels): see _features
        self._computed: tuple[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] | None = None
        try:
            self.device_id = parse_device_record(self.ta.identity()).device_id
            self.store = SampleStore(config.data.store_dir, config.data.max_samples)
        except BaseException:
            self.ta.close()
            raise
        self.source = open_source(config.data.source, self.store, path=config.data.path,
                                  serial_url=config.data.serial_url,
                                  baudrate=config.data.baudrate, device=config.name)
        self.model_topic = protocol.model_topic(config.fleet)
        self.wrap_topic = protocol.wrap_topic(config.fleet, self.device_id)
        self.ticket_topic = protocol.ticket_topic(config.fleet, self.device_id)
        self.update_topic = protocol.update_topic(config.fleet, self.device_id)
        self.status_topic = protocol.status_topic(config.fleet, self.device_id)
        self.skip_topic = protocol.skip_topic(config.fleet, self.device_id)
        self.secagg_topics = {
            protocol.secagg_fleet_topic(config.fleet, "roster"): "secagg-roster",
            protocol.secagg_inbox_topic(config.fleet, self.device_id): "secagg-inbox",
            protocol.secagg_fleet_topic(config.fleet, "survivors"): "secagg-survivors"}
        self.stats = DaemonStats()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.backbone: Any = None
        self._backbone_error: str | None = None
        # What the built backbone was made from (model bytes, metadata).
        self._backbone_key: tuple[bytes, dict[str, Any]] | None = None
        # (kind, payload, when it arrived: time.monotonic())
        self._jobs: queue.Queue[tuple[str, bytes, float] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._closed = False
        self._seen: list[bytes] = []
        self._secagg_seen: list[bytes] = []  # digests of the secagg directives answered
        self._parked: list[bytes] = []
        # The newest package and key wrap received (both retained, in either order);
        # a package is loaded once the wrap for it is here too.
        self._package: bytes | None = None
        self._parsed: tuple[bytes, PackageManifest] | None = None  # the package's manifest
        self._wrap_warned: bytes | None = None  # the package id warned about (no wrap)
        self._model_seen = threading.Event()  # a package came on the model topic
        self._model_check = False  # a check of MODEL_WAIT_S is scheduled or done
        self._wrap: bytes | None = None
        # A persistent session: the broker queues tickets that come while the board is
        # briefly offline (a broker restart, a network blip) instead of dropping them.
        # Its id must stay the same across restarts and, without broker credentials
        # to bind it, be unguessable: derived from a secret kept in the work folder.
        self.client = make_client(
            config.broker,
            client_id(config.broker, f"edge-{self.device_id.hex()}",
                      secret=session_secret(config.work_dir)),
            clean_session=False, on_failure=self._connect_failed)
        # Presence: the broker publishes this (retained) when the connection is lost
        # without a DISCONNECT; _on_connect says online, run() says offline on a clean stop.
        self.client.will_set(self.status_topic, protocol.OFFLINE, qos=1, retain=True)
        self.delivery = Delivery(self.client, self.update_topic,
                                 Outbox(config.work_dir / "outbox"))
        self.outbox = self.delivery.outbox
        # Skip reports go through the outbox too: made while the broker is down, they are
        # published after the reconnect, and survive a restart (docs/daemon.md, The outbox).
        self.skip_delivery = Delivery(
            self.client, self.skip_topic,
            Outbox(config.work_dir / "outbox", suffix=SKIP_SUFFIX, key=skip_key),
            acks=self.delivery.acks)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._restore_backbone()

    # -- logging -----------------------------------------------------------
    def _log(self, level: int, step: str, round_id: int | None = None, **fields: Any) -> None:
        """One structured line: device, round, step, then the fields."""
        if not log.isEnabledFor(level):
            return  # a filtered line: formatting its fields would be wasted
        extra = " ".join(f"{k}={kv_value(v)}" for k, v in fields.items())
        log.log(level, "device=%s round=%s step=%s %s", self.config.name,
                "-" if round_id is None else round_id, step, extra)

    # -- MQTT callbacks (paho's network thread: never block here) -----------
    def _connect_failed(self, cause: str, retry_in: int) -> None:
        self._log(logging.WARNING, "connect", result="failed", broker=self.config.broker.url,
                  cause=cause, retry_in=f"{retry_in}s")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._log(logging.WARNING, "connect", result="refused", broker=self.config.broker.url,
                      reason=str(reason_code),
                      retry_in=f"{self.client.next_retry()}s")
            return
        self.client.accepted()
        self.stats.connects += 1
        client.subscribe([(self.model_topic, 1), (self.wrap_topic, 1), (self.ticket_topic, 1),
                          *((t, 1) for t in self.secagg_topics)])
        client.publish(self.status_topic, protocol.ONLINE, qos=1, retain=True)
        self.connected.set()
        if self.stats.connects == 1 or not flags.session_present:
            # First connect of this process (what it published before a restart may never
            # have been acknowledged), or a broker that lost our session (a crash, so
            # perhaps what it acknowledged too): publish the kept updates again. A reconnect
            # to a broker that kept our session publishes nothing again: paho re-sends what
            # is unacknowledged, and what was acknowledged is queued for the aggregator (a
            # keepalive drop under load once made every board re-send its update).
            self._jobs.put(("outbox", b"", time.monotonic()))
        self._log(logging.INFO, "connect", result="ok", broker=self.config.broker.url,
                  device_id=self.device_id.hex())

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._log(logging.ERROR, "subscribe", result="refused",
                      reasons=",".join(str(rc) for rc in reason_codes))
            return
        self.subscribed.set()
        self._log(logging.DEBUG, "subscribe", result="ok")
        if not self._model_check and not self._model_seen.is_set():
            self._model_check = True
            timer = threading.Timer(MODEL_WAIT_S, lambda: self._jobs.put(
                ("model-check", b"", time.monotonic())))
            timer.daemon = True
            timer.start()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: Any, properties: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stopping.is_set():
            self._log(logging.WARNING, "disconnect", reason=reason_code, action="reconnecting")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        kind = {self.model_topic: "model", self.wrap_topic: "wrap",
                self.ticket_topic: "ticket"}.get(msg.topic) or self.secagg_topics.get(msg.topic)
        if kind is None:
            self._log(logging.WARNING, "receive", topic=msg.topic, result="unexpected-topic")
            return
        if kind == "model":
            self._model_seen.set()
        self._jobs.put((kind, bytes(msg.payload), time.monotonic()))

    # -- lifetime ------------------------------------------------------------
    def run(self, stop: threading.Event, notifier: Notifier | None = None) -> None:
        """Connect and serve until ``stop`` is set; then finish or abandon the current step.

        With a ``notifier`` (systemd ``Type=notify``), READY=1 follows start-up, WATCHDOG=1
        is sent while the worker thread lives, and STOPPING=1 precedes shutdown.
        """
        notifier = notifier or Notifier({})
        self.source.start()
        self._log(logging.INFO, "start", samples=len(self.store), source=self.config.data.source,
                  tee=self.config.tee_backend, model_version=self._held().model_version)
        self._forget_closed()
        worker = threading.Thread(target=self._work, name="daemon-worker", daemon=True)
        worker.start()
        connect_async(self.client, self.config.broker)
        self.client.loop_start()
        try:
            notifier.ready(f"device {self.config.name}: serving")
            interval = notifier.ping_interval_s
            next_ping = None if interval is None else time.monotonic() + interval
            # Wake every WAKE_S (signal handlers run in the main thread only) and ping
            # the watchdog when due; a dead worker stops the pings, so systemd restarts us.
            # A daemon on another thread without a watchdog (a device host runs 100) has
            # nothing to wake for: 1,000 of them waking 5 times a second fought the GIL.
            wake = WAKE_S if (next_ping is not None
                              or threading.current_thread() is threading.main_thread()) \
                else None
            while not stop.wait(wake):
                if next_ping is not None and time.monotonic() >= next_ping:
                    if worker.is_alive():
                        notifier.watchdog()
                    next_ping = time.monotonic() + interval
            if (name := stop_requested(stop)) is not None:
                self._log(logging.INFO, "signal", signal=name, action="stopping")
        finally:
            notifier.stopping()
            self._stopping.set()
            self._jobs.put(None)
            worker.join()
            self._say_offline()
            self.client.disconnect()
            self.client.loop_stop()
            self.source.close()
            self._log(logging.INFO, "stop", published=len(self.stats.rounds_published))

    def _say_offline(self) -> None:
        """Publish OFFLINE (retained) before a clean disconnect, which sends no will.

        Bounded: a stop must not wait on a broker that is gone (its will went out then)."""
        if not self.connected.is_set():
            return
        info = self.client.publish(self.status_topic, protocol.OFFLINE, qos=1, retain=True)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(OFFLINE_WAIT_S)

    def close(self) -> None:
        """Release the TA session and the store; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.ta.close()
        self.store.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        """Handle queued packages and tickets one at a time until stopped."""
        while True:
            job = self._jobs.get()
            if job is None or self._stopping.is_set():
                if job is not None:
                    self._log(logging.INFO, job[0], result="abandoned", reason="stopping")
                return
            kind, payload, arrived = job
            with self._gated():
                self._do(kind, payload, arrived)

    @contextlib.contextmanager
    def _gated(self) -> Iterator[None]:
        """Hold the process's gate (if any) for one job.

        100 daemons of a device host all handling a new model at once kept 200 threads
        runnable on one GIL: their network threads then missed keepalives for over 90 s
        (the broker dropped boards at 1,000 devices) and the GIL hand-offs alone took most
        of the CPU. A few at a time do the same work without the convoy."""
        if self._gate is None:
            yield
            return
        with self._gate:
            yield

    @contextlib.contextmanager
    def _ungated(self) -> Iterator[None]:
        """Let the gate go while waiting on the network (a PUBACK), take it back after."""
        if self._gate is None:
            yield
            return
        self._gate.release()
        try:
            yield
        finally:
            self._gate.acquire()

    def _do(self, kind: str, payload: bytes, arrived: float) -> None:
        """Handle one job; a failure is logged, never raised into the worker loop."""
        try:
            if kind == "model":
                self._package = payload
                self._try_load()
            elif kind == "wrap":
                self._wrap = payload
                self._try_load()
            elif kind == "outbox":
                self._republish_all()
            elif kind == "wrap-check":
                self._check_wrap(payload)
            elif kind == "model-check":
                self._check_model()
            elif kind.startswith("secagg-"):
                self._handle_secagg(kind, payload)
            else:
                self._handle_ticket(payload, arrived)
        except EdgeError as exc:  # a failing state file, say: one line, not a traceback
            log.error("device=%s step=%s result=failed reason=%s detail=%s",
                      self.config.name, kind, exc.refusal, kv_value(exc))
        except Exception:
            log.exception("device=%s step=%s unexpected failure", self.config.name, kind)

    # -- model packages --------------------------------------------------------
    def _try_load(self) -> None:
        """Load the newest package once the newest key wrap names it (either may come first)."""
        if self._package is None:
            return
        try:
            if self._parsed is None or self._parsed[0] is not self._package:
                # Parsed once: a package is tried again when its wrap comes.
                self._parsed = (self._package, parse_package(self._package)[1])
            manifest = self._parsed[1]
        except EdgeError as exc:
            self.stats.models_refused += 1
            self._package = None
            self._log(logging.WARNING, "model", result="refused", refusal=exc.refusal,
                      reason=exc)
            return
        if self._wrap is None:
            self._log(logging.DEBUG, "model", version=manifest.version, result="waiting",
                      reason="no key wrap yet")
            self._expect_wrap(manifest.package_id)
            return
        try:
            # Unverified, for pairing only: the TA checks the wrap's signature and binding.
            wrap_package = read_key_wrap(parse_envelope(
                self._wrap, kind=tee_abi.Kind.KEY_WRAP, max_len=KEY_WRAP_SIZE)).package_id
        except EdgeError as exc:
            self._wrap = None
            self._log(logging.WARNING, "wrap", result="refused", refusal=exc.refusal, reason=exc)
            return
        if wrap_package != manifest.package_id:
            self._log(logging.DEBUG, "model", version=manifest.version, result="waiting",
                      reason=f"key wrap is for package {wrap_package.hex()}")
            self._expect_wrap(manifest.package_id)
            return
        payload, wrap = self._package, self._wrap
        if self._handle_model(payload, wrap, manifest):
            # Loaded, or an old one refused as rollback: nothing to retry with them.
            self._package = self._wrap = None

    def _expect_wrap(self, package_id: bytes) -> None:
        """Check in WRAP_WAIT_S whether this package is still held without our key wrap."""
        timer = threading.Timer(WRAP_WAIT_S, lambda: self._jobs.put(
            ("wrap-check", package_id, time.monotonic())))
        timer.daemon = True
        timer.start()

    def _held(self) -> TaStatus:
        """The TA's status. What the daemon reads of it (model version, package, head shape)
        changes only when a package is loaded, so it is asked once per load (and at start),
        not at every step: each ask is a round trip to the secure world."""
        if self._status is None:
            self._status = self.ta.status()
        return self._status

    def _check_model(self) -> None:
        """Warn once when no model came MODEL_WAIT_S after subscribing and the TA holds none:
        no aggregator of this fleet has published (a fleet name that is not the aggregator's,
        or an ACL written for another fleet, deny nothing visibly in MQTT 3.1.1)."""
        if self._model_seen.is_set() or self._held().model_version:
            return
        self._log(logging.WARNING, "model", result="none-yet", waited=f"{MODEL_WAIT_S:.0f}s",
                  topic=self.model_topic,
                  reason=f"no model package from the fleet's aggregator yet: is it running, is "
                  f"device.fleet ({self.config.fleet}) its aggregator.fleet, and does the "
                  "broker's acl name that fleet?")

    def _check_wrap(self, package_id: bytes) -> None:
        """Warn (once per package) when a package still waits for this device's key wrap:
        the board is not among its recipients, so it will never train."""
        if self._package is None or self._wrap_warned == package_id:
            return
        with contextlib.suppress(EdgeError):
            _, manifest = parse_package(self._package)
            if manifest.package_id != package_id or (
                    self._wrap is not None and read_key_wrap(parse_envelope(
                        self._wrap, kind=tee_abi.Kind.KEY_WRAP,
                        max_len=KEY_WRAP_SIZE)).package_id == package_id):
                return  # a newer package came, or the wrap did (and the TA said why not)
            self._wrap_warned = package_id
            self._log(logging.WARNING, "model", version=manifest.version, result="no-key-wrap",
                      package=package_id.hex(), waited=f"{WRAP_WAIT_S:.0f}s",
                      reason="the aggregator sent no key wrap for this device: is it "
                      "enrolled? (edge aggregator status lists boards online but not "
                      f"enrolled; device id {self.device_id.hex()})")

    def _handle_model(self, payload: bytes, wrap: bytes, manifest: PackageManifest) -> bool:
        """Give a package and its wrap to the TA; switch the backbone only once accepted.

        True when they need not be kept (loaded, or a rollback); False when refused
        otherwise, so that a new package or a new wrap is tried with the other one.
        """
        pkg = self.config.work_dir / "incoming.pkg"
        out = self.config.work_dir / "backbone.partial"
        pkg.write_bytes(payload)
        self._status = None  # whatever the outcome: a refused load may have committed
        try:
            loaded = self.ta.load_model(pkg, wrap=wrap,
                                        backbone_out=out if manifest.has_backbone else None)
        except BackboneNotPublished as exc:
            # The TA committed this version: its verified backbone is complete at
            # exc.partial, and keeping the old one would pair it with the new head.
            self._log(logging.WARNING, "model", version=manifest.version,
                      result="loaded", reason=exc)
            loaded = LoadedModel(manifest.version, None, exc.partial, 0)
            out = exc.partial
        except EdgeError as exc:
            self.stats.models_refused += 1
            level = logging.WARNING
            if isinstance(exc, Rollback):
                # The retained package we hold comes again on every reconnect: expected.
                # Any other rollback (a restored aggregator database, a second aggregator)
                # stalls the fleet until someone reads this line.
                held = self._held()
                same = (held.model_version, held.package_id) == (manifest.version,
                                                                 manifest.package_id)
                level = logging.DEBUG if same else logging.INFO
            self._log(level, "model", version=manifest.version, result="refused",
                      refusal=exc.refusal, reason=exc)
            if isinstance(exc, Rollback):
                self._forget_closed()
            return isinstance(exc, Rollback)
        finally:
            pkg.unlink(missing_ok=True)
        self._forget_closed()
        metadata = manifest.metadata_object()
        self._switch_backbone(loaded.version, manifest.package_id, metadata,
                              out if manifest.has_backbone else None)
        self.stats.models_loaded += 1
        self._log(logging.INFO, "model", version=loaded.version, result="loaded",
                  backbone="tflite" if self.backbone is not None else "none",
                  head=f"{manifest.head_in}x{manifest.head_out}")
        self._unpark(loaded.version)
        return True

    def _unpark(self, version: int) -> None:
        """Handle the tickets that waited for a model up to ``version``, oldest first."""
        ready = [p for p in self._parked if parse_ticket(p).model_version <= version]
        self._parked = [p for p in self._parked if p not in ready]
        for payload in ready:
            self._handle_ticket(payload)

    def _switch_backbone(self, version: int, package_id: bytes, metadata: dict[str, Any],
                         backbone_file: Any) -> None:
        """Use the verified backbone the TA wrote (or raw features without one); keep it."""
        saved = self.config.work_dir / "backbone.tflite"
        info = self.config.work_dir / "backbone.json"
        if backbone_file is None:
            self.backbone, self._backbone_error, self._backbone_key = None, None, None
            saved.unlink(missing_ok=True)
            info.unlink(missing_ok=True)
            return
        model = Path(backbone_file).read_bytes()
        # Most releases change the head only: the same verified backbone keeps its built
        # interpreter (building one cost about a third of a model load).
        same = self.backbone is not None and self._backbone_key == (model, metadata)
        Path(backbone_file).replace(saved)
        write_durably(info, json.dumps({"version": version, "package_id": package_id.hex(),
                                        "metadata": metadata}).encode("utf-8"), mode=0o644)
        if not same:
            self._load_backbone(model, metadata)

    def _load_backbone(self, model: bytes, metadata: dict[str, Any]) -> None:
        """Build the TFLite backbone; on failure, rounds are skipped with the reason."""
        from edge.inference.backbone import Backbone

        self.backbone, self._backbone_error, self._backbone_key = None, None, None
        try:
            self.backbone = Backbone.from_verified(model, metadata, self.config.inference)
            self._backbone_key = (model, metadata)
        except EdgeError as exc:
            self._backbone_error = f"{exc.refusal}: {exc}"
            self._log(logging.ERROR, "backbone", result="unusable", refusal=exc.refusal,
                      reason=exc)

    def _restore_backbone(self) -> None:
        """After a restart: reuse the backbone the TA wrote for the package it still holds."""
        info = self.config.work_dir / "backbone.json"
        saved = self.config.work_dir / "backbone.tflite"
        if not (info.is_file() and saved.is_file()):
            return
        try:
            meta = json.loads(info.read_text(encoding="utf-8"))
            held = self._held().package_id.hex()
            if meta.get("package_id") != held:
                self._log(logging.INFO, "backbone", result="stale", action="ignored")
                return
            self._load_backbone(saved.read_bytes(), meta["metadata"])
        except (OSError, ValueError, KeyError) as exc:
            self._log(logging.WARNING, "backbone", result="unreadable", reason=exc)

    # -- rounds ------------------------------------------------------------------
    def _skip(self, round_id: int, step: str, reason: str, level: int = logging.WARNING,
              *, report: tuple[bytes, int, int] | None = None, **fields: Any) -> None:
        """Skip a round: log it and, with ``report`` = (ticket, normal-world reason, example
        count), publish the TA's signed skip report so the aggregator sees why."""
        self.stats.rounds_skipped[round_id] = reason
        if report is not None:
            described = self._report_skip(round_id, *report)
            if described is not None:
                fields = {**fields, "detail": described}
        self._log(level, step, round_id, result="skipped", reason=reason, **fields)

    def _report_skip(self, round_id: int, ticket: bytes, reason: int,
                     examples: int) -> str | None:
        """Keep the signed skip report of a round in the outbox and publish it (QoS 1, not
        awaited; again after every connect until its round is over); return what it says
        (``weaker-than-policy (noise_multiplier 1.0 < policy sigma_min 1.1)``)."""
        try:
            report = self.ta.sign_skip(ticket, reason=reason, examples=examples)
        except EdgeError as exc:
            # A forged ticket, or one the TA would train after all: nothing to report.
            self._log(logging.DEBUG, "skip-report", round_id, result="not-signed",
                      refusal=exc.refusal, reason=exc)
            return None
        described = parse_skip(report).describe()
        try:
            entry = self.skip_delivery.keep(report)
        except OSError as exc:
            self._log(logging.ERROR, "outbox", round_id, result="not-kept", kind="skip",
                      reason=exc)
            entry = self.skip_delivery.unkept(report)
        if self.skip_delivery.send(entry)[0] is None:
            self._log(logging.WARNING, "skip-report", round_id, result="not-queued",
                      reason="queue-full", action="kept")
        self.stats.skips_reported.append(round_id)
        # The TA signs only for an authentic ticket: every earlier round is over.
        self._forget_closed(before_round=round_id)
        return described

    def _handle_ticket(self, payload: bytes, arrived: float | None = None) -> None:
        """Verify, compute features, train and seal in the TA, publish with QoS 1."""
        try:
            ticket = parse_ticket(payload)
        except EdgeError as exc:
            self._log(logging.WARNING, "ticket", result="refused", refusal=exc.refusal,
                      reason=exc)
            return
        rid = ticket.round_id
        kept = self.delivery.kept(rid)
        if kept is not None:
            # Sealed already (before a restart, or the aggregator re-sent the ticket because
            # the update never reached it): publish the kept update, never train twice.
            sent = self.delivery.sent_at(rid)
            if arrived is not None and sent is not None and sent > arrived:
                # This copy of the ticket waited in our queue while the update went out:
                # the aggregator re-sent it before it could have seen that publish. (At
                # 1,000 devices the copies re-sent while boards were loading the model
                # each made a board publish its update again once it had sealed.)
                self._log(logging.DEBUG, "ticket", rid, result="ignored",
                          reason="update published after it arrived")
                return
            self._send(kept, reason="ticket")
            return
        digest = hashlib.sha256(payload).digest()
        if digest in self._seen:
            self._log(logging.DEBUG, "ticket", rid, result="ignored", reason="seen")
            return
        held = self._held().model_version
        if ticket.model_version > held:
            # After a reconnect the broker hands the persistent session its queued ticket
            # before the retained model it names (a board dropped while loading it): the TA
            # would refuse it as wrong-model and the re-sends would be ignored as seen.
            # Keep it, unverified and not marked seen, until that model is loaded.
            if payload not in self._parked:
                self._parked = [*self._parked[-(PARKED_TICKETS - 1):], payload]
            self._log(logging.INFO, "ticket", rid, result="parked", reason="model-not-loaded",
                      model_version=ticket.model_version, held=held)
            return
        self._seen = [*self._seen[-(SEEN_TICKETS - 1):], digest]
        if ticket.deadline <= time.time():
            self._skip(rid, "ticket", "expired", deadline=ticket.deadline,
                       report=(payload, SkipReason.NONE, 0))
            return
        if ticket.update_mode == tee_abi.UpdateMode.SECAGG:
            self._secagg_advertise(rid, payload)
            return
        self._train_and_publish(rid, payload, ticket.deadline)

    def _train_and_publish(self, rid: int, payload: bytes, deadline: int) -> None:
        """Verify the ticket in the TA, train and seal, keep and publish the update."""
        try:
            accepted = self.ta.verify_ticket(payload)
        except EdgeError as exc:
            self._skip(rid, "verify", exc.refusal, detail=exc,
                       report=(payload, SkipReason.NONE, 0))
            return
        self._log(logging.INFO, "verify", rid, result="ok", steps_left=accepted.steps_left)
        # An authentic ticket of round rid: every earlier round is closed.
        self._forget_closed(before_round=rid)
        if self._stopping.is_set():
            self._skip(rid, "verify", "stopping", level=logging.INFO)
            return
        prepared = self._features(rid, payload)
        if prepared is None:
            return
        features, labels = prepared
        started = time.monotonic()
        try:
            sealed = self.ta.train_and_seal(features, labels)
        except EdgeError as exc:
            self._skip(rid, "train", exc.refusal, detail=exc,
                       report=(payload, SkipReason.NONE, len(labels)))
            return
        self._log(logging.INFO, "train", rid, result="sealed", examples=len(labels),
                  seconds=f"{time.monotonic() - started:.3f}", bytes=len(sealed))
        # A sealed update has spent privacy budget: keep it on disk before it can be
        # published (a crash from here on re-publishes it), and publish it even when stopping.
        try:
            entry = self.delivery.keep(sealed)
        except OSError as exc:
            self._log(logging.ERROR, "outbox", rid, result="not-kept", reason=exc)
            entry = self.delivery.unkept(sealed)
        self._publish(rid, entry, deadline)

    # -- secure aggregation (docs/secagg.md, "Over MQTT") ------------------------------
    def _secagg_advertise(self, rid: int, payload: bytes) -> None:
        """Stage 1: fresh keys in the TA, their signed advert out; the ticket kept for stage 4."""
        try:
            advert = self.ta.secagg_advertise(payload)
        except EdgeError as exc:
            self._skip(rid, "secagg-advert", exc.refusal, detail=exc)
            return
        # The masked update is sealed under this ticket after the inbox: kept on disk so that
        # a daemon restarted between the stages can still seal (the TA keeps its round state).
        write_durably(self.config.work_dir / SECAGG_TICKET, payload, mode=0o600)
        self._secagg_send(rid, "advert", advert)

    def _handle_secagg(self, kind: str, payload: bytes) -> None:
        """Stages 2, 3+4 and 5: the TA answers each aggregator directive."""
        # The aggregator sends a directive again to devices it still waits for (after a
        # reconnect, on a timer, when one comes back online): each is answered once here.
        digest = hashlib.sha256(payload).digest()
        if digest in self._secagg_seen:
            self._log(logging.DEBUG, kind, result="ignored", reason="seen")
            return
        self._secagg_seen = [*self._secagg_seen[-(SEEN_TICKETS - 1):], digest]
        try:
            if kind == "secagg-roster":
                self._secagg_send(None, "shares", self.ta.secagg_share(payload))
            elif kind == "secagg-inbox":
                self.ta.secagg_receive(payload)
                self._log(logging.INFO, "secagg-inbox", result="received")
                self._secagg_masked()
            else:
                self._secagg_send(None, "reveals", self.ta.secagg_unmask(payload))
        except EdgeError as exc:
            # Not ours (a roster or survivor list without this device) or refused: one line.
            level = logging.INFO if exc.refusal == "not-for-this-device" else logging.WARNING
            self._log(level, kind, result="refused", refusal=exc.refusal, reason=exc)

    def _secagg_masked(self) -> None:
        """Stage 4: train and seal the masked update under the kept secagg ticket."""
        try:
            payload = (self.config.work_dir / SECAGG_TICKET).read_bytes()
            ticket = parse_ticket(payload)
        except (OSError, EdgeError) as exc:
            self._log(logging.WARNING, "secagg-masked", result="skipped",
                      reason=f"no secagg ticket kept ({exc})")
            return
        kept = self.delivery.kept(ticket.round_id)
        if kept is not None:
            # Sealed already (an inbox sent again after a restart): never train twice.
            self._send(kept, reason="secagg-inbox")
            return
        self._train_and_publish(ticket.round_id, payload, ticket.deadline)

    def _secagg_send(self, rid: int | None, stage: str, message: bytes) -> None:
        """Publish one of this device's secagg messages with QoS 1 (paho re-sends it)."""
        topic = protocol.secagg_device_topic(self.config.fleet, self.device_id, stage)
        if self.delivery.acks.publish(self.client, topic, message) is None:
            self._skip(rid if rid is not None else 0, f"secagg-{stage}", "queue-full")
            return
        self._log(logging.INFO, f"secagg-{stage}", rid, result="published", bytes=len(message))

    def _features(self, rid: int, ticket: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        """The newest local samples through the backbone (or raw), sized for the TA; a round
        without them is skipped with a signed report naming the reason.

        The backbone is frozen: the same samples through the same backbone give the same
        features, so they are computed again only when the samples, the backbone or the
        head's shape change (a board's backbone pass over its samples is most of a round's
        work on a CPU; the TA only reads them)."""
        self.source.scan()
        status = self._held()
        if self._backbone_error is not None:
            self._skip(rid, "features", "backbone-unusable", detail=self._backbone_error,
                       report=(ticket, SkipReason.BACKBONE_UNUSABLE, 0))
            return None
        cap = min(tee_abi.MAX_TRAIN_EXAMPLES,
                  tee_abi.MAX_TRAIN_FEATURE_BYTES // (4 * max(status.head_in, 1)))
        key = (self.backbone, self.store.revision(), cap, status.head_in, status.head_out)
        if self._computed is not None and self._computed[0] == key:
            self._log(logging.DEBUG, "features", rid, samples=len(self._computed[1][1]),
                      backbone="tflite" if self.backbone is not None else "raw", cached=True)
            return self._computed[1]
        self._computed = None
        x, y = self.store.latest(cap)
        known = y < max(status.head_out, 1)
        if not known.all():
            self._log(logging.WARNING, "features", rid, dropped=int((~known).sum()),
                      reason=f"label >= head_out {status.head_out}")
            x, y = x[known], y[known]
        if len(y) == 0:
            self._skip(rid, "features", "no-samples",
                       report=(ticket, SkipReason.NO_SAMPLES, 0))
            return None
        try:
            features = self._run_backbone(x)
        except EdgeError as exc:
            self._skip(rid, "features", exc.refusal, detail=exc,
                       report=(ticket, SkipReason.DATA_SOURCE, 0))
            return None
        if features.shape[1] != status.head_in:
            self._skip(rid, "features", "shape", features=features.shape[1],
                       head_in=status.head_in, report=(ticket, SkipReason.FEATURE_SHAPE, 0))
            return None
        features.setflags(write=False)  # kept for the next rounds: nobody may change them
        y.setflags(write=False)
        self._computed = (key, (features, y))
        self._log(logging.DEBUG, "features", rid, samples=len(y),
                  backbone="tflite" if self.backbone is not None else "raw")
        return features, y

    def _run_backbone(self, x: np.ndarray) -> np.ndarray:
        """Features (n x head_in float32) from flat samples."""
        if self.backbone is None:
            return np.ascontiguousarray(x, np.float32)
        shape = self.backbone.input_shape
        if x.shape[1] != math.prod(shape):
            raise Malformed(f"samples have {x.shape[1]} values, the backbone takes {shape}")
        parts = [np.asarray(self.backbone.run(x[i:i + INFER_BATCH].reshape(-1, *shape)),
                            np.float32).reshape(min(INFER_BATCH, len(x) - i), -1)
                 for i in range(0, len(x), INFER_BATCH)]
        return np.ascontiguousarray(np.concatenate(parts))

    def _publish(self, rid: int, entry: Entry, deadline: int) -> None:
        """Publish with QoS 1 and wait for the PUBACK (paho resends after a reconnect)."""
        pending, _ = self.delivery.send(entry)
        if pending is None:
            self._skip(rid, "publish", "queue-full")
            return
        limit = min(PUBLISH_TIMEOUT, max(deadline - time.time(), 1.0))
        started = time.monotonic()
        with self._ungated():
            while not self.delivery.wait(pending, 0.1):
                waited = time.monotonic() - started
                if self._stopping.is_set():
                    limit = min(limit, waited + STOP_GRACE)
                if waited > limit:
                    break
            else:
                waited = -1.0
        if waited >= 0.0:
            # Still in paho's queue and in the outbox: sent after a reconnect.
            self._skip(rid, "publish", "no-puback", connected=self.connected.is_set(),
                       action="kept")
            return
        self.stats.rounds_published.append(rid)
        self._log(logging.INFO, "publish", rid, result="acknowledged", bytes=len(entry.sealed),
                  topic=self.update_topic)

    def _send(self, entry: Entry, *, reason: str) -> None:
        """Publish a kept update again (a reconnect, or its round's ticket came again)."""
        pending, fresh = self.delivery.send(entry)
        if pending is None:
            self._skip(entry.round_id, "publish", "queue-full")
        elif fresh:
            self.stats.republished += 1
            self._log(logging.INFO, "publish", entry.round_id, result="republished",
                      reason=reason, bytes=len(entry.sealed))

    def _republish_all(self) -> None:
        """After a (re)connect: publish every kept update again (the broker may have lost it)."""
        for entry in self.delivery.entries():
            self._send(entry, reason="reconnect")
        for entry in self.skip_delivery.entries():
            pending, fresh = self.skip_delivery.send(entry)
            if fresh:
                self._log(logging.INFO, "skip-report", entry.round_id, result="republished",
                          reason="reconnect")
            elif pending is None:
                self._log(logging.WARNING, "skip-report", entry.round_id,
                          result="not-queued", reason="queue-full", action="kept")

    def _forget_closed(self, before_round: int | None = None) -> None:
        """Drop kept updates whose round is over (they can no longer count)."""
        version = self._held().model_version
        for entry in self.skip_delivery.forget_closed(version, before_round):
            self._log(logging.INFO, "outbox", entry.round_id, result="removed", kind="skip",
                      reason="round-closed", model_version=version)
        for entry in self.delivery.forget_closed(version, before_round):
            self._log(logging.INFO, "outbox", entry.round_id, result="removed",
                      reason="round-closed", model_version=version)
