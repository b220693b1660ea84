"""Distributed DP under secure aggregation: the TA's noise share, the policy's minimum,
and the fleet's epsilon accounted with the survivors' count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import Roles
from dp_accounting import dp_event
from dp_accounting.rdp import RdpAccountant
from secagg_helpers import NOW, U, cohort, drop_at, run_round
from training_helpers import ticket

from edge import errors
from edge.secagg import distributed_dp as ddp
from edge.secagg.server import SecAggParams


def test_fleet_epsilon_is_the_gaussian_at_sqrt_n_z() -> None:
    """One round of 10 survivors at z = 0.3: dp_accounting's Gaussian at sqrt(10)·0.3."""
    acc = RdpAccountant()
    acc.compose(dp_event.PoissonSampledDpEvent(0.5, dp_event.GaussianDpEvent(0.3 * 10**0.5)), 3)
    got = ddp.fleet_epsilon([(0.5, 0.3, 10)] * 3, 1e-5)
    assert got == pytest.approx(acc.get_epsilon(1e-5), rel=1e-12)


def test_a_dropout_round_accounts_with_the_survivors() -> None:
    """Fewer survivors, less noise in the sum: the round's epsilon grows, and is that of
    the survivors' count, not the cohort's."""
    full = ddp.fleet_epsilon([(1.0, 0.5, 10)], 1e-5)
    dropped = ddp.fleet_epsilon([(1.0, 0.5, 7)], 1e-5)
    assert dropped > full
    assert dropped == pytest.approx(ddp.fleet_epsilon([(1.0, 0.5 * (7 / 10) ** 0.5, 10)],
                                                      1e-5), rel=1e-9)
    with pytest.raises(errors.ConfigError):
        ddp.effective_multiplier(0.5, 0)


def test_share_fits_only_with_headroom() -> None:
    roomy = ddp.NoiseShare(z=0.5, update_clip=1.0, scale_log2=10, params=68, cohort=5)
    assert roomy.fits()
    # The finest scale for 1000 devices leaves no room for noise in 32 bits.
    tight = ddp.NoiseShare(z=0.5, update_clip=1.0, scale_log2=21, params=68, cohort=1000)
    assert not tight.fits()


def _params(scale_log2: int) -> SecAggParams:
    return SecAggParams(t=3, k=4, cohort=5, update_clip=U,
                        scale_log2=scale_log2)


def test_masked_sum_carries_the_noise_of_the_survivors(tmp_path: Path, roles: Roles) -> None:
    """Five simulated TAs with min_noise_share z: the unmasked sum minus the sum of the
    references is noise of std sqrt(n z^2 norm2_max) grid units (plus rounding, at most one
    unit per device and coordinate); with a dropout before masking, of the survivors."""
    z, s = 2.0, 8
    with cohort(tmp_path, roles, 5, policy_kw={"min_noise_share": z}) as c:
        for round_id, drop, n in ((1, drop_at("masked", 0), 5), (2, drop_at("masked", 2), 3)):
            srv, summed = run_round(c, _params(s), drop, round_id=round_id)
            assert len(summed) == n
            got, survivors = srv.result()
            assert len(survivors) == n
            expected = sum(c.reference(d) for d in summed)
            share = ddp.NoiseShare(z, U, s, expected.size, 5)
            err = (np.asarray(got, np.float64) - expected) * 2.0**s  # grid units
            std = (n * float(share.variance)) ** 0.5
            assert std > 10 * n, "noise must dominate the rounding for this check"
            # 68 coordinates: the sample std is within 40% (about 4.7 standard errors).
            assert np.std(err) == pytest.approx(std, rel=0.4)
            assert abs(np.mean(err)) < 5 * std / np.sqrt(err.size)


def test_policy_share_refuses_a_ticket_without_it(tmp_path: Path, roles: Roles) -> None:
    """A float32 (mode 1) ticket would release an update without the noise share."""
    with cohort(tmp_path, roles, 3, policy_kw={"min_noise_share": 1.0}) as c:
        d = c.devices[0]
        with pytest.raises(errors.NoiseShareBelowPolicy):
            d.ta.verify_ticket(ticket(roles.aggregator), ree_time=NOW)
        assert isinstance(errors.NoiseShareBelowPolicy("x"), errors.PolicyViolation)


def test_share_without_headroom_is_refused_at_seal(tmp_path: Path, roles: Roles) -> None:
    """A round quantized so finely that cohort sums plus the noise tail could overflow."""
    with (cohort(tmp_path, roles, 5, policy_kw={"min_noise_share": 50.0}) as c,
          pytest.raises(errors.NoiseShareUnfit)):
        run_round(c, _params(None))  # type: ignore[arg-type]


def test_combined_multiplier_adds_variances() -> None:
    assert ddp.combined_multiplier(0.0, 0.5, 4) == pytest.approx(1.0)
    assert ddp.combined_multiplier(1.0, 0.5, 12) == pytest.approx(2.0)


def test_masked_mean_without_noise_is_the_dequantized_mean() -> None:
    """The aggregator's secagg mean: the sum's grid integers / 2^s / n, exactly."""
    from edge.aggregator import fedavg

    rng = np.random.default_rng(3)
    units = rng.integers(-1000, 1000, 50)
    total = units / 2.0**10
    got = fedavg.aggregate_masked(total, 4, central_noise=0.0, update_clip=1.0, scale_log2=10)
    np.testing.assert_array_equal(got, units / 2.0**10 / 4)


def test_masked_mean_central_noise_is_integer_noise_of_the_stated_scale() -> None:
    """Central noise on a secagg sum: discrete Gaussian on the 2^-s grid, std
    z (r + sqrt(d)) / 2^s / n, r = U 2^s; 20,000 coordinates, 6 standard errors."""
    from edge.aggregator import fedavg

    d, s, z, n = 20_000, 6, 0.7, 3
    got = fedavg.aggregate_masked(np.zeros(d), n, central_noise=z, update_clip=1.0,
                                  scale_log2=s)
    units = got * n * 2.0**s
    np.testing.assert_allclose(units, np.rint(units), atol=1e-6)
    std = z * (2.0**s + d**0.5) / 2.0**s / n
    assert np.std(got) == pytest.approx(std, rel=6 / (2 * d) ** 0.5)


def test_published_noise_replaces_the_rounds_accounted_multiplier(tmp_path: Path) -> None:
    from edge.aggregator.config import AggregatorConfig
    from edge.aggregator.registry import Registry
    from edge.aggregator.rounds import RoundManager
    from edge.aggregator.simulate import FakeDevice, config_mapping
    from edge.aggregator.store import Store

    config = AggregatorConfig.from_mapping(config_mapping(
        tmp_path, rounds={"cohort_size": 2, "quorum": 2}))
    with Store(config.state) as store:
        registry = Registry(store)
        devs = [FakeDevice(example_count=5) for _ in range(2)]
        for d in devs:
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry)
        for topic, tk in manager.open_next():
            d = next(x for x in devs if x.device_id.hex() in topic)
            manager.handle(d.topic("test"), d.update(tk, np.zeros(27, np.float32)))
        manager.close()
        assert store.round_privacy() == [(1.0, 0.0)]
        with store.transaction() as db:
            store.set_published_noise(db, 1, ddp.combined_multiplier(0.0, 0.5, 2))
        (_q, z), = store.round_privacy()
        assert z == pytest.approx(0.5 * 2**0.5)
