"""Operator-facing rough edges of the ``edge`` command line, each reproduced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.cli import main


def edge(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=120, **kw)


def write_toml(path: Path, table: dict[str, Any]) -> Path:
    path.write_text("\n".join(
        f"[{section}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
        for section, values in table.items()) + "\n")
    return path


def one_line(out: subprocess.CompletedProcess[str], code: int, prefix: str, *words: str) -> None:
    lines = out.stderr.splitlines()
    assert out.returncode == code and len(lines) == 1, (out.returncode, out.stderr)
    assert lines[0].startswith(prefix) and all(w in lines[0] for w in words), lines[0]


def test_version() -> None:
    out = edge("--version")
    assert out.returncode == 0 and out.stdout.startswith("edge "), out


def test_status_and_audit_on_a_mistyped_database_create_nothing(tmp_path: Path) -> None:
    table = config_mapping(tmp_path)
    table["aggregator"]["state"] = str(tmp_path / "typo.sqlite")
    config = write_toml(tmp_path / "agg.toml", table)
    for verb in ("status", "audit"):
        one_line(edge("aggregator", verb, "--config", str(config)), 1,
                 "state: no aggregator database at", "typo.sqlite")
    assert not (tmp_path / "typo.sqlite").exists()


def test_a_pem_key_given_as_a_device_record_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = config_mapping(tmp_path)
    config = write_toml(tmp_path / "agg.toml", table)
    pem = Path(table["aggregator"]["aggregator_key"])
    assert pem.read_bytes().startswith(b"-----BEGIN ")
    assert main(["aggregator", "enroll", "--config", str(config), str(pem)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("malformed: ") and "PEM file" in err and "not an edge artefact" in err


def test_a_closed_stdout_is_not_a_traceback(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "agg.toml", config_mapping(tmp_path))
    for i in range(3):
        (tmp_path / f"d{i}.pub").write_bytes(FakeDevice().record)
    assert edge("aggregator", "enroll", "--config", str(config),
                *(str(tmp_path / f"d{i}.pub") for i in range(3))).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "aggregator", "status", "--json",
                             "--config", str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first write, as `| head -0` does
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and err == "", err


def test_model_build_into_a_missing_folder(tmp_path: Path) -> None:
    one_line(edge("model", "build", "--out", str(tmp_path / "missing" / "x.tflite")), 1,
             "config: cannot write", "missing")


def test_a_file_that_cannot_be_written_is_one_io_line(tmp_path: Path) -> None:
    taken = tmp_path / "taken.tflite"
    taken.mkdir()  # a folder where the model should go
    one_line(edge("model", "build", "--epochs", "1", "--out", str(taken)), 1, "io: ",
             "taken.tflite")


def test_aggregator_run_fails_when_every_round_failed(tmp_path: Path) -> None:
    from edge.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        table = config_mapping(tmp_path, broker.url,
                               rounds={"cohort_size": 1, "quorum": 1, "min_updates": 1,
                                       "timeout_s": 0.5})
        config = write_toml(tmp_path / "agg.toml", table)
        (tmp_path / "d.pub").write_bytes(FakeDevice().record)  # enrolled, never answers
        assert edge("aggregator", "enroll", "--config", str(config),
                    str(tmp_path / "d.pub")).returncode == 0
        out = edge("aggregator", "run", "--config", str(config), "--rounds", "2")
    assert out.returncode == 1, out
    assert out.stdout.count("failed") == 2, out.stdout
    assert "rounds-failed: all 2 round(s) of this run failed" in out.stderr, out.stderr
