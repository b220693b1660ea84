"""sd_notify over a real AF_UNIX datagram socket: the module, and `edge daemon` under it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, require_native

from edge.broker import MosquittoBroker
from edge.errors import ConfigError
from edge.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(30)
        yield path, s


def messages(s: socket.socket, until: str, timeout: float = 60) -> list[str]:
    """Datagrams received until one contains ``until`` (all of them, in order)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        got.append(s.recv(4096).decode())
        if until in got[-1].splitlines():
            return got
    raise AssertionError(f"no {until} within {timeout} s; got {got}")


def test_ready_watchdog_stopping_reach_the_socket(listener: tuple[str, socket.socket]) -> None:
    path, s = listener
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000",
                  "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.ping_interval_s == 2.0
    n.ready("serving")
    assert s.recv(4096) == b"READY=1\nSTATUS=serving"
    n.watchdog()
    n.watchdog()  # from a busy loop: not a second datagram within half the interval
    assert s.recv(4096) == b"WATCHDOG=1"
    n.stopping()
    assert s.recv(4096) == b"STOPPING=1"


def test_abstract_socket() -> None:
    name = f"edge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(b"\0" + name.encode())
        s.settimeout(5)
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert s.recv(4096) == b"READY=1"


def test_without_a_service_manager_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled and n.ping_interval_s is None
    n.ready()
    n.watchdog()
    n.stopping()


def test_watchdog_of_another_process_is_not_ours(listener: tuple[str, socket.socket]) -> None:
    path, s = listener
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.ping_interval_s is None
    n.watchdog()
    n.ready()
    assert s.recv(4096) == b"READY=1"  # the watchdog ping was never sent


@pytest.mark.parametrize("env, word", [
    ({"NOTIFY_SOCKET": "relative/path"}, "NOTIFY_SOCKET"),
    ({"WATCHDOG_USEC": "soon"}, "WATCHDOG_USEC"),
    ({"WATCHDOG_USEC": "0"}, "WATCHDOG_USEC"),
])
def test_bad_environment_is_named(env: dict[str, str], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        Notifier(env)


def test_value_with_newline_is_refused(listener: tuple[str, socket.socket]) -> None:
    with pytest.raises(ValueError, match="newline"):
        Notifier({"NOTIFY_SOCKET": listener[0]}).status("two\nlines")


def test_edge_daemon_speaks_the_protocol(tmp_path: Path, mosquitto: MosquittoBroker,
                                         listener: tuple[str, socket.socket]) -> None:
    """READY once serving, WATCHDOG at half of WATCHDOG_USEC, STOPPING on SIGTERM."""
    build = require_native("host")
    path, s = listener
    (tmp_path / "samples").mkdir()
    config = tmp_path / "board.toml"
    config.write_text(f"""
[device]
name = "notify-test"
fleet = "test"
[tee]
backend = "sim"
state_dir = "tee"
[broker]
url = "{mosquitto.url}"
[data]
source = "directory"
path = "samples"
[paths]
work_dir = "work"
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGE_NATIVE_DIR": str(build),
           "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-c",
                             "import os, sys; os.environ['WATCHDOG_PID'] = str(os.getpid()); "
                             "from edge.cli import main; sys.exit(main())",
                             "daemon", "--config", str(config)],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        got = messages(s, "READY=1")
        assert got[-1].startswith("READY=1\nSTATUS=device notify-test")
        assert messages(s, "WATCHDOG=1", timeout=5) == ["WATCHDOG=1"]
        assert messages(s, "WATCHDOG=1", timeout=5) == ["WATCHDOG=1"]
        proc.send_signal(signal.SIGTERM)
        messages(s, "STOPPING=1", timeout=30)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
