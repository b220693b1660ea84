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

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.errors import StateError


def sync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data`` (new files get ``mode``) so a crash leaves the old
    bytes or the new ones; OSError if the disk refuses, with nothing left behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            view = memoryview(data)
            while view:  # os.write may write part of the buffer
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


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
