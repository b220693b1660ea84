"""SecAgg+'s sparse neighbour graph: a Harary graph over a seeded random order.

Bell et al. (CCS 2020) replace SecAgg's complete graph by a random k-regular
graph: each device shares its secrets with, and masks against, only its k
neighbours. Here the devices are put in a random order drawn from a seed that
every participant can recompute (the round's ticket nonce), and each is
joined to the k/2 devices on either side of it in that circular order
(the Harary graph H(k, n)). With k >= n - 1 it is the complete graph, i.e.
plain SecAgg.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LABEL = b"edge/v1 secagg order\x00"


def _order(devices: Sequence[bytes], seed: bytes) -> list[bytes]:
    """A uniformly random permutation of ``devices`` drawn from ``seed`` (Fisher-Yates)."""
    items = sorted(devices)
    counter = 0

    def below(n: int) -> int:
        nonlocal counter
        limit = (1 << 64) - (1 << 64) % n  # rejection keeps the draw unbiased
        while True:
            block = hashlib.sha256(LABEL + seed + counter.to_bytes(8, "little")).digest()
            counter += 1
            value = int.from_bytes(block[:8], "little")
            if value < limit:
                return value % n

    for i in range(len(items) - 1, 0, -1):
        j = below(i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def neighbours(devices: Sequence[bytes], k: int, seed: bytes) -> dict[bytes, list[bytes]]:
    """Each device's k neighbours (sorted), for an even k >= 2 or k >= n - 1."""
    n = len(devices)
    if len(set(devices)) != n:
        raise ValueError("devices must be distinct")
    if n < 2:
        raise ValueError("secure aggregation needs at least two devices")
    if k >= n - 1:
        return {d: sorted(e for e in devices if e != d) for d in devices}
    if k < 2 or k % 2:
        raise ValueError(f"k must be even and >= 2 (or >= n - 1), got {k}")
    order = _order(devices, seed)
    half = k // 2
    return {d: sorted(order[(i + s) % n] for s in range(-half, half + 1) if s)
            for i, d in enumerate(order)}
