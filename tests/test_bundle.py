"""The x86_64 board bundle: built by scripts/bundle.sh, installed offline into a clean
venv without build tools, and `edge tee info --tee sim` run from it (no EDGE_NATIVE_DIR,
not from this checkout). The --root install (what the QEMU image build does) too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

VERSION = "0.1.0"
NAME = f"edge-bundle-{VERSION}-x86_64"
# What install.sh may use; a compiler, make or a linker are deliberately absent.
TOOLS = ("sh", "dirname", "ls", "head", "sed", "uname", "mkdir", "ln", "printf", "install",
         "tr", "rm", "chmod", "cat", "grep", "basename", "python3", "env", "id", "getent")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([ROOT / "scripts/bundle.sh", "--arch", "x86_64", "--out", out],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tarball = out / f"{NAME}.tar.gz"
    with tarfile.open(tarball) as tar:
        tar.extractall(out, filter="data")
    yield out / NAME


def _bin_without_build_tools(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (bin_dir / "python3").unlink(missing_ok=True)
    (bin_dir / "python3").symlink_to(python)
    return bin_dir


def test_bundle_contents(bundle: Path) -> None:
    wheels = sorted(p.name for p in (bundle / "wheels").iterdir())
    ours = [w for w in wheels if w.startswith("edge_tee-")]
    assert ours == [f"edge_tee-{VERSION}-py3-none-linux_x86_64.whl"]
    with zipfile.ZipFile(bundle / "wheels" / ours[0]) as z:
        native = {n.split("/")[-1]: z.getinfo(n) for n in z.namelist()
                  if n.startswith("edge/_native/")}
    assert set(native) == {"libedge_client.so", "libteec_sim.so", "edge-sim-tee", "edge-ta-cli",
                           "edge_client.h"}  # native.py hands cffi the shipped header
    assert (native["edge-sim-tee"].external_attr >> 16) & 0o111  # stays executable
    names = {w.split("-")[0].lower() for w in wheels}
    assert {"numpy", "cffi", "cryptography", "paho_mqtt", "pyserial", "ai_edge_litert",
            "pip"} <= names
    assert not names & {"amqtt", "dp_accounting", "scipy"}
    assert {p.name for p in (bundle / "systemd").iterdir()} == {
        "edge-daemon.service", "edge-aggregator.service", "edge-aggregator-worker@.service"}
    assert (bundle / "config" / "daemon.toml").is_file() and os.access(bundle / "install.sh",
                                                                       os.X_OK)


def test_install_into_a_clean_venv_and_run_tee_info(bundle: Path, tmp_path: Path) -> None:
    env = {"PATH": str(_bin_without_build_tools(tmp_path)), "HOME": str(tmp_path),
           "LANG": "C.UTF-8"}
    venv = tmp_path / "venv"
    proc = subprocess.run([bundle / "install.sh", "--venv", venv, "--no-system"], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tmp_path / "tee").mkdir()  # a read command never creates a simulated TEE's folder
    out = subprocess.run([venv / "bin/edge", "tee", "info", "--tee", "sim", "--state",
                          tmp_path / "tee", "--json"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["backend"] == "sim" and info["abi_version"] >= 1 and not info["provisioned"]
    where = subprocess.run(
        [venv / "bin/python", "-c",
         "import edge, edge.native, sys; print(edge.__file__); print(edge.native.native_dir());"
         "import edge.commands.daemon, edge.daemon;"
         "print(sorted(m for m in ('amqtt', 'dp_accounting', 'scipy') if m in sys.modules))"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True)
    package, native, heavy = where.stdout.splitlines()
    assert package.startswith(str(venv)) and native.startswith(str(venv))
    assert native.endswith("edge/_native") and heavy == "[]"
    version = subprocess.run([venv / "bin/edge", "--version"], env=env, capture_output=True,
                             text=True, timeout=60, cwd=tmp_path)
    assert version.stdout.split() == ["edge", VERSION]


def test_install_into_a_root_file_system(bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    env = {**os.environ, "EDGE_INSTALL_HOST_PYTHON": sys.executable}
    proc = subprocess.run([bundle / "install.sh", "--root", root], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    py = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = root / "opt/edge/lib" / py / "site-packages"
    assert (site / "edge/_native/libedge_client.so").is_file()
    assert os.readlink(root / "usr/local/bin/edge") == "/opt/edge/bin/edge"
    assert (root / "opt/edge/bin/edge").read_text().startswith("#!/opt/edge/bin/python3\n")
    assert (root / "etc/edge/daemon.toml").read_text() == \
        (ROOT / "deploy/board/daemon.toml").read_text()
    assert (root / "etc/systemd/system/edge-daemon.service").is_file()
    assert "teeclnt:x:990:edge" in (root / "etc/group").read_text().splitlines()
    assert any(line.startswith("edge:x:991:991:") for line in
               (root / "etc/passwd").read_text().splitlines())
    # The installed tree runs with this machine's Python (same platform here).
    probe = "import edge.native; print(edge.native.native_dir())"
    out = subprocess.run([sys.executable, "-c", probe],
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)
    assert out.stdout.strip() == str(site / "edge/_native")
