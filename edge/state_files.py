"""State kept on disk, written one way: durable file writes and SQLite databases.

Files that must survive a crash (a daemon's outbox, its MQTT session secret,
the aggregator's metrics file) are written to a temporary file, synced,
renamed over the old one and the folder synced, so a reader sees the old
bytes or the new ones, never a mix. SQLite state files use a rollback
journal and no memory map: WAL's wal-index (the ``-shm`` file) is shared
memory mapped from a file, and a page of it that cannot be backed any more
(truncated, or its file system gone bad) kills the process with SIGBUS
instead of failing a call. Every SQLite failure becomes a one-line
:class:`~edge.errors.StateError` naming the file.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from edge.errors import StateError


def sync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def durable_file(path: Path, *, mode: int, replace: bool = True) -> Iterator[BinaryIO]:
    """Yield a file whose bytes become ``path`` only when the block ends without an error:
    written to a temporary file beside it (created with ``mode``), synced, renamed and the
    folder synced, so a crash leaves the old bytes or the new ones. With ``replace=False``
    an existing ``path`` is kept and FileExistsError raised. OSError if the disk refuses,
    with nothing left behind."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)  # the umask must not widen or narrow a key's mode
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sync_dir(path.parent)


def write_durably(path: Path, data: bytes, *, mode: int, replace: bool = True) -> None:
    """Replace ``path`` with ``data`` through :func:`durable_file`."""
    with durable_file(path, mode=mode, replace=replace) as fh:
        fh.write(data)


def _link_no_clobber(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` exists (a hard link where supported)."""
    try:
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from exc
        os.replace(tmp, path)


@contextmanager
def sqlite_errors(what: str) -> Iterator[None]:
    """Turn SQLite's errors (disk full, read-only, not a database) into a StateError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StateError(f"{what}: {exc}") from None


def open_sqlite(path: Path, what: str, *, schema: str, synchronous: str,
                timeout: float = 5.0) -> sqlite3.Connection:
    """Open (creating) a state database: rollback journal, no mmap, ``schema`` applied."""
    with sqlite_errors(what):
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                             timeout=timeout)
        try:
            db.execute("PRAGMA mmap_size=0")
            db.execute("PRAGMA journal_mode=TRUNCATE").fetchone()
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.executescript(schema)
        except BaseException:
            db.close()
            raise
    return db
