"""A board console for tests: a TCP "serial port" in front of a real shell.

It behaves like a board's console where it matters to ``edge board``: a login
prompt, a shell that outlives the operator's connection (a cable pulled or a
TCP console closed does not stop the board), a line discipline that passes
whole lines only and erases a partial one on ^U, optional echo of input, and
knobs to drop the connection after N bytes or to corrupt one byte in transit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from pathlib import Path


class FakeBoard:
    """One board: a persistent ``sh`` behind a login on a 127.0.0.1 TCP port."""

    def __init__(self, workdir: Path, env: dict[str, str], *, user: str = "root",
                 password: str = "secret", echo: bool = True) -> None:
        self.user, self.password, self.echo = user, password, echo
        self.drop_after: int | None = None  # drop the next connection after N input bytes
        self.corrupt_next_chunk = False  # flip one base64 character of the next chunk line
        self.connections = 0
        self.drops = 0
        self.shell = subprocess.Popen(["sh"], cwd=workdir, env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._conn: socket.socket | None = None
        self._line = b""  # a tty keeps a partial line across the operator's connections
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._output, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.close()
        self._hang_up()
        if self.shell.stdin:
            with contextlib.suppress(OSError):
                self.shell.stdin.close()
        try:
            self.shell.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.shell.kill()
            self.shell.wait()
        if self.shell.stdout:
            self.shell.stdout.close()

    def _hang_up(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _to_operator(self, data: bytes) -> None:
        with self._lock:
            conn = self._conn
        if conn is not None:
            # If the operator went away, the console's output is lost, as on a real one.
            with contextlib.suppress(OSError):
                conn.sendall(data)

    def _output(self) -> None:
        assert self.shell.stdout is not None
        fd = self.shell.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            self._to_operator(data)

    def _accept(self) -> None:
        logged_in = False
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            with self._lock:
                self._conn = conn
            logged_in = self._serve(conn, logged_in)

    def _serve(self, conn: socket.socket, logged_in: bool) -> bool:
        """One connection; returns whether the session is logged in when it ends."""
        received = 0
        stage = "shell" if logged_in else "login"
        if not logged_in:
            self._to_operator(b"\r\nfake-board login: ")
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                self._hang_up()
                return stage == "shell"
            for byte in data:
                b = bytes([byte])
                received += 1
                if self.corrupt_next_chunk and self._line.endswith(b"&& echo ") \
                        and b.isalnum():
                    b = b"A" if b != b"A" else b"B"
                    self.corrupt_next_chunk = False
                if self.drop_after is not None and received > self.drop_after:
                    self.drop_after = None
                    self.drops += 1
                    self._hang_up()  # mid-line: the partial line stays in the tty
                    return stage == "shell"
                if b == b"\x15":
                    self._line = b""
                    continue
                if self.echo and stage != "password":
                    self._to_operator(b)
                if b != b"\n":
                    self._line += b
                    continue
                text, self._line = self._line.rstrip(b"\r"), b""
                if stage == "login":
                    if text == self.user.encode():
                        stage = "password"
                        self._to_operator(b"Password: ")
                    elif text:
                        self._to_operator(b"\r\nLogin incorrect\r\nfake-board login: ")
                    else:
                        self._to_operator(b"\r\nfake-board login: ")
                elif stage == "password":
                    if text == self.password.encode():
                        stage = "shell"
                        self._to_operator(b"\r\n# ")
                    else:
                        stage = "login"
                        self._to_operator(b"\r\nLogin incorrect\r\nfake-board login: ")
                else:
                    assert self.shell.stdin is not None
                    self.shell.stdin.write(text + b"\n")
                    self.shell.stdin.flush()
