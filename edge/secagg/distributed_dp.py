"""Distributed DP under secure aggregation: the noise share and the fleet's ε with dropouts.

Each device's TA adds its share N_Z(0, z²·norm2_max) of discrete Gaussian noise to its
conditionally rounded, quantized update before masking (``ta/noise_share.c``; Kairouz,
Liu, Steinke, ICML 2021, the distributed discrete Gaussian). z is the policy's
``min_noise_share``; the grid is the secagg quantization's: r = U·2^s steps per update
clip, norm2_max = ``edge.discrete_noise.norm2_bound(r, P)``. The unmasked sum of the n
survivors carries N_Z noise of variance n·z²·norm2_max (a sum of independent discrete
Gaussians is not exactly one; KLS21 Thm 1 bounds the gap, negligible for z²·norm2_max
≥ 1, and we account it as the continuous Gaussian of the same variance), so one device's
rounded update (norm ≤ sqrt(norm2_max)) faces an effective noise multiplier sqrt(n)·z.

Dropouts: only the survivors' shares are in the sum, so the round is accounted with the
survivors' count n — fewer survivors, less noise, larger ε. Each round is one
Poisson-subsampled Gaussian event at rate q = cohort/enrolled and multiplier sqrt(n)·z,
composed with ``dp_accounting``'s RDP accountant (device-level, add-or-remove-one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from edge.discrete_noise import norm2_bound
from edge.errors import ConfigError

TAIL_SIGMAS = 12.0  # ta/noise_share.h NOISE_SHARE_TAIL_SIGMAS
SIGNED_MAX = 2**31 - 1
TA_MAX_VARIANCE = 2**40  # the TA sampler's range (ta/dgauss.h)


@dataclass(frozen=True)
class NoiseShare:
    """One device's share for a round: z, the grid r = U·2^s, P coordinates, the cohort."""

    z: float
    update_clip: float
    scale_log2: int
    params: int
    cohort: int

    @property
    def resolution(self) -> float:
        return self.update_clip * 2.0**self.scale_log2

    @property
    def norm2_max(self) -> int:
        return norm2_bound(self.resolution, self.params)

    @property
    def variance(self) -> Fraction:
        """The share's σ² in grid units², as the TA rounds it (up, denominator 256)."""
        exact = Fraction(self.z) ** 2 * self.norm2_max
        return Fraction(math.ceil(exact * 256), 256)

    def fits(self) -> bool:
        """What the TA checks before adding the share (else noise-share-unfit)."""
        if self.variance > TA_MAX_VARIANCE:
            return False
        per = math.floor(self.resolution) + 1
        tail = TAIL_SIGMAS * math.sqrt(self.cohort * float(self.variance))
        return self.cohort * per + tail <= SIGNED_MAX

    def sum_std(self, survivors: int) -> float:
        """Standard deviation of the summed noise, in real units (dequantized)."""
        return math.sqrt(survivors * float(self.variance)) / 2.0**self.scale_log2


def finest_fitting_scale(z: float, update_clip: float, params: int, cohort: int) -> int | None:
    """The finest quantization scale s (2^-s) at which ``cohort`` updates of ``params``
    coordinates, clipped to ``update_clip`` and each carrying the noise share z, fit the TA's
    32-bit check (``NoiseShare.fits``); None when no scale does."""
    from edge.secagg.quantize import MAX_SCALE_LOG2, MIN_SCALE_LOG2

    for s in range(MAX_SCALE_LOG2, MIN_SCALE_LOG2 - 1, -1):
        if NoiseShare(z, update_clip, s, params, cohort).fits():
            return s
    return None


def effective_multiplier(z: float, survivors: int) -> float:
    """The noise multiplier one device faces in a sum of ``survivors`` shares: sqrt(n)·z."""
    if survivors < 1:
        raise ConfigError("a round with no survivor publishes nothing to account")
    return math.sqrt(survivors) * z


def combined_multiplier(central: float, share: float, survivors: int) -> float:
    """Central noise z_c (on the same sensitivity) and the survivors' shares together:
    independent Gaussians add variances, sqrt(z_c² + n·z²)."""
    return math.sqrt(central**2 + effective_multiplier(share, survivors) ** 2)


def fleet_epsilon(rounds: Iterable[tuple[float, float, int]], delta: float) -> float:
    """ε at δ of published rounds, each (sampling rate q, noise share z, survivors n)."""
    from dp_accounting import dp_event
    from dp_accounting.rdp import RdpAccountant

    acc = RdpAccountant()
    any_round = False
    for q, z, n in rounds:
        if not (0.0 < q <= 1.0) or not z > 0.0:
            raise ConfigError(f"round with rate {q} and noise share {z} cannot be accounted")
        acc.compose(dp_event.PoissonSampledDpEvent(
            q, dp_event.GaussianDpEvent(effective_multiplier(z, n))))
        any_round = True
    return float(acc.get_epsilon(delta)) if any_round else 0.0
