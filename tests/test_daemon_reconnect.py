"""Tickets survive a board dropped by the broker; keepalive holds while a model loads.

Real Mosquitto started by each test; the fake aggregator of ``test_daemon_round``
publishes models and tickets. MQTT orders messages only within one topic, so a
board that reconnects may get its round's ticket (queued for its persistent
session) before the model that ticket names: it must keep the ticket until the
model is loaded instead of refusing it once and ignoring every re-send.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Roles, make_package, require_native
from federation_helpers import to_toml
from test_daemon_round import (
    BIG,
    FLEET,
    NONCE,
    PARAMS,
    FakeAggregator,
    Running,
    config_table,
    provision,
    ticket,
    wait_for,
    write_samples,
)
from update_helpers import verify_sealed

from edge import protocol
from edge.broker import BrokerError, MosquittoBroker
from edge.daemon import DaemonConfig
from edge.formats.update import parse_update

KEEPALIVE = 5  # the smallest a config accepts; Mosquitto drops a silent client after 1.5x


@pytest.fixture
def host_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    return tmp_path / "tee-state"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    try:
        broker = MosquittoBroker(tmp_path / "mosquitto")
    except BrokerError as exc:
        pytest.fail(f"{exc} -- these tests need a real Mosquitto: run scripts/setup.sh")
    try:
        yield broker
    finally:
        broker.stop()


class StatusWatch:
    """Presence messages of one board as the broker publishes them (its will included)."""

    def __init__(self, agg: FakeAggregator, device_id: bytes) -> None:
        self.seen: list[bytes] = []
        topic = protocol.status_topic(FLEET, device_id)
        agg.client.message_callback_add(topic, lambda c, u, m: self.seen.append(m.payload))
        agg.client.subscribe(topic, qos=1)

    def count(self, status: bytes) -> int:
        return sum(s == status for s in self.seen)


def daemon_process(tmp_path: Path, state: Path, url: str) -> tuple[subprocess.Popen[str],
                                                                      list[str]]:
    """``edge daemon`` as a real process, its stderr collected line by line."""
    table = config_table(tmp_path, state, url)
    table["broker"]["keepalive"] = KEEPALIVE
    cfg = tmp_path / "daemon.toml"
    cfg.write_text(to_toml(table), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "--verbose", "daemon",
                             "--config", str(cfg)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")),  # type: ignore[union-attr]
                     daemon=True).start()
    return proc, log


def test_board_dropped_by_the_broker_gets_its_ticket_before_the_model_after_reconnect(
        host_world: Path, roles: Roles, tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """A board process frozen (SIGSTOP) until the broker drops it for missed keepalives;
    meanwhile round 2's ticket (model v2) and then model v2 are queued for its session.
    Back (SIGCONT), it reconnects, gets the ticket first, keeps it, loads v2 and seals
    round 2 exactly once, without waiting for a re-send."""
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    agg = FakeAggregator(mosquitto.url, dev)
    presence = StatusWatch(agg, dev.device_id)
    agg.publish_model(make_package(roles.signer, [dev], version=1))
    proc, log = daemon_process(tmp_path, host_world, mosquitto.url)
    try:
        wait_for(lambda: any("step=model" in ln and "result=loaded" in ln for ln in log),
                 timeout=30, what="model v1 loaded by the daemon process")
        agg.publish_ticket(ticket(roles, 1))
        wait_for(lambda: len(agg.updates) == 1, timeout=30, what="round 1's update")
        wait_for(lambda: presence.count(protocol.ONLINE) >= 1, what="online status")
        proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        wait_for(lambda: presence.count(protocol.OFFLINE) >= 1, timeout=4 * KEEPALIVE,
                 what="the broker to drop the frozen board (its will: offline)")
        assert time.monotonic() - frozen >= KEEPALIVE  # dropped for keepalive, not otherwise
        round2 = ticket(roles, 2, version=2)
        agg.publish_ticket(round2)
        agg.publish_model(make_package(roles.signer, [dev], version=2))
        proc.send_signal(signal.SIGCONT)
        wait_for(lambda: any(parse_update(u).round_id == 2 for u in agg.updates), timeout=30,
                 what="round 2's update after the reconnect")
        text = "".join(log)
        assert "round=2 step=ticket result=parked reason=model-not-loaded" in text, text
        got = [u for u in agg.updates if parse_update(u).round_id == 2]
        verify_sealed(got[0], dev, round_id=2, nonce=NONCE, model_version=2,
                      param_count=PARAMS, update_clip=BIG)
        wait_for(lambda: "round=2 step=publish result=acknowledged" in "".join(log),
                 what="round 2's PUBACK")
        assert presence.count(protocol.ONLINE) >= 2  # it did reconnect
        assert "wrong-model" not in "".join(log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        agg.close()
    text = "".join(log)
    for rid in (1, 2):  # sealed once per round: nothing trained twice
        assert text.count(f"round={rid} step=train result=sealed") == 1, text


def test_keepalive_holds_while_a_model_loads_for_longer_than_the_broker_waits(
        host_world: Path, roles: Roles, tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """Model loading runs on the daemon's worker thread, so paho's network thread keeps
    pinging: a load that takes 2x the broker's keepalive limit drops nothing."""
    dev = provision(host_world, roles)
    write_samples(tmp_path / "data")
    agg = FakeAggregator(mosquitto.url, dev)
    presence = StatusWatch(agg, dev.device_id)
    agg.publish_model(make_package(roles.signer, [dev], version=1))
    table = config_table(tmp_path, host_world, mosquitto.url)
    table["broker"]["keepalive"] = KEEPALIVE
    run = Running(DaemonConfig.from_mapping(table))
    loading = threading.Event()
    try:
        wait_for(lambda: run.daemon.stats.models_loaded == 1, what="model v1")
        original = run.daemon.ta.load_model

        def slow_load(*args: Any, **kw: Any) -> Any:
            loading.set()
            time.sleep(3 * KEEPALIVE)  # past 1.5 x keepalive: a blocked ping would be missed
            return original(*args, **kw)
        run.daemon.ta.load_model = slow_load  # type: ignore[method-assign]
        agg.publish_model(make_package(roles.signer, [dev], version=2))
        assert loading.wait(10), "the daemon did not start loading model v2"
        agg.publish_ticket(ticket(roles, 2, version=2))  # arrives while the model loads
        wait_for(lambda: run.daemon.stats.models_loaded == 2, timeout=6 * KEEPALIVE,
                 what="model v2 loaded")
        wait_for(lambda: any(parse_update(u).round_id == 2 for u in agg.updates),
                 what="round 2's update")
        assert run.daemon.stats.connects == 1, "the broker dropped the board while it loaded"
        assert presence.count(protocol.OFFLINE) == 0
    finally:
        run.close()
        agg.close()
