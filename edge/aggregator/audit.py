"""The refusal ledger: audit rows up to a bound per source and round, exact counts past it.

A refused message used to cost one fsync'd commit and one audit row, so a flood of garbage
from one client held up the round behind it. The ledger keeps refusals in memory until
``flush`` writes them all in one transaction; the caller acknowledges the messages only
after that commit, so a crash loses no count (the unacknowledged messages come again).
Past ``rows_per_source`` rows for one topic, or ``rows_per_round`` for the round, a refusal
is only counted (in ``refusal_counts``), so the audit log stays bounded and the count exact.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from .store import Store

# The topic under which refusals are counted once a round's audit bound is reached, for
# topics that had no audit row in that round.
OTHER_TOPICS = "*"


@dataclass(frozen=True)
class _Row:
    at: float
    round_id: int | None
    device_id: bytes | None
    topic: str
    refusal: str
    reason: str


class RefusalLedger:
    """Refusals waiting for one commit: rows within the bounds, counts past them."""

    def __init__(self, store: Store, *, rows_per_source: int, rows_per_round: int,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.rows_per_source = rows_per_source
        self.rows_per_round = rows_per_round
        self.clock = clock
        self._rows: list[_Row] = []
        self._counts: dict[tuple[int, str, str], tuple[int, float]] = {}
        # Audit rows stored or pending, per (round, topic) and per round; read from the
        # database once per key, so the bounds hold across restarts.
        self._per_source: dict[tuple[int, str], int] = {}
        self._per_round: dict[int, int] = {}

    @property
    def pending(self) -> int:
        """Refusals recorded but not yet committed."""
        return len(self._rows) + sum(n for n, _ in self._counts.values())

    def record(self, *, round_id: int | None, device_id: bytes | None, topic: str,
               refusal: str, reason: str) -> bool:
        """Note one refusal; True if it gets an audit row, False if it is only counted."""
        key = round_id or 0
        if key not in self._per_round:
            self._per_round[key] = self.store.audit_row_count(round_id)
        at = self.clock()
        if (key, topic) not in self._per_source:
            if self._per_round[key] >= self.rows_per_round:
                # Past the round's bound a new topic gets no counter of its own either, so a
                # client that varies its topic cannot grow the database (or this memory)
                # by a row per message: it is counted under OTHER_TOPICS.
                self._count(key, OTHER_TOPICS, refusal, at)
                return False
            self._per_source[(key, topic)] = self.store.audit_row_count(round_id, topic)
        stored = self._per_source[(key, topic)]
        if stored < self.rows_per_source and self._per_round[key] < self.rows_per_round:
            self._rows.append(_Row(at, round_id, device_id, topic, refusal, reason))
            self._per_source[(key, topic)] = stored + 1
            self._per_round[key] += 1
            return True
        self._count(key, topic, refusal, at)
        return False

    def _count(self, key: int, topic: str, refusal: str, at: float) -> None:
        n, _ = self._counts.get((key, topic, refusal), (0, at))
        self._counts[(key, topic, refusal)] = (n + 1, at)

    def flush(self, also: Callable[[sqlite3.Connection], None] | None = None) -> int:
        """Commit every pending refusal in one transaction, with what ``also`` writes in it;
        returns how many refusals."""
        rows, counts = self._rows, self._counts
        if not rows and not counts and also is None:
            return 0
        with self.store.transaction() as db:
            if also is not None:
                also(db)
            for r in rows:
                self.store.audit(db, round_id=r.round_id, device_id=r.device_id, topic=r.topic,
                                 refusal=r.refusal, reason=r.reason, update_id=None, at=r.at)
            if counts:
                self.store.add_refusal_counts(db, counts)
        self._rows, self._counts = [], {}
        # Forget the bounds of rounds other than the newest, so memory stays bounded too.
        if self._per_round:
            newest = max(self._per_round)
            self._per_round = {newest: self._per_round[newest]}
            self._per_source = {k: v for k, v in self._per_source.items() if k[0] == newest}
        return len(rows) + sum(n for n, _ in counts.values())
