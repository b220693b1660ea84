"""Skip reports at the aggregator: verified, recorded, shown where the operator looks, and a
round whose whole cohort answered (updates and skips) closes without waiting for its deadline.

The reports are built by ``edge.formats.skip.build_skip`` as the TA writes them (the TA side
is tests/test_skip_report_sim.py); the federation test at the end runs real daemons and TAs.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import require_native
from federation_helpers import Federation, make_fleet, wait_for
from ops_helpers import to_toml

from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.aggregator.store import Store
from edge.broker import BrokerError, MosquittoBroker
from edge.cli import main as edge_main
from edge.formats.skip import build_skip
from edge.formats.ticket import parse_ticket
from edge.protocol import skip_topic
from edge.tee_abi import EDGE_ERR_POLICY_VIOLATION, EDGE_ERR_WRONG_MODEL, SkipField, SkipReason

FLEET = "test"


def _skip(dev: FakeDevice, ticket: bytes, **fields: object) -> bytes:
    """The skip report dev's TA would sign for ``ticket``: sigma below the policy's."""
    t = parse_ticket(ticket)
    values: dict[str, object] = dict(
        round_id=t.round_id, nonce=t.nonce, ticket_model_version=t.model_version,
        ticket_package_id=t.package_id, model_version=t.model_version,
        package_id=t.package_id, result=EDGE_ERR_POLICY_VIOLATION,
        field=SkipField.NOISE_MULTIPLIER, value=float(np.float32(1.0)),
        bound=float(np.float32(1.1)), reported_at=t.issued_at)
    values.update(fields)
    return build_skip(dev.identity, **values)


TABLES: dict[Path, dict] = {}


def _open(tmp_path: Path, n: int = 2
          ) -> tuple[AggregatorConfig, Store, RoundManager, list[FakeDevice], dict[bytes, bytes]]:
    """An aggregator of n fake devices with round 1 open; its tickets by device id."""
    table = config_mapping(tmp_path, rounds={"cohort_size": n, "quorum": n, "min_updates": 1})
    TABLES[tmp_path] = table
    config = AggregatorConfig.from_mapping(table)
    store = Store(config.state)
    registry = Registry(store)
    devs = [FakeDevice() for _ in range(n)]
    for d in devs:
        registry.enroll(d.record)
    manager = RoundManager(config, store, registry)
    tickets = {bytes.fromhex(topic.split("/")[-2]): t for topic, t in manager.open_next()}
    return config, store, manager, devs, tickets


def test_a_skip_report_is_recorded_and_the_answered_round_closes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.aggregator")
    _config, store, manager, (a, b), tickets = _open(tmp_path)
    with store:
        assert manager.due() is None
        out = manager.skip(skip_topic(FLEET, b.device_id), _skip(b, tickets[b.device_id]))
        assert (out.accepted, out.refusal) == (False, "weaker-than-policy")
        assert manager.due() is None  # a is still awaited
        assert manager.handle(a.topic(FLEET), a.update(tickets[a.device_id],
                                                        np.zeros(27, np.float32))).accepted
        # quorum is 2: without b's report the round would wait for its deadline
        assert manager.due() == "answered"
        m = manager.close()
        assert not m.failed and m.participants == 1
        assert m.skipped == {"weaker-than-policy": 1}
        line = (f"device {b.device_id.hex()} skipped round 1: weaker-than-policy "
                "(noise_multiplier 1.0 < policy sigma_min 1.1)")
        assert line in caplog.text
        # The same report again (redelivery) is recorded once.
        manager.skip(skip_topic(FLEET, b.device_id), _skip(b, tickets[b.device_id]))
        assert caplog.text.count(line) == 1
        assert store.skips() == [{"round": 1, "device": b.device_id.hex(),
                                  "refusal": "weaker-than-policy",
                                  "reason": line.split(": ", 1)[1],
                                  "at": store.skips()[0]["at"]}]


def test_a_round_every_device_skipped_fails_at_once(tmp_path: Path) -> None:
    _config, store, manager, devs, tickets = _open(tmp_path)
    with store:
        for d in devs:
            manager.skip(skip_topic(FLEET, d.device_id), _skip(d, tickets[d.device_id]))
        assert manager.due() == "skipped"
        m = manager.close()
        assert m.failed and m.skipped == {"weaker-than-policy": 2}


def test_skip_reports_that_are_not_the_devices_own_are_refused(tmp_path: Path) -> None:
    _config, store, manager, (a, b), tickets = _open(tmp_path)
    outsider = FakeDevice()
    with store:
        cases = [
            # a's report published on b's topic
            (skip_topic(FLEET, b.device_id), _skip(a, tickets[a.device_id]), "topic-mismatch"),
            (skip_topic(FLEET, outsider.device_id), _skip(outsider, tickets[a.device_id]),
             "unknown-device"),
            (skip_topic(FLEET, a.device_id),
             _skip(a, tickets[a.device_id], nonce=bytes(16)), "replay"),
            (skip_topic(FLEET, a.device_id),
             _skip(a, tickets[a.device_id], round_id=9), "wrong-round"),
            (skip_topic(FLEET, a.device_id), b"\x00garbage", "malformed"),
        ]
        bad = bytearray(_skip(a, tickets[a.device_id]))
        bad[-1] ^= 1
        cases.append((skip_topic(FLEET, a.device_id), bytes(bad), "signature"))
        for topic, payload, refusal in cases:
            out = manager.skip(topic, payload)
            assert (out.accepted, out.refusal) == (False, refusal), out.reason
        assert store.skips() == []
        assert manager.due() is None
        assert sorted(r["refusal"] for r in store.audit_rows()) == sorted(c[2] for c in cases)


def test_a_board_holding_a_newer_model_lifts_our_version(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A restored database publishes v1; the boards' signed reports say they hold v7."""
    caplog.set_level(logging.INFO, logger="edge.aggregator")
    _config, store, manager, (a, b), tickets = _open(tmp_path)
    with store:
        for d in (a, b):
            manager.skip(skip_topic(FLEET, d.device_id), _skip(
                d, tickets[d.device_id], result=EDGE_ERR_WRONG_MODEL, field=SkipField.MODEL,
                value=1.0, bound=7.0, model_version=7, package_id=bytes(range(16))))
        assert manager.due() == "skipped"
        manager.close()
        assert manager.ensure_model().version == 8
        assert (f"device {a.device_id.hex()} holds model v7 (package "
                f"{bytes(range(16)).hex()}), ours is v1: the next model is issued as v8"
                in caplog.text)
        pending = manager.pending_publication()
        assert pending is not None and pending.version == 8


def test_status_and_devices_show_the_skip(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _config, store, manager, (a, b), tickets = _open(tmp_path)
    with store:
        manager.skip(skip_topic(FLEET, b.device_id), _skip(
            b, tickets[b.device_id], result=0, ree_reason=SkipReason.NO_SAMPLES,
            field=SkipField.NONE, value=0.0, bound=0.0))
    toml = tmp_path / "aggregator.toml"
    toml.write_text(to_toml(TABLES[tmp_path]))
    assert edge_main(["aggregator", "status", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert f"device {b.device_id.hex()} skipped round 1: no-samples" in out
    assert edge_main(["aggregator", "devices", "--config", str(toml), "--json"]) == 0
    rows = {d["device"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    assert rows[b.device_id.hex()]["last_skip"]["reason"] == "no-samples"
    assert rows[b.device_id.hex()]["rounds_skipped"] == 1
    assert rows[a.device_id.hex()]["last_skip"] is None


def test_boards_report_a_ticket_weaker_than_their_policy(tmp_path: Path) -> None:
    """Real daemons and TAs: the aggregator's sigma is below the boards' policy. Every board
    publishes its TA's signed report, the round fails at once (not at its 600 s deadline),
    and ``status`` names the field and both values."""
    require_native("host")
    try:
        broker = MosquittoBroker(tmp_path / "mosquitto")
    except BrokerError as exc:
        pytest.fail(f"{exc} -- needs a real Mosquitto: run scripts/setup.sh")
    try:
        fleet = make_fleet(tmp_path / "fleet", broker.url, devices=2, rounds=1,
                           timeout_s=600, quorum=2, min_updates=1)
        dp = fleet.aggregator["dp"]
        policy_sigma = dp["noise_multiplier"]
        dp.pop("device_policy")  # else the aggregator refuses to start on it
        dp["noise_multiplier"] = policy_sigma - 1.0
        fed = Federation(fleet).start_boards()
        try:
            agg = fed.make_aggregator()
            stop = threading.Event()
            t = threading.Thread(target=agg.run, args=(stop,), kwargs={"rounds": 1},
                                 daemon=True)
            t.start()
            t.join(60)
            stop.set()
            t.join(15)
            assert not t.is_alive()
            assert len(fed.rounds) == 1 and fed.rounds[0].failed
            assert fed.rounds[0].skipped == {"weaker-than-policy": 2}
            assert fed.rounds[0].seconds < 30
            for b in fed.boards:
                wait_for(lambda b=b: 1 in b.daemon.stats.skips_reported, what="report")
            reasons = {s["reason"] for s in agg.store.skips()}
            assert reasons == {f"weaker-than-policy (noise_multiplier {policy_sigma - 1.0:.1f} "
                               f"< policy sigma_min {policy_sigma:.1f})"}
        finally:
            fed.close()
    finally:
        broker.stop()
