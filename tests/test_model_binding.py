"""Tickets and packages name one package id; a fresh or restored database publishes above the
fleet's version (issue 15: a second aggregator's "v1" was accepted by a board)."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest
from inference_helpers import small_backbone

from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.aggregator.store import Store
from edge.errors import ConfigError
from edge.formats.envelope import Kind, parse_envelope
from edge.formats.manifest import parse_manifest
from edge.formats.ticket import parse_ticket


def _manager(config: AggregatorConfig, store: Store, devices: list[FakeDevice]) -> RoundManager:
    registry = Registry(store)
    for d in devices:
        registry.enroll(d.record)
    return RoundManager(config, store, registry)


def test_tickets_and_updates_name_the_package_they_train(tmp_path: Path) -> None:
    config = AggregatorConfig.from_mapping(config_mapping(
        tmp_path, rounds={"cohort_size": 2, "quorum": 2, "min_updates": 1}))
    devs = [FakeDevice(), FakeDevice()]
    with Store(config.state) as store:
        manager = _manager(config, store, devs)
        pending = manager.pending_publication()
        assert pending is not None and pending.package is not None
        m = parse_manifest(parse_envelope(pending.package[1], kind=Kind.PACKAGE,
                                          exact=False).body)
        cp = store.latest_checkpoint()
        assert cp is not None and m.package_id == cp.package_id and m.version == cp.version
        # A rebuilt package of the same version keeps its id: tickets stay valid.
        again = manager.pending_publication()
        assert again is not None and again.package is not None
        assert parse_manifest(parse_envelope(again.package[1], kind=Kind.PACKAGE,
                                             exact=False).body).package_id == m.package_id
        tickets = dict(manager.open_next())
        assert {parse_ticket(t).package_id for t in tickets.values()} == {m.package_id}
        ticket = next(iter(tickets.values()))
        d0, d1 = devs
        # An update for the same version of another package (a second aggregator's v1).
        out = manager.handle(d0.topic("test"), d0.update(ticket, [0.0] * 27,
                                                         package_id=bytes(16)))
        assert (out.accepted, out.refusal) == (False, "wrong-model")
        assert out.reason == (f"update for model v1 (package {bytes(16).hex()}), round 1 "
                              f"trains v1 (package {m.package_id.hex()})")
        assert manager.handle(d1.topic("test"), d1.update(ticket, [0.0] * 27)).accepted


def test_a_fresh_database_publishes_above_the_fleet_version(tmp_path: Path) -> None:
    config = AggregatorConfig.from_mapping(config_mapping(
        tmp_path, aggregator={"fleet_version": 12}))
    with Store(config.state) as store:
        manager = _manager(config, store, [FakeDevice()])
        pending = manager.pending_publication()
        assert pending is not None and pending.version == 13


def test_a_restored_database_is_lifted_above_the_fleet_version(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    table = config_mapping(tmp_path)
    config = AggregatorConfig.from_mapping(table)
    with Store(config.state) as store:
        _manager(config, store, [FakeDevice()])
        old = store.latest_checkpoint()
    assert old is not None and old.version == 1
    backup = tmp_path / "backup.sqlite"
    shutil.copyfile(config.state, backup)
    table["aggregator"]["state"] = str(backup)
    table["aggregator"]["fleet_version"] = 7
    caplog.set_level(logging.INFO, logger="edge.aggregator")
    restored = AggregatorConfig.from_mapping(table)
    with Store(restored.state) as store:
        manager = RoundManager(restored, store, Registry(store))
        cp = store.latest_checkpoint()
        assert cp is not None and cp.version == 8 and cp.package_id != old.package_id
        assert manager.ensure_model().version == 8  # once
        assert list(map(float, cp.W.reshape(-1))) == list(map(float, old.W.reshape(-1)))
    assert (f"model v1 of {backup} is not above the fleet's v7: its head is issued as v8"
            in caplog.text)


def test_fleet_version_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"aggregator\.fleet_version"):
        AggregatorConfig.from_mapping(config_mapping(tmp_path,
                                                     aggregator={"fleet_version": -1}))


def test_a_database_of_the_previous_release_gets_package_ids(tmp_path: Path) -> None:
    """Checkpoints written before the package id was bound are given one at open."""
    config = AggregatorConfig.from_mapping(config_mapping(tmp_path))
    with Store(config.state) as store:
        _manager(config, store, [FakeDevice()])
    db = sqlite3.connect(config.state)
    db.execute("ALTER TABLE checkpoints DROP COLUMN package_id")
    db.commit()
    db.close()
    with Store(config.state) as store:
        cp = store.latest_checkpoint()
        assert cp is not None and len(cp.package_id) == 16


# -- what the aggregator checks at start about the backbone it ships -------------------------

def _backbone_config(tmp_path: Path, *, features: int = 8, metadata: object = "same",
                     ) -> dict:
    backbone, meta = small_backbone(features=features)
    (tmp_path / "b.tflite").write_bytes(backbone)
    agg: dict[str, object] = {"backbone": str(tmp_path / "b.tflite")}
    if metadata is not None:
        (tmp_path / "b.json").write_text(json.dumps(meta if metadata == "same" else metadata))
        agg["backbone_metadata"] = str(tmp_path / "b.json")
    return config_mapping(tmp_path, aggregator=agg)


@pytest.mark.parametrize(("kw", "message"), [
    (dict(features=10), "aggregator.initial_head: the head takes 8 features, the backbone "),
    (dict(metadata=None), "aggregator.backbone_metadata: required with aggregator.backbone"),
    (dict(metadata={"input": {"shape": [None, 16], "dtype": "float32"},
                    "output": {"shape": [None, 8], "dtype": "float32"}}),
     "aggregator.backbone_metadata: input is float32 [-1, 16], "),
])
def test_the_aggregator_refuses_a_backbone_the_boards_could_not_use(
        tmp_path: Path, kw: dict, message: str) -> None:
    config = AggregatorConfig.from_mapping(_backbone_config(tmp_path, **kw))
    with Store(config.state) as store, pytest.raises(ConfigError) as info:
        RoundManager(config, store, Registry(store))
    assert str(info.value).startswith(message), str(info.value)
    with Store(config.state) as store:
        assert store.latest_checkpoint() is None  # refused before anything was written


def test_a_backbone_that_fits_the_head_starts(tmp_path: Path) -> None:
    config = AggregatorConfig.from_mapping(_backbone_config(tmp_path))
    with Store(config.state) as store:
        RoundManager(config, store, Registry(store))
