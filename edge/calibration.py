"""Noise by target: the noise multiplier that meets a target (ε, δ) over a number of steps.

Solved by bisection on log(sigma) (ε falls as sigma grows) with ``dp_accounting`` giving
ε for the same DP event ``edge.privacy`` accounts, with the Rényi DP accountant or
the privacy-loss-distribution accountant (``PLDAccountant``, tighter, about 100 times
slower; Poisson sampling only — dp_accounting's PLD has no sampling without replacement).
The result is rounded up to the float32 a policy or ticket stores and checked again, so
the ε reported is that of the multiplier the TA enforces, never above the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge import privacy
from edge.errors import ConfigError

RDP = "rdp"
PLD = "pld"
ACCOUNTANTS = (RDP, PLD)
SIGMA_LOW = 2.0**-4  # calibration searches [SIGMA_LOW, SIGMA_HIGH]: below it dp_accounting's
SIGMA_HIGH = 1e4  # subsampled-Gaussian bounds slow down badly and give no useful privacy


def _event(q: float, sigma: float, sampling: int) -> object:
    from dp_accounting import dp_event

    if sampling == privacy.POISSON:
        return dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma))
    from fractions import Fraction
    ratio = Fraction(float(q))
    return dp_event.SampledWithoutReplacementDpEvent(
        ratio.denominator, ratio.numerator, dp_event.GaussianDpEvent(sigma / 2.0))


def _accountant(name: str, sampling: int) -> object:
    from dp_accounting import NeighboringRelation
    from dp_accounting.pld import PLDAccountant
    from dp_accounting.rdp import RdpAccountant

    if name == PLD:
        if sampling != privacy.POISSON:
            raise ConfigError("the PLD accountant covers Poisson sampling only; use rdp")
        return PLDAccountant()
    if name != RDP:
        raise ConfigError(f"accountant {name!r} is not one of {', '.join(ACCOUNTANTS)}")
    if sampling == privacy.FIXED:
        return RdpAccountant(neighboring_relation=NeighboringRelation.REPLACE_ONE)
    return RdpAccountant()


def epsilon(q: float, sigma: float, steps: int, delta: float,
            sampling: int = privacy.POISSON, accountant: str = RDP) -> float:
    """ε of ``steps`` subsampled-Gaussian steps with the named accountant."""
    if accountant == RDP:
        return privacy.epsilon(q, sigma, steps, delta, sampling)
    privacy._check(q, sigma, delta)
    if steps == 0:
        return 0.0
    if sigma == 0.0:
        return math.inf
    acc = _accountant(accountant, sampling)
    acc.compose(_event(q, sigma, sampling), steps)  # type: ignore[attr-defined]
    return float(acc.get_epsilon(delta))  # type: ignore[attr-defined]


def pld_epsilon_or_none(q: float, sigma: float, steps: int, delta: float,
                        sampling: int) -> float | None:
    """ε from the PLD accountant, or None where it does not apply (fixed-size sampling)."""
    if sampling != privacy.POISSON or sigma == 0.0:
        return None
    return epsilon(q, sigma, steps, delta, sampling, PLD)


def _f32_bits(value: float, *, up: bool) -> int:
    """The bit pattern of the float32 next to ``value`` (above it if ``up``, else below)."""
    f = np.float32(value)
    if up and float(f) < value:
        f = np.nextafter(f, np.float32(np.inf))
    elif not up and float(f) > value:
        f = np.nextafter(f, np.float32(0))
    return int(np.array(f, np.float32).view(np.uint32))


def _f32(bits: int) -> float:
    return float(np.array(bits, np.uint32).view(np.float32))


def f32_up(value: float) -> float:
    """The smallest float32 ≥ ``value``."""
    f = np.float32(value)
    if float(f) < value:
        f = np.nextafter(f, np.float32(np.inf))
    return float(f)


@dataclass(frozen=True)
class Calibration:
    """A solved noise multiplier and the guarantee it gives."""

    noise_multiplier: float  # the smallest float32 meeting the target
    steps: int
    target_epsilon: float
    delta: float
    accountant: str
    epsilon: float  # by ``accountant`` at noise_multiplier
    epsilon_rdp: float
    epsilon_pld: float | None


def noise_for_target(target_epsilon: float, delta: float, q: float, steps: int,
                     sampling: int = privacy.POISSON, accountant: str = RDP) -> Calibration:
    """The smallest float32 noise multiplier whose ε after ``steps`` steps is ≤ the target."""
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ConfigError(f"target epsilon {target_epsilon} is not a finite number > 0")
    if steps < 1:
        raise ConfigError(f"step count {steps} is not ≥ 1")
    privacy._check(q, 1.0, delta)
    _accountant(accountant, sampling)  # refuse an unknown or inapplicable one first

    def eps_at(sigma: float) -> float:
        return epsilon(q, sigma, steps, delta, sampling, accountant)

    if eps_at(SIGMA_HIGH) > target_epsilon:
        raise ConfigError(f"target epsilon {target_epsilon} at delta {delta} over {steps} "
                          f"steps needs a noise multiplier above {SIGMA_HIGH:g}")
    # Bracket eps(lo) > target >= eps(hi) near the answer: PLD evaluations at small
    # multipliers are slow. PLD starts from the RDP answer, which PLD (tighter) also meets.
    if accountant == PLD:
        hi = noise_for_target(target_epsilon, delta, q, steps, sampling, RDP).noise_multiplier
        lo = hi * 0.8
    else:
        hi, lo = 1.0, 0.5
    while eps_at(hi) > target_epsilon:
        lo, hi = hi, min(hi * 2, SIGMA_HIGH)
    while eps_at(lo) <= target_epsilon and lo > SIGMA_LOW:
        lo, hi = max(lo / 2, SIGMA_LOW), lo
    if eps_at(lo) <= target_epsilon:
        sigma = lo  # the smallest multiplier searched already meets the target
    else:
        # Bisection over float32 bit patterns (ordered like the positive floats they
        # encode) ends on the smallest float32 meeting the target: the value a policy or
        # ticket stores.
        lo_bits, hi_bits = _f32_bits(lo, up=False), _f32_bits(hi, up=True)
        while hi_bits - lo_bits > 1:
            mid = (lo_bits + hi_bits) // 2
            if eps_at(_f32(mid)) > target_epsilon:
                lo_bits = mid
            else:
                hi_bits = mid
        sigma = _f32(hi_bits)
    eps = eps_at(sigma)
    rdp = eps if accountant == RDP else privacy.epsilon(q, sigma, steps, delta, sampling)
    pld = eps if accountant == PLD else pld_epsilon_or_none(q, sigma, steps, delta, sampling)
    return Calibration(sigma, steps, target_epsilon, delta, accountant, eps, rdp, pld)


def epsilon_table(q: float, sigma: float, step_budget: int, delta: float,
                  sampling: int = privacy.POISSON, accountant: int = 1
                  ) -> tuple[tuple[int, float], ...]:
    """The (steps, ε) table a policy carries (``privacy.table_steps``), by the accountant it
    names (1 RDP, 2 PLD: Poisson only, slower); boards read ε from it, no accountant."""
    privacy._check(q, sigma, delta)
    if sigma == 0.0:
        raise ConfigError("sigma = 0 gives no privacy: no epsilon table exists")
    points = privacy.table_steps(step_budget)
    if accountant == 2:
        return tuple((t, epsilon(q, sigma, t, delta, sampling, PLD)) for t in points)
    step = privacy._policy_step(q, sigma, sampling)
    return tuple((t, step.epsilon(t, delta)) for t in points)
