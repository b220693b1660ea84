"""Simulation at scale: data for more devices than disjoint sets, device host processes,
several fleets on one broker, the demo's limits named."""

from __future__ import annotations

import numpy as np
import pytest
from federation_helpers import prepared
from test_daemon_reconnect import mosquitto  # noqa: F401 -- the fixture

from edge.broker import MosquittoBroker
from edge.demo import data as demo_data
from edge.demo.app import DemoOptions, run_demo
from edge.demo.fleet import write_fleet
from edge.demo.runner import run_federation, run_fleets
from edge.demo.settings import DEFAULT
from edge.errors import ConfigError, EdgeError


def test_more_devices_than_disjoint_sets_are_drawn_with_replacement() -> None:
    small = demo_data.split_digits(10, 0.5, 0)
    assert not small.resampled
    big = demo_data.split_digits(1000, 0.5, 0)
    assert big.resampled and len(big.devices) == 1000
    assert {len(y) for _, y in big.devices} == {demo_data.MIN_PER_DEVICE}
    # Non-IID as the disjoint split: most devices hold few classes, not all ten.
    classes = [len(np.unique(y)) for _, y in big.devices]
    assert np.median(classes) <= 5, np.median(classes)
    # The same seed gives the same sets.
    again = demo_data.split_digits(1000, 0.5, 0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(big.devices, again.devices,
                                                          strict=True))


def test_devices_in_host_processes_and_two_fleets_on_one_broker(
        tmp_path, mosquitto: MosquittoBroker) -> None:  # noqa: F811
    """Five devices of two fleets in host processes of at most two (three processes): every
    round of both fleets closes with every device, and the hosts are gone afterwards."""
    split, backbone = prepared(5)
    fleets = []
    for i, part in enumerate((split.devices[:3], split.devices[3:])):
        s = demo_data.Split(split.public_x, split.public_y, split.test_x, split.test_y, part)
        fleets.append(write_fleet(tmp_path / f"f{i}", s, backbone, DEFAULT,
                                  broker_url=mosquitto.url, rounds=4, seed=1, timeout_s=120,
                                  fleet_name=f"fleet-{i}"))
    result = run_fleets(fleets, 2, per_process=2)
    assert result.errors == []
    got = {name: [(m.round, m.participants, m.failed) for m in rows]
           for name, rows in result.by_fleet.items()}
    assert got == {"fleet-0": [(1, 3, False), (2, 3, False)],
                   "fleet-1": [(1, 2, False), (2, 2, False)]}
    logs = sorted((tmp_path / "f0" / "hosts").glob("host-*.json"))
    assert len(logs) == 3  # 5 devices, at most 2 per process


def test_a_host_that_fails_is_reported_by_name(tmp_path, mosquitto: MosquittoBroker  # noqa: F811
                                               ) -> None:
    split, backbone = prepared(3)
    fleet = write_fleet(tmp_path / "f", split, backbone, DEFAULT, broker_url=mosquitto.url,
                        rounds=2, seed=1, timeout_s=60)
    fleet.devices[2]["broker"]["keepalive"] = 1  # refused when the host builds its daemon
    with pytest.raises(EdgeError, match=r"host-1 \(1 devices\) exited with status 1: .*"
                                        r"broker\.keepalive"):
        run_federation(fleet, 1, per_process=2)


@pytest.mark.parametrize(("opts", "says"), [
    (DemoOptions(devices=0), "--devices 0: must be at least 1"),
    (DemoOptions(fleet="Big_Fleet"), "--fleet: fleet name 'Big_Fleet'"),
])
def test_demo_names_its_limits(opts: DemoOptions, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
        run_demo(opts)
