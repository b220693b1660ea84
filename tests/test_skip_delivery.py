"""A board's signed skip report is delivered through its outbox: made while the broker is
down, kept across a daemon SIGKILL, published after the restart and recorded once.

Real processes throughout: Mosquitto (SIGKILLed and restarted), the aggregator and two
daemons. Board 0 has no samples, so it answers round 1's ticket with a signed skip report
(no-samples); it holds the ticket (tests/hold_ticket.py) until the broker is dead, so the
report is made while it is down; it is then SIGKILLed. Before the outbox kept skip
reports, the report lived only in paho's memory and was lost; the restarted board, handed
the ticket again by the broker, could only report it as expired.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from federation_helpers import kill_all, make_fleet, to_toml, wait_for
from test_federation_delivery import aggregator_proc, broker_in, daemon_proc, enrolled_config


def _skips(db: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as con:
        return [(int(r), str(c), str(why)) for r, c, why in con.execute(
            "SELECT round_id, refusal, reason FROM skips ORDER BY round_id")]


def _accepted(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT count(*) FROM updates").fetchone()[0])


def _log_has(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text(errors="replace")


def test_a_skip_report_made_while_the_broker_is_down_survives_a_daemon_kill(
        tmp_path: Path) -> None:
    broker = broker_in(tmp_path / "mosquitto")
    procs = []
    try:
        fleet = make_fleet(tmp_path / "fleet", broker.url, devices=2, rounds=1, timeout_s=8,
                           cohort_size=2, quorum=2, min_updates=1)
        for f in Path(fleet.devices[0]["data"]["path"]).iterdir():
            f.unlink()  # board 0 has nothing to train on: it skips with a signed report
        configs = []
        for i, table in enumerate(fleet.devices):
            configs.append(tmp_path / f"board-{i}.toml")
            configs[-1].write_text(to_toml(table), encoding="utf-8")
        cfg = enrolled_config(fleet, tmp_path / "aggregator.toml")
        logs = [tmp_path / f"board-{i}.log" for i in range(2)]
        gate = tmp_path / "gate"
        with logs[0].open("ab") as err:
            boards = [subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "hold_ticket.py"), str(gate),
                 "--config", str(configs[0])], cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=err)]
        boards.append(daemon_proc(configs[1], logs[1], crash_after_seal=False))
        procs += boards
        for log in logs:  # subscribed before the first ticket: it comes after the model
            wait_for(lambda log=log: _log_has(log, "step=connect result=ok"), 60,
                     f"{log.name}: connected")
        procs.append(aggregator_proc(tmp_path / "aggregator.toml", 1, tmp_path / "agg.log"))
        wait_for(lambda: cfg.state.exists() and _accepted(cfg.state) == 1, 60,
                 "board 1's update of round 1")
        wait_for(gate.with_suffix(".arrived").exists, 30, "board 0's ticket")
        broker.kill()
        gate.with_suffix(".release").touch()
        wait_for(lambda: _log_has(logs[0], "reason=no-samples"), 30,
                 "board 0 to skip round 1 while the broker is down")
        outbox = Path(fleet.devices[0]["paths"]["work_dir"]) / "outbox"
        kept = sorted(outbox.glob("*.skip"))
        assert [p.name for p in kept] == [f"round-{1:020d}.skip"], sorted(outbox.iterdir())
        boards[0].kill()
        boards[0].wait(10)
        assert _skips(cfg.state) == [], "the report cannot have reached the aggregator"

        broker.start()
        procs.append(daemon_proc(configs[0], logs[0], crash_after_seal=False))
        wait_for(lambda: _skips(cfg.state) != [], 60, "the kept skip report to be recorded")
        aggregator = procs[2]
        wait_for(lambda: aggregator.poll() is not None, 60, "the aggregator to finish")
        assert aggregator.returncode == 0, (tmp_path / "agg.log").read_text()
        skips = _skips(cfg.state)
        print(f"FAULTS skip-report: broker kills=1 daemon kills=1 made=1 "
              f"recorded={len(skips)} lost={1 - len(skips)}")
        assert skips == [(1, "no-samples", "no-samples")], skips
        assert _log_has(logs[0], "step=skip-report result=republished reason=reconnect")
        # the new model ends round 1 on the board: its report leaves the outbox
        wait_for(lambda: not list(outbox.glob("*.skip")), 30, "the outbox to drop the report")
        for p in (boards[1], procs[-1]):
            p.send_signal(signal.SIGTERM)
            assert p.wait(20) == 0
    finally:
        kill_all(procs)
        broker.stop()
