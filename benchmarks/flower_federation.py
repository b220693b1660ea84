"""A Flower simulation round of N clients (64x10 softmax head on digits): run in Flower's venv.

Run by ``benchmarks/federation.py`` as ``.venv-flower/bin/python benchmarks/flower_federation.py
N ROUNDS SEED`` (``scripts/setup.sh --with-flower`` makes that virtualenv with
``flwr[simulation]``; its pins clash with ours). Each client holds 12 digits samples drawn like
the demo's resampled split (with replacement, its own Dirichlet(0.5) class mix) and trains the
head for 4 full-batch epochs, no DP, no checks; FedAvg over every client each round. Prints
one JSON line: the seconds of each round (the time between consecutive ``aggregate_fit``
calls; the first round also carries Ray's start-up and is reported apart).
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from typing import Any

import numpy as np
from flwr.client import NumPyClient
from flwr.common import ndarrays_to_parameters
from flwr.server import ServerConfig
from flwr.server.strategy import FedAvg
from flwr.simulation import start_simulation

FEATURES, CLASSES, SAMPLES, EPOCHS, LR = 64, 10, 12, 4, 1.0


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits if present, else a fixed random stand-in of the same shape
    (Flower's venv need not have scikit-learn; the round time does not depend on it)."""
    try:
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.random((1797, FEATURES), np.float32), rng.integers(0, CLASSES, 1797)


class HeadClient(NumPyClient):
    """Softmax regression on this client's samples, full-batch gradient descent."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.onehot = x, np.eye(CLASSES, dtype=np.float32)[y]

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]
            ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        w, b = (p.copy() for p in parameters)
        for _ in range(EPOCHS):
            z = self.x @ w + b
            p = np.exp(z - z.max(axis=1, keepdims=True))
            g = (p / p.sum(axis=1, keepdims=True) - self.onehot) / len(self.x)
            w -= LR * self.x.T @ g
            b -= LR * g.sum(axis=0)
        return [w, b], len(self.x), {}


class TimedFedAvg(FedAvg):
    """FedAvg that stamps each ``aggregate_fit``."""

    stamps: list[float]

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        out = super().aggregate_fit(server_round, results, failures)
        self.stamps.append(time.perf_counter())
        if failures:
            raise RuntimeError(f"round {server_round}: {len(failures)} clients failed")
        return out


def main() -> int:
    n, rounds, seed = (int(a) for a in sys.argv[1:4])
    logging.disable(logging.WARNING)
    x, y = digits()
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in range(CLASSES)]
    parts = []
    for _ in range(n):
        counts = rng.multinomial(SAMPLES, rng.dirichlet(np.full(CLASSES, 0.5)))
        parts.append(np.concatenate([rng.choice(by_class[c], k) for c, k in enumerate(counts)
                                     if k]))

    def client_fn(cid: str) -> Any:
        idx = parts[int(cid) % n]
        return HeadClient(x[idx], y[idx]).to_client()

    init = [np.zeros((FEATURES, CLASSES), np.float32), np.zeros(CLASSES, np.float32)]
    strategy = TimedFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n,
                           min_evaluate_clients=0, min_available_clients=n,
                           initial_parameters=ndarrays_to_parameters(init))
    strategy.stamps = []
    start = time.perf_counter()
    start_simulation(client_fn=client_fn, num_clients=n, config=ServerConfig(num_rounds=rounds),
                     strategy=strategy, client_resources={"num_cpus": 1},
                     ray_init_args={"include_dashboard": False, "num_cpus": 2,
                                    "log_to_driver": False})
    stamps = [start, *strategy.stamps]
    seconds = [b - a for a, b in itertools.pairwise(stamps)]
    print(json.dumps({"clients": n, "first_round_s": seconds[0], "rounds_s": seconds[1:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
