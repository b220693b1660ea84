"""``edge aggregator enroll|status|run``: enrollment, status, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _write_toml(path: Path, table: dict[str, Any]) -> Path:
    lines = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_enroll_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_toml(tmp_path / "agg.toml", config_mapping(tmp_path))
    devs = [FakeDevice(), FakeDevice()]
    for i, d in enumerate(devs):
        (tmp_path / f"d{i}.pub").write_bytes(d.record)
    assert main(["aggregator", "enroll", "--config", str(config),
                 str(tmp_path / "d0.pub"), str(tmp_path / "d1.pub")]) == 0
    assert devs[0].device_id.hex() in capsys.readouterr().out
    assert main(["aggregator", "status", "--config", str(config), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted(info["devices"]) == sorted(d.device_id.hex() for d in devs)
    assert info["refusals"] == {} and info["epsilon"] == 0.0
    (tmp_path / "bad.pub").write_bytes(b"not a record")
    assert main(["aggregator", "enroll", "--config", str(config),
                 str(tmp_path / "bad.pub")]) == 1
    assert capsys.readouterr().err.startswith("malformed: ")
    assert main(["aggregator", "status", "--config", str(tmp_path / "none.toml")]) == 1
    assert capsys.readouterr().err.startswith("config: ")


def test_bare_form_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    from edge.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        table = config_mapping(tmp_path, broker.url, rounds={"timeout_s": 600, "min_updates": 1})
        config = _write_toml(tmp_path / "agg.toml", table)
        d = FakeDevice()
        (tmp_path / "d.pub").write_bytes(d.record)
        assert main(["aggregator", "enroll", "--config", str(config),
                     str(tmp_path / "d.pub")]) == 0
        proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "aggregator", "--config",
                                 str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                out = subprocess.run([sys.executable, "-m", "edge.cli", "aggregator", "status",
                                      "--config", str(config), "--json"], cwd=ROOT,
                                     capture_output=True, text=True, check=True)
                if json.loads(out.stdout)["open_round"]:
                    break
                time.sleep(0.2)
            else:
                pytest.fail("no round opened")
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, stderr
        assert stdout.startswith("round")
