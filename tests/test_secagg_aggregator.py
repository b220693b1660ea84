"""The aggregator's secure-aggregation settings, the verifier's mode rule, and a restart
during a secagg round (no MQTT: the RoundManager over its store; with real processes and a
SIGKILL at each stage: tests/test_secagg_resume.py)."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import require_native
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from federation_helpers import make_fleet, to_toml
from secnet_helpers import enable_secagg

from edge.aggregator import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.store import Store
from edge.aggregator.verify import RoundView, UpdateRefused, verify
from edge.cli import main
from edge.errors import ConfigError
from edge.formats.device import DeviceRecord
from edge.formats.envelope import Kind, build_envelope
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.layouts import UPDATE_HEADER
from edge.formats.ticket import parse_ticket
from edge.formats.update import build_update
from edge.protocol import update_topic
from edge.secagg.server import SecAggParams
from edge.tee_abi import UpdateMode


@pytest.fixture
def fleet(tmp_path: Path):  # type: ignore[no-untyped-def]
    require_native("host")
    f = make_fleet(tmp_path / "fleet", "mqtt://127.0.0.1:1", devices=5, rounds=1)
    enable_secagg(f)
    return f


def test_secagg_defaults_from_the_cohort(fleet) -> None:  # type: ignore[no-untyped-def]
    cfg = AggregatorConfig.from_mapping(fleet.aggregator)
    assert cfg.secagg is not None
    want = SecAggParams.for_cohort(5, cfg.dp.update_clip)
    assert (cfg.secagg.params.t, cfg.secagg.params.k) == (want.t, want.k) == (3, 4)
    off = copy.deepcopy(fleet.aggregator)
    off["rounds"]["secagg"] = "off"
    del off["secagg"]
    assert AggregatorConfig.from_mapping(off).secagg is None


@pytest.mark.parametrize(("table", "key", "value", "needle"), [
    ("secagg", "threshold", 2, "secagg.threshold"),       # t must be > k/2
    ("secagg", "neighbours", 3, "secagg.neighbours"),     # odd k below a complete graph
    ("secagg", "neighbours", 9, "secagg.neighbours"),     # more neighbours than the cohort
    ("rounds", "secagg", "secagg", "rounds.secagg"),      # not a mode
])
def test_secagg_settings_refused_naming_key_and_file(fleet, tmp_path: Path, table: str,
                                                     key: str, value: object,
                                                     needle: str) -> None:  # type: ignore[no-untyped-def]
    bad = copy.deepcopy(fleet.aggregator)
    bad[table][key] = value
    path = tmp_path / "agg.toml"
    path.write_text(to_toml(bad), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        AggregatorConfig.from_toml(path)
    assert needle in str(exc.value) and str(path) in str(exc.value)


def test_secagg_table_without_secagg_mode_is_refused(fleet) -> None:  # type: ignore[no-untyped-def]
    bad = copy.deepcopy(fleet.aggregator)
    bad["rounds"]["secagg"] = "off"
    with pytest.raises(ConfigError, match=r"secagg\.\w+: only applies to"):
        AggregatorConfig.from_mapping(bad)


PACKAGE_ID = bytes(range(16))


def _view(secagg: bool) -> RoundView:
    return RoundView(3, bytes(16), 1, 4, 1.0, frozenset(), 0.0, 1.0, PACKAGE_ID, secagg)


def _masked(identity: Ed25519PrivateKey) -> bytes:
    head = UPDATE_HEADER.struct.pack(key_id(ed25519_raw_public(identity)), 3, bytes(16), 1,
                                     PACKAGE_ID, 8, 1, 1, UpdateMode.SECAGG, bytes(3), 4,
                                     1.0, 0.0, 1.0, bytes(4))
    return build_envelope(Kind.SEALED_UPDATE, head + np.arange(4, dtype="<u4").tobytes(),
                          identity)


def test_masked_updates_only_in_a_secagg_round() -> None:
    """mode 2 outside a secagg round and mode 1 inside one: both wrong-mode."""
    key = Ed25519PrivateKey.generate()
    pub = ed25519_raw_public(key)
    dev = key_id(pub)
    devices = {dev: DeviceRecord(dev, pub, bytes(32), 1)}
    topic = update_topic("demo", dev)
    plain = build_update(key, round_id=3, nonce=bytes(16), model_version=1, package_id=PACKAGE_ID,
                         delta=np.zeros(4, np.float32), example_count=8, steps=1,
                         total_steps=1, update_clip=1.0, noise_multiplier=0.0, example_clip=1.0)
    for payload, secagg in ((_masked(key), False), (plain, True)):
        with pytest.raises(UpdateRefused) as exc:
            verify("demo", topic, payload, devices, _view(secagg), {})
        assert exc.value.refusal == "wrong-mode"


def test_restart_resumes_a_secagg_round_from_its_record(fleet) -> None:  # type: ignore[no-untyped-def]
    """A restarted aggregator continues the open secagg round (docs/secagg.md, "Crash
    safety"): same round, same nonce, the same tickets re-sent to devices not yet heard."""
    cfg = AggregatorConfig.from_mapping(fleet.aggregator)
    with Store(cfg.state) as store:
        registry = Registry(store)
        for rec in fleet.records:
            registry.enroll(rec)
        first = RoundManager(cfg, store, registry)
        tickets = first.open_next()
        assert len(tickets) == 5 and first.secagg is not None

        again = RoundManager(cfg, store, registry)  # the restarted process
        assert again.open_round is not None and again.open_round.round_id == 1
        assert again.secagg is not None and again.secagg.stage == "advert"
        assert again.secagg.srv.binding == first.secagg.srv.binding
        assert sorted(again.missing_tickets()) == sorted(tickets)
        assert store.metrics_lines() == []


def test_secagg_round_of_an_older_release_is_abandoned_with_its_reason(
        fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """A database of a release that kept secagg rounds in memory only (no secagg tables)
    opens, migrated; its open secagg round cannot resume (nothing of it was recorded): it is
    recorded failed with the reason, and the next round has a new nonce."""
    cfg = AggregatorConfig.from_mapping(fleet.aggregator)
    store = Store(cfg.state)
    try:
        registry = Registry(store)
        for rec in fleet.records:
            registry.enroll(rec)
        first = RoundManager(cfg, store, registry)
        t1 = parse_ticket(first.open_next()[0][1])
        assert t1.update_mode == UpdateMode.SECAGG
    finally:
        store.close()
    with sqlite3.connect(cfg.state) as db:  # the older release's schema
        for table in ("secagg_rounds", "secagg_messages", "secagg_masked", "worker_refusals"):
            db.execute(f"DROP TABLE {table}")
    store = Store(cfg.state)
    try:
        again = RoundManager(cfg, store, Registry(store))
        assert again.open_round is None and again.secagg is None
        row = store.metrics_lines()[-1]
        assert '"failed": true' in row and "kept secagg rounds in memory only" in row
        assert store.latest_checkpoint().version == 1  # type: ignore[union-attr]
        t2 = parse_ticket(again.open_next()[0][1])
        assert t2.round_id == t1.round_id + 1 and t2.nonce != t1.nonce
        assert store.secagg_round(t2.round_id) is not None  # the migrated tables are used
    finally:
        store.close()
    path = tmp_path / "agg.toml"
    path.write_text(to_toml(fleet.aggregator), encoding="utf-8")
    assert main(["aggregator", "status", "--config", str(path)]) == 0
    assert "last round 1: failed (abandoned: the aggregator restarted" in capsys.readouterr().out


def test_stages_send_the_current_directive_again_to_devices_not_yet_heard(
        tmp_path: Path, roles, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """SecAggStages.pending (timer, aggregator reconnect) and device_online (a device back
    online): the roster, that device's inbox or the survivor list, only while the stage
    still waits for it; never a directive of a stage that is over."""
    from secagg_helpers import FLEET, NONCE, cohort
    from training_helpers import NOW

    from edge.aggregator.config import SecAggSettings
    from edge.aggregator.secagg_stages import SecAggStages
    from edge.protocol import secagg_device_topic, secagg_fleet_topic, secagg_inbox_topic

    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    params = SecAggParams(t=2, k=2, cohort=3, update_clip=1.0)
    clock = [0.0]
    with cohort(tmp_path, roles, 3) as c:
        settings = SecAggSettings(params, tmp_path / "reg.pub", tmp_path, 60.0)
        st = SecAggStages(settings, FLEET, 1, NONCE, 1, [d.id for d in c.devices], c.enrolled,
                          roles.aggregator, ed25519_raw_public(c.registrar),
                          clock=lambda: clock[0])
        a, b, z = c.devices
        ticket = c.ticket(params)
        assert st.pending() == []  # adverts: the tickets are re-sent instead
        for d in c.devices:
            st.take(secagg_device_topic(FLEET, d.id, "advert"),
                    d.ta.secagg_advertise(ticket, ree_time=NOW))
        [(topic, roster)] = st.advance()
        assert topic == secagg_fleet_topic(FLEET, "roster")
        st.take(secagg_device_topic(FLEET, a.id, "shares"), a.ta.secagg_share(roster))
        assert st.pending() == [(topic, roster)]
        st.device_online(a.id)  # answered already: nothing for it
        assert st.advance() == []
        st.device_online(b.id)
        assert st.advance() == [(topic, roster)]
        assert st.advance() == []  # once per coming back
        st.take(secagg_device_topic(FLEET, b.id, "shares"), b.ta.secagg_share(roster))
        st.take(secagg_device_topic(FLEET, z.id, "shares"), z.ta.secagg_share(roster))
        inboxes = dict(st.advance())
        assert st.stage == "masked" and len(inboxes) == 3
        st.device_online(b.id)
        assert st.advance() == [(secagg_inbox_topic(FLEET, b.id),
                                 inboxes[secagg_inbox_topic(FLEET, b.id)])]
        assert [t for t, _ in st.pending({z.id})] == [secagg_inbox_topic(FLEET, z.id)]


def test_stages_replayed_from_their_record_continue_to_the_same_result(
        tmp_path: Path, roles, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """What ``staged`` hands out for commit is enough for ``replay`` (a restart) to rebuild
    the round at each stage: the same roster, inboxes and survivor list, a redelivered
    message or masked update changes nothing (counted once, no refusal even past its
    stage), and the result is bit-identical to the round that was never interrupted."""
    from secagg_helpers import FLEET, NONCE, cohort
    from training_helpers import NOW

    from edge.aggregator.config import SecAggSettings
    from edge.aggregator.secagg_stages import SecAggStages
    from edge.protocol import secagg_device_topic, secagg_inbox_topic

    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    params = SecAggParams(t=3, k=4, cohort=5, update_clip=1.0)
    with cohort(tmp_path, roles, 5) as c:
        settings = SecAggSettings(params, tmp_path / "reg.pub", tmp_path, 60.0)

        def stages() -> SecAggStages:
            return SecAggStages(settings, FLEET, 1, NONCE, 1, [d.id for d in c.devices],
                                c.enrolled, roles.aggregator, ed25519_raw_public(c.registrar),
                                clock=lambda: 0.0)

        record: list[tuple[str, bytes, bytes]] = []
        masked: tuple[np.ndarray, dict[bytes, bytes]] | None = None

        def commit(st: SecAggStages) -> None:
            nonlocal masked
            messages, total, contributors = st.staged()
            record.extend(messages)
            if total is not None:
                masked = (total, {**(masked[1] if masked else {}), **contributors})

        def restart(st: SecAggStages) -> SecAggStages:
            commit(st)
            again = stages()
            again.replay(record, st.stage, masked, from_workers=False, ended={},
                         deadline=60.0)
            assert again.stage == st.stage and again.staged() == ([], None, {})
            return again

        def take(st: SecAggStages, d, what: str, payload: bytes) -> None:  # type: ignore[no-untyped-def]
            st.take(secagg_device_topic(FLEET, d.id, what), payload)

        ticket = c.ticket(params)
        live, ref = stages(), stages()  # ``ref`` is never interrupted
        adverts = {d.id: d.ta.secagg_advertise(ticket, ree_time=NOW) for d in c.devices}
        for d in c.devices:
            take(live, d, "advert", adverts[d.id])
            take(ref, d, "advert", adverts[d.id])
        [(_, roster)] = live.advance()
        assert ref.advance() == [(_, roster)]
        live = restart(live)  # after the adverts
        assert live.pending() == [(_, roster)]  # the same bytes go again
        take(live, c.devices[0], "advert", adverts[c.devices[0].id])  # redelivered: no-op
        bundles = {d.id: d.ta.secagg_share(roster) for d in c.devices}
        for i, d in enumerate(c.devices):
            take(live, d, "shares", bundles[d.id])
            take(ref, d, "shares", bundles[d.id])
            if i == 1:
                live = restart(live)  # during the shares
        inboxes = dict(live.advance())
        assert dict(ref.advance()) == inboxes
        sealed = []
        for d in c.devices:
            d.ta.secagg_receive(inboxes[secagg_inbox_topic(FLEET, d.id)])
            d.ta.verify_ticket(ticket, ree_time=NOW)
            sealed.append(d.ta.train_and_seal(d.x, d.y))
        for i, (d, s) in enumerate(zip(c.devices, sealed, strict=True)):
            live.add_masked(s, d.id)
            ref.add_masked(s, d.id)
            if i == 2:
                live = restart(live)  # during the masked updates
                before = live.srv.masked_sum()
                live.add_masked(sealed[0], c.devices[0].id)  # the broker's redelivery
                np.testing.assert_array_equal(live.srv.masked_sum(), before)
                assert live.staged() == ([], None, {})
        [(_, survivors)] = live.advance()
        assert ref.advance() == [(_, survivors)]
        for i, d in enumerate(c.devices):
            reveals = d.ta.secagg_unmask(survivors)
            take(live, d, "reveals", reveals)
            take(ref, d, "reveals", reveals)
            if i == 3:
                live = restart(live)  # during the reveals
                take(live, d, "reveals", reveals)
        assert live.advance() == [] and ref.advance() == []
        live = restart(live)  # done, not yet closed
        (got, who), (want, who2) = live.result(), ref.result()
        assert who == who2 == sorted(d.id for d in c.devices)
        np.testing.assert_array_equal(got, want)
