"""The aggregator's SQLite state: devices, rounds, accepted updates, running sums, checkpoints.

Every effect of a batch of MQTT messages is one transaction (``with store.transaction():``),
so the messages can be acknowledged once the transaction has committed. Accepted updates are
committed in groups (``add_updates``): the update rows and the round's running sum after
them go in the same transaction, so the stored sum is always the sum of exactly the stored
updates, and a restart resumes from it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import StateError
from edge.formats.manifest import PACKAGE_ID_SIZE
from edge.state_files import open_sqlite, sqlite_errors

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id BLOB PRIMARY KEY, record BLOB NOT NULL, enrolled_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round_id INTEGER PRIMARY KEY, model_version INTEGER NOT NULL, nonce BLOB NOT NULL,
    issued_at INTEGER NOT NULL, deadline INTEGER NOT NULL, update_clip REAL NOT NULL,
    sampling_rate REAL NOT NULL, central_noise REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'closed', 'failed')),
    opened REAL NOT NULL, closed REAL, sum BLOB, weight REAL NOT NULL DEFAULT 0,
    count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tickets (
    round_id INTEGER NOT NULL REFERENCES rounds(round_id), device_id BLOB NOT NULL,
    ticket BLOB NOT NULL, PRIMARY KEY (round_id, device_id));
CREATE TABLE IF NOT EXISTS updates (
    round_id INTEGER NOT NULL REFERENCES rounds(round_id), device_id BLOB NOT NULL,
    update_id BLOB NOT NULL, example_count INTEGER NOT NULL, received REAL NOT NULL,
    PRIMARY KEY (round_id, device_id));
CREATE TABLE IF NOT EXISTS checkpoints (
    version INTEGER PRIMARY KEY, round_id INTEGER, head_in INTEGER NOT NULL,
    head_out INTEGER NOT NULL, W BLOB NOT NULL, b BLOB NOT NULL, created REAL NOT NULL,
    recipients TEXT, published REAL, package_id BLOB);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, round_id INTEGER,
    device_id BLOB, topic TEXT NOT NULL, refusal TEXT NOT NULL, reason TEXT NOT NULL,
    update_id BLOB);
CREATE TABLE IF NOT EXISTS metrics (round_id INTEGER PRIMARY KEY, row TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_round_topic ON audit (round_id, topic);
CREATE TABLE IF NOT EXISTS presence (
    device_id BLOB PRIMARY KEY, status TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS update_steps (
    round_id INTEGER NOT NULL, device_id BLOB NOT NULL, steps INTEGER NOT NULL,
    total_steps INTEGER NOT NULL, noise_multiplier REAL NOT NULL,
    PRIMARY KEY (round_id, device_id));
CREATE TABLE IF NOT EXISTS skips (
    round_id INTEGER NOT NULL, device_id BLOB NOT NULL, refusal TEXT NOT NULL,
    reason TEXT NOT NULL, model_version INTEGER NOT NULL, report BLOB NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (round_id, device_id));
CREATE TABLE IF NOT EXISTS revoked (device_id BLOB PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS device_names (device_id BLOB PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS refusal_counts (
    round_id INTEGER NOT NULL, topic TEXT NOT NULL, refusal TEXT NOT NULL,
    count INTEGER NOT NULL, last_at REAL NOT NULL, PRIMARY KEY (round_id, topic, refusal));
CREATE TABLE IF NOT EXISTS secagg_rounds (
    round_id INTEGER PRIMARY KEY, certificates TEXT NOT NULL, stage TEXT NOT NULL,
    deadline REAL NOT NULL, ended TEXT NOT NULL, masked_sum BLOB);
CREATE TABLE IF NOT EXISTS secagg_messages (
    round_id INTEGER NOT NULL, stage TEXT NOT NULL, device_id BLOB NOT NULL,
    payload BLOB NOT NULL, PRIMARY KEY (round_id, stage, device_id));
CREATE TABLE IF NOT EXISTS secagg_masked (
    round_id INTEGER NOT NULL, device_id BLOB NOT NULL, update_id BLOB NOT NULL,
    PRIMARY KEY (round_id, device_id));
CREATE TABLE IF NOT EXISTS worker_refusals (
    round_id INTEGER NOT NULL, worker TEXT NOT NULL, recorded INTEGER NOT NULL,
    PRIMARY KEY (round_id, worker));
"""


@dataclass(frozen=True)
class OpenRound:
    """The state of a round as stored; ``sum`` is float64 or None before the first update."""

    round_id: int
    model_version: int
    nonce: bytes
    issued_at: int
    deadline: int
    update_clip: float
    sampling_rate: float
    central_noise: float
    state: str
    opened: float
    sum: np.ndarray | None
    weight: float
    count: int


@dataclass(frozen=True)
class SecAggRecord:
    """What is durable of a secagg round: the cohort's certificates, the stage reached, its
    deadline and the stages' end times, every device message taken (stage, device id,
    payload; in order), and the masked sum mod 2^32 with its contributors."""

    certificates: dict[bytes, bytes]
    stage: str
    deadline: float
    ended: dict[str, float]
    messages: list[tuple[str, bytes, bytes]]
    masked_sum: np.ndarray | None
    masked: dict[bytes, bytes]


@dataclass(frozen=True)
class Checkpoint:
    """One model version: the head W (I x O) and b (O)."""

    version: int
    round_id: int | None
    W: np.ndarray
    b: np.ndarray
    recipients: tuple[str, ...] | None
    published: float | None
    package_id: bytes  # of the package that carries this version; tickets name it


class Store:
    """The SQLite database of one aggregator (rollback journal, synchronous FULL: durable at
    commit). Every SQLite failure is a StateError naming the file, never a traceback."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._what = f"aggregator state {self.path}"
        self._db = open_sqlite(self.path, self._what, schema=SCHEMA, synchronous="FULL",
                               timeout=30.0)
        with self._errors():
            self._db.execute("PRAGMA foreign_keys=ON")
            _migrate(self._db)

    def _errors(self) -> AbstractContextManager[None]:
        """SQLite's errors as a StateError naming this database (edge.state_files)."""
        return sqlite_errors(self._what)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: committed on success, rolled back on any exception."""
        with self._lock:
            with self._errors():
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException as exc:
                # A failed statement may have rolled the transaction back already.
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StateError(f"{self._what}: {exc}") from None
                raise
            with self._errors():
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock, self._errors():
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock, self._errors():
            return self._db.execute(sql, args).fetchall()

    # devices
    def add_device(self, db: sqlite3.Connection, device_id: bytes, record: bytes) -> bool:
        """Insert a device record; False if that device was enrolled already."""
        cur = db.execute("INSERT OR IGNORE INTO devices VALUES (?, ?, ?)",
                         (device_id, record, time.time()))
        return cur.rowcount == 1

    def device_records(self) -> list[bytes]:
        """Every enrolled device's record, in device-id order."""
        return [bytes(r[0]) for r in self._all("SELECT record FROM devices ORDER BY device_id")]

    def set_name(self, db: sqlite3.Connection, device_id: bytes, name: str) -> None:
        """Give a device its human name (kept after a revocation, so old rows still read)."""
        db.execute("INSERT INTO device_names VALUES (?, ?) ON CONFLICT (device_id) DO UPDATE "
                   "SET name = excluded.name", (device_id, name))

    def names(self) -> dict[bytes, str]:
        """The human names given at enrollment, by device id."""
        return {bytes(d): str(n) for d, n in self._all("SELECT device_id, name FROM device_names")}

    def remove_device(self, db: sqlite3.Connection, device_id: bytes) -> bool:
        """Remove an enrolled device (revocation); False if it was not enrolled."""
        db.execute("DELETE FROM presence WHERE device_id = ?", (device_id,))
        return db.execute("DELETE FROM devices WHERE device_id = ?",
                          (device_id,)).rowcount == 1

    def set_presence(self, db: sqlite3.Connection, device_id: bytes, status: str,
                     at: float) -> None:
        """Record a device's last announced presence ('online' or 'offline')."""
        db.execute("INSERT INTO presence VALUES (?, ?, ?) ON CONFLICT (device_id) DO UPDATE "
                   "SET status = excluded.status, at = excluded.at", (device_id, status, at))

    def presence(self) -> dict[bytes, tuple[str, float]]:
        """Last announced presence of every device that announced one: (status, time)."""
        return {bytes(d): (str(s), float(at))
                for d, s, at in self._all("SELECT device_id, status, at FROM presence")}

    def unenrolled_presence(self) -> list[dict[str, Any]]:
        """Devices that announced their presence but are not enrolled (never, or revoked)."""
        return [{"device": bytes(d).hex(), "presence": str(s), "since": float(at),
                 "revoked": r is not None}
                for d, s, at, r in self._all(
                    "SELECT p.device_id, p.status, p.at, v.at FROM presence p "
                    "LEFT JOIN revoked v ON v.device_id = p.device_id "
                    "WHERE p.device_id NOT IN (SELECT device_id FROM devices) "
                    "ORDER BY p.device_id")]

    def revoke(self, db: sqlite3.Connection, device_id: bytes) -> None:
        """Block a device id: enrolling its record again is refused (``readmit`` undoes it)."""
        db.execute("INSERT OR IGNORE INTO revoked VALUES (?, ?)", (device_id, time.time()))

    def revoked_at(self, device_id: bytes) -> float | None:
        """When a device was revoked, or None."""
        row = self._one("SELECT at FROM revoked WHERE device_id = ?", (device_id,))
        return None if row is None else float(row[0])

    def readmit(self, db: sqlite3.Connection, device_id: bytes) -> bool:
        """Lift a revocation; False if the device was not revoked."""
        return db.execute("DELETE FROM revoked WHERE device_id = ?",
                          (device_id,)).rowcount == 1

    # skip reports
    def add_skip(self, db: sqlite3.Connection, round_id: int, device_id: bytes, refusal: str,
                 reason: str, model_version: int, report: bytes) -> bool:
        """Record a device's verified skip report of a round; False if it had one already."""
        return db.execute("INSERT OR IGNORE INTO skips VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (round_id, device_id, refusal, reason, model_version, report,
                           time.time())).rowcount == 1

    def skipped(self, round_id: int) -> set[bytes]:
        """Devices that reported skipping a round."""
        return {bytes(d) for (d,) in self._all("SELECT device_id FROM skips WHERE round_id = ?",
                                               (round_id,))}

    def skips(self, round_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Skip reports, newest first (of one round, or of all)."""
        where, args = ("WHERE round_id = ?", (round_id, limit)) if round_id else ("", (limit,))
        return [{"round": int(r), "device": bytes(d).hex(), "refusal": c, "reason": why,
                 "at": float(at)}
                for r, d, c, why, at in self._all(
                    f"SELECT round_id, device_id, refusal, reason, at FROM skips {where} "
                    "ORDER BY round_id DESC, device_id LIMIT ?", args)]

    def skip_counts(self, round_id: int) -> dict[str, int]:
        """Skip reports of a round by refusal class."""
        return {str(c): int(n) for c, n in self._all(
            "SELECT refusal, count(*) FROM skips WHERE round_id = ? GROUP BY refusal",
            (round_id,))}

    def device_count(self) -> int:
        """The number of enrolled devices."""
        return int(self._one("SELECT count(*) FROM devices")[0])

    # rounds
    def last_round_id(self) -> int:
        """The highest round id ever opened (0 before the first round)."""
        return int(self._one("SELECT coalesce(max(round_id), 0) FROM rounds")[0])

    def open_round(self) -> OpenRound | None:
        """The open round, if any."""
        row = self._one("SELECT * FROM rounds WHERE state = 'open' ORDER BY round_id DESC")
        return _round(row) if row else None

    def get_round(self, round_id: int) -> OpenRound | None:
        """A round by id."""
        row = self._one("SELECT * FROM rounds WHERE round_id = ?", (round_id,))
        return _round(row) if row else None

    def insert_round(self, db: sqlite3.Connection, r: OpenRound,
                     tickets: dict[bytes, bytes]) -> None:
        """Record a new open round and its tickets."""
        db.execute("INSERT INTO rounds (round_id, model_version, nonce, issued_at, deadline, "
                   "update_clip, sampling_rate, central_noise, state, opened) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
                   (r.round_id, r.model_version, r.nonce, r.issued_at, r.deadline,
                    r.update_clip, r.sampling_rate, r.central_noise, r.opened))
        db.executemany("INSERT INTO tickets VALUES (?, ?, ?)",
                       [(r.round_id, d, t) for d, t in tickets.items()])

    def tickets(self, round_id: int) -> dict[bytes, bytes]:
        """The tickets of a round by device id (its cohort)."""
        rows = self._all("SELECT device_id, ticket FROM tickets WHERE round_id = ?", (round_id,))
        return {bytes(d): bytes(t) for d, t in rows}

    def accepted(self, round_id: int) -> dict[bytes, bytes]:
        """Accepted update ids of a round by device id."""
        rows = self._all("SELECT device_id, update_id FROM updates WHERE round_id = ?",
                         (round_id,))
        return {bytes(d): bytes(u) for d, u in rows}

    def add_updates(self, db: sqlite3.Connection, round_id: int,
                    updates: list[tuple[bytes, bytes, int]], new_sum: np.ndarray,
                    new_weight: float) -> None:
        """Record a batch of accepted updates, (device id, update id, example count) each, and
        the round's running sum with them, in ``db``'s transaction (group commit: the 800 KB
        sum is written once per batch; IntegrityError if a device was counted already)."""
        now = time.time()
        db.executemany("INSERT INTO updates VALUES (?, ?, ?, ?, ?)",
                       [(round_id, d, u, n, now) for d, u, n in updates])
        cur = db.execute("UPDATE rounds SET sum = ?, weight = ?, count = count + ? "
                         "WHERE round_id = ? AND state = 'open'",
                         (np.ascontiguousarray(new_sum, dtype="<f8").tobytes(), new_weight,
                          len(updates), round_id))
        if cur.rowcount != 1:
            raise StateError(f"{self._what}: round {round_id} is not open; its updates are "
                             "not recorded")

    def add_update_steps(self, db: sqlite3.Connection, round_id: int,
                         rows: list[tuple[bytes, int, int, float]]) -> None:
        """Record the DP-SGD steps accepted updates say their devices spent, (device id,
        steps, total steps, noise multiplier) each (for the views), in ``db``'s transaction."""
        db.executemany("INSERT INTO update_steps VALUES (?, ?, ?, ?, ?)",
                       [(round_id, *row) for row in rows])

    # secure aggregation (docs/secagg.md, "Crash safety")
    def add_secagg_round(self, db: sqlite3.Connection, round_id: int,
                         certificates: dict[bytes, bytes], deadline: float) -> None:
        """Record a new secagg round at its advert stage, with its cohort's certificates."""
        certs = json.dumps({d.hex(): c.hex() for d, c in sorted(certificates.items())})
        db.execute("INSERT INTO secagg_rounds VALUES (?, ?, 'advert', ?, '{}', NULL)",
                   (round_id, certs, deadline))

    def secagg_round(self, round_id: int) -> SecAggRecord | None:
        """The durable record of a secagg round, or None (opened by an older release)."""
        row = self._one("SELECT certificates, stage, deadline, ended, masked_sum FROM "
                        "secagg_rounds WHERE round_id = ?", (round_id,))
        if row is None:
            return None
        certs, stage, deadline, ended, blob = row
        messages = [(str(st), bytes(d), bytes(p)) for st, d, p in self._all(
            "SELECT stage, device_id, payload FROM secagg_messages WHERE round_id = ? "
            "ORDER BY rowid", (round_id,))]
        masked = {bytes(d): bytes(u) for d, u in self._all(
            "SELECT device_id, update_id FROM secagg_masked WHERE round_id = ?", (round_id,))}
        return SecAggRecord(
            {bytes.fromhex(d): bytes.fromhex(c) for d, c in json.loads(certs).items()},
            str(stage), float(deadline), {str(k): float(v) for k, v in json.loads(ended).items()},
            messages, None if blob is None else np.frombuffer(blob, dtype="<u4").copy(), masked)

    def add_secagg_messages(self, db: sqlite3.Connection, round_id: int,
                            rows: list[tuple[str, bytes, bytes]]) -> None:
        """Record taken device messages, (stage, device id, payload) each; one per device and
        stage (a redelivered copy of a recorded one changes nothing)."""
        db.executemany("INSERT OR IGNORE INTO secagg_messages VALUES (?, ?, ?, ?)",
                       [(round_id, st, d, p) for st, d, p in rows])

    def set_secagg_masked(self, db: sqlite3.Connection, round_id: int, total: np.ndarray,
                          contributors: dict[bytes, bytes], *, replace: bool) -> None:
        """Record the round's masked sum mod 2^32 and the devices in it (device id -> update
        id): ``contributors`` are added to the recorded ones, or replace them (a root's
        newest combination of its workers' sums)."""
        if replace:
            db.execute("DELETE FROM secagg_masked WHERE round_id = ?", (round_id,))
        db.executemany("INSERT INTO secagg_masked VALUES (?, ?, ?)",
                       [(round_id, d, u) for d, u in contributors.items()])
        cur = db.execute("UPDATE secagg_rounds SET masked_sum = ? WHERE round_id = ?",
                         (np.ascontiguousarray(total, dtype="<u4").tobytes(), round_id))
        if cur.rowcount != 1:
            raise StateError(f"{self._what}: secagg round {round_id} is not recorded")

    def set_secagg_stage(self, db: sqlite3.Connection, round_id: int, stage: str,
                         deadline: float, ended: dict[str, float]) -> None:
        """Record the stage a secagg round reached (before its directive goes out)."""
        db.execute("UPDATE secagg_rounds SET stage = ?, deadline = ?, ended = ? "
                   "WHERE round_id = ?", (stage, deadline, json.dumps(ended), round_id))

    def forget_secagg_round(self, db: sqlite3.Connection, round_id: int) -> None:
        """Delete a finished secagg round's record (messages, masked sum): only an open round
        is ever resumed, and none of it should outlive its round."""
        for table in ("secagg_messages", "secagg_masked", "secagg_rounds"):
            db.execute(f"DELETE FROM {table} WHERE round_id = ?", (round_id,))

    # a root's workers
    def worker_refusals_recorded(self, round_id: int) -> dict[str, int]:
        """How many of each worker's named refusals of a round are in the audit table."""
        return {str(w): int(n) for w, n in self._all(
            "SELECT worker, recorded FROM worker_refusals WHERE round_id = ?", (round_id,))}

    def set_worker_refusals(self, db: sqlite3.Connection, round_id: int, worker: str,
                            recorded: int) -> None:
        """Record how many of a worker's named refusals of a round are audited (with them)."""
        db.execute("INSERT INTO worker_refusals VALUES (?, ?, ?) ON CONFLICT (round_id, worker) "
                   "DO UPDATE SET recorded = excluded.recorded", (round_id, worker, recorded))

    def device_activity(self) -> list[dict[str, Any]]:
        """Per enrolled device: enrollment, tickets, accepted updates, steps, last refusal."""
        rows = self._all(
            "SELECT d.device_id, d.enrolled_at, "
            "(SELECT count(*) FROM tickets t WHERE t.device_id = d.device_id), "
            "(SELECT count(*) FROM updates u WHERE u.device_id = d.device_id), "
            "(SELECT max(received) FROM updates u WHERE u.device_id = d.device_id), "
            "(SELECT max(round_id) FROM updates u WHERE u.device_id = d.device_id), "
            "(SELECT total_steps FROM update_steps s WHERE s.device_id = d.device_id "
            " ORDER BY round_id DESC LIMIT 1), "
            "(SELECT json_array(a.at, a.round_id, a.refusal, a.reason) FROM audit a "
            " WHERE a.device_id = d.device_id ORDER BY a.id DESC LIMIT 1), "
            "(SELECT json_array(p.status, p.at) FROM presence p "
            " WHERE p.device_id = d.device_id), "
            "(SELECT json_array(k.round_id, k.refusal, k.reason, k.at) FROM skips k "
            " WHERE k.device_id = d.device_id ORDER BY k.round_id DESC LIMIT 1), "
            "(SELECT count(*) FROM skips k WHERE k.device_id = d.device_id), "
            "(SELECT n.name FROM device_names n WHERE n.device_id = d.device_id) "
            "FROM devices d ORDER BY d.device_id")
        out = []
        for (dev, enrolled, tickets, joined, seen, last_round, steps, refusal, pres, skip,
             skipped, name) in rows:
            last = json.loads(refusal) if refusal else None
            status, since = json.loads(pres) if pres else (None, None)
            out.append({
                "presence": status, "presence_since": since,
                "device": bytes(dev).hex(), "name": name, "enrolled_at": enrolled,
                "tickets": int(tickets),
                "rounds_joined": int(joined), "last_update_at": seen,
                "last_round": last_round, "steps_spent": steps,
                "last_refusal": None if last is None else {
                    "at": last[0], "round": last[1], "refusal": last[2], "reason": last[3]},
                "rounds_skipped": int(skipped),
                "last_skip": None if skip is None else dict(zip(
                    ("round", "refusal", "reason", "at"), json.loads(skip), strict=True))})
        return out

    def device_counts(self) -> list[tuple[str, str | None, int, int]]:
        """Per enrolled device: (hex id, name, rounds joined, rounds skipped), one pass over
        each table (the metrics snapshot reads it every few seconds)."""
        joined = dict(self._all("SELECT device_id, count(*) FROM updates GROUP BY device_id"))
        skipped = dict(self._all("SELECT device_id, count(*) FROM skips GROUP BY device_id"))
        rows = self._all("SELECT d.device_id, n.name FROM devices d LEFT JOIN device_names n "
                         "ON n.device_id = d.device_id ORDER BY d.device_id")
        return [(bytes(d).hex(), name, int(joined.get(d, 0)), int(skipped.get(d, 0)))
                for d, name in rows]

    def steps_by_round(self) -> list[tuple[int, str, int]]:
        """(round, device hex, total steps spent) of every accepted update, by round."""
        return [(int(r), bytes(d).hex(), int(t)) for r, d, t in self._all(
            "SELECT round_id, device_id, total_steps FROM update_steps "
            "ORDER BY round_id, device_id")]

    def latest_steps(self) -> dict[bytes, int]:
        """Each device's total DP-SGD steps as its newest accepted update reports them."""
        return {bytes(d): int(t) for d, t in self._all(
            "SELECT device_id, total_steps FROM update_steps s WHERE round_id = "
            "(SELECT max(round_id) FROM update_steps t WHERE t.device_id = s.device_id)")}

    def round_times(self) -> dict[int, tuple[float, float | None]]:
        """(opened, closed) Unix times of every round, for rows written before they were kept."""
        return {int(r): (float(o), c) for r, o, c in self._all(
            "SELECT round_id, opened, closed FROM rounds")}

    def set_published_noise(self, db: sqlite3.Connection, round_id: int,
                            multiplier: float) -> None:
        """Record the noise multiplier the round's published model actually carries (secure
        aggregation with distributed noise: it depends on the survivors), which
        ``round_privacy`` then reports in the central-noise column."""
        db.execute("UPDATE rounds SET central_noise = ? WHERE round_id = ?",
                   (float(multiplier), round_id))

    def finish_round(self, db: sqlite3.Connection, round_id: int, state: str,
                     metrics: dict[str, Any]) -> None:
        """Close a round as ``closed`` or ``failed`` with its metrics row."""
        db.execute("UPDATE rounds SET state = ?, closed = ? WHERE round_id = ?",
                   (state, time.time(), round_id))
        db.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?)",
                   (round_id, json.dumps(metrics, sort_keys=True)))

    def round_privacy(self) -> list[tuple[float, float]]:
        """(sampling rate, central noise multiplier) of every closed round, for the accountant."""
        return [(float(q), float(z)) for q, z in self._all(
            "SELECT sampling_rate, central_noise FROM rounds WHERE state = 'closed'")]

    def round_counts(self) -> dict[str, int]:
        """Rounds by state."""
        rows = self._all("SELECT state, count(*) FROM rounds GROUP BY state")
        return {s: int(n) for s, n in rows}

    def metrics_rows(self) -> list[dict[str, Any]]:
        """Every stored metrics row in round order."""
        return [json.loads(r[0]) for r in self._all("SELECT row FROM metrics ORDER BY round_id")]

    # checkpoints
    def add_checkpoint(self, db: sqlite3.Connection, version: int, round_id: int | None,
                       W: np.ndarray, b: np.ndarray) -> None:
        """Record a new model version under a fresh random package id (tickets bind it)."""
        db.execute("INSERT INTO checkpoints (version, round_id, head_in, head_out, W, b, created,"
                   " package_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (version, round_id, W.shape[0], W.shape[1],
                    np.ascontiguousarray(W, dtype="<f4").tobytes(),
                    np.ascontiguousarray(b, dtype="<f4").tobytes(), time.time(),
                    os.urandom(PACKAGE_ID_SIZE)))

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest model version."""
        row = self._one("SELECT version, round_id, head_in, head_out, W, b, recipients, "
                        "published, package_id FROM checkpoints ORDER BY version DESC")
        if row is None:
            return None
        version, round_id, i, o, w, b, recipients, published, package_id = row
        W = np.frombuffer(w, dtype="<f4").reshape(i, o).astype(np.float32)
        return Checkpoint(version, round_id, W, np.frombuffer(b, dtype="<f4").astype(np.float32),
                          tuple(json.loads(recipients)) if recipients else None, published,
                          bytes(package_id))

    def mark_published(self, version: int, recipients: list[str]) -> None:
        """Record that a version was published as a retained package to these devices."""
        with self.transaction() as db:
            db.execute("UPDATE checkpoints SET published = ?, recipients = ? WHERE version = ?",
                       (time.time(), json.dumps(recipients), version))

    # audit
    def audit(self, db: sqlite3.Connection, *, round_id: int | None, device_id: bytes | None,
              topic: str, refusal: str, reason: str, update_id: bytes | None,
              at: float | None = None) -> None:
        """Record one refused message with its class and reason."""
        db.execute("INSERT INTO audit (at, round_id, device_id, topic, refusal, reason, "
                   "update_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (time.time() if at is None else at, round_id, device_id, topic, refusal,
                    reason, update_id))

    def add_refusal_counts(self, db: sqlite3.Connection,
                           counts: dict[tuple[int, str, str], tuple[int, float]]) -> None:
        """Add refusals counted without an audit row: (round, topic, class) -> (n, last)."""
        db.executemany(
            "INSERT INTO refusal_counts VALUES (?, ?, ?, ?, ?) ON CONFLICT "
            "(round_id, topic, refusal) DO UPDATE SET count = count + excluded.count, "
            "last_at = max(last_at, excluded.last_at)",
            [(r, t, c, n, at) for (r, t, c), (n, at) in counts.items()])

    def audit_row_count(self, round_id: int | None, topic: str | None = None) -> int:
        """Audit rows stored for a round (0 = no round), of one topic or of all."""
        args: tuple[Any, ...]
        if round_id:
            sql, args = "SELECT count(*) FROM audit WHERE round_id = ?", (round_id,)
        else:
            sql, args = "SELECT count(*) FROM audit WHERE round_id IS NULL", ()
        if topic is not None:
            sql, args = sql + " AND topic = ?", (*args, topic)
        return int(self._one(sql, args)[0])

    def refusals(self, round_id: int | None = None) -> dict[str, int]:
        """Refusals by class (audit rows plus those only counted), of one round or of all time."""
        if round_id is None:
            rows = self._all("SELECT refusal, count(*) FROM audit GROUP BY refusal UNION ALL "
                             "SELECT refusal, sum(count) FROM refusal_counts GROUP BY refusal")
        else:
            rows = self._all("SELECT refusal, count(*) FROM audit WHERE round_id = ? "
                             "GROUP BY refusal UNION ALL SELECT refusal, sum(count) FROM "
                             "refusal_counts WHERE round_id = ? GROUP BY refusal",
                             (round_id, round_id))
        out: dict[str, int] = {}
        for r, n in rows:
            out[r] = out.get(r, 0) + int(n)
        return out

    def audit_rows(self) -> list[dict[str, Any]]:
        """The whole audit log, oldest first."""
        rows = self._all("SELECT at, round_id, device_id, topic, refusal, reason FROM audit "
                         "ORDER BY id")
        return [{"at": at, "round": r, "device": d.hex() if d else None, "topic": t,
                 "refusal": c, "reason": why} for at, r, d, t, c, why in rows]

    def refusal_sources(self, limit: int = 100) -> list[dict[str, Any]]:
        """Refusals by (round, topic, class), most first: ``stored`` audit rows and ``counted``
        ones past the audit bound, whose sum is the exact number of refused messages."""
        rows = self._all(
            "SELECT round_id, topic, refusal, sum(stored), sum(counted), max(last_at) FROM ("
            "SELECT coalesce(round_id, 0) AS round_id, topic, refusal, 1 AS stored, "
            "0 AS counted, at AS last_at FROM audit UNION ALL SELECT round_id, topic, refusal, "
            "0, count, last_at FROM refusal_counts) GROUP BY round_id, topic, refusal "
            "ORDER BY sum(stored) + sum(counted) DESC, round_id, topic, refusal LIMIT ?",
            (limit,))
        return [{"round": r or None, "topic": t, "refusal": c, "stored": int(s),
                 "counted": int(n), "total": int(s) + int(n), "last_at": at}
                for r, t, c, s, n, at in rows]

    def metrics_lines(self) -> list[str]:
        """Every stored metrics row as its JSON text, in round order (the metrics file)."""
        return [str(r[0]) for r in self._all("SELECT row FROM metrics ORDER BY round_id")]


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a database of an older release up to SCHEMA (columns added since)."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(checkpoints)")}
    if "package_id" not in columns:
        # Before issue 15 tickets named only the version: give each stored version an id.
        db.execute("ALTER TABLE checkpoints ADD COLUMN package_id BLOB")
    db.execute(f"UPDATE checkpoints SET package_id = randomblob({PACKAGE_ID_SIZE}) "
               "WHERE package_id IS NULL")


def _round(row: Any) -> OpenRound:
    (round_id, version, nonce, issued, deadline, clip, q, z, state, opened, _closed, blob,
     weight, count) = row
    total = None if blob is None else np.frombuffer(blob, dtype="<f8").copy()
    return OpenRound(round_id, version, bytes(nonce), issued, deadline, clip, q, z, state,
                     opened, total, float(weight), int(count))
