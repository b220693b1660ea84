"""Cohort workers and a root as real processes on a Mosquitto started by the test.

Three ``edge aggregator worker`` processes share the fleet's updates (MQTT 5 shared
subscription) and a root (``edge aggregator run`` with [workers]) combines their partial
sums. One worker is SIGKILLed mid-round and restarted under its id; some boards publish
their update twice (as a board does when its ticket is re-sent), so the same update can
reach two workers. Counted: every update is in the round once (lost 0, counted twice 0),
and the new model equals FedAvg of exactly those updates.
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from conftest import ROOT
from federation_helpers import wait_for
from ops_helpers import to_toml

from edge.aggregator import AggregatorConfig, fedavg
from edge.aggregator.cohort import (
    Announcement,
    Combiner,
    Contribution,
    PartialSum,
    drop_message,
    read_drop,
)
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import load_head
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.aggregator.store import Store
from edge.broker import BrokerError, MosquittoBroker
from edge.errors import Malformed, Tampered, WrongKind
from edge.formats.update import parse_update
from edge.mqtt import BrokerSettings, make_client

FLEET = "cohort"
PARAMS = 27  # the head of edge.aggregator.simulate.write_fleet_files
DEVICES = 30
KEY = bytes(range(32))


class Boards:
    """Fake boards over MQTT 3.1.1: collect their tickets, publish updates the test asks."""

    def __init__(self, url: str, devices: list[FakeDevice]) -> None:
        self.by_id = {d.device_id.hex(): d for d in devices}
        self.tickets: queue.Queue[tuple[str, bytes]] = queue.Queue()
        s = BrokerSettings.from_url(url)
        self.client = make_client(s, f"cohort-boards-{os.getpid()}", clean_session=True)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.tickets.put((m.topic, bytes(m.payload)))
        self.client.connect(s.host, s.port)
        self.client.loop_start()
        self.client.subscribe(f"edge/v1/{FLEET}/devices/+/ticket", qos=1)
        assert subscribed.wait(10), "the boards did not subscribe"

    def updates(self, rng: np.random.Generator) -> list[tuple[str, bytes]]:
        """Every board's answer to its first ticket: (topic, sealed update)."""
        got: dict[str, bytes] = {}
        deadline = time.monotonic() + 60
        while len(got) < len(self.by_id):
            topic, ticket = self.tickets.get(timeout=max(0.1, deadline - time.monotonic()))
            got.setdefault(topic.split("/")[4], ticket)
        out = []
        for hexid, ticket in sorted(got.items()):
            dev = self.by_id[hexid]
            delta = (rng.normal(size=PARAMS) * 0.05).astype(np.float32)
            out.append((dev.topic(FLEET), dev.update(ticket, delta)))
        return out

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "--verbose", "aggregator", *args]


def _accepted(path: Path) -> int:
    """Updates a worker has committed (0 before its database exists)."""
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return db.execute("SELECT count(*) FROM accepted").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.fixture
def mosquitto(tmp_path: Path) -> MosquittoBroker:
    try:
        broker = MosquittoBroker(tmp_path / "mosquitto")
    except BrokerError as exc:
        pytest.fail(f"{exc} -- the cohort tests need a real Mosquitto: run scripts/setup.sh")
    yield broker
    broker.stop()


def test_workers_and_root_lose_nothing_and_count_nothing_twice_under_a_kill(
        tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    (tmp_path / "cohort.key").write_text(KEY.hex())
    table = config_mapping(tmp_path / "fleet", mosquitto.url, fleet=FLEET, rounds={
        "cohort_size": DEVICES, "quorum": DEVICES, "min_updates": 1, "timeout_s": 600,
        "rounds": 1}, workers={"key": str(tmp_path / "cohort.key")})
    config_path = tmp_path / "root.toml"
    config_path.write_text(to_toml(table), encoding="utf-8")
    config = AggregatorConfig.from_mapping(table)
    devices = [FakeDevice(example_count=2 + 3 * i) for i in range(DEVICES)]
    with Store(config.state) as store:
        registry = Registry(store)
        for d in devices:
            registry.enroll(d.record)
    initial_w, initial_b = load_head(config.initial_head)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("root", "w1", "w2", "w3")}  # noqa: SIM115

    def worker(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(_cli("worker", "--config", str(config_path), "--id",
                                     name, "--state", str(tmp_path / f"{name}.sqlite")),
                                env=env, stdout=logs[name], stderr=subprocess.STDOUT)

    workers = {name: worker(name) for name in ("w1", "w2", "w3")}
    root = subprocess.Popen(_cli("run", "--config", str(config_path)), env=env,
                            stdout=logs["root"], stderr=subprocess.STDOUT)
    boards = Boards(mosquitto.url, devices)
    try:
        sent = boards.updates(np.random.default_rng(1))
        first, rest = sent[:DEVICES // 2], sent[DEVICES // 2:]
        for topic, payload in first:
            boards.publish(topic, payload)
        wait_for(lambda: _accepted(tmp_path / "w1.sqlite") >= 1, timeout=30,
                 what="worker w1 summed some updates")
        workers["w1"].send_signal(signal.SIGKILL)
        workers["w1"].wait(10)
        for topic, payload in rest:
            boards.publish(topic, payload)
        # Boards whose ticket came again publish their kept update again, twice: Mosquitto
        # hands a group's messages round-robin, so one of the two copies reaches another
        # worker than the original did (the root then has a worker drop it).
        for _ in range(2):
            for topic, payload in first[:8]:
                boards.publish(topic, payload)
        time.sleep(0.5)
        workers["w1"] = worker("w1")  # restarted under its id: its session comes back
        assert root.wait(120) == 0, (tmp_path / "root.log").read_text()[-3000:]
    finally:
        boards.close()
        for p in workers.values():
            p.send_signal(signal.SIGTERM)
        for p in workers.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if root.poll() is None:
            root.kill()
        for f in logs.values():
            f.close()

    with Store(config.state) as store:
        r = store.get_round(1)
        accepted = store.accepted(1)
        cp = store.latest_checkpoint()
    assert r is not None and r.state == "closed"
    assert sorted(accepted) == sorted(d.device_id for d in devices)  # lost 0
    assert r.count == DEVICES  # counted twice 0
    updates = [parse_update(p) for _, p in sent]
    weights = np.array([u.example_count for u in updates], dtype=np.float64)
    mean = (weights[:, None] * np.stack([u.delta for u in updates]).astype(np.float64)).sum(0) \
        / weights.sum()
    W, b = fedavg.apply_to_head(initial_w, initial_b, mean)
    assert cp is not None and cp.version == 2
    np.testing.assert_allclose(cp.W, W, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(cp.b, b, rtol=1e-6, atol=1e-9)
    # Each worker's committed rows cover a share; together (dropped ones aside) all, once.
    shares, dropped = {}, 0
    for name in ("w1", "w2", "w3"):
        with sqlite3.connect(tmp_path / f"{name}.sqlite") as db:
            shares[name] = {bytes(d) for (d,) in db.execute(
                "SELECT device_id FROM accepted WHERE dropped = 0")}
            dropped += db.execute("SELECT count(*) FROM accepted WHERE dropped = 1").fetchone()[0]
    assert dropped > 0, "no update reached two workers: the de-duplication was not exercised"
    assert sum(len(s) for s in shares.values()) == DEVICES
    assert set().union(*shares.values()) == {d.device_id for d in devices}
    assert all(shares.values()), f"a worker got no share: {[len(s) for s in shares.values()]}"


def _partial(worker: str, seq: int, devices: list[bytes], value: float) -> PartialSum:
    contributions = tuple(Contribution(d, d * 2, 1, 1, 1, 1.0) for d in devices)
    return PartialSum(7, worker, seq, np.full(3, value), float(len(devices)), contributions)


def test_the_combiner_counts_a_device_once_and_waits_for_the_drop() -> None:
    a, b, c = b"a" * 16, b"b" * 16, b"c" * 16
    comb = Combiner(7)
    assert comb.combined() is None
    assert comb.add(_partial("w2", 1, [a, b], 2.0))
    assert comb.add(_partial("w1", 3, [b, c], 2.0))
    assert not comb.add(_partial("w1", 2, [c], 1.0))  # older than what it has
    assert not comb.add(PartialSum(8, "w3", 1, np.zeros(3), 0.0, ()))  # another round
    assert comb.drops() == {"w2": [b]}  # b is w1's (the smaller id)
    assert comb.combined() is None  # never summed with b twice
    assert comb.add(_partial("w2", 2, [a], 1.0))  # w2 dropped b
    got = comb.combined()
    assert got is not None and sorted(got.contributions) == [a, b, c]
    np.testing.assert_array_equal(got.total, np.full(3, 3.0))
    assert got.weight == 3.0


def test_cohort_messages_are_authenticated_and_named() -> None:
    ann = Announcement(3, bytes(16), 2, PARAMS, 1.0, 0.5, 1.0, 0.0, (b"rec",), b"p" * 16)
    data = ann.to_message(KEY, FLEET)
    assert Announcement.from_message(KEY, FLEET, data) == ann
    with pytest.raises(Tampered):
        Announcement.from_message(bytes(32), FLEET, data)  # another key
    bad = bytearray(data)
    bad[10] ^= 1
    with pytest.raises(Tampered):
        Announcement.from_message(KEY, FLEET, bytes(bad))
    with pytest.raises(WrongKind):
        PartialSum.from_message(KEY, FLEET, data)
    with pytest.raises(Malformed):
        Announcement.from_message(KEY, "other", data)
    with pytest.raises(Malformed):
        Announcement.from_message(KEY, FLEET, data[:20])
    drop = drop_message(KEY, FLEET, 3, "w2", [b"d" * 16])
    assert read_drop(KEY, FLEET, "w2", drop) == (3, [b"d" * 16])
    with pytest.raises(Malformed):
        read_drop(KEY, FLEET, "w1", drop)  # addressed to another worker
