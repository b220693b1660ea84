"""Privacy accounting for DP-SGD rounds, on Google's ``dp-accounting`` (RDP accountant).

Each DP-SGD step is one subsampled Gaussian mechanism with noise multiplier sigma:

- Poisson sampling at rate q: ``PoissonSampledDpEvent(q, GaussianDpEvent(sigma))`` under
  add-or-remove-one neighbouring datasets (sensitivity of the clipped sum = C).
- Fixed-size sampling (B of n without replacement, B/n ≤ q): ``SampledWithoutReplacementDpEvent``
  with ratio q under replace-one neighbouring datasets, the only relation dp-accounting
  supports for it; replacing one example moves the clipped sum by up to 2C, so the
  accountant is given the noise multiplier sigma/2.

``T`` steps are the self-composition of that event; ε comes from the Rényi DP accountant
(``dp_accounting.rdp.RdpAccountant``) at the default orders.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np

from edge.errors import ConfigError
from edge.tee_abi import POLICY_TABLE_ENTRIES as TABLE_ENTRIES
from edge.tee_abi import Sampling


class SignedTable(Protocol):
    """What implied_epsilon reads of a policy (edge.formats.policy.PrivacyPolicy)."""

    step_budget: int

    @property
    def no_dp(self) -> bool: ...

    def epsilon_at(self, steps: int) -> float: ...

POISSON = Sampling.POISSON
FIXED = Sampling.FIXED
SAMPLING_NAMES = {mode: mode.name.lower() for mode in Sampling}
MAX_STEP_BUDGET = 2**62


def _check(q: float, sigma: float, delta: float) -> None:
    """Refuse parameters the accountant cannot account for."""
    if not (math.isfinite(q) and 0.0 < q <= 1.0):
        raise ConfigError(f"sampling rate q={q} is not in (0, 1]")
    if not (math.isfinite(sigma) and sigma >= 0.0):
        raise ConfigError(f"noise multiplier sigma={sigma} is not a finite number ≥ 0")
    if not (math.isfinite(delta) and 0.0 < delta < 1.0):
        raise ConfigError(f"δ={delta} is not in (0, 1)")


@dataclass(frozen=True)
class StepAccountant:
    """The Rényi DP curve of one DP-SGD step; ε of any step count from it."""

    orders: np.ndarray
    rdp_per_step: np.ndarray

    @classmethod
    def for_step(cls, q: float, sigma: float, sampling: int = POISSON) -> StepAccountant:
        """Account one step of the subsampled Gaussian mechanism (rate q, multiplier sigma)."""
        from dp_accounting import NeighboringRelation, dp_event
        from dp_accounting.rdp import RdpAccountant

        _check(q, sigma, 0.5)
        if sigma == 0.0:
            orders = np.asarray(RdpAccountant().orders, dtype=float)
            return cls(orders, np.full_like(orders, np.inf))
        if sampling == POISSON:
            event: object = dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma))
            acc = RdpAccountant()
        elif sampling == FIXED:
            ratio = Fraction(float(q))
            event = dp_event.SampledWithoutReplacementDpEvent(
                ratio.denominator, ratio.numerator, dp_event.GaussianDpEvent(sigma / 2.0)
            )
            acc = RdpAccountant(neighboring_relation=NeighboringRelation.REPLACE_ONE)
        else:
            raise ConfigError(f"sampling mode {sampling} is not 1 (Poisson) or 2 (fixed-size)")
        acc.compose(event)
        return cls(np.asarray(acc.orders, dtype=float), np.asarray(acc.rdp, dtype=float))

    def epsilon(self, steps: int, delta: float) -> float:
        """ε after ``steps`` steps at δ (0 for no step, inf when sigma = 0)."""
        from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon

        if steps < 0:
            raise ConfigError(f"step count {steps} is negative")
        if steps == 0:
            return 0.0
        if np.all(np.isinf(self.rdp_per_step)):
            return math.inf
        eps, _order = compute_epsilon(self.orders, steps * self.rdp_per_step, delta)
        return float(eps)

    def max_steps(self, target_epsilon: float, delta: float, limit: int = MAX_STEP_BUDGET) -> int:
        """The largest step count whose ε stays within ``target_epsilon`` (binary search)."""
        if not (math.isfinite(target_epsilon) and target_epsilon > 0.0):
            raise ConfigError(f"target ε={target_epsilon} is not a finite number > 0")
        if self.epsilon(1, delta) > target_epsilon:
            return 0
        lo, hi = 1, 2
        while hi < limit and self.epsilon(hi, delta) <= target_epsilon:
            lo, hi = hi, min(hi * 2, limit)
        if hi >= limit and self.epsilon(limit, delta) <= target_epsilon:
            return limit
        while hi - lo > 1:  # invariant: eps(lo) ≤ target < eps(hi); ε is monotone in steps
            mid = (lo + hi) // 2
            if self.epsilon(mid, delta) <= target_epsilon:
                lo = mid
            else:
                hi = mid
        return lo


def epsilon(q: float, sigma: float, steps: int, delta: float, sampling: int = POISSON) -> float:
    """ε of ``steps`` DP-SGD steps at rate q, noise multiplier sigma and δ (RDP accountant)."""
    _check(q, sigma, delta)
    return StepAccountant.for_step(q, sigma, sampling).epsilon(steps, delta)


def max_steps(
    q: float, sigma: float, target_epsilon: float, delta: float, sampling: int = POISSON
) -> int:
    """The step budget: the largest step count with ε ≤ ``target_epsilon`` at δ."""
    _check(q, sigma, delta)
    if sigma == 0.0:
        raise ConfigError("sigma = 0 gives no privacy: no step budget exists (no-DP test only)")
    return StepAccountant.for_step(q, sigma, sampling).max_steps(target_epsilon, delta)


def table_steps(step_budget: int, entries: int = TABLE_ENTRIES) -> list[int]:
    """The step counts a policy's table lists: ``entries`` evenly spaced up to the budget
    (every count when the budget is smaller), the last one the budget itself."""
    if step_budget < 1:
        raise ConfigError(f"step budget {step_budget} is not ≥ 1")
    return sorted({-(-step_budget * (i + 1) // entries) for i in range(entries)})


def implied_epsilon(policy: SignedTable, steps: int | None = None) -> float:
    """ε at a privacy policy's δ after ``steps`` steps (default: its whole step budget), read
    from its signed table: an upper bound for any ticket the TA accepts under it, inf for a
    no-DP test policy. No accountant is imported."""
    count = policy.step_budget if steps is None else steps
    if policy.no_dp:
        return math.inf if count else 0.0
    return policy.epsilon_at(count)


@functools.lru_cache(maxsize=16)
def _policy_step(q: float, sigma: float, sampling: int) -> StepAccountant:
    return StepAccountant.for_step(q, sigma, sampling)
