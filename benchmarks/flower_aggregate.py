"""Flower's FedAvg ``aggregate()`` timed on deltas from a file: run in Flower's own virtualenv.

Run by ``benchmarks/aggregate.py`` as ``.venv-flower/bin/python benchmarks/flower_aggregate.py
DELTAS.npy COUNTS.npy MEAN_OUT.npy`` (``scripts/setup.sh --with-flower`` makes that
virtualenv: Flower's pins clash with ours). Imports numpy and flwr only; prints the seconds.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from flwr.server.strategy.aggregate import aggregate


def main() -> int:
    """Load the arrays, time one ``aggregate`` call, save the mean, print the seconds."""
    deltas_path, counts_path, out_path = sys.argv[1:4]
    deltas = np.load(deltas_path)
    counts = np.load(counts_path)
    results = [([d], int(n)) for d, n in zip(deltas, counts, strict=True)]
    start = time.perf_counter()
    out = aggregate(results)
    seconds = time.perf_counter() - start
    np.save(out_path, np.asarray(out[0]))
    print(f"{seconds:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
