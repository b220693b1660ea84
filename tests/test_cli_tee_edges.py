"""``edge tee`` and ``edge aggregator`` rough edges of issue 15, each reproduced with the line
the operator sees: a mistyped --state, EDGE_SIM_STATE, a package with a backbone and no
--backbone-out, an existing --backbone-out, an unwritable --out-pub, export-record, and a
revoked device enrolled again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Roles, make_package, require_native
from test_cli_rough_edges import one_line, write_toml

from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.formats.device import parse_device_record
from edge.keyfiles import public_pem


def edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``edge ARGS`` in a subprocess, with ``env`` added to the environment."""
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture()
def keys(tmp_path: Path, roles: Roles) -> tuple[Path, Path]:
    require_native("host")
    signer, agg = tmp_path / "signer.pub", tmp_path / "agg.pub"
    signer.write_bytes(public_pem(roles.signer.public_key()))
    agg.write_bytes(public_pem(roles.aggregator.public_key()))
    return signer, agg


def _provision(state: Path, keys: tuple[Path, Path], out: Path,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``edge tee provision`` into ``state`` (given by EDGE_SIM_STATE in ``env`` if any)."""
    signer, agg = keys
    where = [] if env else ["--state", str(state)]
    return edge("tee", "provision", "--tee", "sim", *where, "--model-signer", str(signer),
                "--aggregator", str(agg), "--out-pub", str(out), env=env)


def test_a_mistyped_state_creates_nothing(tmp_path: Path) -> None:
    for verb in ("info", "budget"):
        typo = tmp_path / f"TYPO-{verb}"
        one_line(edge("tee", verb, "--tee", "sim", "--state", str(typo)), 1,
                 f"config: --state {typo}: no simulated TEE there")
        assert not typo.exists()


def test_edge_sim_state_is_the_default_state(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    state = tmp_path / "from-env"
    env = {"EDGE_SIM_STATE": str(state)}
    out = _provision(state, keys, tmp_path / "DEVICE.pub", env=env)
    assert out.returncode == 0, out.stderr
    info = edge("tee", "info", "--tee", "sim", "--json", env=env)
    assert info.returncode == 0 and '"provisioned": true' in info.stdout, info.stderr
    assert (state / "storage.key").is_file()


def test_an_unwritable_out_pub_installs_nothing(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    state = tmp_path / "tee"
    missing = tmp_path / "missing" / "DEVICE.pub"
    one_line(_provision(state, keys, missing), 1,
             f"config: --out-pub {missing}: cannot write in {missing.parent}")
    assert not state.exists()
    one_line(_provision(state, keys, tmp_path), 1,
             f"config: --out-pub {tmp_path} is a folder")
    # Then it works, and export-record writes the same record again.
    record = tmp_path / "DEVICE.pub"
    assert _provision(state, keys, record).returncode == 0
    again = tmp_path / "again.pub"
    out = edge("tee", "export-record", "--tee", "sim", "--state", str(state), "--out",
               str(again))
    assert out.returncode == 0 and again.read_bytes() == record.read_bytes(), out.stderr
    one_line(edge("tee", "export-record", "--tee", "sim", "--state", str(state), "--out",
                  str(again)), 1, f"config: --out {again} exists; give --force")


def test_a_package_with_a_backbone_needs_backbone_out(tmp_path: Path, roles: Roles,
                                                      keys: tuple[Path, Path]) -> None:
    state = tmp_path / "tee"
    record = tmp_path / "DEVICE.pub"
    assert _provision(state, keys, record).returncode == 0
    dev = parse_device_record(record.read_bytes())
    pkg = tmp_path / "v1.pkg"
    built = make_package(roles.signer, [dev], version=1, backbone=b"B" * 5000)
    pkg.write_bytes(built)
    wrap = tmp_path / "v1.wrap"
    wrap.write_bytes(built.wrap)
    base = ("tee", "load-model", "--tee", "sim", "--state", str(state), "--wrap", str(wrap),
            str(pkg))
    out = edge(*base)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"usage: edge tee load-model {pkg} --backbone-out FILE: "
                                 "the package carries a backbone of 5000 bytes")
    info = edge("tee", "info", "--tee", "sim", "--state", str(state), "--json")
    assert '"model_version": null' in info.stdout  # nothing was loaded
    kept = tmp_path / "backbone.tflite"
    kept.write_bytes(b"an older backbone")
    one_line(edge(*base, "--backbone-out", str(kept)), 1,
             f"config: --backbone-out {kept} exists; give --force to overwrite it")
    assert kept.read_bytes() == b"an older backbone"
    out = edge(*base, "--backbone-out", str(kept), "--force")
    assert out.returncode == 0 and kept.read_bytes() == b"B" * 5000, out.stderr


def test_a_revoked_device_is_not_enrolled_again(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "agg.toml", config_mapping(tmp_path))
    dev = FakeDevice()
    rec = tmp_path / "DEVICE.pub"
    rec.write_bytes(dev.record)
    assert edge("aggregator", "enroll", "--config", str(config), str(rec)).returncode == 0
    assert edge("aggregator", "revoke", "--config", str(config),
                dev.device_id.hex()).returncode == 0
    one_line(edge("aggregator", "enroll", "--config", str(config), str(rec)), 1,
             f"config: device {dev.device_id.hex()} was revoked; enrolling its record again "
             "needs --readmit")
    out = edge("aggregator", "enroll", "--config", str(config), "--readmit", str(rec))
    assert out.returncode == 0 and dev.device_id.hex() in out.stdout, out.stderr
