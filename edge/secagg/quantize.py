"""Updates as 32-bit words: clipped floats, stochastically rounded, summed mod 2^32.

A device's update has L2 norm at most ``clip`` (the TA clips it), so every
coordinate lies in [-clip, clip]. Scaled by 2^k and rounded up or down at
random (up with probability equal to the fractional part, so the rounding is
unbiased), a coordinate becomes an integer of magnitude at most clip * 2^k + 1.
``for_cohort`` picks the largest k for which the sum of ``cohort`` such
integers stays inside a signed 32-bit word, so the sum taken mod 2^32 and read
back as signed is the exact integer sum: overflow cannot happen, whatever the
updates. The scale is a power of two so that C and Python compute the same
words from the same inputs (``ta/secagg_quant.c`` is checked against this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WORD_BITS = 32
SIGNED_MAX = 2**31 - 1
MIN_SCALE_LOG2 = 0
MAX_SCALE_LOG2 = 30


@dataclass(frozen=True)
class Quantizer:
    """Scale 2^scale_log2 for updates of L2 norm <= clip, summed over <= cohort devices."""

    clip: float
    cohort: int
    scale_log2: int

    @classmethod
    def for_cohort(cls, clip: float, cohort: int) -> Quantizer:
        """The finest scale at which ``cohort`` clipped updates cannot overflow the sum."""
        if not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be a positive number, got {clip!r}")
        if cohort < 1:
            raise ValueError(f"cohort must be at least 1, got {cohort}")
        per_device = SIGNED_MAX // cohort - 1  # |q| <= clip * 2^k + 1 <= this
        if per_device < clip:
            raise ValueError(f"{cohort} updates of norm {clip} cannot be summed in 32 bits")
        k = min(math.floor(math.log2(per_device / clip)), MAX_SCALE_LOG2)
        if k < MIN_SCALE_LOG2:
            raise ValueError(f"{cohort} updates of norm {clip} leave no integer resolution")
        q = cls(clip, cohort, k)
        assert q.worst_sum() <= SIGNED_MAX
        return q

    @property
    def scale(self) -> float:
        return float(2**self.scale_log2)

    def worst_sum(self) -> int:
        """The largest magnitude the integer sum can reach."""
        return self.cohort * (math.floor(self.clip * self.scale) + 1)

    def error_bound(self, devices: int) -> float:
        """Largest per-coordinate error of the dequantized sum of ``devices`` updates."""
        return devices / self.scale

    def quantize(self, update: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """Words (uint32) of ``update`` rounded with ``uniform`` uint32 random words.

        A coordinate x becomes floor(x * 2^k + r / 2^32), which is x * 2^k rounded
        up with probability equal to its fractional part.
        """
        x = np.asarray(update, np.float64)
        r = np.asarray(uniform, np.uint32)
        if x.shape != r.shape:
            raise ValueError("one random word per coordinate")
        if not np.all(np.isfinite(x)) or np.any(np.abs(x) > self.clip):
            raise ValueError(f"coordinates must be finite and within +-{self.clip}")
        q = np.floor(x * self.scale + r.astype(np.float64) / 2.0**WORD_BITS)
        return q.astype(np.int64).astype(np.uint32)

    def dequantize(self, total: np.ndarray) -> np.ndarray:
        """The float sum behind a mod-2^32 sum of words."""
        return np.asarray(total, np.uint32).view(np.int32).astype(np.float64) / self.scale
