"""The aggregator over the embedded broker: fake devices complete rounds, packages retained."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from edge.aggregator import Aggregator, AggregatorConfig, RoundMetrics
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.broker import MOSQUITTO, EmbeddedBroker, MosquittoBroker
from edge.formats.envelope import Kind, parse_envelope
from edge.formats.manifest import parse_manifest
from edge.mqtt import BrokerSettings, make_client
from edge.protocol import model_topic

FLEET = "test"
PARAMS = 27


class NamedOnlyBroker(EmbeddedBroker):
    """amqtt marks every session anonymous when anonymous access is allowed, and queues
    nothing for an offline anonymous session; with user names required it does."""

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        config["plugins"] = {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                             {"allow_anonymous": False}}
        return config


def _start(kind: str, tmp_path: Path) -> EmbeddedBroker | MosquittoBroker:
    if kind == "mosquitto":
        if not Path(MOSQUITTO).exists():
            pytest.fail("mosquitto is not installed: run scripts/setup.sh (it installs it)")
        return MosquittoBroker(tmp_path / "mosquitto")
    return (NamedOnlyBroker() if kind == "embedded-named" else EmbeddedBroker()).start()


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    b = _start(request.param, tmp_path)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(params=["embedded-named", "mosquitto"])
def named_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    b = _start(request.param, tmp_path)
    try:
        yield b
    finally:
        b.stop()


def _client(url: str, name: str) -> mqtt.Client:
    settings = BrokerSettings.from_mapping({"url": url, "username": name})
    client = make_client(settings, name, clean_session=True)
    client.connect(settings.host, settings.port)
    client.loop_start()
    return client


def _answer_tickets(url: str, devices: list[FakeDevice], extra: bytes | None) -> mqtt.Client:
    """One client answering every device's tickets with a small update."""
    by_id = {d.device_id.hex(): d for d in devices}
    client = _client(url, "fake-devices")
    done = threading.Event()

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        dev = by_id[msg.topic.split("/")[4]]
        payload = dev.update(bytes(msg.payload), np.full(PARAMS, 0.01, np.float32))
        c.publish(dev.topic(FLEET), payload, qos=1)
        if extra is not None:
            c.publish(dev.topic(FLEET), extra, qos=1)  # garbage after each update
        done.set()

    client.on_message = on_message
    for d in devices:
        client.subscribe(f"edge/v1/{FLEET}/devices/{d.device_id.hex()}/ticket", qos=1)
    return client


def _retained_version(url: str) -> int:
    client = _client(url, "model-reader")
    got: queue.Queue[bytes] = queue.Queue()
    client.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    client.subscribe(model_topic(FLEET), qos=1)
    try:
        package = got.get(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()
    env = parse_envelope(package, kind=Kind.PACKAGE, exact=False)
    return parse_manifest(env.body).version


def test_rounds_complete_and_package_is_retained(tmp_path: Path,
                                                 broker: EmbeddedBroker) -> None:
    table = config_mapping(tmp_path, broker.url, fleet=FLEET,
                           rounds={"cohort_size": 3, "quorum": 3, "min_updates": 1,
                                   "timeout_s": 20, "rounds": 2})
    config = AggregatorConfig.from_mapping(table)
    devices = [FakeDevice(example_count=5 + i) for i in range(3)]
    rows: list[RoundMetrics] = []
    devices_client = _answer_tickets(broker.url, devices, extra=b"garbage")
    try:
        with Aggregator(config, on_round=rows.append) as agg:
            for d in devices:
                agg.enroll(d.record)
            stop = threading.Event()
            runner = threading.Thread(target=agg.run, args=(stop,), daemon=True)
            runner.start()
            runner.join(60)
            stop.set()
            runner.join(10)
            assert not runner.is_alive()
            status_refusals = agg.store.refusals()
    finally:
        devices_client.disconnect()
        devices_client.loop_stop()
    assert [(r.round, r.participants, r.model_version, r.failed) for r in rows] == \
        [(1, 3, 2, False), (2, 3, 3, False)]
    assert status_refusals.get("malformed", 0) >= 1
    assert _retained_version(broker.url) == 3
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_updates_sent_while_aggregator_is_down_are_delivered(
        tmp_path: Path, named_broker: EmbeddedBroker) -> None:
    broker = named_broker
    table = config_mapping(tmp_path, broker.url, fleet=FLEET,
                           rounds={"cohort_size": 2, "quorum": 2, "min_updates": 1,
                                   "timeout_s": 60, "rounds": 0})
    table["broker"]["username"] = "aggregator"
    config = AggregatorConfig.from_mapping(table)
    devices = [FakeDevice(example_count=4), FakeDevice(example_count=12)]
    tickets: queue.Queue[tuple[str, bytes]] = queue.Queue()
    listener = _client(broker.url, "ticket-listener")
    listener.on_message = lambda _c, _u, msg: tickets.put((msg.topic, bytes(msg.payload)))
    for d in devices:
        listener.subscribe(f"edge/v1/{FLEET}/devices/{d.device_id.hex()}/ticket", qos=1)
    try:
        with Aggregator(config) as agg:
            for d in devices:
                agg.enroll(d.record)
            stop = threading.Event()
            runner = threading.Thread(target=agg.run, args=(stop,), daemon=True)
            runner.start()
            got = dict(tickets.get(timeout=20) for _ in devices)
            stop.set()
            runner.join(10)
            assert not runner.is_alive()
        # the aggregator is down; its persistent session queues the updates
        by_id = {d.device_id.hex(): d for d in devices}
        for topic, ticket in got.items():
            dev = by_id[topic.split("/")[4]]
            listener.publish(dev.topic(FLEET), dev.update(ticket, np.full(PARAMS, 0.02,
                                                                          np.float32)),
                             qos=1).wait_for_publish(5)
        rows: list[RoundMetrics] = []
        with Aggregator(config, on_round=rows.append) as agg:
            runner = threading.Thread(target=agg.run, args=(threading.Event(),),
                                      kwargs={"rounds": 1}, daemon=True)
            runner.start()
            runner.join(30)
            assert not runner.is_alive()
    finally:
        listener.disconnect()
        listener.loop_stop()
    assert [(r.round, r.participants, r.model_version) for r in rows] == [(1, 2, 2)]
    assert _retained_version(broker.url) == 2


def test_sigkilled_aggregator_resumes_over_mosquitto(tmp_path: Path) -> None:
    """Kill -9 mid-round; updates sent meanwhile and a replay: counted exactly once."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from edge.aggregator import fedavg
    from edge.aggregator.store import Store

    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (it installs it)")
    root = Path(__file__).resolve().parent.parent
    broker = MosquittoBroker(tmp_path / "mosquitto")
    table = config_mapping(tmp_path, broker.url, fleet=FLEET,
                           rounds={"cohort_size": 4, "quorum": 4, "min_updates": 1,
                                   "timeout_s": 120, "rounds": 1})
    lines = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    (tmp_path / "agg.toml").write_text("\n".join(lines) + "\n")
    config = AggregatorConfig.from_mapping(table)
    devices = [FakeDevice(example_count=3 + 5 * i) for i in range(4)]
    tickets: queue.Queue[tuple[str, bytes]] = queue.Queue()
    listener = _client(broker.url, "ticket-listener")
    listener.on_message = lambda _c, _u, msg: tickets.put((msg.topic, bytes(msg.payload)))
    for d in devices:
        listener.subscribe(f"edge/v1/{FLEET}/devices/{d.device_id.hex()}/ticket", qos=1)
    cmd = [sys.executable, "-m", "edge.cli", "aggregator", "run", "--config",
           str(tmp_path / "agg.toml")]
    env = {**os.environ, "PYTHONPATH": str(root)}
    with Store(config.state) as store:
        from edge.aggregator.registry import Registry
        for d in devices:
            Registry(store).enroll(d.record)
    first = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    second = None
    try:
        got = dict(tickets.get(timeout=30) for _ in devices)
        by_id = {d.device_id.hex(): d for d in devices}
        rng = np.random.default_rng(5)
        sent: dict[bytes, tuple[np.ndarray, int]] = {}
        payloads = []
        for topic, ticket in sorted(got.items()):
            dev = by_id[topic.split("/")[4]]
            delta = (rng.normal(size=PARAMS) * 0.05).astype(np.float32)
            sent[dev.device_id] = (delta, dev.example_count)
            payloads.append((dev.topic(FLEET), dev.update(ticket, delta)))
        for topic, payload in payloads[:2]:
            listener.publish(topic, payload, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with Store(config.state) as store:
                if len(store.accepted(1)) == 2:
                    break
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        for topic, payload in [payloads[0], *payloads[2:]]:  # a replay, and the rest
            listener.publish(topic, payload, qos=1).wait_for_publish(5)
        second = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        _out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        listener.disconnect()
        listener.loop_stop()
        broker.stop()
    with Store(config.state) as store:
        rows = store.metrics_rows()
        assert [(r["round"], r["participants"], r["model_version"]) for r in rows] == [(1, 4, 2)]
        refusals = store.refusals()  # the replay, maybe a redelivery of an unacked commit
        assert set(refusals) == {"duplicate"} and refusals["duplicate"] >= 1
        cp = store.latest_checkpoint()
        assert cp is not None
    expected = fedavg.fedavg([d for d, _ in sent.values()], [n for _, n in sent.values()])
    np.testing.assert_allclose(np.concatenate([cp.W.ravel(), cp.b]), expected, atol=1e-6)
