"""FedAvg and DP-FedAvg aggregation math, and the fleet-level (ε, δ) of the published models.

Plain FedAvg weights each delta by its example count n. With central noise (DP-FedAvg,
McMahan et al. 2018) every delta has weight 1: each is already clipped to ‖Δ‖ ≤ U by the
device's TA, so one device moves the mean of m updates by at most U/m, and Gaussian noise
of standard deviation z·U/m is added to every coordinate of the mean. The noise is
discrete (``edge.discrete_noise``): each accepted delta is put on a grid of U/2^16 by
conditional randomized rounding as it arrives (the running total then holds grid
integers), and at close the integer sum gets N_Z(0, z²·norm2_max) from the OS CSPRNG,
so the effective multiplier on the rounded sensitivity is z and no float carries noise;
the real-valued standard deviation on the mean is z·U·sqrt(norm2_max)/2^16/m.

Fleet-level accounting (device-level DP of the sequence of published models): each round
with central noise is one Poisson-subsampled Gaussian mechanism with sampling rate
q = cohort / enrolled and noise multiplier z, composed over the closed rounds with
``dp_accounting``'s Rényi DP accountant (``RdpAccountant``, add-or-remove-one relation).
The cohort is drawn uniformly without replacement, not by Poisson sampling; accounting it as
Poisson is the usual approximation of DP-FedAvg.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edge.discrete_noise import Grid
from edge.errors import ConfigError

ACCOUNTANT = "dp_accounting RdpAccountant, Poisson-subsampled Gaussian, one event per round"


@dataclass(frozen=True)
class RunningSum:
    """The running aggregate of one round: Σ w·Δ (float64) and Σ w."""

    total: np.ndarray
    weight: float
    count: int

    @classmethod
    def empty(cls, param_count: int) -> RunningSum:
        """A sum of nothing."""
        return cls(np.zeros(param_count, dtype=np.float64), 0.0, 0)


def update_weight(example_count: int, central_noise: float) -> float:
    """An update's weight: its example count for FedAvg, 1 with central noise."""
    return 1.0 if central_noise > 0.0 else float(example_count)


def accumulate(acc: RunningSum, delta: np.ndarray, weight: float) -> RunningSum:
    """Add ``weight · delta`` to the running sum (returns a new sum)."""
    if delta.shape != acc.total.shape:
        raise ValueError(f"delta of shape {delta.shape}, running sum of {acc.total.shape}")
    if not (math.isfinite(weight) and weight >= 0.0):
        raise ValueError(f"weight {weight} is not a finite number ≥ 0")
    total = acc.total + weight * delta.astype(np.float64)
    return RunningSum(total, acc.weight + weight, acc.count + 1)


def add_into(total: np.ndarray, delta: np.ndarray, weight: float,
             scratch: np.ndarray | None = None) -> None:
    """``total += weight · delta`` in place, in float64 (what ``accumulate`` computes, without
    a new running sum and a float64 copy of the delta per update).

    ``scratch`` (float64, the shape of ``total``) holds ``weight · delta`` when the weight
    is not 1, so a long run of updates allocates nothing.
    """
    if delta.shape != total.shape:
        raise ValueError(f"delta of shape {delta.shape}, running sum of {total.shape}")
    if not (math.isfinite(weight) and weight >= 0.0):
        raise ValueError(f"weight {weight} is not a finite number ≥ 0")
    if weight == 1.0:
        np.add(total, delta, out=total)
        return
    tmp = scratch if scratch is not None else np.empty_like(total)
    np.multiply(delta, weight, out=tmp, dtype=np.float64)  # not float32 (NEP 50)
    np.add(total, tmp, out=total)


def mean(acc: RunningSum) -> np.ndarray:
    """The weighted mean Σ w·Δ / Σ w (zero when the weights sum to 0)."""
    if acc.weight <= 0.0:
        return np.zeros_like(acc.total)
    return acc.total / acc.weight


def central_grid(update_clip: float, param_count: int) -> Grid:
    """The grid central noise puts each accepted delta on (U / 2^16 per step)."""
    return Grid(update_clip, param_count)


def on_grid(delta: np.ndarray, update_clip: float) -> np.ndarray:
    """An accepted delta as grid integers (conditional randomized rounding), for the sum."""
    return central_grid(update_clip, delta.size).round(delta)


def noise_std(noise_multiplier: float, update_clip: float, count: int,
              param_count: int) -> float:
    """Real-valued standard deviation of the central noise on the mean of m updates:
    z·U/m, widened by the rounding's sensitivity bound sqrt(norm2_max)/2^16."""
    if count < 1:
        raise ValueError("central noise needs at least one update")
    grid = central_grid(update_clip, param_count)
    return noise_multiplier * update_clip * grid.inflation() / count


def aggregate(acc: RunningSum, *, central_noise: float, update_clip: float) -> np.ndarray:
    """The round's mean update: weighted FedAvg of real deltas, or (central noise, the
    total holding grid integers) (Σ + N_Z(0, z²·norm2_max))·U/2^16 / m."""
    if central_noise <= 0.0:
        return mean(acc)
    if acc.count < 1:
        raise ValueError("central noise needs at least one update")
    grid = central_grid(update_clip, acc.total.size)
    noisy = acc.total + grid.noise(central_noise).astype(np.float64)
    return noisy * grid.step / acc.count


def aggregate_masked(total: np.ndarray, count: int, *, central_noise: float,
                     update_clip: float, scale_log2: int) -> np.ndarray:
    """The mean of a secure-aggregation round: ``total`` is the dequantized sum of
    ``count`` survivors, integers on the grid 2^-s; central noise, if any, is added to those
    integers as N_Z(0, z²·(r + sqrt(d))²), r = U·2^s: (r + sqrt(d))² bounds any one
    device's stochastically rounded update (its KLS21 deterministic bound), so the
    multiplier on it is z."""
    units = np.rint(np.asarray(total, np.float64) * 2.0**scale_log2)
    if central_noise > 0.0:
        from fractions import Fraction

        from edge import discrete_gaussian

        r = float(np.float32(update_clip)) * 2.0**scale_log2
        bound = math.ceil((r + math.sqrt(units.size)) ** 2)
        variance = Fraction(central_noise) ** 2 * bound
        units = units + discrete_gaussian.sample_array(variance, units.size)
    return units / 2.0**scale_log2 / max(count, 1)


def fedavg(deltas: Sequence[np.ndarray], counts: Sequence[int]) -> np.ndarray:
    """Plain FedAvg of whole arrays (weights = example counts): the reference implementation."""
    acc = RunningSum.empty(deltas[0].size)
    for d, n in zip(deltas, counts, strict=True):
        acc = accumulate(acc, d, float(n))
    return mean(acc)


def apply_to_head(W: np.ndarray, b: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New head θ + Δ (Δ is W row-major, then b), as float32."""
    i, o = W.shape
    if delta.size != i * o + o:
        raise ValueError(f"delta of {delta.size} parameters for a {i}x{o} head")
    new_w = (W.astype(np.float64) + delta[: i * o].reshape(i, o)).astype(np.float32)
    new_b = (b.astype(np.float64) + delta[i * o:]).astype(np.float32)
    return new_w, new_b


def fleet_epsilon(rounds: Iterable[tuple[float, float]], delta: float) -> float | None:
    """ε at δ of the closed rounds, each (sampling rate q, central noise z); None without noise.

    Rounds without central noise give no device-level guarantee, so any such round makes
    the fleet ε None (not reported); no round at all gives 0.
    """
    if not (math.isfinite(delta) and 0.0 < delta < 1.0):
        raise ConfigError(f"δ={delta} is not in (0, 1)")
    counts: dict[tuple[float, float], int] = {}
    for q, z in rounds:
        if z <= 0.0:
            return None
        if not 0.0 < q <= 1.0:
            raise ConfigError(f"sampling rate {q} is not in (0, 1]")
        counts[(q, z)] = counts.get((q, z), 0) + 1
    if not counts:
        return 0.0
    from dp_accounting import dp_event  # imports scipy: slow, so only when needed
    from dp_accounting.rdp import RdpAccountant

    acc = RdpAccountant()
    for (q, z), n in sorted(counts.items()):
        event = dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z))
        acc.compose(event, n)
    return float(acc.get_epsilon(delta))
