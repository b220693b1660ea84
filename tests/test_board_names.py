"""Boards' names: given at enrollment (``--name``, or the record's file name), kept in the
database, and shown with the short id in every view an operator reads: status (skip lines),
devices, audit, the aggregator's log, Prometheus and the HTML report; ``--json`` has both."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from ops_helpers import to_toml
from prometheus_client import CollectorRegistry, generate_latest
from test_skip_reports import FLEET, _skip

from edge.aggregator.config import AggregatorConfig
from edge.aggregator.prometheus import FleetCollector, take_snapshot
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.aggregator.store import Store
from edge.cli import main as edge_main
from edge.protocol import skip_topic

SKIPPED = "weaker-than-policy (noise_multiplier 1.0 < policy sigma_min 1.1)"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = edge_main(["aggregator", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_view_names_the_boards(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.aggregator")
    table = config_mapping(tmp_path, rounds={"cohort_size": 2, "quorum": 2, "min_updates": 1})
    toml = tmp_path / "aggregator.toml"
    toml.write_text(to_toml(table))
    cfg = ["--config", str(toml)]
    a, b = FakeDevice(), FakeDevice()
    (tmp_path / "board-07.pub").write_bytes(a.record)
    (tmp_path / "b 2.record").write_bytes(b.record)
    ha, hb = a.device_id.hex(), b.device_id.hex()

    # the default name is the file's; --name gives one; a name names one board
    code, out, _ = _cli(capsys, "enroll", *cfg, str(tmp_path / "board-07.pub"))
    assert code == 0 and f"enrolled device {ha} as board-07 from" in out
    code, out, _ = _cli(capsys, "enroll", *cfg, str(tmp_path / "b 2.record"))
    assert code == 0 and "no name: b 2.record is not one; --name NAME" in out
    code, _, err = _cli(capsys, "enroll", *cfg, "--name", "board-07", str(tmp_path / "b 2.record"))
    assert code == 1 and f"name 'board-07' is device {ha}'s already" in err
    code, _, err = _cli(capsys, "enroll", *cfg, "--name", "board 8", str(tmp_path / "b 2.record"))
    assert code == 1 and "--name 'board 8': a board name is 1..64 of" in err
    code, _, err = _cli(capsys, "enroll", *cfg, "--name", "x", str(tmp_path / "b 2.record"),
                        str(tmp_path / "board-07.pub"))
    assert code == 1 and "--name names one board" in err
    code, out, _ = _cli(capsys, "enroll", *cfg, "--name", "board-08", str(tmp_path / "b 2.record"))
    assert code == 0 and f"enrolled device {hb} as board-08" in out

    config = AggregatorConfig.from_mapping(table)
    with Store(config.state) as store:
        manager = RoundManager(config, store, Registry(store))
        tickets = {bytes.fromhex(t.split("/")[-2]): p for t, p in manager.open_next()}
        manager.skip(skip_topic(FLEET, b.device_id), _skip(b, tickets[b.device_id]))
        # a refused report of board-07 (wrong nonce) is an audit row naming it
        manager.skip(skip_topic(FLEET, a.device_id),
                     _skip(a, tickets[a.device_id], nonce=bytes(16)))
        assert manager.handle(a.topic(FLEET), a.update(tickets[a.device_id],
                                                        np.zeros(27, np.float32))).accepted
        manager.close()
        snapshot = take_snapshot(store, FLEET, 1e-5)
    assert f"board-08 ({hb[:8]}) skipped round 1: {SKIPPED}" in caplog.text

    code, out, _ = _cli(capsys, "status", *cfg)
    assert f"board-08 ({hb[:8]}) skipped round 1: {SKIPPED}" in out
    assert f"  board-07 ({ha[:8]})" in out
    code, out, _ = _cli(capsys, "status", *cfg, "--json")
    info = json.loads(out)
    assert info["names"] == {ha: "board-07", hb: "board-08"}
    assert [(s["device"], s["name"]) for s in info["skips"]] == [(hb, "board-08")]

    code, out, _ = _cli(capsys, "devices", *cfg)
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["name", "device"]
    assert any(line.split()[:2] == ["board-07", ha] for line in lines), out
    code, out, _ = _cli(capsys, "devices", *cfg, "--json")
    assert {d["device"]: d["name"] for d in json.loads(out)["devices"]} == {
        ha: "board-07", hb: "board-08"}

    code, out, _ = _cli(capsys, "audit", *cfg, "--rows")
    assert f"replay board-07 ({ha[:8]}) edge/v1/{FLEET}/devices/{ha}/skip" in out
    assert f"edge/v1/{FLEET}/devices/{ha}/skip  (board-07)" in out
    code, out, _ = _cli(capsys, "audit", *cfg, "--rows", "--json")
    audit = json.loads(out)
    assert [(r["device"], r["name"]) for r in audit["rows"]] == [(ha, "board-07")]
    assert [(s["device"], s["name"]) for s in audit["sources"]] == [(ha, "board-07")]

    registry = CollectorRegistry()
    collector = FleetCollector(FLEET)
    collector.update(snapshot)
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert (f'edge_aggregator_device_rounds_skipped{{device="{hb}",fleet="{FLEET}",'
            f'name="board-08"}} 1.0') in text
    assert (f'edge_aggregator_device_rounds_joined{{device="{ha}",fleet="{FLEET}",'
            f'name="board-07"}} 1.0') in text

    code, _, _ = _cli(capsys, "report", *cfg, "--html", str(tmp_path / "r.html"))
    assert code == 0 and f"board-07 ({ha[:8]})" in (tmp_path / "r.html").read_text()

    # renamed by enrolling again; revoked by name
    code, out, _ = _cli(capsys, "enroll", *cfg, "--name", "board-09", str(tmp_path / "b 2.record"))
    assert code == 0 and "as board-09" in out
    code, out, _ = _cli(capsys, "status", *cfg)
    assert f"board-09 ({hb[:8]}) skipped round 1" in out
    code, out, _ = _cli(capsys, "revoke", *cfg, "board-07")
    assert code == 0 and f"revoked device {ha}" in out
