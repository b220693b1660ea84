"""Every TA command from C (edge-ta-cli over libedge_client and libteec_sim).

Packages are made by the Python release tool for the device the C client
created, so these are cross-language round trips. Run in the plain build and
in the ASan + UBSan build (CLI, client library and secure world all
instrumented).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, head, make_package, require_native
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.formats.anchors import Role, build_anchor_statement
from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public


class Cli:
    """edge-ta-cli bound to one build and one simulated secure world."""

    def __init__(self, build: Path, state: Path, logs: Path) -> None:
        self.exe = build / "edge-ta-cli"
        self.state = state
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SIM_")}
        self.env["EDGE_SIM_TEE"] = str(build / "edge-sim-tee")
        self.env["ASAN_OPTIONS"] = f"log_path={logs}/asan:detect_leaks=1"
        self.env["UBSAN_OPTIONS"] = f"log_path={logs}/ubsan:print_stacktrace=1"

    def __call__(self, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.exe), "-t", str(self.state), *map(str, args)],
                              env=self.env, capture_output=True, text=True, timeout=120)
        if ok:
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        return proc


@pytest.fixture(params=["host", "host-asan"])
def cli(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    build = require_native(request.param)
    logs = tmp_path / "logs"
    logs.mkdir()
    yield Cli(build, tmp_path / "state", logs)
    reports = list(logs.iterdir())
    assert not reports, "\n".join(p.read_text() for p in reports)


def test_c_round_trip_every_command(cli: Cli, roles: Roles, tmp_path: Path) -> None:
    rec_path = tmp_path / "device.pub"
    cli("identity", rec_path)
    device = parse_device_record(rec_path.read_bytes())
    assert "model_version: 0" in cli("status").stdout

    cli("anchors", roles.signer_pub.hex(), roles.aggregator_pub.hex())
    err = cli("anchors", roles.signer_pub.hex(), roles.aggregator_pub.hex(), ok=False).stderr
    assert "already provisioned" in err and "from ta" in err

    w, b = head(4, 16, 3)
    backbone = np.random.default_rng(4).bytes(70_000)
    pkg = tmp_path / "v2.pkg"
    built = make_package(roles.signer, [device], version=2, w=w, b=b,
                         backbone=backbone, encrypt=True)
    pkg.write_bytes(built)
    wrap = tmp_path / "v2.wrap"
    wrap.write_bytes(built.wrap)
    # Another package's wrap for this device: refused by name before anything else.
    (tmp_path / "other.wrap").write_bytes(make_package(roles.signer, [device], version=2).wrap)
    err = cli("load", pkg, tmp_path / "other.wrap", ok=False).stderr
    assert "key wrap for another package" in err and "0xed6e001e" in err
    out = cli("load", pkg, wrap, tmp_path / "backbone.bin").stdout
    assert "version: 2" in out and f"backbone_bytes: {len(backbone)}" in out
    assert (tmp_path / "backbone.bin").read_bytes() == backbone

    err = cli("load", pkg, wrap, ok=False).stderr
    assert "rollback" in err and "0xed6e0001" in err

    x = np.random.default_rng(5).normal(size=(5, 16)).astype("<f4")
    (tmp_path / "x.f32").write_bytes(x.tobytes())
    cli("infer", "5", tmp_path / "x.f32", tmp_path / "y.f32")
    y = np.frombuffer((tmp_path / "y.f32").read_bytes(), "<f4").reshape(5, 3)
    np.testing.assert_allclose(y, x @ w + b, rtol=1e-5, atol=1e-5)

    new = Ed25519PrivateKey.generate()
    stmt = tmp_path / "stmt.bin"
    stmt.write_bytes(build_anchor_statement(roles.aggregator, Role.AGGREGATOR, 1,
                                            ed25519_raw_public(new)))
    cli("replace-anchor", stmt)
    # Replayed: its signer is no longer the aggregator anchor.
    assert "unknown signer" in cli("replace-anchor", stmt, ok=False).stderr
    assert "model_version: 2" in cli("status").stdout


def test_c_client_reports_tampering_and_crash(cli: Cli, roles: Roles, tmp_path: Path) -> None:
    rec_path = tmp_path / "device.pub"
    cli("identity", rec_path)
    cli("anchors", roles.signer_pub.hex(), roles.aggregator_pub.hex())
    device = parse_device_record(rec_path.read_bytes())
    built = make_package(roles.signer, [device], version=1, backbone=b"z" * 9000)
    (tmp_path / "w").write_bytes(built.wrap)
    pkg = bytearray(built)
    pkg[-1] ^= 1
    (tmp_path / "bad.pkg").write_bytes(bytes(pkg))
    err = cli("load", tmp_path / "bad.pkg", tmp_path / "w", ok=False).stderr
    assert "chunk digest mismatch" in err
    (tmp_path / "ok.pkg").write_bytes(built)
    cli.env["EDGE_SIM_CRASH_ON_CMD"] = "4"  # LOAD_BEGIN
    err = cli("load", tmp_path / "ok.pkg", tmp_path / "w", ok=False).stderr
    assert "trusted application died" in err and "from tee" in err
