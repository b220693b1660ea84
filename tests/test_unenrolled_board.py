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


def test_a_board_that_hears_no_aggregator_says_so(
        tmp_path: Path, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No model on the (retained) model topic a while after subscribing: no aggregator of
    this fleet runs, or the board's device.fleet is not the aggregator's (the broker's ACL
    then drops its messages without a word in MQTT 3.1.1)."""
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(daemon_module, "MODEL_WAIT_S", 0.5)
    fleet = make_fleet(tmp_path, mosquitto.url, devices=1, rounds=1)
    fed = Federation(fleet).start_boards()
    try:
        wait_for(lambda: "result=none-yet" in caplog.text, 20, "the board's warning")
        record = next(r for r in caplog.records if "result=none-yet" in r.getMessage())
        assert record.levelno == logging.WARNING
        assert (f"topic=edge/v1/{fleet.name}/model" in record.getMessage()
                and f"device.fleet ({fleet.name})" in record.getMessage())
    finally:
        fed.close()
    assert caplog.text.count("result=none-yet") == 1
