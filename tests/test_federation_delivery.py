"""Delivery under crashes, against a real Mosquitto: nothing sealed is lost or counted twice.

Broker SIGKILLs with the aggregator down, daemon SIGKILLs between seal and
publish, broker restarts while boards are slow to come back, and the final
model when the broker is down at the end of ``run --rounds N``. Each test
prints its row of the fault table (kills, restarts; updates sealed, accepted,
lost, counted twice).
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, require_native
from federation_helpers import Board, Federation, kill_all, make_fleet, to_toml, wait_for

from edge.aggregator import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.store import Store
from edge.aggregator.verify import update_id
from edge.broker import BrokerError, MosquittoBroker
from edge.demo.fleet import FLEET, Fleet
from edge.demo.settings import DEFAULT
from edge.mqtt import BrokerSettings, make_client
from edge.tee import TrustedApp

KILLS = 30


def broker_in(path: Path, **kwargs: Any) -> MosquittoBroker:
    require_native("host")
    try:
        return MosquittoBroker(path, **kwargs)
    except BrokerError as exc:
        pytest.fail(f"{exc} -- the delivery tests need a real Mosquitto: run scripts/setup.sh")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = broker_in(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


def aggregator_proc(config: Path, rounds: int, log: Path) -> subprocess.Popen[bytes]:
    """``edge aggregator run --rounds N`` as a real process (stderr appended to ``log``)."""
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "edge.cli", "--verbose", "aggregator",
                                 "run", "--config", str(config), "--rounds", str(rounds)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)


def daemon_proc(config: Path, log: Path, *, crash_after_seal: bool) -> subprocess.Popen[bytes]:
    """``edge daemon`` as a real process; optionally SIGKILLed between seal and publish."""
    cmd = [str(ROOT / "tests" / "crash_after_seal.py")] if crash_after_seal \
        else ["-m", "edge.cli", "daemon"]
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, *cmd, "--config", str(config)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})


def enrolled_config(fleet: Fleet, path: Path) -> AggregatorConfig:
    """Write the aggregator's TOML to ``path`` and enroll every device in its database."""
    path.write_text(to_toml(fleet.aggregator), encoding="utf-8")
    cfg = AggregatorConfig.from_toml(path)
    with Store(cfg.state) as store:
        for rec in fleet.records:
            Registry(store).enroll(rec)
    return cfg


def rounds_in(db: Path) -> dict[str, int]:
    """Rounds by state, read from the aggregator's database by another process."""
    with sqlite3.connect(db) as con:
        return {s: n for s, n in con.execute("SELECT state, count(*) FROM rounds GROUP BY state")}


def seals(state_dir: Path) -> int:
    """Updates a simulated TA sealed, from the budget it spent."""
    with TrustedApp("sim", state_dir) as ta:
        return ta.budget().steps_spent // DEFAULT.steps_per_round


def fault_row(name: str, *, kills: int = 0, restarts: int = 0, sealed: int, accepted: int,
              twice: int) -> str:
    row = (f"FAULTS {name}: kills={kills} restarts={restarts} sealed={sealed} "
           f"accepted={accepted} lost={sealed - accepted} counted_twice={twice}")
    print(row)
    return row


def counted_twice(db: Path) -> int:
    """Accepted updates beyond one per sealed update (same update id twice)."""
    with sqlite3.connect(db) as con:
        total, distinct = con.execute("SELECT count(*), count(DISTINCT update_id) "
                                      "FROM updates").fetchone()
    return int(total) - int(distinct)


def gate_tickets(boards: list[Board]) -> tuple[list[threading.Event], threading.Event]:
    """Each board signals when a ticket arrived and waits for ``release`` before using it."""
    arrived = [threading.Event() for _ in boards]
    release = threading.Event()
    for board, seen in zip(boards, arrived, strict=True):
        original = board.daemon._handle_ticket

        def held(payload: bytes, arrived: float | None = None,
                 original: Callable[[bytes, float | None], None] = original,
                 seen: threading.Event = seen) -> None:
            seen.set()
            release.wait(60)
            original(payload, arrived)
        board.daemon._handle_ticket = held  # type: ignore[method-assign]
    return arrived, release


def record_seals(boards: list[Board]) -> list[bytes]:
    """Collect every update the boards' TAs seal."""
    got: list[bytes] = []
    for board in boards:
        ta = board.daemon.ta
        original = ta.train_and_seal

        def seal(*args: Any, original: Callable[..., bytes] = original, **kw: Any) -> bytes:
            out = original(*args, **kw)
            got.append(out)
            return out
        ta.train_and_seal = seal  # type: ignore[method-assign]
    return got


def test_daemon_sigkill_after_seal_before_publish(mosquitto: MosquittoBroker,
                                                  tmp_path: Path) -> None:
    """30 SIGKILLs between seal and publish: every sealed update counted once, no round fails."""
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, devices=1, rounds=KILLS, quorum=1,
                       min_updates=1, timeout_s=30)
    cfg = enrolled_config(fleet, tmp_path / "aggregator.toml")
    board = tmp_path / "board.toml"
    board.write_text(to_toml(fleet.devices[0]), encoding="utf-8")
    logs = tmp_path / "daemon.log"
    agg = aggregator_proc(tmp_path / "aggregator.toml", KILLS, tmp_path / "aggregator.log")
    final: subprocess.Popen[bytes] | None = None
    kills = 0
    try:
        for _ in range(KILLS):
            proc = daemon_proc(board, logs, crash_after_seal=True)
            try:
                rc = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                pytest.fail(f"after {kills} kills the daemon got no ticket within 60 s")
            assert rc == -signal.SIGKILL, logs.read_text()[-2000:]
            kills += 1
            # A lost update leaves its round without the quorum: it fails at the deadline.
            assert rounds_in(cfg.state).get("failed", 0) == 0, f"a round failed after {kills} kills"
        final = daemon_proc(board, logs, crash_after_seal=False)
        assert agg.wait(90) == 0, (tmp_path / "aggregator.log").read_text()[-2000:]
    finally:
        for p in (agg, final):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
    with Store(cfg.state) as store:
        accepted = sum(len(store.accepted(r)) for r in range(1, KILLS + 1))
        assert store.round_counts() == {"closed": KILLS}
        assert [m["participants"] for m in store.metrics_rows()] == [1] * KILLS
    sealed = seals(Path(fleet.devices[0]["tee"]["state_dir"]))
    twice = counted_twice(cfg.state)
    fault_row("daemon-sigkill-after-seal", kills=kills, restarts=kills, sealed=sealed,
              accepted=accepted, twice=twice)
    assert (kills, sealed, accepted, twice) == (KILLS, KILLS, KILLS, 0)
    assert "Traceback" not in logs.read_text()


@pytest.mark.parametrize("each_change", [True, False], ids=["autosave-each-change",
                                                            "autosave-60s"])
def test_broker_sigkill_with_aggregator_down(tmp_path: Path, each_change: bool) -> None:
    """Updates acknowledged by the broker, then a broker SIGKILL while the aggregator is down.

    With Mosquitto saving on every change the broker keeps (nearly) all of them; with its
    60 s default it keeps none, and the daemons' outboxes alone bring every update back.
    """
    broker = broker_in(tmp_path / "mosquitto", autosave_each_change=each_change)
    fleet = make_fleet(tmp_path / "fleet", broker.url, quorum=3, min_updates=3, timeout_s=40)
    cfg = enrolled_config(fleet, tmp_path / "aggregator.toml")
    fed = Federation(fleet)
    arrived, release = gate_tickets(fed.boards)
    sealed = record_seals(fed.boards)
    procs: list[subprocess.Popen[bytes]] = []
    agg_log = tmp_path / "aggregator.log"
    try:
        fed.start_boards()
        procs.append(aggregator_proc(tmp_path / "aggregator.toml", 1, agg_log))
        for seen in arrived:
            wait_for(seen.is_set, timeout=60, what="every board's ticket")
        procs[0].send_signal(signal.SIGTERM)  # the aggregator is down; round 1 stays open
        assert procs[0].wait(30) == 0
        release.set()
        for b in fed.boards:
            wait_for(lambda b=b: b.daemon.stats.rounds_published == [1], timeout=60,
                     what="every update acknowledged by the broker")
        broker.kill()
        broker.start()
        procs.append(aggregator_proc(tmp_path / "aggregator.toml", 1, agg_log))
        assert procs[1].wait(90) == 0, agg_log.read_text()[-2000:]
        with Store(cfg.state) as store:
            accepted = store.accepted(1)
            r1 = store.get_round(1)
            cp = store.latest_checkpoint()
        twice = counted_twice(cfg.state)
        fault_row(f"broker-sigkill-aggregator-down[{'each-change' if each_change else '60s'}]",
                  kills=1, restarts=1, sealed=len(sealed), accepted=len(accepted), twice=twice)
        assert len(sealed) == 3 and set(accepted.values()) == {update_id(p) for p in sealed}
        assert r1 is not None and (r1.state, r1.count) == ("closed", 3) and twice == 0
        assert cp is not None and cp.version == 2
        # The new model closes round 1 for the boards: their outboxes empty out.
        for b in fed.boards:
            wait_for(lambda b=b: not b.daemon.outbox.entries(), what="outboxes emptied")
    finally:
        release.set()
        kill_all(procs)
        fed.close()
        broker.stop()


def test_tickets_resent_when_the_aggregator_reconnects(mosquitto: MosquittoBroker,
                                                       tmp_path: Path) -> None:
    """A broker crash that loses an open round's tickets: the aggregator sends them again."""
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, quorum=3, min_updates=3, timeout_s=60)
    fed = Federation(fleet)  # daemons created (for their records) but never started
    got: list[bytes] = []
    settings = BrokerSettings.from_url(mosquitto.url)
    watcher = make_client(settings, "test-ticket-watcher", clean_session=True)
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe(f"edge/v1/{FLEET}/devices/+/ticket", 1)
    watcher.on_message = lambda c, u, m: got.append(bytes(m.payload))
    watcher.connect(settings.host, settings.port)
    watcher.loop_start()
    stop = threading.Event()
    agg = fed.make_aggregator()
    runner = threading.Thread(target=agg.run, args=(stop,), kwargs={"rounds": 1}, daemon=True)
    try:
        runner.start()
        wait_for(lambda: len(got) >= 3, timeout=30, what="round 1's tickets")
        first = set(got)
        mosquitto.kill()
        got.clear()
        mosquitto.start()
        wait_for(lambda: first <= set(got), timeout=20,
                 what="the open round's tickets sent again after the reconnect")
        assert agg.rounds.open_round is not None and agg.rounds.open_round.round_id == 1
    finally:
        stop.set()
        runner.join(15)
        watcher.disconnect()
        watcher.loop_stop()
        fed.close()


def test_next_round_completes_when_boards_reconnect_late(mosquitto: MosquittoBroker,
                                                         tmp_path: Path) -> None:
    """Broker restart between rounds, boards back 4 s after the aggregator: round 2 closes on
    its quorum (its deadline, 600 s, is far beyond the wait for it)."""
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, quorum=3, min_updates=3, timeout_s=600)
    fed = Federation(fleet)
    sealed = record_seals(fed.boards)
    try:
        fed.start_boards()
        for b in fed.boards:  # a board whose backoff has grown reconnects later than the aggregator
            b.daemon.client.reconnect_delay_set(min_delay=4, max_delay=4)

        def restart(m: Any) -> None:
            if m.round == 1:
                mosquitto.restart()
        fed.make_aggregator(on_round=restart)
        rows = fed.run_rounds(2, timeout=180)
        fault_row("broker-restart-late-boards", restarts=1, sealed=len(sealed),
                  accepted=sum(m.participants for m in rows), twice=0)
        assert [(m.round, m.participants, m.failed) for m in rows] == [(1, 3, False),
                                                                       (2, 3, False)]
    finally:
        fed.close()


def test_run_publishes_the_final_model_when_the_broker_returns(mosquitto: MosquittoBroker,
                                                               tmp_path: Path) -> None:
    """The broker dies as the last round closes: ``run`` waits for it and publishes."""
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, quorum=3, min_updates=3)
    fed = Federation(fleet)
    timers: list[threading.Timer] = []
    try:
        fed.start_boards()

        def crash(_m: Any) -> None:
            mosquitto.kill()
            timers.append(threading.Timer(2.0, mosquitto.start))
            timers[-1].start()
        agg = fed.make_aggregator(on_round=crash)
        rows = fed.run_rounds(1, timeout=60)
        assert [m.model_version for m in rows] == [2]
        cp = agg.store.latest_checkpoint()
        assert cp is not None and cp.version == 2 and cp.published is not None
        retained: list[bytes] = []
        s = BrokerSettings.from_url(mosquitto.url)
        reader = make_client(s, "test-model-reader", clean_session=True)
        reader.on_connect = lambda c, u, f, rc, p: c.subscribe(f"edge/v1/{FLEET}/model", 1)
        reader.on_message = lambda c, u, m: retained.append(bytes(m.payload))
        reader.connect(s.host, s.port)
        reader.loop_start()
        try:
            wait_for(lambda: bool(retained), what="the retained model")
        finally:
            reader.disconnect()
            reader.loop_stop()
        from edge.formats.package import parse_package
        assert parse_package(retained[-1])[1].version == 2
    finally:
        for t in timers:
            t.join(10)
        fed.close()


_RUN_THEN_CRASH = """
import os, signal, sys
from edge.aggregator.service import Aggregator
from edge.cli import main
finish = Aggregator._finish
def crash_then_finish(self):
    os.kill(int(os.environ["TEST_BROKER_PID"]), signal.SIGKILL)
    finish(self)
Aggregator._finish = crash_then_finish
Aggregator.final_publish_s = 3.0
sys.exit(main(sys.argv[1:]))
"""


def test_run_exits_nonzero_naming_the_unpublished_model(mosquitto: MosquittoBroker,
                                                        tmp_path: Path) -> None:
    """The broker never returns: ``run --rounds 1`` exits 1 with one line naming model v2."""
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, quorum=3, min_updates=3)
    enrolled_config(fleet, tmp_path / "aggregator.toml")
    fed = Federation(fleet)
    try:
        fed.start_boards()
        assert mosquitto._proc is not None
        proc = subprocess.run(
            [sys.executable, "-c", _RUN_THEN_CRASH, "aggregator", "run", "--config",
             str(tmp_path / "aggregator.toml"), "--rounds", "1"],
            cwd=ROOT, capture_output=True, timeout=90,
            env={**os.environ, "TEST_BROKER_PID": str(mosquitto._proc.pid)})
        err = proc.stderr.decode()
        assert proc.returncode == 1, err
        assert "Traceback" not in err
        # Warnings while it retries, then the error: one line naming the model.
        assert err.strip().splitlines()[-1].startswith("model-not-published: model v2 "), err
    finally:
        fed.close()


def test_publishing_while_disconnected_logs_no_traceback(
        mosquitto: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Boards seal while the broker is down: paho sends later, the logs hold no traceback."""
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, quorum=3, min_updates=3, timeout_s=40)
    fed = Federation(fleet)
    arrived, release = gate_tickets(fed.boards)
    sealed = record_seals(fed.boards)
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="edge")
    try:
        fed.start_boards()
        agg = fed.make_aggregator()
        runner = threading.Thread(target=agg.run, args=(stop,), kwargs={"rounds": 1},
                                  daemon=True)
        runner.start()
        for seen in arrived:
            wait_for(seen.is_set, timeout=30, what="every board's ticket")
        mosquitto.kill()
        for b in fed.boards:
            wait_for(lambda b=b: not b.daemon.connected.is_set(), what="boards offline")
        release.set()
        wait_for(lambda: len(sealed) == 3, what="sealed while offline")
        time.sleep(0.5)  # the publishes happen while the broker is down
        mosquitto.start()
        runner.join(60)
        assert not runner.is_alive()
        assert fed.rounds and (fed.rounds[0].participants, fed.rounds[0].failed) == (3, False)
        tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
        assert not tracebacks, caplog.text
        assert "RuntimeError" not in caplog.text
    finally:
        release.set()
        stop.set()
        fed.close()
