"""Start-up refusals through the real CLI: one line on stderr naming the key or the file,
exit status 1, no traceback; state that fails mid-round is a line too, never a SIGBUS
(issue 10, item 14)."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_native
from ops_helpers import ROOT, TicketAnswerer, aggregator_cmd, to_toml

from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.broker import MosquittoBroker


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def refused(out: subprocess.CompletedProcess[str], prefix: str, *words: str) -> None:
    """Exit 1 and exactly one stderr line, starting with ``prefix`` and naming ``words``."""
    lines = out.stderr.splitlines()
    assert out.returncode == 1 and len(lines) == 1, (out.returncode, out.stderr)
    assert lines[0].startswith(prefix), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def base(tmp_path: Path) -> dict[str, Any]:
    return config_mapping(tmp_path / "fleet")


def run_aggregator(tmp_path: Path, table: dict[str, Any], verb: str = "run",
                   raw: bytes | None = None) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "aggregator.toml"
    config.write_bytes(raw if raw is not None else to_toml(table).encode())
    return cli("aggregator", verb, "--config", str(config))


def test_aggregator_numbers_are_bounded(tmp_path: Path, base: dict[str, Any]) -> None:
    for section, key, value in [("rounds", "timeout_s", 1e300), ("dp", "example_clip", 1e300),
                                ("dp", "update_clip", 1e39), ("dp", "learning_rate", 1e7),
                                ("dp", "central_noise_multiplier", 1e300),
                                ("audit", "rows_per_source", -1)]:
        table = copy.deepcopy(base)
        table.setdefault(section, {})[key] = value
        refused(run_aggregator(tmp_path, table), "config: ", f"{section}.{key}")


def test_aggregator_files_of_the_wrong_kind(tmp_path: Path, base: dict[str, Any]) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (tmp_path / "a-file").write_text("x")
    for key, value in [("metrics", folder), ("state", folder), ("aggregator_key", folder),
                       ("state", tmp_path / "a-file" / "state.sqlite")]:
        table = copy.deepcopy(base)
        table["aggregator"][key] = str(value)
        refused(run_aggregator(tmp_path, table), "config: ", f"aggregator.{key}")


def test_aggregator_non_utf8_config(tmp_path: Path, base: dict[str, Any]) -> None:
    raw = to_toml(base).encode().replace(b'fleet = "test"', b'fleet = "t\xffst"')
    refused(run_aggregator(tmp_path, base, raw=raw), "config: ", "aggregator.toml")


def test_aggregator_state_not_sqlite(tmp_path: Path, base: dict[str, Any]) -> None:
    state = Path(base["aggregator"]["state"])
    state.write_bytes(os.urandom(4096))
    for verb in ("run", "status"):
        refused(run_aggregator(tmp_path, base, verb), "state: ", str(state),
                "not a database")


def test_aggregator_holdout_width_checked_at_start(tmp_path: Path,
                                                   base: dict[str, Any]) -> None:
    np.savez(tmp_path / "holdout.npz", X=np.zeros((4, 5), np.float32), y=np.zeros(4, int))
    base["eval"] = {"holdout": str(tmp_path / "holdout.npz")}
    refused(run_aggregator(tmp_path, base), "config: ", "eval.holdout", "5 features")


def test_aggregator_refuses_a_garbage_backbone(tmp_path: Path, base: dict[str, Any]) -> None:
    for name, data in [("random.tflite", os.urandom(5000)),
                       ("header-only.tflite", b"\x1c\x00\x00\x00TFL3" + os.urandom(5000))]:
        (tmp_path / name).write_bytes(data)
        base["aggregator"]["backbone"] = str(tmp_path / name)
        refused(run_aggregator(tmp_path, base), "config: ", "aggregator.backbone")


DAEMON: dict[str, Any] = {
    "device": {"name": "board-7", "fleet": "lab"},
    "tee": {"backend": "sim", "state_dir": "tee"},
    "broker": {"url": "mqtt://127.0.0.1:1"},
    "data": {"source": "directory", "path": "samples"},
    "paths": {"work_dir": "work"},
}


def test_daemon_start_refusals(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    config = tmp_path / "daemon.toml"
    cases: list[tuple[str, str, Any]] = [
        ("inference", "runtime", "tensorflow"), ("paths", "work_dir", "a-file"),
        ("data", "path", "a-file"), ("data", "store_dir", "a-file"),
        ("tee", "state_dir", "a-file")]
    for section, key, value in cases:
        table = copy.deepcopy(DAEMON)
        table.setdefault(section, {})[key] = value
        config.write_text(to_toml(table))
        refused(cli("daemon", "--config", str(config)), "config: ", f"{section}.{key}")
    config.write_bytes(to_toml(DAEMON).encode().replace(b"board-7", b"board-\xff"))
    refused(cli("daemon", "--config", str(config)), "config: ", "daemon.toml")


def _can_mount() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs root and unshare -m "
                                 "(a private tmpfs for a full or read-only disk)")


def in_tmpfs(mount: Path, size: str, argv: list[str], *, before: str = "",
             ro: bool = False) -> list[str]:
    """argv run in a private mount namespace with a tmpfs of ``size`` on ``mount``."""
    mount.mkdir(parents=True, exist_ok=True)
    remount = f"mount -o remount,ro {mount} && " if ro else ""
    quoted = " ".join(f"'{a}'" for a in argv)
    return ["unshare", "-m", "sh", "-c",
            f"mount -t tmpfs -o size={size} tmpfs {mount} && {before}{remount}exec {quoted}"]


def _fill(path: Path) -> None:
    """Write ``path`` until the disk is full."""
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


@needs_mount
def test_aggregator_read_only_and_full_state_disk(tmp_path: Path, base: dict[str, Any]) -> None:
    disk = tmp_path / "disk"
    base["aggregator"]["state"] = str(disk / "state.sqlite")
    config = tmp_path / "aggregator.toml"
    config.write_text(to_toml(base))
    argv, env = aggregator_cmd("run", "--config", str(config))
    out = subprocess.run(in_tmpfs(disk, "1m", argv, ro=True), env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    refused(out, "state: ", str(disk / "state.sqlite"))
    fill = f"head -c 2000000 /dev/zero > {disk}/filler 2>/dev/null; "
    out = subprocess.run(in_tmpfs(disk, "1m", argv, before=fill), env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    refused(out, "state: ", str(disk / "state.sqlite"), "full")
    base["aggregator"]["state"] = str(tmp_path / "state.sqlite")
    base["aggregator"]["metrics"] = str(disk / "metrics.jsonl")
    config.write_text(to_toml(base))
    out = subprocess.run(in_tmpfs(disk, "1m", argv, ro=True), env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    refused(out, "config: ", "aggregator.metrics", "Read-only")



@needs_mount
def test_state_disk_full_mid_round(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """The state's disk fills while a round is open: one 'state:' line and exit 1."""
    disk = tmp_path / "disk"
    table = config_mapping(tmp_path / "fleet", mosquitto.url, rounds={
        "cohort_size": 1, "quorum": 1, "min_updates": 1, "timeout_s": 600})
    table["aggregator"]["state"] = str(disk / "state.sqlite")
    config = tmp_path / "aggregator.toml"
    config.write_text(to_toml(table))
    device = FakeDevice()
    (tmp_path / "d.pub").write_bytes(device.record)
    answerer = TicketAnswerer(mosquitto.url, "test", [device])
    answerer.hold.set()
    enroll, env = aggregator_cmd("enroll", "--config", str(config), str(tmp_path / "d.pub"))
    run, _ = aggregator_cmd("run", "--config", str(config))
    before = " ".join(f"'{a}'" for a in enroll) + " >/dev/null && "
    proc = subprocess.Popen(in_tmpfs(disk, "2m", run, before=before), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not answerer.held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answerer.held, "no round opened"
        # The process's own view of its private mount, from outside the namespace.
        _fill(Path(f"/proc/{proc.pid}/root") / str(disk).lstrip("/") / "filler")
        answerer.release()
        _out, err = proc.communicate(timeout=60)
    finally:
        answerer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (proc.returncode, err)
    lines = err.splitlines()
    assert "Traceback" not in err and lines[-1].startswith("state: "), err
    assert "full" in lines[-1] and str(disk / "state.sqlite") in lines[-1], err


def test_state_file_truncated_under_a_running_store(tmp_path: Path) -> None:
    """The state files cut to nothing while the store is open: an error, not SIGBUS (no
    mapped -shm file any more: the database is in rollback-journal mode with mmap off)."""
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from edge.aggregator.simulate import FakeDevice
        from edge.aggregator.store import Store
        from edge.aggregator.registry import Registry
        from edge.errors import EdgeError
        path = Path({str(tmp_path / 'state.sqlite')!r})
        with Store(path) as store:
            Registry(store).enroll(FakeDevice().record)
            assert store._one("PRAGMA mmap_size")[0] == 0
            for f in path.parent.glob(path.name + "*"):  # with WAL, -shm too: SIGBUS
                os.truncate(f, 0)
            try:
                Registry(store).enroll(FakeDevice().record)
                store.device_count()
            except EdgeError as exc:
                print(f"{{exc.refusal}}: {{exc}}")
        print("alive")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.endswith("alive\n"), \
        (out.returncode, signal.Signals(-out.returncode).name if out.returncode < 0 else "",
         out.stderr)


@needs_mount
def test_metrics_disk_full_then_space_returns(mosquitto: MosquittoBroker,
                                              tmp_path: Path) -> None:
    """metrics.jsonl on a full tmpfs while rounds close: no torn line, and every row (from
    the database) once space returns, without a restart."""
    from ops_helpers import metrics_census

    disk = tmp_path / "disk"
    table = config_mapping(tmp_path / "fleet", mosquitto.url, rounds={
        "cohort_size": 1, "quorum": 1, "min_updates": 1, "timeout_s": 600})
    table["aggregator"]["metrics"] = str(disk / "metrics.jsonl")
    disk.mkdir()
    state = Path(table["aggregator"]["state"])
    config = tmp_path / "aggregator.toml"
    config.write_text(to_toml(table))
    device = FakeDevice()
    (tmp_path / "d.pub").write_bytes(device.record)
    enroll, env = aggregator_cmd("enroll", "--config", str(config), str(tmp_path / "d.pub"))
    subprocess.run(enroll, env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
    answerer = TicketAnswerer(mosquitto.url, "test", [device])
    run, _ = aggregator_cmd("run", "--config", str(config))
    fill = f"head -c 100000 /dev/zero > {disk}/filler 2>/dev/null; "
    proc = subprocess.Popen(in_tmpfs(disk, "64k", run, before=fill), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = Path(f"/proc/{proc.pid}/root") / str(disk).lstrip("/")

    def census() -> dict[str, int]:
        return metrics_census(state, seen / "metrics.jsonl")

    def wait(cond: Any, what: str) -> None:
        deadline = time.monotonic() + 60
        while not cond():
            assert proc.poll() is None and time.monotonic() < deadline, what
            time.sleep(0.05)
    try:
        wait(lambda: state.exists() and census()["rounds"] >= 3, "three rounds")
        during = census()
        assert during["lost"] >= 3 and during["torn"] == 0 and during["duplicated"] == 0
        (seen / "filler").unlink()
        wait(lambda: census()["lost"] == 0, "the missing rows after space returned")
        after = census()  # before the stop: the tmpfs goes with the process's namespace
        assert (after["duplicated"], after["torn"], after["stray"]) == (0, 0, 0), after
        assert after["rows"] >= during["rounds"], (during, after)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "metrics: cannot write" in err and "Traceback" not in err
    finally:
        answerer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sample_store_truncated_under_the_daemon(tmp_path: Path) -> None:
    """The daemon's sample store files cut to nothing while open: a StateError, not SIGBUS."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        import numpy as np
        from edge.daemon.store import SampleStore
        from edge.errors import StateError
        folder = Path({str(tmp_path / 'samples')!r})
        with SampleStore(folder, 100) as store:
            store.add(np.zeros(4, np.float32), 1)
            for f in folder.glob("samples.sqlite*"):  # with WAL, -shm too: SIGBUS
                os.truncate(f, 0)
            try:
                store.add(np.zeros(4, np.float32), 2)
                store.latest(10)
            except StateError as exc:
                print(f"{{exc.refusal}}: {{exc}}")
        print("alive")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.endswith("alive\n"), (out.returncode, out.stderr)


@needs_mount
def test_daemon_read_only_and_full_work_dir(tmp_path: Path) -> None:
    require_native("host")
    (tmp_path / "samples").mkdir()
    work = tmp_path / "work"
    config = tmp_path / "daemon.toml"
    config.write_text(to_toml(DAEMON))
    argv = [sys.executable, "-m", "edge.cli", "daemon", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store = str(work / "samples" / "samples.sqlite")
    out = subprocess.run(in_tmpfs(work, "1m", argv, ro=True), env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    refused(out, "state: ", store, "Read-only")
    fill = f"head -c 2000000 /dev/zero > {work}/filler 2>/dev/null; "
    out = subprocess.run(in_tmpfs(work, "1m", argv, before=fill), env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    refused(out, "state: ", store, "full")
