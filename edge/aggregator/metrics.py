"""Per-round metrics: the RoundMetrics row, held-out accuracy of the head, the JSON lines file."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError
from edge.state_files import write_durably


@dataclass(frozen=True)
class RoundMetrics:
    """One closed round: who took part, what was refused, how good and how private the model is."""

    round: int
    participants: int
    refused: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # signed skip reports by class
    accuracy: float | None = None
    epsilon: float | None = None
    delta: float = 0.0
    seconds: float = 0.0
    model_version: int = 0
    failed: bool = False
    opened_at: float | None = None  # Unix times; absent from rows written before they were
    closed_at: float | None = None  # kept, so readers take them as optional
    # ε of the device that spent the most steps, under dp.device_policy (None without it)
    device_epsilon: float | None = None
    reason: str | None = None  # why a failed round failed, when it is not the deadline

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (infinite ε as null)."""
        row = asdict(self)
        for key in ("epsilon", "device_epsilon"):
            if row[key] is not None and not math.isfinite(row[key]):
                row[key] = None
        return row

    def describe(self) -> str:
        """One log line."""
        acc = "-" if self.accuracy is None else f"{self.accuracy:.4f}"
        eps = "-" if self.epsilon is None else f"{self.epsilon:.3g}"
        refused = ",".join(f"{k}={v}" for k, v in sorted(self.refused.items())) or "0"
        skipped = ",".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "0"
        state = ("failed" + (f" ({self.reason})" if self.reason else "")) if self.failed \
            else f"model v{self.model_version}"
        return (f"round {self.round}: {state}, {self.participants} participants, refused "
                f"{refused}, skipped {skipped}, accuracy {acc}, epsilon {eps} "
                f"(delta {self.delta:g}), {self.seconds:.2f} s")


class Holdout:
    """Held-out features (already through the public backbone) and labels."""

    def __init__(self, path: Path):
        try:
            with np.load(path, allow_pickle=False) as data:
                X = np.asarray(data["X"], dtype=np.float32)
                y = np.asarray(data["y"])
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"eval.holdout: {path} is not an npz with arrays X and y "
                              f"({exc})") from None
        if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
            raise ConfigError(f"eval.holdout: X {X.shape} and y {y.shape} must be (n, I) "
                              "and (n,) with n > 0")
        self.X = X
        self.y = y.astype(np.int64)

    def check_head(self, inputs: int, outputs: int) -> None:
        """ConfigError unless the rows fit a head of ``inputs`` x ``outputs``."""
        if self.X.shape[1] != inputs:
            raise ConfigError(f"eval.holdout: {self.X.shape[1]} features, the head takes "
                              f"{inputs}")
        if self.y.size and not (int(self.y.min()) >= 0 and int(self.y.max()) < outputs):
            raise ConfigError(f"eval.holdout: labels {int(self.y.min())}..{int(self.y.max())}, "
                              f"the head has {outputs} outputs")

    def accuracy(self, W: np.ndarray, b: np.ndarray) -> float:
        """Fraction of rows whose arg-max score x·W + b is the label."""
        if self.X.shape[1] != W.shape[0]:
            raise ConfigError(f"eval.holdout: {self.X.shape[1]} features, the head takes "
                              f"{W.shape[0]}")
        scores = self.X @ W + b
        return float(np.mean(np.argmax(scores, axis=1) == self.y))


def sync_jsonl(path: Path, lines: list[str]) -> int:
    """Make the metrics file hold exactly ``lines`` (the database's rows); returns rows added.

    The database is the source of truth and this is run at start and after every commit,
    so a row missed by a crash or a full disk is written by the next call. When the file is
    a clean prefix of the rows, the missing rows are appended in one write (and cut off
    again if that write fails, so a full disk leaves no torn line); anything else (a torn
    last line after a kill, a duplicate, a stray row) is replaced by a complete copy written
    to a temporary file and renamed over it, so a reader never sees a partial file.
    """
    want = "".join(line + "\n" for line in lines).encode("utf-8")
    try:
        have = path.read_bytes()
    except FileNotFoundError:
        have = b""
    if have == want:
        return 0
    if want.startswith(have) and (not have or have.endswith(b"\n")):
        tail = want[len(have):]
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            try:
                # os.write may write part of the buffer (full disk): loop, and on failure
                # cut the file back to the rows that were complete before.
                done = 0
                while done < len(tail):
                    done += os.write(fd, tail[done:])
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, len(have))
                raise
        finally:
            os.close(fd)
        return tail.count(b"\n")
    rows = set(want.split(b"\n"))
    stray = [line for line in have.split(b"\n")[:-1] if line not in rows]
    if stray:  # keep what the database does not know, rather than drop it silently
        with open(path.with_name(path.name + ".orphaned"), "ab") as fh:
            fh.write(b"".join(line + b"\n" for line in stray))
    write_durably(path, want, mode=0o644)
    have_rows = set(have.split(b"\n"))
    return sum(1 for line in lines if line.encode("utf-8") not in have_rows)
