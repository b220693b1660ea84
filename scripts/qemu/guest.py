"""Drive the QEMU OP-TEE guest over its serial console (pyserial ``socket://``).

Used by tests/qemu and benchmarks/qemu.py::

    with Guest.boot() as g:          # scripts/qemu/boot.sh, console on a free port
        rc, out = g.run("xtest -t regression 1001")
        g.put("/tmp/pkg", data)      # base64 over the console
        data = g.get("/tmp/record")

The console protocol is the image's ``edge-cmdloop`` (one command per line,
output framed by markers), so no shell echo or prompt ever reaches the caller.
Run as a script, it boots the image and runs one command:
``python3 scripts/qemu/guest.py 'edge-ta-cli status'``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import serial

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD_SH = ROOT / "scripts" / "qemu" / "build.sh"
BOOT_SH = ROOT / "scripts" / "qemu" / "boot.sh"
OUT = ROOT / "build" / "qemu"
READY = re.compile(rb"@@EDGE-READY uptime=([0-9.]+) tee=(\w+)@@")
CHUNK = 3000  # base64 characters per console line (the tty line limit is 4095)
BATCH = 8  # console lines per acknowledged batch of a file transfer


class GuestError(RuntimeError):
    """The guest did not answer as expected (timeout, crash, bad marker)."""


def build_image() -> None:
    """Run the (cached, idempotent) image build; raise with its output on failure."""
    proc = subprocess.run([str(BUILD_SH)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GuestError(f"scripts/qemu/build.sh failed:\n{proc.stdout}\n{proc.stderr}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Guest:
    """One booted guest; stop it with :meth:`close` (or use it as a context manager)."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, secure_log: Path,
                 console_log: Path | None) -> None:
        self.proc = proc
        self.port = port
        self.secure_log = secure_log
        self._log = console_log.open("ab") if console_log else None
        self._buf = b""
        self._tokens = itertools.count(1)
        self.ser: serial.SerialBase | None = None
        self.boot_to_ready_s = 0.0
        self.guest_uptime_at_ready_s = 0.0

    # -- lifetime -------------------------------------------------------------
    @classmethod
    def boot(cls, *, secure_log: Path | None = None, console_log: Path | None = None,
             ready_timeout: float = 300.0, boot_args: tuple[str, ...] = (),
             cmdloop: bool = True) -> Guest:
        """Start scripts/qemu/boot.sh and wait until the guest's TEE is ready.

        ``cmdloop=False`` leaves the console at the guest's shell (for tools that
        drive a shell themselves, like ``edge board``; use :meth:`release_console`).
        """
        port = free_port()
        secure_log = secure_log or OUT / f"secure-{port}.log"
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(BOOT_SH), "--port", str(port), "--secure-log", str(secure_log),
             "--exit-with-parent", *boot_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        guest = cls(proc, port, secure_log, console_log)
        try:
            guest._connect(t0 + 30)
            _, m = guest._expect(READY, time.monotonic() + ready_timeout)
            guest.boot_to_ready_s = time.monotonic() - t0
            guest.guest_uptime_at_ready_s = float(m.group(1))
            if m.group(2) != b"yes":
                raise GuestError("the guest has no /dev/tee0 (OP-TEE driver did not probe)")
            if cmdloop:
                guest._send(b"exec edge-cmdloop\n")
                guest._expect(re.compile(rb"@@CMDLOOP@@"), time.monotonic() + 30)
        except BaseException:
            guest.close()
            raise
        return guest

    def _connect(self, deadline: float) -> None:
        while True:
            try:
                self.ser = serial.serial_for_url(f"socket://127.0.0.1:{self.port}", timeout=0.2)
                return
            except serial.SerialException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout \
                        else ""
                    raise GuestError(f"QEMU did not open its console:\n{out}") from None
                time.sleep(0.1)

    def release_console(self) -> str:
        """Disconnect from the console (QEMU keeps running and accepts the next client);
        returns its pyserial URL."""
        if self.ser is not None:
            self.ser.close()
            self.ser = None
        return f"socket://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop QEMU (and boot.sh) and release the console; idempotent."""
        if self.ser is not None:
            with contextlib.suppress(Exception):
                self.ser.close()
            self.ser = None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- console I/O ------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        assert self.ser is not None
        self.ser.write(data)
        self.ser.flush()

    def _expect(self, pattern: re.Pattern[bytes], deadline: float
                ) -> tuple[bytes, re.Match[bytes]]:
        """Wait for ``pattern``; return the text before it and the match, consuming both."""
        assert self.ser is not None
        scanned = 0
        while True:
            # Markers are short: only rescan the new data (plus an overlap).
            m = pattern.search(self._buf, max(0, scanned - 256))
            if m:
                before = self._buf[:m.start()]
                self._buf = self._buf[m.end():]
                return before, m
            scanned = len(self._buf)
            if time.monotonic() > deadline:
                tail = self._buf[-2000:].decode(errors="replace")
                raise GuestError(f"timed out waiting for {pattern.pattern!r}; console tail:\n"
                                 f"{tail}")
            if self.proc.poll() is not None:
                tail = self._buf[-2000:].decode(errors="replace")
                raise GuestError(f"QEMU exited ({self.proc.returncode}) while waiting for "
                                 f"{pattern.pattern!r}:\n{tail}")
            try:
                # Block for the first byte, then take whatever else is there
                # (the socket:// backend's in_waiting is only 0 or 1).
                data = self.ser.read(1)
                if data:
                    self.ser.timeout = 0
                    try:
                        data += self.ser.read(1 << 16)
                    finally:
                        self.ser.timeout = 0.2
            except serial.SerialException as e:
                raise GuestError(f"console connection lost: {e}") from e
            if data:
                if self._log:
                    self._log.write(data)
                    self._log.flush()
                self._buf += data.replace(b"\r", b"")

    def run(self, command: str, timeout: float = 120.0) -> tuple[int, str]:
        """Run one shell command line in the guest; return (exit status, output)."""
        if "\n" in command:
            raise ValueError("one line only; join commands with ';' or '&&'")
        tok = f"t{next(self._tokens)}"
        self._send(f"{tok} {command}\n".encode())
        deadline = time.monotonic() + timeout
        self._expect(re.compile(rb"@@BEGIN:" + tok.encode() + rb"@@\n"), deadline)
        out, m = self._expect(re.compile(rb"@@END:(\d+):" + tok.encode() + rb"@@\n"), deadline)
        return int(m.group(1)), out.decode(errors="replace")

    def check(self, command: str, timeout: float = 120.0) -> str:
        """Like :meth:`run`, raising :class:`GuestError` on a non-zero status."""
        rc, out = self.run(command, timeout)
        if rc != 0:
            raise GuestError(f"`{command}` exited {rc}:\n{out}")
        return out

    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` in the guest (base64 over the console)."""
        text = base64.b64encode(data).decode()
        tmp = f"{path}.b64"
        self.check(f"mkdir -p $(dirname {path}) && : > {tmp}")
        lines = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)]
        # A batch stays well below the guest tty's input buffering (64 KiB).
        for i in range(0, len(lines), BATCH):
            batch = lines[i:i + BATCH]
            tok = f"t{next(self._tokens)}"
            payload = "".join(f"{line}\n" for line in batch).encode()
            self._send(f"{tok} @recv {tmp} {len(payload)}\n".encode() + payload)
            deadline = time.monotonic() + 60
            self._expect(re.compile(rb"@@BEGIN:" + tok.encode() + rb"@@\n"), deadline)
            self._expect(re.compile(rb"@@END:0:" + tok.encode() + rb"@@\n"), deadline)
        self.check(f"base64 -d {tmp} > {path} && rm {tmp}")
        size = int(self.check(f"wc -c < {path}").strip())
        if size != len(data):
            raise GuestError(f"put {path}: {size} bytes arrived, {len(data)} sent")

    def get(self, path: str) -> bytes:
        """Read a file of the guest (base64 over the console)."""
        return base64.b64decode("".join(self.check(f"base64 {path}").split()))


def main(argv: list[str]) -> int:
    build_image()
    with Guest.boot() as g:
        print(f"boot to ready: {g.boot_to_ready_s:.1f} s", file=sys.stderr)
        rc, out = g.run(" ".join(argv) or "edge-ta-cli status", timeout=600)
        sys.stdout.write(out)
        return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
