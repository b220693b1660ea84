"""Group commit under SIGKILL: real aggregator processes, a real Mosquitto, fake devices.

The aggregator commits accepted updates in batches and acks a batch's messages only after
its commit. These tests kill it between the commit and the acks, and at random points while
updates stream in, and count: every update sent is in the final sum once (lost 0, counted
twice 0), and at every kill the stored running sum is the sum of exactly the stored updates.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from conftest import ROOT
from ops_helpers import to_toml

from edge.aggregator import AggregatorConfig, fedavg
from edge.aggregator.registry import Registry
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.aggregator.store import Store
from edge.aggregator.verify import update_id
from edge.broker import MosquittoBroker
from edge.mqtt import BrokerSettings, make_client

FLEET = "crash"
PARAMS = 27  # the head of edge.aggregator.simulate.write_fleet_files

def _child_script(burst: int) -> str:
    """The aggregator with two test hooks: the first ``burst`` updates reach its inbox
    together (one group commit of them all), and after the first commit of updates it prints
    how many and hangs before acknowledging any, so the test can SIGKILL it in that window."""
    return textwrap.dedent(f"""
        import sys, threading, time
        from edge.aggregator import AggregatorConfig
        from edge.aggregator.service import Aggregator

        held = []
        def on_message(self, _client, _userdata, msg):
            held.append(msg)
            if len(held) == {burst}:  # a burst: all of them wait in the inbox at once
                for m in held:
                    self._inbox.put(m)
            elif len(held) > {burst}:
                self._inbox.put(msg)
        def ack(self, client, batch):
            if batch:
                print("committed", self.rounds.committed, len(batch), flush=True)
                time.sleep(120)
        Aggregator._on_message = on_message
        Aggregator._ack = ack
        config = AggregatorConfig.from_toml(sys.argv[1])
        with Aggregator(config) as agg:
            agg.run(threading.Event())
    """)


class Devices:
    """Fake devices over MQTT: collect their tickets, publish the updates the test asks for."""

    def __init__(self, url: str, devices: list[FakeDevice]) -> None:
        self.by_id = {d.device_id.hex(): d for d in devices}
        self.tickets: queue.Queue[tuple[str, bytes]] = queue.Queue()
        s = BrokerSettings.from_url(url)
        self.client = make_client(s, f"crash-devices-{os.getpid()}", clean_session=True)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.tickets.put((m.topic, bytes(m.payload)))
        self.client.connect(s.host, s.port)
        self.client.loop_start()
        self.client.subscribe(f"edge/v1/{FLEET}/devices/+/ticket", qos=1)
        assert subscribed.wait(10), "the fake devices did not subscribe"

    def updates(self, n: int, rng: np.random.Generator) -> dict[bytes, tuple[str, bytes]]:
        """The first ticket of each of ``n`` devices answered: device id -> (topic, update)."""
        got: dict[str, bytes] = {}
        deadline = time.monotonic() + 60
        while len(got) < n:
            topic, ticket = self.tickets.get(timeout=max(0.1, deadline - time.monotonic()))
            got.setdefault(topic.split("/")[4], ticket)
        out = {}
        for hexid, ticket in got.items():
            dev = self.by_id[hexid]
            delta = (rng.normal(size=PARAMS) * 0.05).astype(np.float32)
            out[dev.device_id] = (dev.topic(FLEET), dev.update(ticket, delta))
        return out

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _fleet(tmp_path: Path, url: str, n: int) -> tuple[Path, AggregatorConfig, list[FakeDevice]]:
    table = config_mapping(tmp_path / "fleet", url, fleet=FLEET, rounds={
        "cohort_size": n, "quorum": n, "min_updates": 1, "timeout_s": 600, "rounds": 1})
    path = tmp_path / "aggregator.toml"
    path.write_text(to_toml(table), encoding="utf-8")
    config = AggregatorConfig.from_mapping(table)
    devices = [FakeDevice(example_count=3 + 7 * i) for i in range(n)]
    with Store(config.state) as store:
        registry = Registry(store)
        for d in devices:
            registry.enroll(d.record)
    return path, config, devices


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(config: Path) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "aggregator", "run", "--config", str(config)]


def _stored(config: AggregatorConfig) -> tuple[dict[bytes, bytes], np.ndarray | None, int]:
    """The open (or last) round's accepted updates, stored running sum and count."""
    with Store(config.state) as store:
        round_id = store.last_round_id()
        r = store.get_round(round_id)
        assert r is not None
        return store.accepted(round_id), r.sum, r.count


def _weighted_sum(payloads: list[bytes]) -> np.ndarray:
    """Σ n·Δ over distinct sealed updates, as the aggregator sums them (FedAvg weights)."""
    from edge.formats.update import parse_update

    total = np.zeros(PARAMS, np.float64)
    for p in {update_id(p): p for p in payloads}.values():
        u = parse_update(p)
        total = total + float(u.example_count) * u.delta.astype(np.float64)
    return total


def _final_head_delta(config: AggregatorConfig, sent: list[bytes]) -> None:
    """The published model is the FedAvg of every sent update, each counted once."""
    from edge.formats.update import parse_update

    with Store(config.state) as store:
        rows = store.metrics_rows()
        assert [(r["round"], r["participants"]) for r in rows] == [(1, len(sent))]
        cp = store.latest_checkpoint()
        assert cp is not None and cp.version == 2
    ups = [parse_update(p) for p in sent]
    expected = fedavg.fedavg([u.delta for u in ups], [u.example_count for u in ups])
    np.testing.assert_allclose(np.concatenate([cp.W.ravel(), cp.b]), expected, atol=1e-6)


def test_kill_between_commit_and_ack_counts_the_batch_once(
        tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """A batch of 6 committed, SIGKILL before its acks: the broker redelivers all 6, the
    restarted aggregator refuses them as duplicates, and the round sums each update once."""
    n, burst = 8, 6
    config_path, config, devices = _fleet(tmp_path, mosquitto.url, n)
    fake = Devices(mosquitto.url, devices)
    child = subprocess.Popen([sys.executable, "-c", _child_script(burst), str(config_path)],
                             cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    second = None
    try:
        updates = list(fake.updates(n, np.random.default_rng(3)).values())
        for topic, payload in updates[:burst]:
            fake.publish(topic, payload)
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line == ["committed", str(burst), str(burst)], (line, child.stderr)
        # Durable before the ack: the rows and the sum of exactly these six.
        accepted, total, count = _stored(config)
        assert count == burst and len(accepted) == burst
        assert total is not None
        np.testing.assert_allclose(total, _weighted_sum([p for _, p in updates[:burst]]),
                                   rtol=1e-12, atol=1e-12)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        for topic, payload in updates[burst:]:
            fake.publish(topic, payload)
        second = subprocess.Popen(_cli(config_path), cwd=ROOT, env=_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
    finally:
        for proc in (child, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        fake.close()
    with Store(config.state) as store:
        # Each of the six came again (never acked) and was refused as a duplicate.
        assert store.refusals() == {"duplicate": burst}
    _final_head_delta(config, [p for _, p in updates])


def test_sigkill_at_random_points_loses_nothing_and_counts_nothing_twice(
        tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """Updates stream in while the aggregator is SIGKILLed again and again: at every kill the
    stored sum is the sum of exactly the stored updates; in the end each update counts once."""
    n, kills = 60, 10
    rng = random.Random(11)
    config_path, config, devices = _fleet(tmp_path, mosquitto.url, n)
    fake = Devices(mosquitto.url, devices)
    proc = subprocess.Popen(_cli(config_path), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    updates = fake.updates(n, np.random.default_rng(4))
    payloads = {uid: p for uid, p in ((update_id(p), p) for _, p in updates.values())}
    stop = threading.Event()

    def stream() -> None:  # one update every 80-250 ms, with replays of earlier ones
        sent: list[tuple[str, bytes]] = []
        for item in updates.values():
            if stop.is_set():
                return
            fake.publish(*item)
            sent.append(item)
            if rng.random() < 0.2:
                fake.publish(*rng.choice(sent))
            time.sleep(rng.uniform(0.08, 0.25))

    streamer = threading.Thread(target=stream)
    streamer.start()
    checked = []
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.4, 1.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            accepted, total, count = _stored(config)
            assert count == len(accepted)
            if total is not None:
                np.testing.assert_allclose(
                    total, _weighted_sum([payloads[u] for u in accepted.values()]),
                    rtol=1e-12, atol=1e-12)
            checked.append(count)
            proc = subprocess.Popen(_cli(config_path), cwd=ROOT, env=_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        streamer.join(60)
        assert proc.wait(120) == 0
    finally:
        stop.set()
        streamer.join(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        fake.close()
    # The kills landed while updates were being counted, not all before or after.
    assert any(0 < c < n for c in checked), checked
    accepted, _total, _count = _stored(config)
    assert sorted(accepted.values()) == sorted(payloads)  # lost 0, none foreign
    _final_head_delta(config, list(payloads.values()))
