"""What the QEMU federation tests share: the fleet's keys and the boards' data.

The host broker is conftest's `mosquitto` fixture; the guest reaches it through QEMU's one
guestfwd, on GUEST_BROKER_PORT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

HEAD_IN, HEAD_OUT = 8, 3  # config_mapping's initial head
SAMPLES = 24  # per device; fixed-size batches of 8: 3 steps a round
GUEST_BROKER_PORT = 1883


def pem_key(path: str) -> Ed25519PrivateKey:
    """An Ed25519 key from the aggregator config's PEM file."""
    key = load_pem_private_key(Path(path).read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def separable_samples(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Separable raw features: class k is centred on +2 in feature k."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, HEAD_OUT, SAMPLES)
    x = rng.normal(0, 0.5, (SAMPLES, HEAD_IN)).astype(np.float32)
    x[np.arange(SAMPLES), y] += 2.0
    return x, y.astype(np.int64)
