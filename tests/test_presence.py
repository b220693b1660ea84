"""Presence: boards announce online/offline (retained status, last will), cohorts are drawn
from live boards, a round whose awaited boards all went offline closes without its deadline,
and `edge aggregator revoke` removes a board."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_native
from federation_helpers import Federation, make_fleet, to_toml

from edge import protocol
from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, clip, config_mapping
from edge.aggregator.store import Store
from edge.broker import MosquittoBroker
from edge.cli import main as edge_main
from edge.formats.ticket import parse_ticket


def test_a_board_down_is_left_out_and_rounds_do_not_wait_for_it(
        tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """Three real daemons over Mosquitto, one stopped: with a deadline of 10 minutes, two
    rounds still finish within the test's 60 s, each with the two live boards."""
    require_native("host")
    fleet = make_fleet(tmp_path / "fleet", mosquitto.url, devices=3, timeout_s=600.0,
                       quorum=3, min_updates=1)
    fed = Federation(fleet)
    try:
        fed.start_boards()
        down = fed.boards[2]
        down_id = down.daemon.device_id
        down.halt()  # a clean stop publishes its retained offline status
        agg = fed.make_aggregator()
        rows = fed.run_rounds(2, timeout=60.0)
        assert [(m.round, m.participants, m.failed) for m in rows] == [(1, 2, False),
                                                                       (2, 2, False)]
        for round_id in (1, 2):
            assert down_id not in agg.store.tickets(round_id)
        views = {d["device"]: d for d in agg.store.device_activity()}
        assert views[down_id.hex()]["presence"] == "offline"
        live = [b.daemon.device_id.hex() for b in fed.boards[:2]]
        assert [views[d]["presence"] for d in live] == ["online", "online"]
        assert [views[d]["rounds_joined"] for d in live] == [2, 2]
    finally:
        fed.close()


def _config(tmp_path: Path) -> Path:
    """An aggregator configuration (cohort 3, quorum 3, min_updates 1) as a TOML file."""
    path = tmp_path / "pres.toml"
    if not path.exists():
        path.write_text(to_toml(config_mapping(
            tmp_path, fleet="pres", rounds={"cohort_size": 3, "quorum": 3, "min_updates": 1})))
    return path


def _manager(tmp_path: Path, devices: list[FakeDevice] | None = None,
             ) -> tuple[RoundManager, Store]:
    """A round manager over the configuration's database, enrolling ``devices`` first."""
    config = AggregatorConfig.from_toml(_config(tmp_path))
    store = Store(config.state)
    registry = Registry(store)
    for d in devices or []:
        registry.enroll(d.record)
    return RoundManager(config, store, registry), store


def _say(manager: RoundManager, dev: FakeDevice, payload: bytes) -> None:
    manager.presence(protocol.status_topic("pres", dev.device_id), payload)


def test_presence_steers_the_cohort_and_survives_a_restart(tmp_path: Path) -> None:
    devices = [FakeDevice() for _ in range(3)]
    manager, store = _manager(tmp_path, devices)
    a, b, c = devices
    _say(manager, b, protocol.OFFLINE)
    _say(manager, c, b"maybe")  # ignored, logged
    manager.presence("edge/v1/pres/devices/nothex/status", protocol.OFFLINE)  # ignored
    tickets = manager.open_next()
    cohort = {parse_ticket(t).round_id for _, t in tickets}
    assert cohort == {1}
    assert sorted(topic.split("/")[4] for topic, _ in tickets) == \
        sorted(d.device_id.hex() for d in (a, c))
    # a device awaited goes offline mid-round: once the others answered, the round closes
    for topic, ticket in tickets:
        dev = a if a.device_id.hex() in topic else c
        if dev is a:
            assert manager.handle(a.topic("pres"), a.update(ticket, clip(
                np.full(27, 0.1, np.float32), 1.0))).accepted
    assert manager.due() is None
    _say(manager, c, protocol.OFFLINE)
    assert manager.due() == "offline"
    m = manager.close()
    assert (m.participants, m.failed) == (1, False)
    # the sampling rate stays cohort / enrolled
    assert store.get_round(1).sampling_rate == pytest.approx(2 / 3)
    store.close()
    # presence is kept: after a restart b and c are still offline until they say online
    manager, store = _manager(tmp_path)
    assert manager.live_devices() == [a.device_id]
    _say(manager, b, protocol.ONLINE)
    assert sorted(manager.live_devices()) == sorted([a.device_id, b.device_id])
    store.close()


def test_deferred_presence_counts_at_once_and_is_durable_after_the_commit(
        tmp_path: Path) -> None:
    """The aggregator batches presence rows into its group commit: the cohort sees them at
    once, the database (and so a restart) only after ``commit``, acked only then."""
    devices = [FakeDevice() for _ in range(3)]
    manager, store = _manager(tmp_path, devices)
    a, b, c = devices
    manager.presence(protocol.status_topic("pres", b.device_id), protocol.OFFLINE, defer=True)
    manager.presence(protocol.status_topic("pres", c.device_id), protocol.OFFLINE, defer=True)
    assert manager.live_devices() == [a.device_id]
    assert store.presence() == {}  # not durable yet: its message is not acked either
    manager.commit()
    assert {d: st for d, (st, _) in store.presence().items()} == {
        b.device_id: "offline", c.device_id: "offline"}
    store.close()


def test_revoke_removes_a_board(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    devices = [FakeDevice() for _ in range(3)]
    _manager(tmp_path, devices)[1].close()
    toml = _config(tmp_path)
    gone = devices[1].device_id.hex()
    assert edge_main(["aggregator", "revoke", "--config", str(toml), gone]) == 0
    assert f"revoked device {gone}" in capsys.readouterr().out
    assert edge_main(["aggregator", "revoke", "--config", str(toml), gone]) == 1
    assert f"device {gone} is not enrolled" in capsys.readouterr().err
    assert edge_main(["aggregator", "revoke", "--config", str(toml), "xyz"]) == 1
    assert "is neither a board name nor 32 hex digits" in capsys.readouterr().err
    assert edge_main(["aggregator", "devices", "--config", str(toml), "--json"]) == 0
    listed = [d["device"] for d in json.loads(capsys.readouterr().out)["devices"]]
    assert gone not in listed and len(listed) == 2
    manager, store = _manager(tmp_path)
    try:
        recipients = manager.pending_publication().recipients
        assert gone not in recipients and len(recipients) == 2
        tickets = manager.open_next()
        assert len(tickets) == 2 and all(gone not in t for t, _ in tickets)
        # its updates are now from an unknown device
        dev = devices[1]
        fake = dev.update(parse_ticket(tickets[0][1]), np.zeros(27, np.float32))
        outcome = manager.handle(dev.topic("pres"), fake)
        assert outcome.refusal == "unknown-device"
    finally:
        store.close()
