"""The aggregator process: MQTT persistent session, manual acks after commit, round loop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from edge.formats.device import DeviceRecord
from edge.mqtt import client_id, connect_async, make_client
from edge.protocol import update_subscription

from .config import AggregatorConfig
from .metrics import RoundMetrics, append_jsonl
from .registry import Registry
from .rounds import RoundManager
from .store import Store

log = logging.getLogger("edge.aggregator")

TICK_S = 0.05
PUBLISH_TIMEOUT_S = 30.0


class Aggregator:
    """One fleet's aggregator: enrollment, rounds over MQTT, state in SQLite."""

    # Pause after publishing a model package before the next round's tickets, so that
    # devices have loaded the new model when the ticket for it arrives.
    package_settle_s = 0.3

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
        self._client: mqtt.Client | None = None
        self._closing = False
        self._subscription = update_subscription(config.fleet)

    def enroll(self, record: bytes) -> DeviceRecord:
        """Enroll one device record (DEVICE.pub); its device gets the next model package."""
        device = self.registry.enroll(record)
        log.info("device %s enrolled", device.device_id.hex())
        return device

    def close(self) -> None:
        """Disconnect and close the database."""
        self._disconnect()
        self.store.close()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # MQTT
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason: mqtt.ReasonCode, _props: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        client.subscribe(self._subscription, qos=1)
        self._connected.set()
        log.info("connected to %s as %s", self.config.broker.url, self.client_id)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: mqtt.ReasonCode, _props: Any) -> None:
        self._connected.clear()
        if not self._closing:
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(msg)

    def _connect(self, stop: threading.Event) -> mqtt.Client:
        """A connected client with a persistent session and manual acks."""
        self._closing = False
        client = make_client(self.config.broker, self.client_id, clean_session=False,
                             manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
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

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False,
                 wait: bool = False) -> bool:
        """Publish with QoS 1; with ``wait``, True only once the broker acknowledged it."""
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if not wait:
            return True
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
        except (ValueError, RuntimeError) as exc:
            log.warning("publish on %s failed: %s", topic, exc)
            return False
        return info.is_published()

    # loop
    def run(self, stop: threading.Event, *, rounds: int | None = None) -> None:
        """Run rounds until ``rounds`` more have closed (default: [rounds] rounds), or stop."""
        target = self._target(rounds)
        closed = 0
        client = self._connect(stop)
        try:
            if stop.is_set():
                return
            self._publish_model()
            for topic, ticket in self.rounds.resume_tickets():
                log.info("resuming round %d", self.rounds.open_round.round_id)  # type: ignore
                self._publish(topic, ticket)
            while not stop.is_set() and (target is None or closed < target):
                if self.rounds.open_round is None:
                    if self._publish_model():
                        stop.wait(self.package_settle_s)
                    if not self.rounds.model_is_out():
                        stop.wait(1.0)  # publishing failed: retry before any ticket
                        continue
                    tickets = self.rounds.open_next()
                    if not tickets:
                        stop.wait(0.5)  # not enough enrolled devices yet
                    for topic, ticket in tickets:
                        self._publish(topic, ticket)
                self._drain(client)
                if self.rounds.due() is not None:
                    self._finish()
                    closed += 1
            if not stop.is_set():
                self._publish_model()
        finally:
            self._disconnect()

    def _target(self, rounds: int | None) -> int | None:
        """How many more rounds this run closes (None: forever)."""
        if rounds is not None:
            return max(0, rounds)
        total = self.config.rounds.rounds
        if total == 0:
            return None
        return max(0, total - self.rounds.closed_rounds())

    def _drain(self, client: mqtt.Client) -> None:
        """Handle what arrived during one tick, acking each message after its commit."""
        deadline = time.monotonic() + TICK_S
        while True:
            timeout = deadline - time.monotonic()
            try:
                msg = self._inbox.get(timeout=max(0.0, timeout))
            except queue.Empty:
                return
            if mqtt.topic_matches_sub(self._subscription, msg.topic):
                self.rounds.handle(msg.topic, bytes(msg.payload))
            else:  # amqtt may hand a resumed session messages it never subscribed to
                log.debug("ignored a message on %s (not an update topic)", msg.topic[:256])
            client.ack(msg.mid, msg.qos)
            if self.rounds.due() is not None:
                return

    def _finish(self) -> None:
        """Close the due round, write its metrics, tell the hook, publish the new model."""
        m = self.rounds.close()
        append_jsonl(self.config.metrics, m.to_json())
        log.info("%s", m.describe())
        if self.on_round is not None:
            self.on_round(m)
        self._publish_model()

    def _publish_model(self) -> bool:
        """Publish the newest model as a retained package if not all devices have it."""
        pending = self.rounds.pending_package()
        if pending is None:
            return False
        topic, package, version, recipients = pending
        if self._publish(topic, package, retain=True, wait=True):
            self.store.mark_published(version, recipients)
            log.info("model v%d published to %d devices (%d bytes)", version, len(recipients),
                     len(package))
            return True
        return False
