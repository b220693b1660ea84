"""The aggregator process: MQTT persistent session, manual acks after commit, round loop."""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from edge.errors import ConfigError, EdgeError, ModelNotPublished
from edge.formats.device import DeviceRecord
from edge.formats.keywrap import KEY_WRAP_SIZE
from edge.mqtt import (
    Client,
    Pending,
    PubAcks,
    TopicFilter,
    client_id,
    connect_async,
    log_connect_failure,
    make_client,
)
from edge.protocol import (
    secagg_device_subscription,
    skip_subscription,
    status_subscription,
    update_subscription,
)
from edge.sdnotify import Notifier

from .cohort import (
    Combiner,
    PartialSum,
    drop_message,
    drop_topic,
    load_cohort_key,
    round_topic,
    sum_subscription,
)
from .config import AggregatorConfig
from .metrics import RoundMetrics, sync_jsonl
from .prometheus import Exporter, take_snapshot
from .registry import Registry
from .rounds import RoundManager
from .store import Store

log = logging.getLogger("edge.aggregator")

TICK_S = 0.05
PUBLISH_TIMEOUT_S = 30.0
# Messages whose effects (accepted updates, refusals) wait for one commit, at most: their
# acks wait with them, so this bounds what the broker delivers again after a crash.
BATCH = 256
# The longest a staged batch waits for more messages before its commit.
LINGER_S = 0.05
# A metrics file that could not be written (full disk) is retried this often.
METRICS_RETRY_S = 5.0
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# The Prometheus snapshot is refreshed after every round and at least this often.
PROMETHEUS_REFRESH_S = 5.0
PUBLISH_SLICE_S = 0.2
# QoS 1 publishes paho keeps in flight (its default is 20): a release is a package and
# a key wrap per device, and a round a ticket per device, so 20 at a time made every
# 20 messages wait for a round trip through a busy broker (seconds at 1,000 devices).
INFLIGHT = 1024


class Aggregator:
    """One fleet's aggregator: enrollment, rounds over MQTT, state in SQLite."""

    # While a round is open, its tickets go again to the devices whose update has not
    # been accepted, but only once no update has arrived for this long (and as long since
    # the last re-send): a broker that lost them (or a device that subscribed after the
    # ticket) gets them this way. Never while updates still flow: a device whose update
    # waits in the broker's queue (or in our inbox) publishes it again for every ticket it
    # gets, and at 1,000 devices that fed a redelivery storm (each update 2-6 times).
    ticket_resend_s = 5.0
    # The quiet wait doubles after each periodic re-send of a round, up to this.
    ticket_resend_max_s = 60.0
    # After a (re)connect the broker first hands over what it queued (and devices publish
    # their kept updates again): a round past its deadline waits this long before closing,
    # and the tickets of devices still missing go again once no update came for this long.
    redelivery_grace_s = 2.0
    # How long ``run`` retries publishing the final model before ModelNotPublished.
    final_publish_s = 120.0

    def __init__(self, config: AggregatorConfig, *,
                 on_round: Callable[[RoundMetrics], None] | None = None):
        self.config = config
        self.on_round = on_round
        self.store = Store(config.state)
        self.registry = Registry(self.store)
        self.rounds = RoundManager(config, self.store, self.registry)
        # Persistent session: the id must survive restarts, so without credentials its
        # unguessable part comes from the ticket-signing key (edge.mqtt.client_id).
        self.client_id = client_id(config.broker, f"edge-aggregator-{config.fleet}",
                                   secret=self.rounds.aggregator_key.private_bytes_raw())
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._reconnected = threading.Event()
        self._connected_at = 0.0
        self._tickets_sent_at = 0.0
        self._update_at = 0.0  # when the newest update message arrived
        self._resend_wait = self.ticket_resend_s
        self._acks = PubAcks()
        self._model_out: tuple[tuple[int, tuple[str, ...], bool], list[Pending]] | None = None
        self._client: mqtt.Client | None = None
        self._closing = False
        # A root (config [workers]) hears its workers' partial sums instead of the updates.
        self.cohort_key = load_cohort_key(config.workers_key) \
            if config.workers_key is not None else None
        self._combiner: Combiner | None = None
        self._drops_sent: set[tuple[int, str, bytes]] = set()
        self._subscription = update_subscription(config.fleet) if self.cohort_key is None \
            else sum_subscription(config.fleet)
        self._presence = status_subscription(config.fleet)
        self._skips = skip_subscription(config.fleet)
        self._secagg_sub = secagg_device_subscription(config.fleet)
        self._is_update, self._is_presence, self._is_skip, self._is_secagg = (
            TopicFilter(f).matches for f in (self._subscription, self._presence, self._skips,
                                             self._secagg_sub))
        self._metrics_retry: float | None = None
        self._commit_s = 0.005  # a moving average of how long a commit of updates takes
        self._check_metrics_writable()
        prom = config.prometheus
        self.exporter = Exporter(config.fleet, textfile=prom.textfile, port=prom.port,
                                 address=prom.address) \
            if prom.textfile is not None or prom.port is not None else None
        self._prometheus_at = 0.0

    def enroll(self, record: bytes) -> DeviceRecord:
        """Enroll one device record (DEVICE.pub); its device gets the next model package."""
        device = self.registry.enroll(record)
        log.info("device %s enrolled", device.device_id.hex())
        return device

    def _check_metrics_writable(self) -> None:
        """ConfigError at start when the metrics file can never be written (not for space)."""
        try:
            with open(self.config.metrics, "ab"):
                pass
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise ConfigError(f"aggregator.metrics: cannot write {self.config.metrics}: "
                                  f"{exc.strerror}") from None

    def sync_metrics(self) -> bool:
        """Bring the metrics file up to the database's rows; False (logged) if it failed."""
        try:
            added = sync_jsonl(self.config.metrics, self.store.metrics_lines())
        except OSError as exc:
            # The rows are committed in the database: they are written once space returns.
            log.warning("metrics: cannot write %s (%s); retrying in %.0f s",
                        self.config.metrics, exc.strerror, METRICS_RETRY_S)
            self._metrics_retry = time.monotonic() + METRICS_RETRY_S
            return False
        if added:
            log.info("metrics: %d row(s) written to %s from the database", added,
                     self.config.metrics)
        self._metrics_retry = None
        return True

    def refresh_prometheus(self) -> None:
        """Serve (and write) a fresh Prometheus snapshot of the database, if configured."""
        if self.exporter is None:
            return
        self._prometheus_at = time.monotonic()
        try:
            self.exporter.update(take_snapshot(self.store, self.config.fleet,
                                               self.config.dp.delta))
        except OSError as exc:  # like the metrics file: the database keeps the truth
            log.warning("metrics: cannot write %s (%s); retrying in %.0f s",
                        self.config.prometheus.textfile, exc.strerror, PROMETHEUS_REFRESH_S)

    def close(self) -> None:
        """Disconnect, stop the metrics endpoint and close the database."""
        self._disconnect()
        if self.exporter is not None:
            self.exporter.close()
        self.store.close()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # MQTT
    def _on_connect(self, client: Client, _userdata: Any, _flags: Any,
                    reason: mqtt.ReasonCode, _props: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s; retrying in %d s",
                        self.config.broker.url, reason, client.next_retry())
            return
        client.accepted()
        client.subscribe([(self._subscription, 1), (self._presence, 1),
                          (self._secagg_sub, 1), (self._skips, 1)])
        self._connected_at = time.monotonic()
        self._connected.set()
        self._reconnected.set()
        log.info("connected to %s as %s", self.config.broker.url, self.client_id)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: mqtt.ReasonCode, _props: Any) -> None:
        self._connected.clear()
        if not self._closing:
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._is_update(msg.topic):
            # Stamped on arrival, not when drained: a round loop held up for seconds (a
            # starved process) must not take its own backlog for a quiet fleet.
            self._update_at = time.monotonic()
        self._inbox.put(msg)

    def _connect(self, stop: threading.Event) -> mqtt.Client:
        """A connected client with a persistent session and manual acks."""
        self._closing = False
        client = make_client(self.config.broker, self.client_id, clean_session=False,
                             manual_ack=True,
                             on_failure=log_connect_failure(log, "aggregator",
                                                            self.config.broker.url))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.max_inflight_messages_set(INFLIGHT)
        self._acks.attach(client)
        connect_async(client, self.config.broker)
        client.loop_start()
        self._client = client
        while not self._connected.wait(0.1):
            if stop.is_set():
                break
        return client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self._closing = True
            client.disconnect()
            client.loop_stop()

    def _publish(self, topic: str, payload: bytes) -> None:
        """Publish with QoS 1 without waiting (paho sends it after a reconnect if offline)."""
        assert self._client is not None
        if self._acks.publish(self._client, topic, payload) is None:
            log.warning("publish on %s refused: the client's queue is full", topic)

    # loop
    def run(self, stop: threading.Event, *, rounds: int | None = None,
            notifier: Notifier | None = None) -> None:
        """Run rounds until ``rounds`` more have closed (default: [rounds] rounds), or stop.

        With a ``notifier`` (systemd ``Type=notify``): READY=1 once connected and the model
        is out, WATCHDOG=1 from every pass of the round loop, STOPPING=1 on the way out.
        """
        notifier = notifier or Notifier({})
        target = self._target(rounds)
        closed = 0
        if self.exporter is not None:
            self.exporter.start()  # a port in use fails here, before anything is published
        client = self._connect(stop)
        try:
            if stop.is_set():
                return
            self.sync_metrics()  # rows a crash or a full disk kept out of the file
            self.refresh_prometheus()
            self._publish_model()
            if self.rounds.open_round is not None:
                log.info("resuming round %d", self.rounds.open_round.round_id)
            self._announce()
            notifier.ready(f"fleet {self.config.fleet}: running rounds")
            while not stop.is_set() and (target is None or closed < target):
                notifier.watchdog()
                if self.rounds.open_round is None:
                    # No pause for devices to load it, nor for the broker's PUBACKs: the
                    # tickets follow the model on the same connection (paho sends in order),
                    # and a ticket that overtakes its model waits in the daemon until the
                    # model is loaded (docs/daemon.md).
                    self._publish_model(wait_s=0.0)
                    if not (self.rounds.model_is_out() or self._model_out is not None):
                        stop.wait(1.0)  # publishing failed: retry before any ticket
                        continue
                    # Presence that arrived meanwhile picks the cohort: what is there now,
                    # without waiting a tick for more.
                    self._drain(client, tick_s=0.0)
                    tickets = self.rounds.open_next()
                    if not tickets:
                        stop.wait(0.5)  # not enough enrolled devices yet
                    self._announce()  # workers first: they hold what comes early anyway
                    for topic, ticket in tickets:
                        self._publish(topic, ticket)
                    self._tickets_sent_at = time.monotonic()
                    self._resend_wait = self.ticket_resend_s
                    self._reconnected.clear()  # they went out on the current connection
                self._resend_tickets()
                if self._model_out is not None \
                        and all(self._acks.done(out) for out in self._model_out[1]):
                    self._publish_model(wait_s=0.0)  # acknowledged: marked published
                self._drain(client)
                stage = self.rounds.secagg.stage if self.rounds.secagg else None
                directives = self.rounds.secagg_advance()
                if self.rounds.secagg is not None and self.rounds.secagg.stage != stage:
                    # Workers learn who shared (U2) before any device gets its inbox.
                    self._announce()
                for topic, directive in directives:
                    self._publish(topic, directive)
                if self._due():
                    self._finish()
                    closed += 1
                elif self._metrics_retry is not None and time.monotonic() >= self._metrics_retry:
                    self.sync_metrics()
                if time.monotonic() >= self._prometheus_at + PROMETHEUS_REFRESH_S:
                    self.refresh_prometheus()
            if not stop.is_set():
                self._publish_final(stop)
        finally:
            notifier.stopping()
            self._disconnect()

    def _resend_tickets(self) -> None:
        """Re-send the open round's tickets of devices not yet counted, when it is time."""
        # After a (re)connect once no update came for redelivery_grace_s (what the broker
        # queued for us arrives first); otherwise once neither an update nor a re-send came
        # for ticket_resend_s, the wait doubling up to ticket_resend_max_s (reset by the
        # next round). A device that sealed already publishes its kept update again; it
        # never trains twice for a round.
        if self.rounds.open_round is None or not self._connected.is_set():
            return
        now = time.monotonic()
        reconnected = self._reconnected.is_set()
        if not self._inbox.empty():
            return  # what is waiting in the inbox may be the missing updates
        if reconnected:
            if now - max(self._update_at, self._connected_at) < self.redelivery_grace_s:
                return
        elif now - max(self._tickets_sent_at, self._update_at) < self._resend_wait:
            return
        else:
            self._resend_wait = min(2 * self._resend_wait, self.ticket_resend_max_s)
        self._reconnected.clear()
        self._tickets_sent_at = now
        tickets = self.rounds.missing_tickets()
        for topic, ticket in tickets:
            self._publish(topic, ticket)
        if tickets:
            log.info("round %d: tickets sent again to %d devices not yet counted",
                     self.rounds.open_round.round_id, len(tickets))

    def _due(self) -> bool:
        """True when the open round should close; a deadline waits out the redelivery grace."""
        why = self.rounds.due()
        if why is None:
            return False
        if why in ("quorum", "secagg", "answered", "skipped"):
            return True  # (answered, skipped: every device of the cohort answered)
        return time.monotonic() >= self._connected_at + self.redelivery_grace_s

    def _publish_final(self, stop: threading.Event) -> None:
        """Retry the newest model until the broker has it; ModelNotPublished after the bound."""
        limit = time.monotonic() + self.final_publish_s
        warned = False
        while not self._publish_model():
            if self.rounds.model_is_out():
                return
            version = self.rounds.ensure_model().version
            if stop.is_set() or time.monotonic() > limit:
                raise ModelNotPublished(
                    f"model v{version} was not published: {self.config.broker.url} did not "
                    f"acknowledge it within {self.final_publish_s:.0f} s (it is kept in "
                    f"{self.config.state} and published at the next start)")
            if not warned:
                log.warning("model v%d not published yet (broker %s down?); retrying for up "
                            "to %.0f s", version, self.config.broker.url, self.final_publish_s)
                warned = True
            stop.wait(1.0)

    def _target(self, rounds: int | None) -> int | None:
        """How many more rounds this run closes (None: forever)."""
        if rounds is not None:
            return max(0, rounds)
        total = self.config.rounds.rounds
        if total == 0:
            return None
        return max(0, total - self.rounds.closed_rounds())

    def _drain(self, client: mqtt.Client, tick_s: float = TICK_S) -> None:
        """Handle what arrives during one tick, acking messages only after their commit.

        Group commit: arriving messages are staged (verified, summed in memory) and
        committed together, the update rows and the running sum in one transaction (one
        fsync), then acknowledged. A batch is committed when BATCH messages are staged, or
        when no message came for as long as one commit takes (measured, at most LINGER_S):
        a batch waits for what arrives while the previous one was being committed, so
        batches grow with the load and the wait costs at most one commit's time. A crash
        before the commit loses nothing (the broker delivers the unacknowledged messages
        again); a crash after it but before the acks counts nothing twice (the redelivered
        updates are refused as duplicates).
        """
        deadline = time.monotonic() + tick_s
        batch: list[tuple[int, int]] = []  # (mid, qos) of the messages waiting for the commit
        first = 0.0  # when the batch's first message was staged
        try:
            while True:
                # A batch waits for more as long as a commit takes; no batch, to the tick's end.
                until = first + min(self._commit_s, LINGER_S) if batch else deadline
                try:
                    msg = self._inbox.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    if not batch:
                        return
                    self._commit(client, batch)
                    if time.monotonic() >= deadline:
                        return
                    continue
                if self._is_presence(msg.topic):
                    # Committed with the batch, acked after it (a commit each was 13 ms of
                    # the aggregator's time per board at every reconnect).
                    if not batch:
                        first = time.monotonic()
                    self.rounds.presence(msg.topic, bytes(msg.payload), defer=True)
                    batch.append((msg.mid, msg.qos))
                    if len(batch) >= BATCH:
                        self._commit(client, batch)
                    continue
                if self._is_skip(msg.topic):
                    self.rounds.skip(msg.topic, bytes(msg.payload))  # committed: ack it
                    client.ack(msg.mid, msg.qos)
                    if self._due():
                        return
                    continue
                if self._is_secagg(msg.topic):
                    # Committed with the batch (the message, or its refusal), acked after it.
                    if not batch:
                        first = time.monotonic()
                    self.rounds.secagg_message(msg.topic, bytes(msg.payload))
                    batch.append((msg.mid, msg.qos))
                    if len(batch) >= BATCH:
                        self._commit(client, batch)
                    continue
                if not self._is_update(msg.topic):
                    # amqtt may hand a resumed session messages it never subscribed to
                    log.debug("ignored a message on %s (not an update topic)", msg.topic[:256])
                    client.ack(msg.mid, msg.qos)
                    continue
                if self.cohort_key is not None:
                    self._cohort_sum(client, msg)
                    if self._due():
                        return
                    continue
                if not batch:
                    first = time.monotonic()
                self.rounds.stage(msg.topic, bytes(msg.payload))
                batch.append((msg.mid, msg.qos))
                if len(batch) >= BATCH:
                    self._commit(client, batch)
                if self._due():  # quorum reached, or a deadline passes during a flood
                    return
        finally:
            self._commit(client, batch)

    def _announce(self) -> None:
        """A root tells its workers the open round (retained), or that none is open."""
        if self.cohort_key is None or self._client is None:
            return
        ann = self.rounds.announcement()
        if ann.round_id is None:
            self._combiner = None
        elif self._combiner is None or self._combiner.round_id != ann.round_id:
            self._combiner = Combiner(ann.round_id, ann.secagg)
        self._acks.publish(self._client, round_topic(self.config.fleet),
                           ann.to_message(self.cohort_key, self.config.fleet), retain=True)

    def _cohort_sum(self, client: mqtt.Client, msg: mqtt.MQTTMessage) -> None:
        """A root's handling of a worker's partial sum: keep the newest per worker, tell
        workers to drop updates another worker owns, and commit the combined sum once every
        device in it is counted once. Acknowledged after that commit."""
        assert self.cohort_key is not None
        try:
            partial = PartialSum.from_message(self.cohort_key, self.config.fleet,
                                              bytes(msg.payload))
        except EdgeError as exc:
            log.warning("refused a cohort sum on %s: %s: %s", msg.topic[:256], exc.refusal, exc)
            client.ack(msg.mid, msg.qos)
            return
        combiner = self._combiner
        if combiner is not None and combiner.add(partial):
            # Each partial repeats the worker's refusals: the store knows which are recorded.
            self.rounds.worker_refusals(combiner.round_id, partial.worker, partial.refusals)
            for worker, devices in combiner.drops().items():
                new = [d for d in devices
                       if (combiner.round_id, worker, d) not in self._drops_sent]
                if new:
                    self._publish(drop_topic(self.config.fleet, worker),
                                  drop_message(self.cohort_key, self.config.fleet,
                                               combiner.round_id, worker, new))
                    self._drops_sent.update((combiner.round_id, worker, d) for d in new)
                    log.info("round %d: %d update(s) counted by two workers: worker %s drops "
                             "them", combiner.round_id, len(new), worker)
            combined = combiner.combined()
            if combined is not None:
                self.rounds.apply_cohort(combined)
        client.ack(msg.mid, msg.qos)

    def _commit(self, client: mqtt.Client, batch: list[tuple[int, int]]) -> None:
        """Commit what the batch's messages did, then acknowledge them."""
        started = time.monotonic()
        if self.rounds.commit():
            self._commit_s += 0.2 * (time.monotonic() - started - self._commit_s)
        self._ack(client, batch)
        batch.clear()

    def _ack(self, client: mqtt.Client, batch: list[tuple[int, int]]) -> None:
        """Acknowledge committed messages (the broker then forgets them)."""
        for mid, qos in batch:
            client.ack(mid, qos)

    def _finish(self) -> None:
        """Close the due round, write its metrics, tell the hook, publish the new model."""
        m = self.rounds.close()
        self._announce()
        self.sync_metrics()
        self.refresh_prometheus()
        log.info("%s", m.describe())
        if self.on_round is not None:
            self.on_round(m)
        self._publish_model(wait_s=0.0)  # the next round's tickets follow it at once

    def _publish_model(self, wait_s: float = PUBLISH_TIMEOUT_S) -> bool:
        """Publish the newest model if not all devices have it: the shared package (retained,
        once per release) and one key wrap per device on its own topic (retained).

        True once the broker acknowledged all of it (waiting up to ``wait_s``; with 0 it
        only queues the messages, or checks the PUBACKs of those queued before). Publishes
        made while offline stay in paho's queue and are awaited on the next call rather
        than queued again.
        """
        pub = self.rounds.pending_publication()
        if pub is None:
            return False
        assert self._client is not None
        key = (pub.version, tuple(pub.recipients), pub.package is not None)
        if self._model_out is None or self._model_out[0] != key:
            messages = ([pub.package] if pub.package is not None else []) + pub.wraps
            outs = []
            for topic, payload in messages:
                out = self._acks.publish(self._client, topic, payload, retain=True)
                if out is None:
                    log.warning("model v%d: the client's queue is full", pub.version)
                    return False
                outs.append(out)
            self._model_out = (key, outs)
        outs = self._model_out[1]
        waited = 0.0
        for out in outs:
            while not self._acks.wait(out, min(PUBLISH_SLICE_S, wait_s)):
                waited += PUBLISH_SLICE_S
                if not self._connected.is_set() or waited >= wait_s:
                    return False
        self._model_out = None
        self.store.mark_published(pub.version, pub.recipients)
        size = len(pub.package[1]) if pub.package is not None else 0
        log.info("model v%d published: package %s, %d key wrap(s) of %d bytes, %d devices",
                 pub.version, f"{size} bytes" if pub.package else "already out",
                 len(pub.wraps), KEY_WRAP_SIZE, len(pub.recipients))
        return True
