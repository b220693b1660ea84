"""FedAvg / DP-FedAvg math against numpy by hand, noise scale, fleet ε; no broker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.aggregator import fedavg
from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, clip, config_mapping
from edge.aggregator.store import Store
from edge.errors import ConfigError
from edge.formats.ticket import parse_ticket


def test_weighted_mean_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    deltas = [rng.normal(size=50).astype(np.float32) for _ in range(7)]
    counts = [int(n) for n in rng.integers(1, 100, 7)]
    expected = sum(n * d.astype(np.float64) for d, n in zip(deltas, counts, strict=True)) \
        / sum(counts)
    np.testing.assert_allclose(fedavg.fedavg(deltas, counts), expected, rtol=1e-12)


def test_aggregate_without_noise_is_the_weighted_mean() -> None:
    acc = fedavg.RunningSum.empty(3)
    acc = fedavg.accumulate(acc, np.array([1, 0, 0], np.float32), 3.0)
    acc = fedavg.accumulate(acc, np.array([0, 1, 0], np.float32), 1.0)
    out = fedavg.aggregate(acc, central_noise=0.0, update_clip=1.0)
    np.testing.assert_allclose(out, [0.75, 0.25, 0.0])
    assert fedavg.update_weight(40, 0.0) == 40.0 and fedavg.update_weight(40, 1.2) == 1.0


def test_central_noise_scale() -> None:
    """Zero deltas: the mean is pure discrete noise, integer multiples of U/2^16/m, with
    standard deviation z·U/m (times 1 + 4e-5 of rounding slack). 20,000 draws: the
    sample std is within 6 standard errors (rel. 1/sqrt(2d) each)."""
    m, z, u, d = 8, 1.5, 0.7, 20_000
    acc = fedavg.RunningSum.empty(d)
    for _ in range(m):
        acc = fedavg.accumulate(acc, fedavg.on_grid(np.zeros(d, np.float32), u), 1.0)
    noisy = fedavg.aggregate(acc, central_noise=z, update_clip=u)
    std = fedavg.noise_std(z, u, m, d)
    assert std == pytest.approx(z * u / m, rel=1e-4) and std > z * u / m
    assert np.std(noisy) == pytest.approx(std, rel=6 / np.sqrt(2 * d))
    assert abs(np.mean(noisy)) < 5 * std / np.sqrt(d)
    units = noisy * m / fedavg.central_grid(u, d).step
    np.testing.assert_allclose(units, np.rint(units), atol=1e-6)  # integer noise on the grid


def test_central_noise_mean_is_the_deltas_mean_on_the_grid() -> None:
    """Real deltas: the noisy mean's error is the noise (variance z²·norm2_max units²/m²)
    plus at most one grid step per device; averaged over coordinates it vanishes."""
    m, z, u, d = 5, 0.5, 1.0, 4000
    rng = np.random.default_rng(4)
    deltas = [clip(rng.normal(size=d), u).astype(np.float32) for _ in range(m)]
    acc = fedavg.RunningSum.empty(d)
    for delta in deltas:
        rounded = fedavg.on_grid(delta, u)
        assert rounded.dtype == np.int64
        assert int(rounded @ rounded) <= fedavg.central_grid(u, d).norm2_max
        acc = fedavg.accumulate(acc, rounded, 1.0)
    exact = np.mean(np.stack(deltas).astype(np.float64), axis=0)
    err = fedavg.aggregate(acc, central_noise=z, update_clip=u) - exact
    std = fedavg.noise_std(z, u, m, d)
    assert np.std(err) == pytest.approx(std, rel=0.1)
    assert abs(np.mean(err)) < 5 * std / np.sqrt(d)


def test_apply_to_head() -> None:
    W, b = np.ones((2, 3), np.float32), np.zeros(3, np.float32)
    delta = np.arange(9, dtype=np.float64)
    W2, b2 = fedavg.apply_to_head(W, b, delta)
    np.testing.assert_array_equal(W2, 1 + np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(b2, [6, 7, 8])
    with pytest.raises(ValueError):
        fedavg.apply_to_head(W, b, np.zeros(8))


def test_fleet_epsilon_monotone_in_rounds() -> None:
    eps = [fedavg.fleet_epsilon([(0.1, 1.0)] * n, 1e-5) for n in (1, 2, 5, 10, 50)]
    assert all(e is not None for e in eps)
    assert eps == sorted(eps) and len(set(eps)) == len(eps)
    assert fedavg.fleet_epsilon([], 1e-5) == 0.0
    assert fedavg.fleet_epsilon([(0.1, 1.0), (0.1, 0.0)], 1e-5) is None
    more_noise = fedavg.fleet_epsilon([(0.1, 2.0)] * 10, 1e-5)
    assert more_noise is not None and more_noise < eps[3]


def test_round_close_applies_weighted_mean(tmp_path: Path) -> None:
    config = AggregatorConfig.from_mapping(config_mapping(tmp_path, rounds={
        "cohort_size": 3, "quorum": 3}))
    with Store(config.state) as store:
        registry = Registry(store)
        devs = [FakeDevice(example_count=n) for n in (5, 10, 25)]
        for d in devs:
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry)
        tickets = dict(manager.open_next())
        rng = np.random.default_rng(0)
        deltas = [clip(rng.normal(size=27), 1.0) for _ in devs]
        for d, delta in zip(devs, deltas, strict=True):
            ticket = tickets[d.topic("test").replace("/update", "/ticket")]
            assert parse_ticket(ticket).round_id == 1
            assert manager.handle(d.topic("test"), d.update(ticket, delta)).accepted
        m = manager.close()
        assert (m.round, m.participants, m.model_version, m.failed) == (1, 3, 2, False)
        assert m.epsilon is None  # no central noise: no fleet-level guarantee
        cp = store.latest_checkpoint()
        assert cp is not None and cp.version == 2
        expected = fedavg.fedavg(deltas, [5, 10, 25])
        np.testing.assert_allclose(np.concatenate([cp.W.ravel(), cp.b]), expected, atol=1e-6)


def test_central_noise_round_reports_epsilon(tmp_path: Path) -> None:
    config = AggregatorConfig.from_mapping(config_mapping(
        tmp_path, rounds={"cohort_size": 2, "quorum": 2},
        dp={"central_noise_multiplier": 1.0}))
    with Store(config.state) as store:
        registry = Registry(store)
        devs = [FakeDevice(example_count=n) for n in (5, 10, 25, 3)]
        for d in devs:
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry)
        eps = []
        for _ in range(3):
            for topic, ticket in manager.open_next():
                d = next(x for x in devs if x.device_id.hex() in topic)
                manager.handle(d.topic("test"), d.update(ticket, np.zeros(27, np.float32)))
            m = manager.close()
            eps.append(m.epsilon)
        expected = fedavg.fleet_epsilon([(0.5, 1.0)] * 3, 1e-5)
        assert eps[-1] == pytest.approx(expected)
        assert eps == sorted(eps)
        cp = store.latest_checkpoint()
        assert cp is not None and np.std(cp.W) > 0  # noise reached the head


@pytest.mark.parametrize("weight", [1.0, 37.0, 0.3])
def test_add_into_is_accumulate_in_place(weight: float) -> None:
    """The in-place sum the aggregator keeps is bit for bit the reference ``accumulate``."""
    rng = np.random.default_rng(7)
    deltas = [rng.normal(size=1000).astype(np.float32) for _ in range(5)]
    acc = fedavg.RunningSum.empty(1000)
    total, scratch = np.zeros(1000), np.empty(1000)
    for d in deltas:
        acc = fedavg.accumulate(acc, d, weight)
        fedavg.add_into(total, d, weight, scratch)
    assert np.array_equal(total, acc.total)
    with pytest.raises(ValueError, match="shape"):
        fedavg.add_into(total, deltas[0][:10], weight)
    with pytest.raises(ValueError, match="weight"):
        fedavg.add_into(total, deltas[0], float("nan"))


def _target_config(tmp_path: Path, **dp: object) -> AggregatorConfig:
    table = config_mapping(tmp_path, rounds={"cohort_size": 2, "quorum": 2, "rounds": 10})
    del table["dp"]["central_noise_multiplier"]
    table["dp"].update(dp)
    return AggregatorConfig.from_mapping(table)


def test_central_noise_by_target_epsilon(tmp_path: Path) -> None:
    """dp.central_target_epsilon solves z over rounds.rounds rounds at rate 1: round trip
    within 1% and never above the target; the fleet accountant agrees."""
    config = _target_config(tmp_path, central_target_epsilon=4.0)
    z = config.dp.central_noise_multiplier
    assert config.dp.central_target_epsilon == 4.0 and z > 0
    eps = fedavg.fleet_epsilon([(1.0, z)] * 10, 1e-5)
    assert eps is not None and 4.0 * 0.99 <= eps <= 4.0


def test_central_target_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dp\.central_target_epsilon.*not both"):
        _target_config(tmp_path, central_target_epsilon=4.0, central_noise_multiplier=1.0)
    table = config_mapping(tmp_path)
    del table["dp"]["central_noise_multiplier"]
    table["dp"]["central_target_epsilon"] = 4.0
    with pytest.raises(ConfigError, match=r"dp\.central_target_epsilon.*rounds\.rounds"):
        AggregatorConfig.from_mapping(table)
