"""A secure-aggregation round survives an aggregator SIGKILL (docs/secagg.md, "Crash safety").

Real processes: a Mosquitto started by the test, the aggregator as ``edge aggregator run``
(SIGKILLed at a stage, then started again on the same database), boards as daemons with
simulated TAs. One board holds the stage's directive until the kill, so the kill lands
inside the stage; the round then closes with every board, each message taken once, and
the model is exactly what one SecAggRound gives from the messages the broker carried.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from federation_helpers import Federation, make_fleet, to_toml, wait_for
from secnet_helpers import Tap, db_count, enable_secagg, hold, single_server_model

from edge.aggregator import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.store import Store
from edge.broker import MosquittoBroker
from edge.demo.fleet import FLEET
from edge.formats.device import parse_device_record

N = 4


def _stage_is(stage: str) -> str:
    return f"SELECT count(*) FROM secagg_rounds WHERE round_id = 1 AND stage = '{stage}'"


def _messages(stage: str) -> str:
    return f"SELECT count(*) FROM secagg_messages WHERE round_id = 1 AND stage = '{stage}'"


# (directive held, by how many boards, when to kill: a count in the database reached,
# the stage the restarted aggregator resumes at)
KILLS = {
    # every advert taken and the roster recorded; no board has shared yet
    "after-adverts": ("secagg-roster", N, _stage_is("shares"), 1, "shares"),
    "during-shares": ("secagg-roster", 1, _messages("shares"), N - 1, "shares"),
    "during-masked": ("secagg-inbox", 1,
                      "SELECT count(*) FROM secagg_masked WHERE round_id = 1", N - 1,
                      "masked"),
    "during-reveals": ("secagg-survivors", 1, _messages("reveals"), N - 1, "reveals"),
}


def _aggregator(config: Path, log: Path) -> subprocess.Popen[bytes]:
    import sys

    from conftest import ROOT
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "edge.cli", "--verbose", "aggregator",
                                 "run", "--config", str(config), "--rounds", "1"], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("at", sorted(KILLS))
def test_secagg_round_resumes_after_an_aggregator_sigkill(mosquitto: MosquittoBroker,
                                                          tmp_path: Path, at: str) -> None:
    kind, held, sql, reached, resumed = KILLS[at]
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, devices=N, rounds=1,
                       timeout_s=600.0, quorum=N, min_updates=1)
    # A stage ends as soon as every board answered: the long deadline only keeps the held
    # stage open on a loaded machine until the aggregator is back.
    enable_secagg(fleet, stage_timeout_s=60.0)
    fleet.aggregator["dp"]["central_noise_multiplier"] = 0.0
    path = tmp_path / "aggregator.toml"
    path.write_text(to_toml(fleet.aggregator), encoding="utf-8")
    config = AggregatorConfig.from_mapping(fleet.aggregator)
    with Store(config.state) as store:
        for rec in fleet.records:
            Registry(store).enroll(rec)
    fed = Federation(fleet)
    released = threading.Event()
    for b in fed.boards[len(fed.boards) - held:]:
        hold(b, kind, released)
    tap = Tap(mosquitto.url, FLEET)
    log = tmp_path / "aggregator.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        fed.start_boards()
        procs.append(_aggregator(path, log))
        wait_for(lambda: db_count(config.state, sql) >= reached, timeout=120,
                 what=f"the aggregator {at}")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        released.set()  # answers now wait in the aggregator's session at the broker
        procs.append(_aggregator(path, log))
        assert procs[1].wait(180) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        released.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        tap.close()
        fed.close()

    text = log.read_text(errors="replace")
    assert f"secagg round 1 resumed at the {resumed} stage" in text, text[-4000:]
    with Store(config.state) as store:
        states = store.round_counts()
        metrics = store.metrics_rows()
        cp = store.latest_checkpoint()
        audit = store.audit_rows()
        forgotten = store.secagg_round(1) is None
    # One round, closed (not abandoned, no second round), every board in it, nothing refused.
    assert states == {"closed": 1}, metrics
    [m] = metrics
    assert m["participants"] == N and not m["failed"] and m["refused"] == {}, m
    assert audit == []
    assert forgotten, "the closed round's secagg record outlived it"
    # Never a second, different roster or survivor list for the round (a re-send after the
    # restart is the same bytes), and each board's masked update sealed once.
    assert len({p for _, p in tap.on("/secagg/roster")}) == 1
    assert len({p for _, p in tap.on("/secagg/survivors")}) == 1
    assert len({p for _, p in tap.on("/update")}) == N
    W, b, survivors = single_server_model(config, tap)
    assert sorted(survivors) == sorted(parse_device_record(rec).device_id
                                       for rec in fleet.records)
    assert cp is not None and cp.version == 2
    np.testing.assert_array_equal(cp.W, W)
    np.testing.assert_array_equal(cp.b, b)
