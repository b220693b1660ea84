"""The exact discrete Gaussian sampler (edge/discrete_gaussian.py, twin of ta/dgauss.c).

The C twin is checked draw for draw against tests/vectors/dgauss.tsv by
tests/c/ta_test_dgauss.c; here the Python sampler, from the operating system's
CSPRNG, is compared with the exact N_Z(0, sigma²) pmf. The chi-square test is run
at a threshold a correct sampler fails with probability 1e-6, and the same test
rejects the rounded continuous Gaussian (a near miss), so it cannot pass by luck.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from conftest import ROOT
from scipy import stats

from edge import discrete_gaussian as dg
from tests.vectors.generate import dgauss_rows

DRAWS = 20_000
P_MIN = 1e-6


def _chi_square_p(values: list[int], sigma2: Fraction) -> float:
    """p-value of the draws against the exact pmf: one bin per value whose expected count is
    at least 5, and the two tails beyond them as one bin each."""
    support = int(8 * math.sqrt(float(sigma2))) + 2
    exact = dg.pmf(sigma2, support)
    counts = Counter(values)
    assert all(abs(v) <= support for v in counts), "a draw beyond 8 sigma"
    n = len(values)
    inner = [x for x in exact if exact[x] * n >= 5]
    lo, hi = min(inner), max(inner)
    observed = [sum(c for x, c in counts.items() if x < lo)]
    expected = [sum(p for x, p in exact.items() if x < lo) * n]
    observed += [counts.get(x, 0) for x in range(lo, hi + 1)]
    expected += [exact[x] * n for x in range(lo, hi + 1)]
    observed.append(sum(c for x, c in counts.items() if x > hi))
    expected.append(sum(p for x, p in exact.items() if x > hi) * n)
    if expected[0] < 5:  # too thin to stand alone: fold the tails into their neighbours
        observed[1] += observed.pop(0)
        expected[1] += expected.pop(0)
        observed[-2] += observed.pop()
        expected[-2] += expected.pop()
    scale = sum(observed) / sum(expected)  # the pmf is cut at ±support
    return float(stats.chisquare(observed, [e * scale for e in expected]).pvalue)


def _total_variation(values: list[int], sigma2: Fraction) -> float:
    support = int(8 * math.sqrt(float(sigma2))) + 2
    exact = dg.pmf(sigma2, support)
    counts = Counter(values)
    return 0.5 * sum(abs(counts.get(x, 0) / len(values) - p) for x, p in exact.items())


@pytest.mark.parametrize("sigma", [Fraction(1, 2), Fraction(1), Fraction(2)])
def test_empirical_pmf_matches_the_exact_discrete_gaussian(sigma: Fraction) -> None:
    sigma2 = sigma * sigma
    values = [dg.sample(sigma2.numerator, sigma2.denominator) for _ in range(DRAWS)]
    assert _chi_square_p(values, sigma2) > P_MIN
    # TV of an exact sampler's empirical pmf: about sqrt(bins / (2 pi N)) < 0.02 here.
    assert _total_variation(values, sigma2) < 0.02
    assert abs(np.mean(values)) < 6 * float(sigma) / math.sqrt(DRAWS)


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_the_same_test_rejects_a_rounded_continuous_gaussian(sigma: float) -> None:
    """Negative control: round(N(0, sigma²)) is close to, but not, the discrete Gaussian."""
    rng = np.random.default_rng(12)
    values = [int(v) for v in np.rint(rng.normal(0.0, sigma, DRAWS))]
    sigma2 = Fraction(sigma) ** 2
    assert _chi_square_p(values, sigma2) < P_MIN


def test_variance_of_a_large_sigma_is_sigma_squared() -> None:
    sigma2 = Fraction(10**6, 3)
    values = np.array([dg.sample(sigma2.numerator, sigma2.denominator) for _ in range(DRAWS)])
    # Var of the sample variance of a near-normal: 2 sigma^4 / N; 6 standard errors.
    assert abs(values.var() - float(sigma2)) < 6 * float(sigma2) * math.sqrt(2 / DRAWS)


def test_rejection_step_accepts_often_enough_for_the_stated_bound() -> None:
    """ta/dgauss.h states < 2^-120 per draw with 256 tries: needs acceptance ≥ 0.44."""
    def acceptance(s2: float) -> float:
        t = math.floor(math.sqrt(s2)) + 1
        z = (1 - math.exp(-1 / t)) / (1 + math.exp(-1 / t))
        reach = 60 * t + 50
        return math.fsum(z * math.exp(-abs(y) / t - (abs(y) - s2 / t) ** 2 / (2 * s2))
                         for y in range(-reach, reach + 1))
    for s in (0.01, 0.1, 0.3, 0.5, 0.7, 0.99, 1.0, 1.5, 2.0, 3.7, 10.0, 300.0):
        assert acceptance(s * s) >= 0.44, s
    assert 0.56**dg.GAUSS_TRIES < 2.0**-120


def test_python_reproduces_the_committed_vectors() -> None:
    """The rows ta_test_dgauss checks are what this sampler draws from the same words."""
    committed = (ROOT / "tests" / "vectors" / "dgauss.tsv").read_text().splitlines()
    assert committed == dgauss_rows()
    assert len(committed) > 8


def test_exhausted_source_raises_instead_of_returning_a_value() -> None:
    with pytest.raises(dg.SamplerExhausted):
        dg.sample(9, 4, lambda: 2**64 - 1)


def test_bad_variance_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        dg.sample(0, 1)
    with pytest.raises(ValueError, match="positive"):
        dg.sample(1, 0)


def test_sample_array_uses_the_rational_variance() -> None:
    words = dg.splitmix64(5)
    got = dg.sample_array(Fraction(3, 7), 200, words.__next__)
    assert got.dtype == np.int64
    assert got.tolist() == [int(v) for v in dgauss_rows()[5].split("\t")[4].split(",")]


def test_variance_with_a_huge_denominator() -> None:
    """sigma^2 = 0.7^2 * 42199 as an exact binary fraction (denominator 2^104): the
    uniform draws span more than 128 bits; the variance must still be sigma^2."""
    sigma2 = Fraction(0.7) ** 2 * 42199
    values = np.array([dg.sample(sigma2.numerator, sigma2.denominator) for _ in range(DRAWS)])
    assert abs(values.var() - float(sigma2)) < 6 * float(sigma2) * math.sqrt(2 / DRAWS)
