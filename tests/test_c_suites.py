"""Runs every C test program, in the plain build and under ASan + UBSan.

The programs (tests/c/gp_test_*, ta_test_*, client_test_*) check the GP
Internal API simulator, the TA's modules against tests/vectors, and the
libteec-compatible simulator; each ends with an `N passed, M failed` line.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, require_native

PROGRAMS = sorted(p.stem for p in (ROOT / "tests" / "c").glob("*_test_*.c"))


def test_there_are_c_tests() -> None:
    kinds = {name.split("_test_")[0] for name in PROGRAMS}
    assert {"gp", "ta", "client"} <= kinds, PROGRAMS


@pytest.mark.parametrize("build", ["host", "host-asan"])
@pytest.mark.parametrize("program", PROGRAMS)
def test_c_program(program: str, build: str, tmp_path: Path) -> None:
    native = require_native(build)
    exe = native / "tests" / program
    assert exe.exists(), f"{exe} was not built: run `make{' SAN=1' if 'asan' in build else ''}`"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SIM_")}
    env["EDGE_SIM_TEE"] = str(native / "edge-sim-tee")
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.run([str(exe), str(ROOT / "tests" / "vectors")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    summary = re.findall(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
    assert proc.returncode == 0, output[-4000:]
    assert summary, f"no summary line from {program}:\n{output[-2000:]}"
    passed, failed = map(int, summary[-1])
    assert failed == 0 and passed > 0, output[-4000:]
    assert "ERROR: AddressSanitizer" not in output and "runtime error:" not in output, output
