"""Aggregator state: crash safety of one update's transaction, resume after restart, config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from inference_helpers import small_backbone

from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.aggregator.store import Store
from edge.errors import ConfigError
from edge.formats.keys import ed25519_raw_public
from edge.formats.keywrap import parse_key_wrap

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import json, sys, time
    from edge.aggregator.config import AggregatorConfig
    from edge.aggregator.registry import Registry
    from edge.aggregator.rounds import RoundManager
    from edge.aggregator.store import Store

    table, topic = json.load(open(sys.argv[1])), sys.argv[2]
    payload = open(sys.argv[3], "rb").read()
    config = AggregatorConfig.from_mapping(table)
    store = Store(config.state)
    original = Store.add_updates
    def add_and_hang(self, db, *args):
        original(self, db, *args)
        print("in-transaction", flush=True)
        time.sleep(60)
    Store.add_updates = add_and_hang
    RoundManager(config, store, Registry(store)).handle(topic, payload)
""")


def _fleet(tmp_path: Path, n: int = 2) -> tuple[dict, list[FakeDevice], dict[str, bytes]]:
    table = config_mapping(tmp_path, rounds={"cohort_size": n, "quorum": n, "min_updates": 1})
    config = AggregatorConfig.from_mapping(table)
    devs = [FakeDevice(example_count=10 + i) for i in range(n)]
    with Store(config.state) as store:
        registry = Registry(store)
        for d in devs:
            registry.enroll(d.record)
        tickets = dict(RoundManager(config, store, registry).open_next())
    return table, devs, {d.topic("test"): tickets[d.topic("test")[:-6] + "ticket"] for d in devs}


def test_kill_mid_transaction_loses_nothing_and_counts_once(tmp_path: Path) -> None:
    table, devs, tickets = _fleet(tmp_path)
    dev = devs[0]
    topic = dev.topic("test")
    payload = dev.update(tickets[topic], np.full(27, 0.05, np.float32))
    (tmp_path / "table.json").write_text(json.dumps(table))
    (tmp_path / "update.bin").write_bytes(payload)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "table.json"), topic,
         str(tmp_path / "update.bin")],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "in-transaction"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    config = AggregatorConfig.from_mapping(table)
    with Store(config.state) as store:
        manager = RoundManager(config, store, Registry(store))
        assert manager.open_round is not None and manager.open_round.round_id == 1
        assert store.accepted(1) == {}  # the uncommitted effect is gone: the broker redelivers
        assert manager.handle(topic, payload).accepted
    # committed, then "crashed" before the ack: the redelivery is counted once
    with Store(config.state) as store:
        manager = RoundManager(config, store, Registry(store))
        assert manager.handle(topic, payload).refusal == "duplicate"
        assert len(store.accepted(1)) == 1
        assert manager.open_round is not None and manager.open_round.count == 1
        assert manager.missing_tickets()  # tickets of devices not yet counted go out again
        other = devs[1]
        assert manager.handle(other.topic("test"),
                              other.update(tickets[other.topic("test")],
                                           np.full(27, -0.05, np.float32))).accepted
        m = manager.close()
        assert m.participants == 2
        cp = store.latest_checkpoint()
        assert cp is not None
        expected = (10 * 0.05 + 11 * -0.05) / 21
        np.testing.assert_allclose(cp.b, expected, atol=1e-7)


def test_restart_resumes_running_sum(tmp_path: Path) -> None:
    table, devs, tickets = _fleet(tmp_path, 3)
    config = AggregatorConfig.from_mapping(table)
    deltas = [np.full(27, s, np.float32) for s in (0.1, 0.0, -0.05)]
    for i, d in enumerate(devs):
        with Store(config.state) as store:  # a fresh process for every message
            manager = RoundManager(config, store, Registry(store))
            out = manager.handle(d.topic("test"), d.update(tickets[d.topic("test")], deltas[i]))
            assert out.accepted
    with Store(config.state) as store:
        manager = RoundManager(config, store, Registry(store))
        assert manager.due() == "quorum"
        manager.close()
        cp = store.latest_checkpoint()
        assert cp is not None
        expected = (10 * 0.1 + 11 * 0.0 + 12 * -0.05) / 33
        np.testing.assert_allclose(cp.W, expected, atol=1e-7)


def test_deadline_without_enough_updates_fails_the_round(tmp_path: Path) -> None:
    table = config_mapping(tmp_path, rounds={"cohort_size": 2, "quorum": 2, "min_updates": 2,
                                             "timeout_s": 5})
    config = AggregatorConfig.from_mapping(table)
    now = [1000.0]
    with Store(config.state) as store:
        registry = Registry(store)
        for d in (FakeDevice(), FakeDevice()):
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry, clock=lambda: now[0])
        manager.open_next()
        assert manager.due() is None
        now[0] += 6
        assert manager.due() == "failed"
        m = manager.close()
        assert m.failed and m.model_version == 1 and m.participants == 0
        assert store.round_counts() == {"failed": 1}
        assert manager.open_next()[0][0].endswith("/ticket")


def test_config_names_the_bad_key(tmp_path: Path) -> None:
    good = config_mapping(tmp_path)
    AggregatorConfig.from_mapping(good)
    bad_cases = [
        ({"rounds": {"quorum": 9}}, "rounds.quorum"),
        ({"rounds": {"cohort_size": 0}}, "rounds.cohort_size"),
        ({"rounds": {"timeout_s": -1}}, "rounds.timeout_s"),
        ({"dp": {"update_clip": 0}}, "dp.update_clip"),
        ({"dp": {"delta": 1.5}}, "dp.delta"),
        ({"dp": {"central_noise_multiplier": "x"}}, "dp.central_noise_multiplier"),
        ({"aggregator": {"fleet": "Bad Fleet"}}, "aggregator.fleet"),
        ({"aggregator": {"aggregator_key": str(tmp_path / "nope")}}, "aggregator.aggregator_key"),
        ({"aggregator": {"encrypt_backbone": "yes"}}, "aggregator.encrypt_backbone"),
        ({"aggregator": {"colour": 1}}, "aggregator.colour"),
        ({"broker": {"url": "http://x"}}, "broker.url"),
        ({"eval": {"holdout": str(tmp_path / "none.npz")}}, "eval.holdout"),
    ]
    for override, key in bad_cases:
        table = json.loads(json.dumps(good))
        for section, values in override.items():
            table.setdefault(section, {}).update(values)
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            AggregatorConfig.from_mapping(table)
    with pytest.raises(ConfigError, match=r"extra: unknown table"):
        AggregatorConfig.from_mapping({**good, "extra": {}})
    missing = json.loads(json.dumps(good))
    del missing["dp"]["example_clip"]
    with pytest.raises(ConfigError, match=r"dp\.example_clip: required"):
        AggregatorConfig.from_mapping(missing)


def test_config_from_toml_resolves_relative_paths(tmp_path: Path) -> None:
    good = config_mapping(tmp_path)
    lines = []
    for section, values in good.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, str) and value.startswith(str(tmp_path)):
                value = os.path.relpath(value, tmp_path)
            lines.append(f"{key} = {json.dumps(value)}")
    (tmp_path / "agg.toml").write_text("\n".join(lines) + "\n")
    config = AggregatorConfig.from_toml(tmp_path / "agg.toml")
    assert config.state == tmp_path / "state.sqlite"
    assert config.rounds.cohort_size == 3 and config.dp.delta == 1e-5
    (tmp_path / "bad.toml").write_text("[rounds\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        AggregatorConfig.from_toml(tmp_path / "bad.toml")


def test_packages_reach_every_enrolled_device(tmp_path: Path) -> None:
    from edge.formats.envelope import Kind, parse_envelope
    from edge.formats.manifest import FLAG_BACKBONE, FLAG_BACKBONE_ENCRYPTED, parse_manifest

    backbone, metadata = small_backbone(features=8)  # the head of config_mapping: 8 x 3
    (tmp_path / "backbone.bin").write_bytes(backbone)
    (tmp_path / "backbone.json").write_text(json.dumps(metadata))
    table = config_mapping(tmp_path, aggregator={
        "backbone": str(tmp_path / "backbone.bin"),
        "backbone_metadata": str(tmp_path / "backbone.json"), "encrypt_backbone": True})
    config = AggregatorConfig.from_mapping(table)
    with Store(config.state) as store:
        registry = Registry(store)
        a, b = FakeDevice(), FakeDevice()
        registry.enroll(a.record)
        manager = RoundManager(config, store, registry)
        assert not manager.model_is_out()
        pub = manager.pending_publication()
        assert pub is not None and pub.package is not None
        (topic, package), version, recipients = pub.package, pub.version, pub.recipients
        assert topic == "edge/v1/test/model" and version == 1
        assert recipients == [a.device_id.hex()]
        assert [t for t, _ in pub.wraps] == [f"edge/v1/test/devices/{a.device_id.hex()}/wrap"]
        wrap = parse_key_wrap(pub.wraps[0][1],
                              signer_pub=ed25519_raw_public(manager.signer_key))
        assert wrap.device_id == a.device_id
        m = parse_manifest(parse_envelope(package, kind=Kind.PACKAGE, exact=False).body)
        assert wrap.package_id == m.package_id
        assert m.flags == FLAG_BACKBONE | FLAG_BACKBONE_ENCRYPTED
        assert m.backbone_len == len(backbone)
        assert json.loads(m.metadata) == metadata
        store.mark_published(version, recipients)
        assert manager.model_is_out() and manager.pending_publication() is None
        # A newcomer: only its key wrap goes out, for the same package (nobody downloads
        # the package again, and there is no new version).
        registry.enroll(b.record)
        pub = manager.pending_publication()
        assert pub is not None and pub.package is None and pub.version == 1
        assert [t for t, _ in pub.wraps] == [f"edge/v1/test/devices/{b.device_id.hex()}/wrap"]
        assert pub.recipients == sorted([a.device_id.hex(), b.device_id.hex()])
        store.mark_published(pub.version, pub.recipients)
        assert manager.model_is_out()
        # After a restart the release's keys are gone: a newcomer gets the same head as
        # version 2, package and wraps for every device.
        c = FakeDevice()
        registry.enroll(c.record)
        restarted = RoundManager(config, store, registry)
        pub = restarted.pending_publication()
        assert pub is not None and pub.package is not None and pub.version == 2
        assert len(pub.wraps) == 3
        cp = store.latest_checkpoint()
        assert cp is not None and cp.version == 2 and cp.round_id is None


def test_example_configuration_is_valid(tmp_path: Path) -> None:
    import tomllib

    with open(ROOT / "deploy" / "aggregator.example.toml", "rb") as fh:
        example = tomllib.load(fh)
    files = config_mapping(tmp_path)["aggregator"]
    for key in ("state", "metrics", "aggregator_key", "model_signer_key", "initial_head"):
        example["aggregator"][key] = files[key]
    config = AggregatorConfig.from_mapping(example)
    assert config.rounds.cohort_size == 10 and config.dp.central_noise_multiplier == 0.0


def test_failed_group_commit_drops_the_batch_and_counts_it_once_later(tmp_path: Path) -> None:
    """A batch whose commit fails (here: disk full) is gone from memory as from disk; the
    broker's redelivery of its unacknowledged messages is then counted once."""
    import sqlite3

    from edge.errors import StateError

    table, devs, tickets = _fleet(tmp_path, 3)
    config = AggregatorConfig.from_mapping(table)
    payloads = [(d.topic("test"), d.update(tickets[d.topic("test")],
                                           np.full(27, 0.02 * (i + 1), np.float32)))
                for i, d in enumerate(devs)]
    with Store(config.state) as store:
        manager = RoundManager(config, store, Registry(store))
        assert all(manager.stage(t, p).accepted for t, p in payloads[:2])
        # A second update of a device in the same batch is a duplicate, not a second count.
        again = manager.stage(*payloads[0])
        assert (again.accepted, again.refusal) == (False, "duplicate")
        assert manager.staged == 2 and manager.due() is None

        def full(*_args: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")
        store.add_updates = full  # type: ignore[method-assign]
        with pytest.raises(StateError, match="disk is full"):
            manager.commit()
        assert (manager.staged, manager.committed) == (0, 0)
        assert store.accepted(1) == {}
        del store.add_updates
        for topic, payload in payloads:  # redelivered, then the third device
            assert manager.stage(topic, payload).accepted
        assert manager.commit() == 3
        assert manager.due() == "quorum"
        manager.close()
        cp = store.latest_checkpoint()
        assert cp is not None
    expected = (10 * 0.02 + 11 * 0.04 + 12 * 0.06) / 33
    np.testing.assert_allclose(cp.W, expected, atol=1e-7)
