"""Per-round metrics: the RoundMetrics row, held-out accuracy of the head, the JSON lines file."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError


@dataclass(frozen=True)
class RoundMetrics:
    """One closed round: who took part, what was refused, how good and how private the model is."""

    round: int
    participants: int
    refused: dict[str, int] = field(default_factory=dict)
    accuracy: float | None = None
    epsilon: float | None = None
    delta: float = 0.0
    seconds: float = 0.0
    model_version: int = 0
    failed: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (infinite ε as null)."""
        row = asdict(self)
        if row["epsilon"] is not None and not math.isfinite(row["epsilon"]):
            row["epsilon"] = None
        return row

    def describe(self) -> str:
        """One log line."""
        acc = "-" if self.accuracy is None else f"{self.accuracy:.4f}"
        eps = "-" if self.epsilon is None else f"{self.epsilon:.3g}"
        refused = ",".join(f"{k}={v}" for k, v in sorted(self.refused.items())) or "0"
        state = "failed" if self.failed else f"model v{self.model_version}"
        return (f"round {self.round}: {state}, {self.participants} participants, refused "
                f"{refused}, accuracy {acc}, epsilon {eps} (delta {self.delta:g}), "
                f"{self.seconds:.2f} s")


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

    def accuracy(self, W: np.ndarray, b: np.ndarray) -> float:
        """Fraction of rows whose arg-max score x·W + b is the label."""
        if self.X.shape[1] != W.shape[0]:
            raise ConfigError(f"eval.holdout: {self.X.shape[1]} features, the head takes "
                              f"{W.shape[0]}")
        scores = self.X @ W + b
        return float(np.mean(np.argmax(scores, axis=1) == self.y))


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
