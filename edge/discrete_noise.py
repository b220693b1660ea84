"""Discretize, then add discrete Gaussian noise: real-valued DP noise without float noise.

Kairouz, Liu and Steinke, "The Distributed Discrete Gaussian Mechanism for Federated
Learning with Secure Aggregation" (ICML 2021), conditional randomized rounding: a vector
of L2 norm at most ``clip`` is scaled to a grid of ``resolution`` steps per clip and
rounded coordinate by coordinate, up with probability equal to the fractional part, again
until its integer squared norm is within

    norm2_max = min(R² + d/4 + sqrt(2 ln(1/β))·(R + sqrt(d)/2), (R + sqrt(d))²),  β = 2^-10,

so the rounded vectors have L2 sensitivity sqrt(norm2_max), checked exactly in integers.
Integer noise N_Z(0, sigma_int²) with sigma_int² ≥ z²·norm2_max then gives an effective noise
multiplier sigma_int / sqrt(norm2_max) ≥ z on that sensitivity: the accountant is told z.
The noisy integer sum is the DP release; scaling it back is post-processing.
``ta/dpsgd.c`` does the same per example inside the TA (same bound, same β).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from edge import discrete_gaussian

RESOLUTION_LOG2 = 16
SQRT_2LN_INV_BETA = 3.7232  # sqrt(2 ln 2^10) rounded up, as in ta/dpsgd.c
ROUND_TRIES = 16  # each retry happens with probability <= β = 2^-10


def _uniform(count: int) -> np.ndarray:
    """Uniforms on [0, 1) with 53 bits each, from the OS CSPRNG."""
    words = np.frombuffer(os.urandom(8 * count), dtype=np.uint64)
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


def norm2_bound(resolution: float, dim: int) -> int:
    """KLS21's bound on the squared norm of a rounded vector, as an integer (rounded up)."""
    r, d = float(resolution), float(dim)
    bound = min(r * r + d / 4 + SQRT_2LN_INV_BETA * (r + math.sqrt(d) / 2),
                (r + math.sqrt(d)) ** 2)
    return int(bound) + 1


@dataclass(frozen=True)
class Grid:
    """Vectors of L2 norm ≤ ``clip`` in ``dim`` coordinates, on a grid of clip/resolution."""

    clip: float
    dim: int
    resolution: int = 2**RESOLUTION_LOG2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip must be a positive number, got {self.clip!r}")
        if self.dim < 1 or self.resolution < 1:
            raise ValueError("a grid needs at least one coordinate and one step")

    @property
    def norm2_max(self) -> int:
        return norm2_bound(self.resolution, self.dim)

    @property
    def step(self) -> float:
        """The real value of one grid unit."""
        return self.clip / self.resolution

    def round(self, vector: np.ndarray) -> np.ndarray:
        """``vector`` (norm ≤ clip) on the grid, conditionally randomly rounded (int64)."""
        v = np.asarray(vector, np.float64).reshape(-1)
        if v.size != self.dim or not np.all(np.isfinite(v)):
            raise ValueError(f"a finite vector of {self.dim} coordinates is needed")
        scaled = v * (self.resolution / self.clip)
        limit = self.norm2_max
        for _ in range(ROUND_TRIES):
            rounded = np.floor(scaled + _uniform(v.size)).astype(np.int64)
            if int(np.dot(rounded, rounded)) <= limit:
                return rounded
        raise discrete_gaussian.SamplerExhausted("conditional rounding")

    def noise_variance(self, noise_multiplier: float) -> Fraction:
        """sigma_int² = z²·norm2_max, exactly (z as the float it is)."""
        if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
            raise ValueError(f"noise multiplier must be > 0, got {noise_multiplier!r}")
        return Fraction(noise_multiplier) ** 2 * self.norm2_max

    def noise(self, noise_multiplier: float, count: int | None = None) -> np.ndarray:
        """Integer noise N_Z(0, z²·norm2_max) per coordinate, from the OS CSPRNG."""
        return discrete_gaussian.sample_array(self.noise_variance(noise_multiplier),
                                              self.dim if count is None else count)

    def inflation(self) -> float:
        """sqrt(norm2_max)/resolution: how much rounding widens the sensitivity (and so the
        real-valued noise, for the same z)."""
        return math.sqrt(self.norm2_max) / self.resolution
