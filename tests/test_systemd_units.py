"""deploy/systemd: the units pass `systemd-analyze verify` and keep a low exposure level.

systemd need not be PID 1: `systemd-analyze --root=DIR` checks the units offline
against a root folder holding the host's unit set, our units, a stand-in for
Debian's tee-supplicant.service (the board has the real one) and the executables
the units name.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

UNITS = ROOT / "deploy" / "systemd"
SYSTEM_UNITS = Path("/lib/systemd/system")
MAX_EXPOSURE = 3.0  # systemd-analyze security: 0 (locked down) .. 10 (exposed)


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None or not SYSTEM_UNITS.is_dir():
        pytest.fail("systemd-analyze is missing: run scripts/setup.sh (installs Debian's "
                    "`systemd` package; it works without systemd as PID 1)")
    return tool


def exec_paths(unit: Path) -> list[str]:
    """The executables a unit's Exec*= lines run."""
    return [line.split("=", 1)[1].split()[0].lstrip("-@:+!")
            for line in unit.read_text().splitlines() if re.match(r"^Exec\w+=", line)]


def make_root(tmp_path: Path, units: list[Path]) -> Path:
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for unit in units:
        shutil.copy(unit, etc / unit.name)
    (etc / "tee-supplicant.service").write_text(
        "[Unit]\nDescription=stand-in for Debian's tee-supplicant.service\n"
        "[Service]\nExecStart=/usr/sbin/tee-supplicant\n")
    for unit in [*units, etc / "tee-supplicant.service"]:
        for exe in exec_paths(unit):
            path = root / exe.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)
    return root


def verify(tmp_path: Path, units: list[Path]) -> subprocess.CompletedProcess[str]:
    root = make_root(tmp_path, units)
    return subprocess.run([_analyze(), "verify", f"--root={root}", *(u.name for u in units)],
                          capture_output=True, text=True, timeout=120)


def test_units_verify_cleanly(tmp_path: Path) -> None:
    units = sorted(UNITS.glob("*.service"))
    assert [u.name for u in units] == ["edge-aggregator-worker@.service",
                                       "edge-aggregator.service", "edge-daemon.service"]
    # The worker is a template: checked as one instance of it.
    instance = tmp_path / "units" / "edge-aggregator-worker@w1.service"
    instance.parent.mkdir()
    instance.write_text((UNITS / "edge-aggregator-worker@.service").read_text())
    units = [instance if u.name.endswith("@.service") else u for u in units]
    out = verify(tmp_path, units)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), \
        out.stdout + out.stderr


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "units" / "edge-daemon.service"
    broken.parent.mkdir()
    broken.write_text((UNITS / "edge-daemon.service").read_text()
                      .replace("Requires=tee-supplicant.service", "Requires=tee-nothing.service"))
    out = verify(tmp_path, [broken])
    assert out.returncode != 0 and "tee-nothing.service" in out.stdout + out.stderr


@pytest.mark.parametrize("name", ["edge-daemon.service", "edge-aggregator.service"])
def test_exposure_level_stays_low(tmp_path: Path, name: str) -> None:
    root = make_root(tmp_path, [UNITS / name])
    out = subprocess.run([_analyze(), "security", "--offline=true", f"--root={root}", name],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, out.stdout


def test_daemon_unit_has_the_board_essentials() -> None:
    text = (UNITS / "edge-daemon.service").read_text()
    for line in ["Type=notify", "Requires=tee-supplicant.service",
                 "After=tee-supplicant.service", "SupplementaryGroups=teeclnt",
                 "DeviceAllow=/dev/tee0 rw", "StateDirectory=edge", "ProtectSystem=strict",
                 "KillMode=mixed", "User=edge"]:
        assert any(ln.startswith(line) for ln in text.splitlines()), line
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
