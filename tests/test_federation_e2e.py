"""End-to-end federation: simulated TAs, daemons, aggregator, over amqtt and over Mosquitto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import require_native
from federation_helpers import Federation, Observer, make_fleet, wait_for

from edge.broker import BrokerError, EmbeddedBroker, MosquittoBroker
from edge.demo.settings import DEFAULT
from edge.formats.update import parse_update

ROUNDS = 3
DEVICES = 3


@pytest.fixture(params=["embedded", "mosquitto"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A broker started by the test: the embedded amqtt one, or a real Mosquitto."""
    require_native("host")
    if request.param == "embedded":
        with EmbeddedBroker() as broker:
            yield broker.url
        return
    try:
        broker = MosquittoBroker(tmp_path / "mosquitto")
    except BrokerError as exc:
        pytest.fail(f"{exc} -- the federation tests need a real Mosquitto: run scripts/setup.sh")
    try:
        yield broker.url
    finally:
        broker.stop()


def test_federation_end_to_end(broker_url: str, tmp_path: Path) -> None:
    """Three devices, three rounds: every update accepted, the head moves, budgets spent."""
    fleet = make_fleet(tmp_path / "fleet", broker_url, devices=DEVICES, rounds=ROUNDS)
    fed = Federation(fleet).start_boards()
    observer = Observer(broker_url)
    try:
        rows = fed.run_rounds(ROUNDS)
        assert [m.round for m in rows] == [1, 2, 3]
        for m in rows:
            assert not m.failed and m.participants == DEVICES and m.refused == {}
            assert m.model_version == m.round + 1
            assert m.accuracy is not None and m.epsilon is None  # no central noise
        assert rows[-1].accuracy > 0.5
        agg = fed.aggregator
        assert agg is not None
        assert agg.store.audit_rows() == []
        for r in range(1, ROUNDS + 1):
            assert len(agg.store.accepted(r)) == DEVICES
        # The final model and the last updates travel on after the round closed: wait for
        # them rather than read a state that is still moving.
        wait_for(lambda: len(observer.got) >= DEVICES * ROUNDS, what="every update observed")
        wait_for(lambda: all(b.daemon.ta.status().model_version == ROUNDS + 1
                             for b in fed.boards), what=f"every board on model v{ROUNDS + 1}")
        # The published head is the initial head plus the sample-weighted mean of the deltas.
        updates = [parse_update(p) for _, p in observer.got]
        assert len(updates) == DEVICES * ROUNDS
        w0 = np.load(fleet.aggregator["aggregator"]["initial_head"])
        head = np.concatenate([w0["W"].reshape(-1), w0["b"]]).astype(np.float64)
        for r in range(1, ROUNDS + 1):
            mine = [u for u in updates if u.round_id == r]
            counts = np.array([u.example_count for u in mine], np.float64)
            head += (counts[:, None] * np.stack([u.delta for u in mine])).sum(0) / counts.sum()
        cp = agg.store.latest_checkpoint()
        assert cp is not None and cp.version == ROUNDS + 1
        got = np.concatenate([cp.W.reshape(-1), cp.b]).astype(np.float64)
        np.testing.assert_allclose(got, head, rtol=1e-5, atol=1e-5)
        for board in fed.boards:
            budget = board.daemon.ta.budget()
            assert budget.steps_spent == ROUNDS * DEFAULT.steps_per_round
            assert board.daemon.stats.rounds_published == [1, 2, 3]
            assert board.daemon.ta.status().model_version == ROUNDS + 1
        metrics = [json.loads(line) for line in
                   Path(fleet.aggregator["aggregator"]["metrics"]).read_text().splitlines()]
        assert [m["round"] for m in metrics] == [1, 2, 3]
    finally:
        observer.close()
        fed.close()


def test_demo_command_small(tmp_path: Path) -> None:
    """``edge demo`` with a tiny fleet prints the table and writes the JSON report."""
    require_native("host")
    from edge.cli import main

    report = tmp_path / "report.json"
    status = main(["demo", "--devices", "3", "--rounds", "2", "--report", str(report),
                   "--workdir", str(tmp_path / "work")])
    assert status == 0
    data = json.loads(report.read_text())
    assert [r["round"] for r in data["rows"]] == [1, 2]
    assert all(r["participants"] == 3 and not r["failed"] for r in data["rows"])
    assert 0.0 < data["reference"] <= 1.0 and data["errors"] == []
    assert data["rows"][-1]["device_epsilon"] > 0
    # ... and the HTML report beside it, with the device ε the demo knows (rendering is
    # checked in Chromium by tests/test_aggregator_report.py)
    html = report.with_suffix(".html").read_text()
    assert html.count("<svg") == 5 and 'data-series="device_epsilon"' in html
    assert html.count('data-series="device:') == 3
