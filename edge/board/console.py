"""A shell on a board's serial console, driven line by line (pyserial URLs).

Each command is framed by markers that ``printf`` assembles at run time, so a
console that echoes input never shows the marker the reader waits for:
the echo carries ``printf '@@EDGE-B:%s@@'``, the output ``@@EDGE-B:<token>@@``.
A lost connection (cable pulled, TCP console closed) raises
:class:`~edge.errors.ConsoleLost`; the board's shell keeps running, and a new
:class:`Console` on the same port continues with the same shell.
"""

from __future__ import annotations

import re
import secrets
import time
from types import TracebackType

import serial

from edge.errors import ConsoleError, ConsoleLost

# Canonical-mode ttys hold 4095 characters per line, busybox ash's line editor 1024
# (CONFIG_FEATURE_EDITING_MAX_LEN); a command line stays below both.
MAX_LINE = 1000
KILL_LINE = b"\x15"  # ^U: the tty (and busybox ash) erases a partial line left by a drop
LOGIN = re.compile(rb"login: *$")
PASSWORD = re.compile(rb"[Pp]assword: *$")


class Console:
    """One connection to a board's console; ``run`` executes one shell command line."""

    def __init__(self, url: str, *, baudrate: int = 115200, log: bytearray | None = None
                 ) -> None:
        """Open ``url`` (``/dev/ttyUSB0``, ``socket://host:port``, ``rfc2217://...``)."""
        try:
            self.ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.2)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise ConsoleError(f"cannot open console {url}: {exc}") from None
        self.url = url
        self._buf = b""
        self._log = log

    def close(self) -> None:
        """Release the port; the board's shell stays as it is."""
        self.ser.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- raw I/O ----------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        try:
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as exc:
            raise ConsoleLost(f"console {self.url} lost while sending: {exc}") from None

    def _fill(self) -> None:
        try:
            data = self.ser.read(1)
            if data:
                self.ser.timeout = 0
                try:
                    data += self.ser.read(1 << 16)
                finally:
                    self.ser.timeout = 0.2
        except (serial.SerialException, OSError) as exc:
            raise ConsoleLost(f"console {self.url} lost: {exc}") from None
        if data:
            if self._log is not None:
                self._log.extend(data)
            self._buf += data.replace(b"\r", b"")

    def _expect(self, pattern: re.Pattern[bytes], timeout: float) -> tuple[bytes, re.Match[bytes]]:
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self._buf)
            if m:
                before, self._buf = self._buf[:m.start()], self._buf[m.end():]
                return before, m
            if time.monotonic() > deadline:
                tail = self._buf[-300:].decode(errors="replace")
                raise ConsoleError(f"console {self.url}: no {pattern.pattern.decode()!r} "
                                   f"within {timeout:g} s; last output: {tail!r}")
            self._fill()

    # -- session ---------------------------------------------------------------
    def login(self, user: str = "root", password: str | None = None,
              timeout: float = 60.0) -> None:
        """Reach a shell: answer a login prompt if there is one, then check a command runs."""
        self._send(KILL_LINE + b"\n")
        deadline = time.monotonic() + timeout
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            self._fill()
        tail = self._buf[-200:]
        if LOGIN.search(tail):
            self._buf = b""
            self._send(user.encode() + b"\n")
            try:
                self._expect(PASSWORD, 10)
            except ConsoleError:
                pass  # no password asked (an autologin or a passwordless account)
            else:
                if password is None:
                    raise ConsoleError(f"console {self.url}: the board asks for {user}'s "
                                       f"password; give --password-file")
                self._send(password.encode() + b"\n")
        try:
            rc, _ = self.run("true", timeout=max(5.0, deadline - time.monotonic()))
        except ConsoleError as exc:
            if LOGIN.search(self._buf[-200:]):
                raise ConsoleError(f"console {self.url}: login as {user} was refused") from None
            raise ConsoleError(f"console {self.url}: no shell answered: {exc}") from None
        if rc != 0:
            raise ConsoleError(f"console {self.url}: the shell does not run commands")

    def run(self, command: str, timeout: float = 120.0) -> tuple[int, str]:
        """Run one command line in the board's shell; return (exit status, output)."""
        if "\n" in command:
            raise ValueError("one line only; join commands with ';' or '&&'")
        token = secrets.token_hex(6)
        line = (f"printf '@@EDGE-B:%s@@\\n' {token}; ( {command} ) </dev/null 2>&1; "
                f"printf '@@EDGE-E:%s:%s@@\\n' $? {token}")
        if len(line) > MAX_LINE:
            raise ValueError(f"command line of {len(line)} characters is over {MAX_LINE}")
        self._send(line.encode() + b"\n")
        self._expect(re.compile(rb"@@EDGE-B:" + token.encode() + rb"@@\n"), timeout)
        out, m = self._expect(re.compile(rb"@@EDGE-E:(\d+):" + token.encode() + rb"@@\n"),
                              timeout)
        return int(m.group(1)), out.decode(errors="replace")

    def check(self, command: str, timeout: float = 120.0) -> str:
        """Run a command that must succeed; its output."""
        rc, out = self.run(command, timeout)
        if rc != 0:
            raise ConsoleError(f"board: `{command[:80]}` exited {rc}: {out.strip()[-300:]}")
        return out
