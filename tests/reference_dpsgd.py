"""An independent numpy DP-SGD round as in docs/formats.md "Training and sealing" (tests).

Float64 throughout; the TA computes in its own precision, so comparisons use a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.tee_abi import Sampling

POISSON = Sampling.POISSON
FIXED = Sampling.FIXED


@dataclass(frozen=True)
class Round:
    """The ticket and policy values one round uses."""

    lr: float
    clip: float
    sigma: float
    update_clip: float
    epochs: int = 1
    batch: int = 1
    q: float = 1.0
    sampling: int = FIXED


def steps(r: Round, n: int) -> int:
    """T: ``E · ceil(1/q)`` (Poisson) or ``E · ceil(n/B)`` (fixed-size)."""
    if r.sampling == POISSON:
        return r.epochs * math.ceil(1.0 / float(np.float32(r.q)))
    return r.epochs * math.ceil(n / r.batch)


def clipped_gradients(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray,
                      clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Sum over the rows of x of the per-example gradients, each clipped to L2 norm ``clip``."""
    z = x @ w + b
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    e = p
    e[np.arange(len(y)), y] -= 1.0
    norms = np.sqrt((np.sum(x * x, axis=1) + 1.0) * np.sum(e * e, axis=1))
    scale = np.minimum(1.0, clip / np.maximum(norms, np.finfo(np.float64).tiny))
    es = e * scale[:, None]
    return x.T @ es, es.sum(axis=0)


def dpsgd_round(
    w0: np.ndarray,
    b0: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    r: Round,
    *,
    rng: np.random.Generator | None = None,
    noise: Callable[[tuple[int, ...]], np.ndarray] | None = None,
) -> np.ndarray:
    """Run one round; return the released delta (W row-major, then b), clipped to U."""
    rng = rng or np.random.default_rng(0)
    draw = noise or (lambda shape: rng.standard_normal(shape))
    w = w0.astype(np.float64).copy()
    b = b0.astype(np.float64).copy()
    xs = x.astype(np.float64)
    n = len(y)
    divisor = r.q * n if r.sampling == POISSON else float(r.batch)
    for _ in range(steps(r, n)):
        if r.sampling == POISSON:
            idx = np.flatnonzero(rng.random(n) < r.q)
        else:
            idx = rng.choice(n, size=r.batch, replace=False)
        gw, gb = clipped_gradients(w, b, xs[idx], y[idx], r.clip)
        if r.sigma > 0.0:
            gw = gw + r.sigma * r.clip * draw(gw.shape)
            gb = gb + r.sigma * r.clip * draw(gb.shape)
        w -= r.lr * gw / divisor
        b -= r.lr * gb / divisor
    delta = np.concatenate([(w - w0).reshape(-1), b - b0])
    norm = float(np.linalg.norm(delta))
    if norm > r.update_clip:
        delta *= r.update_clip / norm
    return delta
