"""A board that runs but was never enrolled is named where the operator looks.

Found on the newcomer walk (docs/fleet.md) with one enrollment left out: the board connected,
the aggregator ran its rounds with the other two, and neither side said a word; the board
would have waited for a model forever. Now the aggregator warns once (the board announced
itself on its presence topic), ``status`` lists it, and the board warns that the model
package came without its key wrap.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from federation_helpers import Federation, make_fleet, wait_for
from ops_helpers import to_toml

import edge.daemon.daemon as daemon_module
from edge.aggregator import Aggregator, AggregatorConfig
from edge.broker import MosquittoBroker
from edge.cli import main as edge_main


def test_an_unenrolled_board_is_reported_by_both_sides(
        tmp_path: Path, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(daemon_module, "WRAP_WAIT_S", 1.0)
    fleet = make_fleet(tmp_path, mosquitto.url, devices=2, rounds=1, cohort_size=2, quorum=2,
                       min_updates=1)
    fed = Federation(fleet).start_boards()
    stranger = fed.boards[1].daemon.device_id.hex()
    try:
        config = AggregatorConfig.from_mapping(fleet.aggregator)
        with Aggregator(config) as agg:
            agg.enroll(fleet.records[0])  # the second board's enrollment is forgotten
            stop = threading.Event()
            agg.run(stop, rounds=1)
        assert (f"device {stranger} is online on the fleet's broker but is not enrolled: it "
                "gets no model and no tickets") in caplog.text
        wait_for(lambda: "result=no-key-wrap" in caplog.text, 20, "the board's warning")
        record = next(r for r in caplog.records if "result=no-key-wrap" in r.getMessage())
        line = record.getMessage()
        assert record.levelno == logging.WARNING
        assert f"device id {stranger}" in line and "is it enrolled?" in line
        assert f"device={fleet.devices[1]['device']['name']}" in line
        assert "result=no-key-wrap" not in "".join(
            r.getMessage() for r in caplog.records
            if f"device={fleet.devices[0]['device']['name']} " in r.getMessage())
    finally:
        fed.close()
    toml = tmp_path / "aggregator.toml"
    toml.write_text(to_toml(fleet.aggregator))
    assert edge_main(["aggregator", "status", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert f"not enrolled: device {stranger} is online since" in out
