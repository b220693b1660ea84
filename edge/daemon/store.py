"""A bounded on-disk sample store (SQLite) that survives restarts and evicts the oldest."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

import numpy as np

from edge.errors import Malformed, StateError
from edge.state_files import open_sqlite, sqlite_errors

MAX_FEATURES = 65_536
MAX_LABEL = 2**32 - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label INTEGER NOT NULL,
    features BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ingested (name TEXT PRIMARY KEY, stamp TEXT NOT NULL);
"""


def check_sample(features: np.ndarray, label: int) -> np.ndarray:
    """The features as a flat little-endian float32 vector; Malformed if unusable."""
    x = np.asarray(features, dtype="<f4").reshape(-1)
    if not 1 <= x.size <= MAX_FEATURES:
        raise Malformed(f"a sample has {x.size} features, expected 1..{MAX_FEATURES}")
    if not np.isfinite(x).all():
        raise Malformed("a sample has a non-finite feature (nan or inf)")
    if isinstance(label, bool) or not 0 <= int(label) <= MAX_LABEL or int(label) != label:
        raise Malformed(f"label {label!r} is not an integer 0..{MAX_LABEL}")
    return x


class SampleStore:
    """Samples (float32 features, integer label) kept in ``dir/samples.sqlite``."""

    def __init__(self, directory: Path, max_samples: int) -> None:
        """Open (creating) the store; keeps at most ``max_samples`` newest samples."""
        if max_samples < 1:
            raise ValueError("max_samples must be >= 1")
        self.path = Path(directory) / "samples.sqlite"
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._what = f"sample store {self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(f"{self._what}: {exc}") from None
        self._db = open_sqlite(self.path, self._what, schema=_SCHEMA, synchronous="NORMAL")
        try:
            with self._lock, self._errors():
                self._evict()
        except StateError:
            self._db.close()
            raise

    def _errors(self) -> AbstractContextManager[None]:
        """SQLite's failures (disk full, read-only, file replaced) as one StateError line."""
        return sqlite_errors(self._what)

    @property
    def dim(self) -> int | None:
        """The feature count every sample has (fixed by the first sample), or None."""
        with self._errors():
            row = self._db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        return int(row[0]) if row else None

    def add(self, features: np.ndarray, label: int) -> None:
        """Append one sample; Malformed if it differs in size from the stored ones."""
        self.add_many([(features, label)])

    def add_many(self, samples: Iterable[tuple[np.ndarray, int]]) -> int:
        """Append samples in one transaction, then evict the oldest; returns the count."""
        rows = [(check_sample(x, y), int(y)) for x, y in samples]
        if not rows:
            return 0
        with self._lock, self._errors():
            dim = self.dim
            sizes = {x.size for x, _ in rows}
            if len(sizes) != 1 or (dim is not None and dim not in sizes):
                raise Malformed(f"samples have {sorted(sizes)} features, the store holds "
                                f"{dim if dim is not None else 'mixed sizes'}")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if dim is None:
                    self._db.execute("INSERT INTO meta VALUES ('dim', ?)", (str(rows[0][0].size),))
                self._db.executemany("INSERT INTO samples (label, features) VALUES (?, ?)",
                                     [(y, x.tobytes()) for x, y in rows])
                self._evict()
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def _evict(self) -> None:
        """Delete all but the newest ``max_samples`` rows (caller holds the lock)."""
        self._db.execute(
            "DELETE FROM samples WHERE id <= (SELECT MAX(id) FROM samples) - ?",
            (self.max_samples,))

    def __len__(self) -> int:
        with self._errors():
            return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def revision(self) -> tuple[int, int]:
        """(newest sample id, sample count): changes whenever a sample is added or evicted
        (ids only grow), so equal revisions hold the same samples."""
        with self._lock, self._errors():
            newest, count = self._db.execute("SELECT MAX(id), COUNT(*) FROM samples").fetchone()
        return int(newest or 0), int(count)

    def latest(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The newest ``limit`` samples, oldest first: (n x dim float32, n uint32)."""
        with self._lock, self._errors():
            rows = self._db.execute(
                "SELECT label, features FROM samples ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
            dim = self.dim or 0
        rows.reverse()
        x = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        y = np.fromiter((r[0] for r in rows), dtype=np.uint32, count=len(rows))
        return x.astype(np.float32), y

    def was_ingested(self, name: str, stamp: str) -> bool:
        """True if ``name`` was ingested with this stamp (size and mtime) already."""
        with self._errors():
            row = self._db.execute("SELECT stamp FROM ingested WHERE name = ?",
                                   (name,)).fetchone()
        return row is not None and row[0] == stamp

    def mark_ingested(self, name: str, stamp: str) -> None:
        """Record that a file was ingested, so a restart does not add it twice."""
        with self._lock, self._errors():
            self._db.execute("INSERT OR REPLACE INTO ingested VALUES (?, ?)", (name, stamp))

    def close(self) -> None:
        """Close the database; idempotent."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
