"""Connection failures are logged with their cause and retry time; a group SIGTERM
(what systemd sends) stops the daemon and the aggregator, whatever they were doing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, require_native
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from federation_helpers import _cert, _pem, start_deployed, to_toml

from edge.aggregator.simulate import config_mapping
from edge.mqtt import BrokerSettings, Client, connect_async, make_client


def closed_port() -> int:
    """A TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """Accepts TCP connections and never says a word (a TLS handshake there hangs)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def failures_of(settings: BrokerSettings, count: int) -> list[tuple[str, int]]:
    """The first ``count`` (cause, retry_in) reports of a client connecting to ``settings``."""
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    def report(cause: str, retry_in: int) -> None:
        seen.append((cause, retry_in))
        if len(seen) >= count:
            done.set()

    client = make_client(settings, "test-failing", clean_session=True, on_failure=report)
    assert isinstance(client, Client)
    connect_async(client, settings)
    client.loop_start()
    try:
        assert done.wait(30), seen
    finally:
        client.loop_stop()
    return seen[:count]


def test_each_failed_attempt_names_its_cause_and_the_backoff() -> None:
    seen = failures_of(BrokerSettings.from_url(f"mqtt://127.0.0.1:{closed_port()}"), 3)
    assert seen == [("Connection refused", 1), ("Connection refused", 2),
                    ("Connection refused", 4)]


def test_a_ca_that_did_not_sign_the_broker_is_named(tmp_path: Path) -> None:
    dep = start_deployed(tmp_path / "broker", ["someone"])
    with dep.broker:
        key = ec.generate_private_key(ec.SECP256R1())
        other = _pem(tmp_path / "other-ca.crt", _cert(
            "another CA", key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another CA")]),
            key, True))
        settings = BrokerSettings.from_mapping({
            "url": f"mqtts://127.0.0.1:{dep.port}", "ca_file": str(other),
            "username": "someone", "password_file": str(dep.passwords["someone"])})
        [(cause, retry)] = failures_of(settings, 1)
    assert cause.startswith("TLS: ") and "certificate" in cause and "broker.ca_file" in cause
    assert retry == 1


def test_a_tls_handshake_nobody_answers_times_out() -> None:
    server = SilentServer()
    try:
        [(cause, _)] = failures_of(BrokerSettings.from_url(f"mqtts://127.0.0.1:{server.port}"), 1)
    finally:
        server.close()
    assert cause == "timed out"


def start(argv: list[str], cwd: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """``edge ARGV`` in its own process group, its stderr collected line by line."""
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", *argv], cwd=cwd,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    log: list[str] = []
    assert proc.stderr is not None
    threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")),  # type: ignore[union-attr]
                     daemon=True).start()
    return proc, log


def wait_line(proc: subprocess.Popen[str], log: list[str], *words: str) -> str:
    """The first stderr line holding all ``words`` (fails if the process exits first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in list(log):
            if all(w in line for w in words):
                return line
        assert proc.poll() is None, "".join(log)
        time.sleep(0.05)
    pytest.fail(f"no line with {words}: {''.join(log)}")


def stop_group(proc: subprocess.Popen[str], log: list[str]) -> str:
    """SIGTERM to the whole process group; the exit must be clean and leave nobody behind."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        assert proc.wait(30) == 0, "".join(log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("processes of the group outlived the daemon")
    time.sleep(0.2)  # the reader thread drains stderr
    return "".join(log)


def daemon_config(root: Path, url: str) -> Path:
    (root / "samples").mkdir()
    config = root / "daemon.toml"
    config.write_text(to_toml({
        "device": {"name": "board-7", "fleet": "lab"},
        "tee": {"backend": "sim", "state_dir": "tee"},
        "broker": {"url": url},
        "data": {"source": "directory", "path": "samples"},
        "paths": {"work_dir": "work"}}))
    return config


@pytest.mark.parametrize("where", ["refused", "silent-tls", "backoff"])
def test_daemon_logs_connect_failures_and_stops_on_a_group_sigterm(
        tmp_path: Path, where: str) -> None:
    require_native("host")
    server = SilentServer() if where == "silent-tls" else None
    url = (f"mqtts://127.0.0.1:{server.port}" if server
           else f"mqtt://127.0.0.1:{closed_port()}")
    proc, log = start(["daemon", "--config", str(daemon_config(tmp_path, url))], tmp_path)
    try:
        if where == "silent-tls":
            # SIGTERM while paho's network thread sits in the TLS handshake.
            wait_line(proc, log, "step=start")
            time.sleep(1.0)
        else:
            line = wait_line(proc, log, "WARNING", "step=connect", "result=failed")
            assert f"broker={url}" in line and 'cause="Connection refused"' in line, line
            assert "retry_in=1s" in line, line
            if where == "backoff":
                wait_line(proc, log, "step=connect", "retry_in=2s")
        text = stop_group(proc, log)
    finally:
        if server is not None:
            server.close()
    if where == "silent-tls":
        assert 'cause="timed out"' in text or "step=signal" in text, text
    assert "step=signal signal=SIGTERM action=stopping" in text, text
    assert "step=stop" in text and "Traceback" not in text, text


def test_aggregator_logs_connect_failures_and_stops_on_a_group_sigterm(tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{closed_port()}"
    table: dict[str, Any] = config_mapping(tmp_path, url)
    config = tmp_path / "agg.toml"
    config.write_text(to_toml(table), encoding="utf-8")
    proc, log = start(["--verbose", "aggregator", "run", "--config", str(config)], tmp_path)
    line = wait_line(proc, log, "WARNING", "cannot connect to")
    assert f"aggregator: cannot connect to {url}: Connection refused; retrying in 1 s" in line
    text = stop_group(proc, log)
    assert "stopped by SIGTERM" in text and "Traceback" not in text, text
