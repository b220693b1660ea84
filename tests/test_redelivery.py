"""No redelivery storm: the causes seen at 1,000 devices, reproduced with a few, counted.

At 1,000 devices each sealed update reached the aggregator 2-6 times. Two causes:
the aggregator re-sent the tickets of devices it had not counted yet on a timer,
while their updates were only queued (in the broker, or in its own inbox), and each
re-sent ticket makes a board publish its kept update again; and every board
published its kept update again after every reconnect, also when the broker had
kept its session (boards were dropped for missed keepalives under load). Both are
counted here against a real Mosquitto: tickets per device, and update publishes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from edge.aggregator import Aggregator, AggregatorConfig, RoundMetrics
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.broker import BrokerError, MosquittoBroker
from edge.mqtt import BrokerSettings, make_client

FLEET = "redelivery"
PARAMS = 27
DEVICES = 8
SPACING_S = 0.25  # between two devices' updates: shorter than the re-send wait
RESEND_S = 0.6


def _mosquitto(path: Path) -> MosquittoBroker:
    try:
        return MosquittoBroker(path)
    except BrokerError as exc:
        pytest.fail(f"{exc} -- this test needs a real Mosquitto: run scripts/setup.sh")


class SlowBoards:
    """Fake boards that answer their first ticket one after another, SPACING_S apart (a
    queue the aggregator works through), and count every ticket they get. ``silent``
    answers only a re-sent ticket (its first one was lost, say)."""

    def __init__(self, url: str, devices: list[FakeDevice], silent: FakeDevice) -> None:
        self.by_id = {d.device_id.hex(): d for d in devices}
        self.silent = silent.device_id.hex()
        self.tickets: Counter[str] = Counter()
        self.published: Counter[str] = Counter()
        self.first_ticket_at: dict[str, float] = {}
        self.last_update_at = 0.0
        self._lock = threading.Lock()
        self._answered = 0
        s = BrokerSettings.from_url(url)
        self.client = make_client(s, "redelivery-boards", clean_session=True)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._ticket
        self.client.connect(s.host, s.port)
        self.client.loop_start()
        self.client.subscribe(f"edge/v1/{FLEET}/devices/+/ticket", qos=1)
        assert subscribed.wait(10), "the boards did not subscribe"

    def _ticket(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        hexid = msg.topic.split("/")[4]
        with self._lock:
            self.tickets[hexid] += 1
            n = self.tickets[hexid]
            self.first_ticket_at.setdefault(hexid, time.monotonic())
            if hexid == self.silent:
                if n != 2:
                    return
                delay = 0.0
            elif n == 1:
                self._answered += 1
                delay = self._answered * SPACING_S
            else:
                # A board that sealed already publishes its kept update again.
                delay = 0.0
        threading.Timer(delay, self._answer, args=(hexid, bytes(msg.payload))).start()

    def _answer(self, hexid: str, ticket: bytes) -> None:
        dev = self.by_id[hexid]
        payload = dev.update(ticket, np.full(PARAMS, 0.01, np.float32))
        with self._lock:
            self.published[hexid] += 1
            self.last_update_at = time.monotonic()
        self.client.publish(dev.topic(FLEET), payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_tickets_go_again_only_once_updates_stop_coming(tmp_path: Path) -> None:
    """Updates keep coming for 2 s, longer than the re-send wait: no ticket goes twice
    meanwhile; the one device that never answered gets its ticket again once they stop."""
    broker = _mosquitto(tmp_path / "mosquitto")
    devices = [FakeDevice(example_count=5 + i) for i in range(DEVICES + 1)]
    silent = devices[-1]
    table = config_mapping(tmp_path / "agg", broker.url, fleet=FLEET,
                           rounds={"cohort_size": DEVICES + 1, "quorum": DEVICES + 1,
                                   "min_updates": 1, "timeout_s": 60, "rounds": 1})
    rows: list[RoundMetrics] = []
    boards = SlowBoards(broker.url, devices, silent)
    try:
        with Aggregator(AggregatorConfig.from_mapping(table), on_round=rows.append) as agg:
            agg.ticket_resend_s = RESEND_S
            agg.redelivery_grace_s = RESEND_S
            for d in devices:
                agg.enroll(d.record)
            stop = threading.Event()
            runner = threading.Thread(target=agg.run, args=(stop,), kwargs={"rounds": 1},
                                      daemon=True)
            runner.start()
            runner.join(60)
            stop.set()
            runner.join(10)
            assert not runner.is_alive()
    finally:
        boards.close()
        broker.stop()
    assert [(m.round, m.participants) for m in rows] == [(1, DEVICES + 1)]
    others = [d.device_id.hex() for d in devices[:-1]]
    # Before the fix the timer re-sent at 0.6 s and 1.8 s while updates still came in: the
    # late devices got 2-3 tickets and published 2-3 times.
    assert {h: boards.tickets[h] for h in others} == {h: 1 for h in others}
    assert {h: boards.published[h] for h in others} == {h: 1 for h in others}
    s = silent.device_id.hex()
    assert (boards.tickets[s], boards.published[s]) == (2, 1)
