"""The exact discrete Gaussian on the integers from a cryptographic random source.

Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential Privacy"
(NeurIPS 2020), Algorithms 1-3, in integer and rational arithmetic only:
Bernoulli(exp(-gamma)) by the alternating-series trick, the discrete Laplace by
rejection, the discrete Gaussian N_Z(0, sigma²) by rejection from the discrete
Laplace of scale t = ⌊sigma⌋ + 1, with sigma² a rational ``sn / sd``. No float touches
the noise, so the floating-point attacks on DP noise (Mironov, CCS 2012; Jin et
al., IEEE S&P 2022) have nothing to work on.

Random words come from :func:`secrets.randbits` unless a word source is given;
``ta/dgauss.c`` is the twin and returns the same integers from the same words
(tests/vectors/dgauss.tsv). Every loop has the same bound as in C: a draw that
would pass one raises :class:`SamplerExhausted` (probability < 2^-120 per draw)
rather than return a distorted value.

Why not a package: OpenDP's exact sampler (Rust) draws from its own OS source
and cannot be fed a word stream, so it cannot be checked against the TA's C;
diffprivlib's ``GaussianDiscrete`` draws from Python's Mersenne Twister and
computes its Bernoulli trials in floats; Google's ``python-dp`` samples in
doubles. This module is the one the TA is checked against, and it is small.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterator
from fractions import Fraction

import numpy as np

WordSource = Callable[[], int]

UNIFORM_TRIES = 128
SERIES_TERMS = 64
EXP1_ROUNDS = 128
LAPLACE_TRIES = 256
GAUSS_TRIES = 256
# The TA's range (ta/dgauss.h): sigma² = sn/sd with sd ≤ 2^8 and sigma² ≤ 2^40.
TA_MAX_SD = 256
TA_MAX_SIGMA2_LOG2 = 40


class SamplerExhausted(RuntimeError):
    """A sampler loop hit its bound (probability < 2^-120): no value is released."""


def system_words() -> int:
    """One 64-bit word from the operating system's CSPRNG."""
    return secrets.randbits(64)


def _uniform_below(n: int, words: WordSource) -> int:
    if n == 1:
        return 0
    bits = (n - 1).bit_length()
    for _ in range(UNIFORM_TRIES):
        # Word i fills bits 64i..64i+63 (the C twin, limited to 128 bits, does the same).
        v = 0
        for i in range(-(-bits // 64)):
            v |= words() << (64 * i)
        v &= (1 << bits) - 1
        if v < n:
            return v
    raise SamplerExhausted("uniform draw")


def _bernoulli(num: int, den: int, words: WordSource) -> bool:
    return _uniform_below(den, words) < num


def _bernoulli_exp_le1(num: int, den: int, words: WordSource) -> bool:
    """Bernoulli(exp(-num/den)) for num ≤ den: the first k with A_k = 0, odd or not."""
    for k in range(1, SERIES_TERMS + 1):
        if not (_bernoulli(num, den, words) and _bernoulli(1, k, words)):
            return bool(k & 1)
    raise SamplerExhausted("alternating series")


def _bernoulli_exp(num: int, den: int, words: WordSource) -> bool:
    """Bernoulli(exp(-num/den)) for any num ≥ 0."""
    i = 0
    while (i + 1) * den <= num:
        if i == EXP1_ROUNDS:
            raise SamplerExhausted("exp(-1) rounds")
        if not _bernoulli_exp_le1(1, 1, words):
            return False
        i += 1
    return _bernoulli_exp_le1(num - i * den, den, words)


def _discrete_laplace(t: int, words: WordSource) -> int:
    for _ in range(LAPLACE_TRIES):
        u = _uniform_below(t, words)
        if not _bernoulli_exp(u, t, words):
            continue
        v = 0
        while _bernoulli_exp(1, 1, words):
            v += 1
            if v == EXP1_ROUNDS:
                raise SamplerExhausted("discrete Laplace tail")
        x = u + t * v
        negative = _bernoulli(1, 2, words)
        if negative and x == 0:
            continue
        return -x if negative else x
    raise SamplerExhausted("discrete Laplace")


def sample(sn: int, sd: int, words: WordSource = system_words) -> int:
    """One draw from the discrete Gaussian N_Z(0, sn/sd)."""
    if sn < 1 or sd < 1:
        raise ValueError(f"sigma² = {sn}/{sd} must be a positive rational")
    t = math.isqrt(sn // sd) + 1
    den = 2 * sn * sd * t * t
    for _ in range(GAUSS_TRIES):
        y = _discrete_laplace(t, words)
        a = abs(y) * sd * t - sn
        if _bernoulli_exp(a * a, den, words):
            return y
    raise SamplerExhausted("discrete Gaussian")


def sample_array(sigma2: Fraction, count: int, words: WordSource = system_words) -> np.ndarray:
    """``count`` independent draws from N_Z(0, sigma²) as int64."""
    sigma2 = Fraction(sigma2)
    out = np.empty(count, np.int64)
    for i in range(count):
        out[i] = sample(sigma2.numerator, sigma2.denominator, words)
    return out


def pmf(sigma2: Fraction, support: int) -> dict[int, float]:
    """The exact N_Z(0, sigma²) probabilities on [-support, support] (normalised by a sum far
    into the tails), for the statistical tests."""
    s2 = float(sigma2)
    reach = support + int(40 * math.sqrt(s2)) + 40
    weights = {x: math.exp(-x * x / (2 * s2)) for x in range(-reach, reach + 1)}
    total = math.fsum(weights.values())
    return {x: weights[x] / total for x in range(-support, support + 1)}


def splitmix64(seed: int) -> Iterator[int]:
    """A deterministic 64-bit word stream (SplitMix64), for C-vs-Python vectors only."""
    state = seed & (2**64 - 1)
    mask = 2**64 - 1
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)
