"""Privacy accounting on dp-accounting's RDP accountant: epsilon and step budgets."""

from __future__ import annotations

import math

import pytest
from dp_accounting import NeighboringRelation, dp_event
from dp_accounting.rdp import RdpAccountant

from edge import privacy
from edge.errors import ConfigError


def test_epsilon_matches_a_direct_rdp_accountant() -> None:
    acc = RdpAccountant()
    acc.compose(dp_event.PoissonSampledDpEvent(0.01, dp_event.GaussianDpEvent(1.1)), 1000)
    assert privacy.epsilon(0.01, 1.1, 1000, 1e-5) == pytest.approx(acc.get_epsilon(1e-5),
                                                                    rel=1e-9)


def test_epsilon_is_monotone_in_steps_and_noise() -> None:
    eps = [privacy.epsilon(0.02, 1.0, t, 1e-5) for t in (1, 10, 100, 1000)]
    assert eps == sorted(eps) and eps[0] > 0
    assert privacy.epsilon(0.02, 2.0, 100, 1e-5) < privacy.epsilon(0.02, 1.0, 100, 1e-5)
    assert privacy.epsilon(0.02, 1.0, 0, 1e-5) == 0.0


def test_zero_noise_is_infinite_epsilon_and_has_no_budget() -> None:
    assert privacy.epsilon(1.0, 0.0, 3, 1e-5) == math.inf
    with pytest.raises(ConfigError, match="no privacy"):
        privacy.max_steps(1.0, 0.0, 1.0, 1e-5)


@pytest.mark.parametrize("q,sigma,target,sampling", [
    (0.01, 1.1, 3.0, privacy.POISSON),
    (0.05, 0.8, 8.0, privacy.POISSON),
    (0.01, 2.0, 1.0, privacy.FIXED),
    (1.0, 5.0, 2.0, privacy.POISSON),
])
def test_max_steps_is_the_largest_within_target(q: float, sigma: float, target: float,
                                                sampling: int) -> None:
    steps = privacy.max_steps(q, sigma, target, 1e-5, sampling)
    assert steps >= 1
    assert privacy.epsilon(q, sigma, steps, 1e-5, sampling) <= target
    assert privacy.epsilon(q, sigma, steps + 1, 1e-5, sampling) > target


def test_target_below_one_step_gives_zero_steps() -> None:
    assert privacy.max_steps(1.0, 0.5, 0.01, 1e-5) == 0


def test_fixed_size_sampling_accounts_replace_one_at_half_the_multiplier() -> None:
    direct = RdpAccountant(neighboring_relation=NeighboringRelation.REPLACE_ONE)
    direct.compose(dp_event.SampledWithoutReplacementDpEvent(
        100, 1, dp_event.GaussianDpEvent(1.0)), 50)
    got = privacy.epsilon(0.01, 2.0, 50, 1e-5, privacy.FIXED)
    assert got == pytest.approx(direct.get_epsilon(1e-5), rel=1e-6)


@pytest.mark.parametrize("args", [(0.0, 1.0, 10, 1e-5), (1.5, 1.0, 10, 1e-5),
                                  (0.1, -1.0, 10, 1e-5), (0.1, 1.0, 10, 0.0),
                                  (0.1, 1.0, -1, 1e-5)])
def test_bad_parameters_are_refused(args: tuple[float, float, int, float]) -> None:
    with pytest.raises(ConfigError):
        privacy.epsilon(*args)


def test_policy_table_is_the_accountant_at_its_points_and_bounds_between() -> None:
    """The signed steps -> epsilon table: the accountant's epsilon at each listed step count;
    between points, implied_epsilon is the next point's, never below the accountant's."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge.formats.policy import build_policy, parse_policy

    pol = parse_policy(build_policy(
        Ed25519PrivateKey.generate(), version=1, noise_multiplier_min=1.1,
        max_example_clip=1.0, max_update_clip=5.0, sampling_rate=0.01, max_steps_per_round=100,
        step_budget=1000, target_epsilon=3.0, delta=1e-5))
    assert [s for s, _ in pol.table] == privacy.table_steps(1000)
    assert len(pol.table) == 32 and pol.table[-1][0] == 1000
    q, sigma = pol.sampling_rate, pol.noise_multiplier_min
    for steps, eps in pol.table[::8]:
        assert eps == pytest.approx(privacy.epsilon(q, sigma, steps, 1e-5), rel=1e-12)
    for steps in (1, 17, 500, 999, 1000):
        got = privacy.implied_epsilon(pol, steps)
        assert got >= privacy.epsilon(q, sigma, steps, 1e-5) - 1e-12
        assert got == next(e for s, e in pol.table if s >= steps)
    assert privacy.implied_epsilon(pol, 0) == 0.0
    assert privacy.implied_epsilon(pol, 1001) == math.inf
    assert privacy.table_steps(5) == [1, 2, 3, 4, 5]
