"""systemd's service notification protocol (``Type=notify``, ``WatchdogSec=``).

The protocol is one datagram of ``KEY=VALUE`` lines to the ``AF_UNIX`` socket
named by ``$NOTIFY_SOCKET`` (a leading ``@`` is Linux's abstract namespace).
Outside systemd the variable is unset and every call does nothing, so the same
code runs under busybox init, in a terminal and in tests. No libsystemd: the
datagram is the whole interface (sd_notify(3)).
"""

from __future__ import annotations

import os
import socket
import time

from edge.errors import ConfigError

# Ping at half the watchdog period, as sd_watchdog_enabled(3) recommends.
WATCHDOG_FRACTION = 0.5


class Notifier:
    """Sends READY/WATCHDOG/STOPPING/STATUS to the service manager, if there is one."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        """Read ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``/``WATCHDOG_PID`` from ``environ``."""
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_s = _watchdog_seconds(env)
        self._last_ping: float | None = None

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self.address is not None

    @property
    def ping_interval_s(self) -> float | None:
        """How often to send WATCHDOG=1, or None when no watchdog is armed."""
        return None if self.watchdog_s is None else self.watchdog_s * WATCHDOG_FRACTION

    def notify(self, **fields: str | int) -> None:
        """Send one datagram of ``KEY=VALUE`` lines (keys upper-cased)."""
        if self.address is None:
            return
        lines = []
        for key, value in fields.items():
            text = str(value)
            if "\n" in text:
                raise ValueError(f"sd_notify {key}: a value cannot contain a newline")
            lines.append(f"{key.upper()}={text}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(self.address)
            s.sendall("\n".join(lines).encode())

    def ready(self, status: str = "") -> None:
        """Start-up is done (``Type=notify`` units count as started from here)."""
        self.notify(ready=1, **({"status": status} if status else {}))

    def watchdog(self) -> None:
        """Still alive: re-arms ``WatchdogSec=``. Callers may call it from a busy loop:
        at most one datagram goes out per half ping interval."""
        interval = self.ping_interval_s
        if interval is None:
            return
        now = time.monotonic()
        if self._last_ping is not None and now - self._last_ping < interval / 2:
            return
        self._last_ping = now
        self.notify(watchdog=1)

    def stopping(self) -> None:
        """Shutdown has begun."""
        self.notify(stopping=1)

    def status(self, text: str) -> None:
        """A one-line status shown by ``systemctl status``."""
        self.notify(status=text)


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if not value.startswith("/"):
        raise ConfigError(f"NOTIFY_SOCKET={value!r}: neither a path nor an abstract socket")
    return value


def _watchdog_seconds(env: dict[str, str] | os._Environ[str]) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID", "")
    # The watchdog belongs to the main process only (a child inherits the variables).
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        raise ConfigError(f"WATCHDOG_USEC={usec!r} is not a number of microseconds") from None
    if value <= 0:
        raise ConfigError(f"WATCHDOG_USEC={usec!r} must be positive")
    return value / 1e6
