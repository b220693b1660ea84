"""The board daemon against an embedded broker, driven by a fake aggregator in the test."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, Roles, make_package, package_id, require_native
from training_helpers import BIG, policy
from update_helpers import verify_sealed

from edge import protocol
from edge.broker import EmbeddedBroker, MosquittoBroker
from edge.daemon import Daemon, DaemonConfig
from edge.formats.device import DeviceRecord, parse_device_record
from edge.formats.ticket import build_ticket
from edge.formats.update import parse_update
from edge.mqtt import BrokerSettings, make_client
from edge.tee import TrustedApp

FLEET = "test-fleet"
NONCE = bytes(range(16))
HEAD_IN, HEAD_OUT = 16, 4
PARAMS = HEAD_IN * HEAD_OUT + HEAD_OUT


def wait_for(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``cond`` until true or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def provision(state: Path, roles: Roles) -> DeviceRecord:
    """Anchors and a permissive policy in a fresh simulated secure world; the device record."""
    with TrustedApp("sim", state) as ta:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
        ta.install_policy(policy(roles.signer))
        return parse_device_record(ta.identity())


def write_samples(folder: Path, n: int = 40, seed: int = 0) -> None:
    """An .npz of n samples with HEAD_IN features and labels < HEAD_OUT."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.savez(folder / "local.npz", X=rng.normal(size=(n, HEAD_IN)).astype(np.float32),
             y=rng.integers(0, HEAD_OUT, size=n))


def config_table(tmp: Path, state: Path, url: str) -> dict[str, Any]:
    """A daemon config for the sim TA, a directory source and the given broker."""
    return {
        "device": {"name": "board-1", "fleet": FLEET},
        "tee": {"backend": "sim", "state_dir": str(state)},
        "broker": {"url": url, "keepalive": 5},
        "data": {"source": "directory", "path": str(tmp / "data"), "max_samples": 1000},
        "paths": {"work_dir": str(tmp / "work")},
    }


def ticket(roles: Roles, round_id: int, *, deadline_in: int = 600, version: int = 1) -> bytes:
    """A no-DP ticket for ``round_id``, valid from now."""
    now = int(time.time())
    return build_ticket(roles.aggregator, round_id=round_id, model_version=version,
                        package_id=package_id(version), nonce=NONCE,
                        issued_at=now - 10, deadline=now + deadline_in, example_clip=1.0,
                        noise_multiplier=0.0, update_clip=BIG, learning_rate=0.1, epochs=1,
                        batch_size=8)


class FakeAggregator:
    """Publishes models and tickets, collects updates (a paho client on the test side)."""

    def __init__(self, url: str, device: DeviceRecord) -> None:
        self.device = device
        self.updates: list[bytes] = []
        settings = BrokerSettings.from_url(url)
        self.client = make_client(settings, "fake-aggregator", clean_session=True)
        self.ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            protocol.update_subscription(FLEET), qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.ready.set()
        self.client.on_message = lambda c, u, m: self.updates.append(bytes(m.payload))
        self.client.connect_async(settings.host, settings.port)
        self.client.loop_start()
        assert self.ready.wait(10), "fake aggregator did not subscribe"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def publish_model(self, package: bytes, wrap: bytes | None = None) -> None:
        """The package (retained, shared) and then this device's key wrap (retained, its own)."""
        self.publish(protocol.model_topic(FLEET), package, retain=True)
        wrap = wrap if wrap is not None else package.wraps[self.device.device_id]  # type: ignore[attr-defined]
        self.publish(protocol.wrap_topic(FLEET, self.device.device_id), wrap, retain=True)

    def publish_ticket(self, payload: bytes) -> None:
        self.publish(protocol.ticket_topic(FLEET, self.device.device_id), payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Running:
    """A Daemon serving in a thread."""

    def __init__(self, config: DaemonConfig) -> None:
        self.daemon = Daemon(config)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.daemon.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "daemon did not stop"
        self.daemon.close()


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def host_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A simulated secure world on the plain build (the ASan one runs in the main round test)."""
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    return tmp_path / "tee-state"


def test_daemon_loads_model_trains_and_publishes_a_verifiable_update(
        secure_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker) -> None:
    dev = provision(secure_world, roles)
    write_samples(tmp_path / "data")
    agg = FakeAggregator(broker.url, dev)
    agg.publish_model(make_package(roles.signer, [dev], version=1))
    run = Running(DaemonConfig.from_mapping(config_table(tmp_path, secure_world, broker.url)))
    try:
        wait_for(lambda: run.daemon.stats.models_loaded == 1, what="model load")
        agg.publish_ticket(ticket(roles, 1))
        wait_for(lambda: len(agg.updates) == 1, what="the sealed update")
        got = verify_sealed(agg.updates[0], dev, round_id=1, nonce=NONCE, model_version=1,
                            param_count=PARAMS, update_clip=BIG)
        assert got.example_count == 40 and got.device_id == dev.device_id
        wait_for(lambda: run.daemon.stats.rounds_published == [1], what="PUBACK logged")
        # The ticket again (the aggregator re-sends it while the update is missing): the
        # update kept in the outbox is published again, nothing is trained twice.
        spent = run.daemon.ta.budget().steps_spent
        (kept,) = run.daemon.outbox.entries()
        assert kept.sealed == agg.updates[0]
        agg.publish_ticket(ticket(roles, 1))
        wait_for(lambda: len(agg.updates) == 2, what="the kept update published again")
        assert agg.updates[1] == agg.updates[0]
        assert run.daemon.ta.budget().steps_spent == spent
        # Without the kept update, a replayed ticket is refused by the TA, the round skipped.
        run.daemon.outbox.remove(kept)
        agg.publish_ticket(ticket(roles, 1, deadline_in=601))  # other bytes: not a re-send
        wait_for(lambda: 1 in run.daemon.stats.rounds_skipped, what="replay refusal")
        assert run.daemon.stats.rounds_skipped[1] == "replay"
        # An expired ticket is skipped; a forged one is refused.
        agg.publish_ticket(ticket(roles, 2, deadline_in=-5))
        forged = bytearray(ticket(roles, 3))
        forged[-1] ^= 1
        agg.publish_ticket(bytes(forged))
        wait_for(lambda: {2, 3} <= set(run.daemon.stats.rounds_skipped), what="refusals")
        assert run.daemon.stats.rounds_skipped[2] == "expired"
        assert run.daemon.stats.rounds_skipped[3] == "signature"
        assert len(agg.updates) == 2
    finally:
        run.close()
        agg.close()


def test_daemon_reuses_features_until_its_samples_change(
        host_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker) -> None:
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data", n=40)
    agg = FakeAggregator(broker.url, dev)
    agg.publish_model(make_package(roles.signer, [dev], version=1))
    run = Running(DaemonConfig.from_mapping(config_table(tmp_path, host_world, broker.url)))
    passes: list[int] = []
    through = run.daemon._run_backbone
    run.daemon._run_backbone = lambda x: (passes.append(len(x)), through(x))[1]  # type: ignore[method-assign]
    try:
        wait_for(lambda: run.daemon.stats.models_loaded == 1, what="model load")
        for rid in (1, 2):
            agg.publish_ticket(ticket(roles, rid))
            wait_for(lambda rid=rid: len(agg.updates) == rid, what=f"update {rid}")
        assert passes == [40]  # round 2 trained on the features of round 1
        rng = np.random.default_rng(1)
        np.savez(tmp_path / "data" / "more.npz", X=rng.normal(size=(10, HEAD_IN)).astype(
            np.float32), y=rng.integers(0, HEAD_OUT, size=10))
        agg.publish_ticket(ticket(roles, 3))
        wait_for(lambda: len(agg.updates) == 3, what="update 3")
        assert passes == [40, 50]
        got = [verify_sealed(u, dev, round_id=r, nonce=NONCE, model_version=1,
                             param_count=PARAMS, update_clip=BIG).example_count
               for r, u in enumerate(agg.updates, 1)]
        assert got == [40, 40, 50]
    finally:
        run.close()
        agg.close()


def test_daemon_loads_a_package_and_its_wrap_in_either_order(
        host_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker) -> None:
    """The wrap before its package, then a package before its wrap: each is loaded once the
    pair is complete, and a wrap of another package does not unlock it."""
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    agg = FakeAggregator(broker.url, dev)
    run = Running(DaemonConfig.from_mapping(config_table(tmp_path, host_world, broker.url)))
    model, wrap = protocol.model_topic(FLEET), protocol.wrap_topic(FLEET, dev.device_id)
    try:
        wait_for(run.daemon.subscribed.is_set, what="subscription")
        v1 = make_package(roles.signer, [dev], version=1)
        agg.publish(wrap, v1.wrap, retain=True)
        time.sleep(0.5)
        assert run.daemon.stats.models_loaded == 0
        agg.publish(model, v1, retain=True)
        wait_for(lambda: run.daemon.stats.models_loaded == 1, what="v1 loaded, wrap first")
        v2 = make_package(roles.signer, [dev], version=2)
        agg.publish(model, v2, retain=True)
        # The wrap of another version-2 package (same device): it names another package id.
        other = make_package(roles.signer, [dev], version=2, pkg_id=bytes(range(16)))
        agg.publish(wrap, other.wrap, retain=True)
        time.sleep(1.0)
        assert run.daemon.stats.models_loaded == 1 and run.daemon.stats.models_refused == 0
        assert run.daemon.ta.status().model_version == 1
        agg.publish(wrap, v2.wrap, retain=True)
        wait_for(lambda: run.daemon.stats.models_loaded == 2, what="v2 loaded, package first")
        assert run.daemon.ta.status().model_version == 2
    finally:
        run.close()
        agg.close()


def test_daemon_refuses_a_bad_model_and_keeps_the_old_one(
        host_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.daemon")
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    agg = FakeAggregator(broker.url, dev)
    agg.publish_model(make_package(roles.signer, [dev], version=2))
    run = Running(DaemonConfig.from_mapping(config_table(tmp_path, host_world, broker.url)))
    try:
        wait_for(lambda: run.daemon.stats.models_loaded == 1, what="model load")
        agg.publish_model(make_package(roles.signer, [dev], version=1))  # rollback
        agg.publish_model(make_package(roles.aggregator, [dev], version=3))  # wrong signer
        built = make_package(roles.signer, [dev], version=4)
        bad = bytearray(built)
        bad[-70] ^= 1  # in the signed manifest: its signature fails
        agg.publish_model(bytes(bad), built.wrap)
        wait_for(lambda: run.daemon.stats.models_refused == 3, what="three refusals")
        assert run.daemon.ta.status().model_version == 2
        # The rollback is at INFO and names both versions and packages.
        lines = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.INFO and "refusal=rollback" in r.getMessage()]
        assert len(lines) == 1, lines
        assert (f"rollback: package v1 (package {package_id(1).hex()}) <= installed v2 "
                f"(package {package_id(2).hex()})") in lines[0]
    finally:
        run.close()
        agg.close()


def test_daemon_reconnects_after_a_broker_restart(
        host_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker) -> None:
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    np.savez(tmp_path / "data" / "unknown.npz", X=np.ones((3, HEAD_IN), np.float32),
             y=np.full(3, HEAD_OUT))  # labels the head does not have: left out
    agg = FakeAggregator(broker.url, dev)
    agg.publish_model(make_package(roles.signer, [dev], version=1))
    run = Running(DaemonConfig.from_mapping(config_table(tmp_path, host_world, broker.url)))
    try:
        wait_for(lambda: run.daemon.stats.models_loaded == 1, what="model load")
        agg.close()
        broker.restart()
        wait_for(lambda: run.daemon.stats.connects >= 2 and run.daemon.subscribed.is_set(),
                 timeout=30, what="reconnect")
        agg = FakeAggregator(broker.url, dev)
        agg.publish_ticket(ticket(roles, 5))
        wait_for(lambda: len(agg.updates) == 1, what="update after reconnect")
        got = verify_sealed(agg.updates[0], dev, round_id=5, nonce=NONCE, model_version=1,
                            param_count=PARAMS, update_clip=BIG)
        assert got.example_count == 40
    finally:
        run.close()
        agg.close()


def test_daemon_on_mosquitto_gets_the_ticket_sent_while_offline(
        host_world: Path, roles: Roles, tmp_path: Path) -> None:
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    with MosquittoBroker(tmp_path / "mosquitto") as broker:
        agg = FakeAggregator(broker.url, dev)
        agg.publish_model(make_package(roles.signer, [dev], version=1))
        config = DaemonConfig.from_mapping(config_table(tmp_path, host_world, broker.url))
        run = Running(config)
        try:
            wait_for(lambda: run.daemon.stats.models_loaded == 1, what="model load")
            agg.publish_ticket(ticket(roles, 1))
            wait_for(lambda: len(agg.updates) == 1, what="round 1 update")
            run.close()
            # The board is offline: its persistent session makes the broker queue the ticket.
            agg.publish_ticket(ticket(roles, 2))
            run = Running(config)
            wait_for(lambda: run.daemon.stats.models_refused == 1, what="retained model again")
            assert run.daemon.stats.models_loaded == 0  # the TA has it already (rollback)
            # Back online: the kept round-1 update goes out again (its round is not known to
            # be closed; the aggregator refuses a duplicate), then round 2 is served.
            wait_for(lambda: len(agg.updates) == 3, what="round 1 again, then round 2")
            assert agg.updates[1] == agg.updates[0]
            verify_sealed(agg.updates[2], dev, round_id=2, nonce=NONCE, model_version=1,
                          param_count=PARAMS, update_clip=BIG)
            wait_for(lambda: run.daemon.stats.rounds_published == [2], what="PUBACK")
            assert run.daemon.stats.rounds_skipped == {}
            # An authentic ticket of round 2 closed round 1: only round 2's update is kept.
            assert [e.round_id for e in run.daemon.outbox.entries()] == [2]
            broker.restart()  # Mosquitto keeps the retained model across the restart
            wait_for(lambda: run.daemon.stats.connects >= 2 and run.daemon.subscribed.is_set(),
                     timeout=30, what="reconnect to the restarted Mosquitto")
            wait_for(agg.client.is_connected, timeout=30,
                     what="fake aggregator reconnect")
            agg.publish_ticket(ticket(roles, 4))
            wait_for(lambda: any(parse_update(u).round_id == 4 for u in agg.updates),
                     what="round 4 update")
            wait_for(lambda: run.daemon.stats.rounds_published == [2, 4], what="PUBACK 4")
        finally:
            run.close()
            agg.close()


def test_daemon_publishes_a_kept_update_again_only_when_the_broker_lost_its_session(
        host_world: Path, roles: Roles, tmp_path: Path) -> None:
    """A reconnect to a broker that kept the board's session publishes nothing again (paho
    re-sends what is unacknowledged); one that lost it gets the kept update again. Counted
    on the update topic (before, every reconnect re-sent it: a redelivery storm when
    1,000 boards were dropped for missed keepalives)."""
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    broker = MosquittoBroker(tmp_path / "mosquitto")
    agg = FakeAggregator(broker.url, dev)
    run: Running | None = None
    try:
        agg.publish_model(make_package(roles.signer, [dev], version=1))
        run = Running(DaemonConfig.from_mapping(config_table(tmp_path, host_world, broker.url)))
        daemon = run.daemon
        wait_for(lambda: daemon.stats.models_loaded == 1, what="model load")
        agg.publish_ticket(ticket(roles, 1))
        wait_for(lambda: daemon.stats.rounds_published == [1], what="PUBACK of round 1")
        wait_for(lambda: len(agg.updates) == 1, what="round 1 update")
        # The fake aggregator (clean session) must be back before the board publishes.
        daemon.client.reconnect_delay_set(min_delay=3, max_delay=3)
        agg.ready.clear()
        broker.restart()  # SIGTERM: Mosquitto saves the sessions, the board's is kept
        wait_for(agg.ready.is_set, timeout=30, what="fake aggregator back")
        wait_for(lambda: daemon.stats.connects == 2 and daemon.subscribed.is_set(),
                 timeout=30, what="reconnect to a broker that kept the session")
        time.sleep(1.0)  # the connect's jobs (an outbox re-send, before the fix) are done
        assert (len(agg.updates), daemon.stats.republished) == (1, 0)
        agg.ready.clear()
        broker.kill()
        (broker.workdir / "mosquitto.db").unlink()  # a broker that lost every session
        broker.start()
        wait_for(agg.ready.is_set, timeout=30, what="fake aggregator back again")
        wait_for(lambda: daemon.stats.connects == 3, timeout=30,
                 what="reconnect to a broker without the session")
        wait_for(lambda: daemon.stats.republished == 1 and len(agg.updates) == 2,
                 what="the kept update published again")
        assert agg.updates[1] == agg.updates[0]
    finally:
        if run is not None:
            run.close()
        agg.close()
        broker.stop()


def test_daemon_ignores_a_ticket_copy_that_came_before_its_update_went_out(
        host_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker) -> None:
    """A ticket re-sent while the board was still loading or training waits in its queue;
    once the update is sealed and published, that copy publishes nothing again (the
    aggregator sent it before it could have seen the update). A copy that comes after the
    publish is an aggregator still missing the update: it gets the kept update again."""
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    agg = FakeAggregator(broker.url, dev)
    agg.publish_model(make_package(roles.signer, [dev], version=1))
    run = Running(DaemonConfig.from_mapping(config_table(tmp_path, host_world, broker.url)))
    try:
        daemon = run.daemon
        wait_for(lambda: daemon.stats.models_loaded == 1, what="model load")
        t = ticket(roles, 1)
        agg.publish_ticket(t)
        agg.publish_ticket(t)  # queued while the first one trains
        wait_for(lambda: daemon.stats.rounds_published == [1], what="PUBACK of round 1")
        time.sleep(1.0)  # the queued copy is handled by now
        assert (len(agg.updates), daemon.stats.republished) == (1, 0)
        agg.publish_ticket(t)
        wait_for(lambda: daemon.stats.republished == 1 and len(agg.updates) == 2,
                 what="the kept update again for a ticket sent after it")
        assert agg.updates[1] == agg.updates[0]
    finally:
        run.close()
        agg.close()


def test_edge_daemon_stops_cleanly_on_sigterm(
        host_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker) -> None:
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    agg = FakeAggregator(broker.url, dev)
    agg.publish_model(make_package(roles.signer, [dev], version=1))
    table = config_table(tmp_path, host_world, broker.url)
    cfg = tmp_path / "daemon.toml"
    lines = []
    for name, sub in table.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"'
                  for k, v in sub.items()]
    cfg.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "daemon", "--config", str(cfg)],
                            stderr=subprocess.PIPE, text=True, env=env)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("step=model" in line and "result=loaded" in line for line in log),
                 timeout=30, what="model loaded by the subprocess")
        agg.publish_ticket(ticket(roles, 1))
        wait_for(lambda: len(agg.updates) == 1, what="update from the subprocess")
        agg.publish_ticket(ticket(roles, 2))  # SIGTERM lands somewhere in round 2
        time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        agg.close()
    reader.join(5)
    text = "".join(log)
    assert "step=signal signal=SIGTERM" in text and "step=stop" in text, text
    assert "device=board-1 round=1 step=publish result=acknowledged" in text, text
    assert "Traceback" not in text, text
    if "round=2 step=train result=sealed" in text:  # a sealed update is still published
        assert "round=2 step=publish" in text, text


def test_daemon_runs_the_packaged_backbone_and_restores_it_after_restart(
        host_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker) -> None:
    import io

    from edge.formats.package_builder import build_package
    from edge.inference.builder import build_tflite
    from edge.inference.demo import metadata_for
    from edge.inference.graph import Dense, FloatNet, quantize_net

    dev = provision(host_world, roles)
    rng = np.random.default_rng(3)
    net = FloatNet((64,), (Dense(rng.normal(size=(64, HEAD_IN)).astype(np.float32) * 0.3,
                                 np.zeros(HEAD_IN, np.float32)),))
    x = rng.uniform(0, 1, size=(30, 64)).astype(np.float32)
    qnet = quantize_net(net, x)
    out = io.BytesIO()
    w, b = rng.normal(size=(HEAD_IN, HEAD_OUT)).astype(np.float32), np.zeros(HEAD_OUT, np.float32)
    release = build_package(out, signer=roles.signer, version=1, W=w, b=b, recipients=[dev],
                            package_id=package_id(1), backbone=build_tflite(qnet),
                            metadata=metadata_for(qnet))
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "raw.npz", X=x, y=rng.integers(0, HEAD_OUT, size=30))
    agg = FakeAggregator(broker.url, dev)
    agg.publish_model(out.getvalue(), release.wraps[dev.device_id])
    table = config_table(tmp_path, host_world, broker.url)
    table["inference"] = {"npu_delegate": "none"}
    config = DaemonConfig.from_mapping(table)
    run = Running(config)
    try:
        wait_for(lambda: run.daemon.stats.models_loaded == 1, what="model load")
        assert run.daemon.backbone is not None
        run.close()
        run = Running(config)  # restarted: the TA holds the package, the backbone is restored
        assert run.daemon.backbone is not None
        wait_for(run.daemon.subscribed.is_set, what="subscription")
        agg.publish_ticket(ticket(roles, 1))
        wait_for(lambda: len(agg.updates) == 1, what="the sealed update")
        got = verify_sealed(agg.updates[0], dev, round_id=1, nonce=NONCE, model_version=1,
                            param_count=PARAMS, update_clip=BIG)
        assert got.example_count == 30
    finally:
        run.close()
        agg.close()


def test_daemon_uses_the_committed_backbone_when_it_cannot_be_moved_into_place(
        host_world: Path, roles: Roles, tmp_path: Path, broker: EmbeddedBroker) -> None:
    # Issue 10, item 3: after the TA commits, a failed rename used to delete the
    # backbone and the daemon kept the old one beside the new head.
    import io

    from edge.formats.package_builder import build_package

    dev = provision(host_world, roles)
    rng = np.random.default_rng(4)
    backbone = rng.bytes(50_000)
    out = io.BytesIO()
    release = build_package(out, signer=roles.signer, version=1,
                            W=rng.normal(size=(HEAD_IN, HEAD_OUT)), b=np.zeros(HEAD_OUT),
                            recipients=[dev], backbone=backbone)
    config = DaemonConfig.from_mapping(config_table(tmp_path, host_world, broker.url))
    blocker = config.work_dir / "backbone.partial"
    blocker.mkdir(parents=True)
    (blocker / "in-the-way").write_text("a directory where the client renames its file")
    agg = FakeAggregator(broker.url, dev)
    agg.publish_model(out.getvalue(), release.wraps[dev.device_id])
    run = Running(config)
    try:
        wait_for(lambda: run.daemon.stats.models_loaded == 1, what="model load")
        assert run.daemon.stats.models_refused == 0
        assert (config.work_dir / "backbone.tflite").read_bytes() == backbone
    finally:
        run.close()
        agg.close()
