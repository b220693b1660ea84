"""Secure aggregation over MQTT: a real Mosquitto, simulated TAs behind daemons, the aggregator.

Dropouts at every stage, too few survivors, hostile publishers (docs/secagg.md, "Over MQTT").
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from federation_helpers import Board, Federation, make_fleet
from secnet_helpers import Tap, die_at, enable_secagg

from edge.broker import MosquittoBroker
from edge.daemon.daemon import Daemon
from edge.demo.fleet import FLEET
from edge.formats.package import parse_package
from edge.formats.secagg import RoundBinding, build_advert, fleet_id
from edge.formats.update import MaskedUpdate, parse_any_update
from edge.protocol import secagg_device_topic


@pytest.fixture
def broker_url(mosquitto: MosquittoBroker) -> str:
    """conftest's Mosquitto (started, and stopped after the test), by its URL."""
    return mosquitto.url


def _federation(tmp_path: Path, url: str, devices: int) -> tuple[Federation, Tap]:
    fleet = make_fleet(tmp_path / "fleet", url, devices=devices, rounds=1, timeout_s=30.0,
                       quorum=devices, min_updates=1)
    enable_secagg(fleet)
    fed = Federation(fleet).start_boards()
    return fed, Tap(url, FLEET)


def test_secagg_round_over_mqtt(broker_url: str, tmp_path: Path) -> None:
    """Every stage over the broker; the aggregator keeps no device's update, only the sum."""
    fed, tap = _federation(tmp_path, broker_url, 4)
    try:
        [m] = fed.run_rounds(1, timeout=60)
        assert not m.failed and m.participants == 4 and m.refused == {}, m
        assert m.model_version == 2 and m.accuracy is not None
        agg = fed.aggregator
        assert agg is not None
        assert agg.store.accepted(1) == {}  # no per-device row: only the unmasked sum counted
        assert agg.store.audit_rows() == []
        for stage in ("advert", "shares", "reveals"):
            assert len(tap.on(f"/secagg/{stage}")) == 4, stage
        assert len(tap.on("/secagg-inbox")) == 4
        assert len(tap.on("/secagg/roster")) == 1 and len(tap.on("/secagg/survivors")) == 1
        updates = [parse_any_update(p) for _, p in tap.on("/update")]
        assert len(updates) == 4 and all(isinstance(u, MaskedUpdate) for u in updates)
    finally:
        tap.close()
        fed.close()


@pytest.mark.parametrize(("kind", "summed"), [("ticket", 4), ("secagg-roster", 4),
                                               ("secagg-inbox", 4), ("secagg-survivors", 5)])
def test_secagg_survives_a_board_killed_at_each_stage(broker_url: str, tmp_path: Path,
                                                      kind: str, summed: int) -> None:
    """Five boards (t = 3): one dies before advertising, after advertising, after sharing,
    after its masked update; the round still closes with the others' sum."""
    fed, tap = _federation(tmp_path, broker_url, 5)
    try:
        die_at(fed.boards[2], kind)
        [m] = fed.run_rounds(1, timeout=90)
        assert not m.failed and m.participants == summed, m
        assert m.model_version == 2
    finally:
        tap.close()
        fed.close()


@pytest.mark.parametrize("kind", ["secagg-roster", "secagg-inbox", "secagg-survivors"])
def test_secagg_board_restarted_mid_stage_gets_the_directive_again(broker_url: str,
                                                                   tmp_path: Path,
                                                                   kind: str) -> None:
    """A board's daemon stops on a directive before answering it (the broker delivered it:
    its persistent session holds nothing more) and a new daemon starts on the same work
    folder within the stage deadline: the aggregator sends the directive again when the
    board is back online, and the round sums all five boards."""
    fleet = make_fleet(tmp_path / "fleet", broker_url, devices=5, rounds=1, timeout_s=60.0,
                       quorum=5, min_updates=1)
    enable_secagg(fleet, stage_timeout_s=30.0)
    fed = Federation(fleet).start_boards()
    tap = Tap(broker_url, FLEET)
    old = fed.boards[2]
    die_at(old, kind)

    def restart() -> None:
        if old.stop.wait(90):
            old.close()
            fed.boards[2] = Board(Daemon(old.daemon.config)).start()
    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()
    try:
        [m] = fed.run_rounds(1, timeout=120)
        assert not m.failed and m.participants == 5, m
        assert m.model_version == 2
        restarted = fed.boards[2].daemon
        assert restarted is not old.daemon
        sent = {"secagg-roster": "/secagg/roster", "secagg-inbox": "/secagg-inbox",
                "secagg-survivors": "/secagg/survivors"}[kind]
        assert len(tap.on(sent)) >= (2 if kind != "secagg-inbox" else 6)  # sent again
        # (the restarted board publishes its kept masked update again: the same bytes)
        assert len({p for _, p in tap.on("/update")}) == 5
    finally:
        restarter.join(30)
        tap.close()
        fed.close()


def test_secagg_below_threshold_fails_and_publishes_nothing(broker_url: str,
                                                            tmp_path: Path) -> None:
    """Three of five boards die after advertising: 2 < t = 3 shared, the round fails with
    the reason in the metrics row, and no model is published."""
    fed, tap = _federation(tmp_path, broker_url, 5)
    try:
        for b in fed.boards[:3]:
            die_at(b, "secagg-roster")
        [m] = fed.run_rounds(1, timeout=90)
        assert m.failed and m.model_version == 1, m
        assert m.reason is not None and "too-few-survivors" in m.reason
        agg = fed.aggregator
        assert agg is not None
        assert agg.store.latest_checkpoint().version == 1  # type: ignore[union-attr]
        assert tap.on("/secagg/survivors") == [] and tap.on("/secagg-inbox") == []
        models = [parse_package(p)[1].version for t, p in tap.got if t.endswith("/model")]
        assert models == [1]  # the retained initial model; no v2 went out
    finally:
        tap.close()
        fed.close()


def test_secagg_hostile_messages_are_refused_with_their_class(broker_url: str,
                                                              tmp_path: Path) -> None:
    """A client without a device's key publishes a forged advert on its topic, garbage
    shares and a replayed advert out of stage: each refused, the round still closes."""
    fed, tap = _federation(tmp_path, broker_url, 4)
    try:
        victim = fed.boards[0].daemon.device_id
        agg = fed.make_aggregator()
        original = agg.rounds.open_next

        def open_and_attack() -> list[tuple[str, bytes]]:
            tickets = original()
            st = agg.rounds.secagg
            assert st is not None
            binding = RoundBinding(fleet_id(FLEET), st.round_id, st.srv.binding.nonce,
                                   st.srv.binding.model_version)
            forger = Ed25519PrivateKey.generate()
            forged = build_advert(forger, binding, bytes(32), bytes(32))
            tap.publish(secagg_device_topic(FLEET, victim, "advert"), forged)
            tap.publish(secagg_device_topic(FLEET, victim, "shares"), b"not an envelope")
            return tickets
        agg.rounds.open_next = open_and_attack  # type: ignore[method-assign]
        [m] = fed.run_rounds(1, timeout=60)
        assert not m.failed and m.participants == 4, m
        classes = {r["refusal"] for r in agg.store.audit_rows()}
        assert {"topic-mismatch", "malformed"} <= classes, agg.store.audit_rows()
        assert all(r["device"] == victim.hex() for r in agg.store.audit_rows())
    finally:
        tap.close()
        fed.close()
