"""Local MQTT brokers for the demo and the tests: embedded amqtt and a spawned Mosquitto.

Both listen on 127.0.0.1 and a free port only, and keep that port across
``restart()``. Nothing here needs MQTT 5.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from edge.errors import EdgeError

MOSQUITTO = "/usr/sbin/mosquitto"
# Sized for a fleet: a slow subscriber (the aggregator) must never lose QoS 1
# messages (mosquitto's default of 1000 queued messages drops them silently).
MAX_QUEUED_MESSAGES = 100_000
MAX_INFLIGHT_MESSAGES = 100
START_TIMEOUT = 10.0

log = logging.getLogger(__name__)


class BrokerError(EdgeError):
    """A local broker could not be started, restarted or stopped."""

    refusal = "broker"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_listening(host: str, port: int, timeout: float,
                   alive: Any = None) -> None:
    """Wait until a TCP connect to host:port succeeds; BrokerError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if alive is not None and not alive():
            raise BrokerError(f"broker on {host}:{port} exited while starting")
        if time.monotonic() > deadline:
            raise BrokerError(f"broker on {host}:{port} not listening after {timeout:.0f} s")
        time.sleep(0.02)


class EmbeddedBroker:
    """An amqtt broker (MQTT 3.1.1) in a background thread with its own event loop."""

    host = "127.0.0.1"

    def __init__(self, port: int | None = None) -> None:
        """Choose the port (a free one by default); call ``start()`` or use ``with``."""
        self.port = port or free_port(self.host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def url(self) -> str:
        """The broker's ``mqtt://127.0.0.1:PORT`` URL."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the broker serves."""
        return self._broker is not None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}",
                                      "max_connections": 0}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }

    def start(self) -> EmbeddedBroker:
        """Start serving (idempotent); BrokerError if the port cannot be bound."""
        if self._broker is not None:
            return self
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise BrokerError(f"the embedded broker needs amqtt (pip install amqtt): {exc}") \
                from None
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"amqtt-{self.port}",
                                  daemon=True)
        thread.start()

        async def _start() -> Any:
            broker = Broker(self._config(), loop=loop)
            await broker.start()
            return broker

        try:
            self._broker = asyncio.run_coroutine_threadsafe(_start(), loop).result(START_TIMEOUT)
        except Exception as exc:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
            raise BrokerError(f"embedded broker on {self.url} did not start: {exc}") from None
        self._loop, self._thread = loop, thread
        log.debug("embedded broker started url=%s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and end the thread (idempotent); sessions and retained messages go."""
        broker, loop, thread = self._broker, self._loop, self._thread
        self._broker = self._loop = self._thread = None
        if broker is None or loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(START_TIMEOUT)
        except Exception as exc:  # a failed shutdown still ends the thread
            log.warning("embedded broker shutdown failed: %s", exc)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
        log.debug("embedded broker stopped url=%s", self.url)

    def restart(self) -> None:
        """Stop and start again on the same port (clients must reconnect)."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class MosquittoBroker:
    """A ``/usr/sbin/mosquitto`` started with a generated config in ``workdir``."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, *, acl_file: Path | None = None,
                 password_file: Path | None = None, port: int | None = None,
                 start: bool = True, autosave_each_change: bool = True,
                 autosave_s: int = 60,
                 config: Callable[[int], str] | None = None) -> None:
        """Write the config and (by default) start the broker on a free port.

        ``autosave_each_change=False`` saves every ``autosave_s`` seconds instead: 60 as
        Mosquitto's packaged configs (the tests use it to show the daemons' outboxes
        suffice), 5 as deploy/mosquitto (benchmarks/federation.py: a save per change
        rewrites the whole database per message, which stalls a 1,000-device fleet).
        ``config``, given the port, returns the whole configuration instead of the
        generated one (the tests run deploy/mosquitto/mosquitto.conf this way); it
        should log to ``workdir/mosquitto.log`` for ``log_tail``.
        """
        self.autosave_each_change = autosave_each_change
        self.autosave_s = autosave_s
        self.executable = shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin:/usr/bin") \
            or MOSQUITTO
        if not Path(self.executable).is_file():
            raise BrokerError("mosquitto is not installed (on Debian: apt-get install "
                              "mosquitto, or run scripts/setup.sh)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.acl_file = acl_file
        self.password_file = password_file
        self.port = port or free_port(self.host)
        self.config_file = self.workdir / "mosquitto.conf"
        self.log_file = self.workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        text = config(self.port) if config is not None else self.config_text()
        self.config_file.write_text(text, encoding="utf-8")
        if start:
            self.start()

    @property
    def url(self) -> str:
        """The broker's ``mqtt://127.0.0.1:PORT`` URL."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the mosquitto process runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The mosquitto process id while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def rss_bytes(self) -> int:
        """The broker's resident memory now (VmRSS in /proc); BrokerError if it is not running."""
        pid = self.pid
        if pid is None:
            raise BrokerError(f"mosquitto on {self.url} is not running")
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
        except OSError as exc:
            raise BrokerError(f"cannot read the memory of mosquitto pid {pid}: {exc}") from None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise BrokerError(f"no VmRSS in /proc/{pid}/status")

    def config_text(self) -> str:
        """The generated mosquitto.conf."""
        lines = [
            "# generated by edge.broker.MosquittoBroker",
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            "max_queued_bytes 0",
            f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
            # Nagle off, as in the clients (edge.mqtt): a packet written after a PUBACK
            # would wait for the client's delayed ACK.
            "set_tcp_nodelay true",
            "persistence true",
            f"persistence_location {self.workdir.resolve()}/",
            # Save after every change (queued message, subscription, retained message).
            # Mosquitto saves after it sent the PUBACK, so a SIGKILL can still lose the
            # last messages it acknowledged: the daemons' outboxes cover that window.
            *(["autosave_on_changes true", "autosave_interval 1"]
              if self.autosave_each_change else [f"autosave_interval {self.autosave_s}"]),
            f"log_dest file {self.log_file.resolve()}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # mosquitto drops to user "mosquitto", which cannot write a private workdir.
            lines.append("user root")
        if self.password_file is not None:
            lines += ["allow_anonymous false",
                      f"password_file {Path(self.password_file).resolve()}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {Path(self.acl_file).resolve()}")
        return "\n".join(lines) + "\n"

    def start(self) -> MosquittoBroker:
        """Start the process (idempotent); BrokerError with the log tail if it fails."""
        if self.running:
            return self
        self._proc = subprocess.Popen(
            [self.executable, "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        proc = self._proc
        try:
            wait_listening(self.host, self.port, START_TIMEOUT,
                           alive=lambda: proc.poll() is None)
        except BrokerError as exc:
            self.stop()
            raise BrokerError(f"{exc}; {self.log_tail()}") from None
        log.debug("mosquitto started url=%s pid=%d", self.url, proc.pid)
        return self

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the broker's log, for error messages."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        tail = " | ".join(text.strip().splitlines()[-lines:])
        return f"log: {tail}" if tail else f"no log in {self.log_file}"

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence database) and wait; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()

    def kill(self) -> None:
        """SIGKILL the broker (a crash; no database save)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        """Stop and start on the same port; persistent sessions and retained messages stay."""
        self.stop()
        self.start()

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
