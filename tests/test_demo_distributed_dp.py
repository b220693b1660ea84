"""``edge demo --dp distributed`` run small (one device dropped in one round), and the
aggregator's check that the secagg scale and cohort leave 32-bit room for the noise share."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_native

from edge import errors
from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.store import Store
from edge.broker import MosquittoBroker
from edge.daemon import daemon as daemon_mod
from edge.demo import data as demo_data
from edge.demo.app import DemoOptions, run_demo
from edge.demo.fleet import enable_secagg, write_fleet
from edge.demo.settings import DISTRIBUTED, with_noise_share
from edge.formats.ticket import build_ticket, parse_ticket
from edge.keyfiles import load_private_key
from edge.secagg import distributed_dp as ddp
from edge.tee import TrustedApp

DEVICES, ROUNDS = 4, 2
DROPPED = "board-02"  # leaves round DROP_ROUND of the distributed run before masking
DROP_ROUND = 2


@pytest.fixture
def broker_url(mosquitto: MosquittoBroker) -> str:
    """conftest's Mosquitto (started, and stopped after the test), by its URL."""
    return mosquitto.url


def test_demo_distributed_three_modes_survivor_accounting_and_policy_share(
        broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three rows (non-private, local DP, distributed); the distributed run's fleet ε is
    that of the survivors' counts (4, then 3: one device drops before masking in round 2);
    every distributed TA refuses a ticket that would release its update without the share."""
    masked = daemon_mod.Daemon._secagg_masked

    def drop_one(self: Any) -> None:
        kept = parse_ticket((self.config.work_dir / daemon_mod.SECAGG_TICKET).read_bytes())
        if self.config.name == DROPPED and kept.round_id == DROP_ROUND:
            return  # gone before sealing: its share of the noise is not in the sum
        masked(self)

    monkeypatch.setattr(daemon_mod.Daemon, "_secagg_masked", drop_one)
    work, out = tmp_path / "demo", io.StringIO()
    report: dict[str, Any] = run_demo(DemoOptions(
        devices=DEVICES, rounds=ROUNDS, broker=broker_url, dp="distributed", workdir=work,
        timeout_s=8.0), out=out)
    text = out.getvalue()

    modes = report["privacy_modes"]
    assert [m["mode"] for m in modes] == ["non-private", "local DP", "distributed"], text
    assert all(m["final_accuracy"] is not None for m in modes)
    assert "privacy mode" in text and "distributed" in text.split("privacy mode")[1]
    nonprivate, local, dist = modes
    assert nonprivate["points_vs_non_private"] == 0.0
    assert math.isinf(nonprivate["device_epsilon"]) and nonprivate["fleet_epsilon"] is None
    assert local["fleet_epsilon"] is None and 0 < local["device_epsilon"] < 100

    z = report["noise_share"]
    assert z > 0
    assert [r["participants"] for r in report["rows"]] == [DEVICES, DEVICES - 1]
    survivors = ddp.fleet_epsilon([(1.0, z, DEVICES), (1.0, z, DEVICES - 1)], report["delta"])
    everyone = ddp.fleet_epsilon([(1.0, z, DEVICES)] * 2, report["delta"])
    assert survivors > everyone * 1.01  # the drop is visible in ε
    assert dist["fleet_epsilon"] == pytest.approx(survivors, rel=1e-6)
    assert report["rows"][0]["fleet_epsilon"] == pytest.approx(
        ddp.fleet_epsilon([(1.0, z, DEVICES)], report["delta"]), rel=1e-6)
    # calibrated for the run without dropouts to the local run's device ε
    assert everyone <= local["device_epsilon"] * 1.01

    # The policy's min_noise_share, enforced by the TAs: a ticket for a release without
    # secure aggregation (hence without the share) is refused by name, by every device.
    root = work / "distributed"
    aggregator = load_private_key(root / "keys" / "aggregator.key")
    now = int(time.time())
    for i in range(1, DEVICES + 1):
        with TrustedApp("sim", root / "devices" / f"board-{i:02d}" / "secure-world") as ta:
            st = ta.status()
            plain = build_ticket(aggregator, round_id=1000, model_version=st.model_version,
                                 package_id=st.package_id, nonce=os.urandom(16),
                                 issued_at=now - 5, deadline=now + 600, example_clip=1.0,
                                 noise_multiplier=DISTRIBUTED.noise_multiplier,
                                 update_clip=DISTRIBUTED.update_clip, learning_rate=1.0,
                                 epochs=1, batch_size=1)
            with pytest.raises(errors.NoiseShareBelowPolicy) as refused:
                ta.verify_ticket(plain)
            assert refused.value.refusal == "noise-share-below-policy"


def _distributed_fleet(root: Path, scale_log2: int) -> AggregatorConfig:
    split = demo_data.split_digits(2, 0.5, 0)
    backbone = demo_data.build_backbone(split.public_x, split.public_y, seed=0)
    dp = with_noise_share(DISTRIBUTED, 2, 2, 8.0)
    fleet = write_fleet(root, split, backbone, dp, broker_url="mqtt://127.0.0.1:1", rounds=2,
                        seed=0)
    enable_secagg(fleet, scale_log2=scale_log2)
    return AggregatorConfig.from_mapping(fleet.aggregator)


def test_aggregator_refuses_a_scale_without_room_for_the_noise_share(tmp_path: Path) -> None:
    """At start: the finest scale that fits starts; one finer is refused naming the keys, both
    values and the finest that fits. Before a round: a policy whose share no longer fits the
    configured scale opens no round."""
    require_native("host")
    z = with_noise_share(DISTRIBUTED, 2, 2, 8.0).noise_share
    clip = float(np.float32(DISTRIBUTED.update_clip))
    finest = ddp.finest_fitting_scale(z, clip, demo_data.PARAMS, 2)
    assert finest is not None and finest < 30  # the noise costs resolution

    bad = _distributed_fleet(tmp_path / "bad", finest + 1)
    with Store(bad.state) as store, pytest.raises(errors.ConfigError) as exc:
        RoundManager(bad, store, Registry(store))
    msg = str(exc.value)
    for part in (f"secagg.scale_log2 {finest + 1}", "rounds.cohort_size 2",
                 f"min_noise_share {z:g}", f"secagg.scale_log2 <= {finest}",
                 "noise-share-unfit"):
        assert part in msg, msg

    good = _distributed_fleet(tmp_path / "good", finest)
    with Store(good.state) as store:
        registry = Registry(store)
        manager = RoundManager(good, store, registry)
        for rec in sorted((tmp_path / "good" / "devices").glob("*")):
            with TrustedApp("sim", rec / "secure-world") as ta:
                registry.enroll(ta.identity())
        assert manager.device_budget is not None
        bigger = dataclasses.replace(manager.device_budget.policy, min_noise_share=4 * z)
        manager.device_budget = dataclasses.replace(manager.device_budget, policy=bigger)
        with pytest.raises(errors.ConfigError, match=r"secagg\.scale_log2"):
            manager.open_next()
        assert store.last_round_id() == 0  # nothing opened, no ticket signed
