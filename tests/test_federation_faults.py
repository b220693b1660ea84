"""Federation faults: a dropped device, a SIGKILLed aggregator, a broker restart, bad messages."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, require_native
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from federation_helpers import (
    Board,
    Federation,
    Observer,
    kill_all,
    make_fleet,
    to_toml,
    wait_for,
)

from edge import protocol
from edge.aggregator import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.simulate import FakeDevice
from edge.aggregator.store import Store
from edge.aggregator.verify import update_id
from edge.broker import EmbeddedBroker, MosquittoBroker
from edge.commands.aggregator import status as aggregator_status
from edge.demo.fleet import FLEET
from edge.demo.settings import DEFAULT
from edge.errors import EdgeError
from edge.formats.ticket import build_ticket
from edge.formats.update import parse_update


@pytest.fixture
def embedded() -> Iterator[str]:
    require_native("host")
    with EmbeddedBroker() as broker:
        yield broker.url



def hold_tickets(board: Board) -> threading.Event:
    """Make ``board`` wait (after receiving a ticket) until the returned event is set."""
    release = threading.Event()
    original = board.daemon._handle_ticket

    def held(payload: bytes, arrived: float | None = None) -> None:
        release.wait(60)
        original(payload, arrived)
    board.daemon._handle_ticket = held  # type: ignore[method-assign]
    return release


def drop_on_ticket(board: Board) -> None:
    """Make ``board`` go offline as soon as a ticket arrives (before any TA call)."""
    def dropped(_payload: bytes, _arrived: float | None = None) -> None:
        board.stop.set()
    board.daemon._handle_ticket = dropped  # type: ignore[method-assign]


def sealed(observer: Observer) -> list[bytes]:
    """The observed payloads that are sealed updates (not the injected garbage)."""
    out = []
    for _, p in observer.got:
        try:
            parse_update(p)
        except EdgeError:
            continue
        out.append(p)
    return out


def head_vector(cp: Any) -> np.ndarray:
    return np.concatenate([cp.W.reshape(-1), cp.b]).astype(np.float64)


def fedavg(payloads: list[bytes]) -> np.ndarray:
    """Sample-weighted mean of the deltas of distinct sealed updates."""
    ups = [parse_update(p) for p in {update_id(p): p for p in payloads}.values()]
    n = np.array([u.example_count for u in ups], np.float64)
    return (n[:, None] * np.stack([u.delta for u in ups]).astype(np.float64)).sum(0) / n.sum()


@pytest.mark.parametrize("min_updates", [2, 3])
def test_device_drops_mid_round(embedded: str, tmp_path: Path, min_updates: int) -> None:
    """Quorum 3, one device drops: closed at the deadline with 2, or failed (model unchanged)."""
    fleet = make_fleet(tmp_path, embedded, timeout_s=3, quorum=3, min_updates=min_updates)
    fed = Federation(fleet)
    drop_on_ticket(fed.boards[2])
    try:
        fed.start_boards()
        (m,) = fed.run_rounds(1)
        assert fed.aggregator is not None
        cp = fed.aggregator.store.latest_checkpoint()
        assert cp is not None
        if min_updates == 2:
            assert (m.failed, m.participants, m.model_version, cp.version) == (False, 2, 2, 2)
        else:
            assert (m.failed, m.participants, m.model_version, cp.version) == (True, 2, 1, 1)
            assert fed.aggregator.store.round_counts() == {"failed": 1}
        assert fed.boards[2].daemon.ta.budget().steps_spent == 0
    finally:
        fed.close()


def test_refusals_are_audited(embedded: str, tmp_path: Path) -> None:
    """Replays, an unenrolled device, garbage and a forged ticket: refused, audited, unspent."""
    fleet = make_fleet(tmp_path, embedded, quorum=3, min_updates=3)
    fed = Federation(fleet)
    observer = Observer(embedded)
    try:
        fed.start_boards()
        fed.run_rounds(1)
        agg = fed.aggregator
        assert agg is not None
        release = hold_tickets(fed.boards[2])
        stop = threading.Event()
        runner = threading.Thread(target=agg.run, args=(stop,), kwargs={"rounds": 1})
        runner.start()
        try:
            wait_for(lambda: len(agg.store.accepted(2)) == 2, what="two updates in round 2")
            b0 = fed.boards[0].daemon
            topic0 = protocol.update_topic(FLEET, b0.device_id)
            mine = {parse_update(p).round_id: p for t, p in observer.got if t == topic0}
            observer.publish(topic0, mine[2])  # the same update again
            observer.publish(topic0, mine[1])  # last round's update
            stranger = FakeDevice()
            w = np.zeros(parse_update(mine[2]).param_count, np.float32)
            ticket = agg.store.tickets(2)[b0.device_id]
            observer.publish(stranger.topic(FLEET), stranger.update(ticket, w))
            observer.publish(topic0, b"\x00not a sealed update")
            spent = b0.ta.budget().steps_spent
            forged = build_ticket(Ed25519PrivateKey.generate(), round_id=99, model_version=2,
                                  package_id=bytes(16), nonce=bytes(16), issued_at=0,
                                  deadline=2**40,
                                  example_clip=1.0, noise_multiplier=6.0, update_clip=1.0,
                                  learning_rate=1.0, epochs=2, batch_size=1)
            observer.publish(protocol.ticket_topic(FLEET, b0.device_id), forged)
            wait_for(lambda: sum(r["topic"].endswith("/update") for r in agg.store.audit_rows())
                     >= 4, what="four audit entries")
            wait_for(lambda: 99 in b0.stats.rounds_skipped, what="the forged ticket refused")
            assert b0.stats.rounds_skipped[99] in ("signature", "unknown-signer")
            assert b0.ta.budget().steps_spent == spent
            release.set()
            runner.join(30)
        finally:
            release.set()
            stop.set()
            runner.join(15)
        # amqtt re-delivers the retained model to the aggregator's resumed persistent
        # session (it is refused as malformed); only the injected update messages count here.
        audit = [r for r in agg.store.audit_rows() if r["topic"].endswith("/update")]
        classes = sorted(r["refusal"] for r in audit)
        assert classes == ["duplicate", "malformed", "unknown-device", "wrong-round"], audit
        assert all(r["reason"] for r in audit)
        report = aggregator_status(AggregatorConfig.from_mapping(fleet.aggregator))
        assert all(report["refusals"].get(c, 0) >= 1 for c in classes), report["refusals"]
        # Round 2 counts exactly the three genuine updates.
        assert len(agg.store.accepted(2)) == 3
        genuine = {update_id(p): p for p in sealed(observer) if parse_update(p).round_id == 2}
        genuine = {k: p for k, p in genuine.items() if parse_update(p).device_id in
                   {b.daemon.device_id for b in fed.boards}}
        assert set(genuine) == set(agg.store.accepted(2).values())
        assert fed.rounds[-1].participants == 3 and fed.rounds[-1].refused
        cp = agg.store.latest_checkpoint()
        assert cp is not None and cp.version == 3
        with Store(fleet.aggregator["aggregator"]["state"]) as store:
            v2 = store._one("SELECT W, b FROM checkpoints WHERE version = 2")
        start = np.concatenate([np.frombuffer(v2[0], "<f4"), np.frombuffer(v2[1], "<f4")])
        np.testing.assert_allclose(head_vector(cp), start + fedavg(list(genuine.values())),
                                   rtol=1e-5, atol=1e-5)
    finally:
        observer.close()
        fed.close()


def test_broker_restart(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """Mosquitto restarts between rounds: everyone reconnects and the next round completes."""
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, quorum=3, min_updates=3)
    fed = Federation(fleet)
    try:
        fed.start_boards()
        connects: dict[str, int] = {}

        def restart(m: Any) -> None:
            if m.round != 1:
                return
            for b in fed.boards:
                connects[b.daemon.config.name] = b.daemon.stats.connects
            mosquitto.restart()
            for b in fed.boards:
                wait_for(lambda b=b: b.daemon.stats.connects > connects[b.daemon.config.name]
                         and b.daemon.subscribed.is_set(), what="daemons to reconnect")
        fed.make_aggregator(on_round=restart)
        rows = fed.run_rounds(2)
        assert [(m.round, m.participants, m.failed) for m in rows] == [(1, 3, False),
                                                                       (2, 3, False)]
        assert all(b.daemon.stats.rounds_published == [1, 2] for b in fed.boards)
    finally:
        fed.close()


def _aggregator(config: Path, rounds: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "aggregator", "run", "--config",
                             str(config), "--rounds", str(rounds)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _open_count(db: Path) -> Callable[[], int]:
    def count() -> int:
        with sqlite3.connect(db) as con:
            row = con.execute("SELECT count FROM rounds WHERE state = 'open'").fetchone()
        return -1 if row is None else int(row[0])
    return count


def test_aggregator_sigkill_resumes(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """SIGKILL mid-round and restart: nothing lost, nothing counted twice, nothing re-spent."""
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, quorum=3, min_updates=3,
                       timeout_s=120)
    config = tmp_path / "aggregator.toml"
    config.write_text(to_toml(fleet.aggregator), encoding="utf-8")
    cfg = AggregatorConfig.from_toml(config)
    with Store(cfg.state) as store:
        for rec in fleet.records:
            Registry(store).enroll(rec)
    fed = Federation(fleet)
    observer = Observer(mosquitto.url)
    release = hold_tickets(fed.boards[2])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        fed.start_boards()
        procs.append(_aggregator(config, 1))
        wait_for(lambda: _open_count(cfg.state)() == 2, timeout=60, what="2 accepted updates")
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(10)
        with Store(cfg.state) as store:
            before = store.accepted(1)
            v1 = store.latest_checkpoint()
        assert len(before) == 2 and v1 is not None and v1.version == 1
        procs.append(_aggregator(config, 1))
        release.set()
        _out, err = procs[1].communicate(timeout=90)
        assert procs[1].returncode == 0, err.decode()
        with Store(cfg.state) as store:
            after = store.accepted(1)
            cp = store.latest_checkpoint()
            r1 = store.get_round(1)
        assert set(before.items()) <= set(after.items()) and len(after) == 3
        assert r1 is not None and r1.state == "closed" and r1.count == 3
        payloads = sealed(observer)
        assert {update_id(p) for p in payloads} == set(after.values())
        assert cp is not None and cp.version == 2
        np.testing.assert_allclose(head_vector(cp), head_vector(v1) + fedavg(payloads),
                                   rtol=1e-5, atol=1e-5)
        for b in fed.boards:  # re-sent tickets are refused by the TAs as replays
            assert b.daemon.ta.budget().steps_spent == DEFAULT.steps_per_round
            assert b.daemon.stats.rounds_published == [1]
    finally:
        release.set()
        kill_all(procs)
        observer.close()
        fed.close()
