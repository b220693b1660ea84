"""The QEMU image's inputs and bytes: reproducible, and recorded in its manifest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "qemu"


def test_two_builds_from_the_same_inputs_are_byte_identical() -> None:
    proc = subprocess.run([ROOT / "scripts/qemu/check-reproducible.sh"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    same = [line for line in proc.stdout.splitlines() if "check-reproducible: same" in line]
    assert len(same) == 6, proc.stdout  # firmware, kernel, initrd, TA, client library, CLI


def test_manifest_records_every_input_with_its_hash() -> None:
    lock = (OUT / "manifest.lock").read_text().splitlines()
    kinds = [line.split()[0] for line in lock if line and not line.startswith("#")]
    assert kinds.count("index") == 3 and kinds.count("toolchain") == 1
    debs = {line.split()[1] for line in lock if line.startswith("deb ")}
    assert {"optee-os", "libc6", "libssl3t64", "python3.13-minimal", "busybox-static"} <= debs
    assert any(d.startswith("linux-image-") for d in debs)
    wheels = {line.split()[1] for line in lock if line.startswith("wheel ")}
    assert {"numpy", "ai-edge-litert", "cryptography"} <= wheels
    for line in lock:
        if line.split()[:1] in (["deb"], ["src"], ["wheel"]):
            assert len(line.split()[3]) == 64, line
