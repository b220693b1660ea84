"""Secure-aggregation rounds carried by cohort workers (docs/scale-out.md).

In process: ``SecAggRound.add_masked_sum`` (a modular partial covering several devices)
unmasks to exactly what the same round gives from the individual masked updates, and
refuses a partial that would count a device twice or one that never shared. Over MQTT:
a Mosquitto started by the test, worker processes (``edge aggregator worker``), a root
process (``edge aggregator run`` with [workers]) and simulated boards (daemons with
simulated TAs): a worker SIGKILLed during the masked stage and restarted, masked updates
redelivered to other workers, and the model is the single-server secagg result over the
same messages; too few survivors fail the round with nothing published.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, Roles, require_native
from federation_helpers import Federation, make_fleet, to_toml, wait_for
from secagg_helpers import NOW, cohort
from secnet_helpers import Tap, db_count, die_at, enable_secagg, hold, single_server_model

from edge import errors
from edge.aggregator import AggregatorConfig
from edge.aggregator.cohort import (
    Announcement,
    Combiner,
    Contribution,
    PartialSum,
    WorkerRefusal,
)
from edge.aggregator.registry import Registry
from edge.aggregator.store import Store
from edge.broker import BrokerError, MosquittoBroker
from edge.demo.fleet import FLEET
from edge.formats.update import MaskedUpdate, parse_any_update
from edge.secagg.server import SecAggParams, SecAggRound

KEY = bytes(range(32))
FULL5 = SecAggParams(t=3, k=4, cohort=5, update_clip=1.0)


# -- in process: the server's modular partial --------------------------------------------

@pytest.fixture
def five(tmp_path: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    with cohort(tmp_path, roles, 5) as c:
        yield c


def _to_masked(c, params: SecAggParams, servers: list[SecAggRound], drop: int = 0):  # type: ignore[no-untyped-def]
    """Drive ``servers`` (same round) to the masked stage with every device's messages;
    the last ``drop`` devices drop after sharing. Returns the masked sealed updates."""
    ticket = c.ticket(params)
    for d in c.devices:
        advert = d.ta.secagg_advertise(ticket, ree_time=NOW)
        for s in servers:
            s.add_advert(advert)
    rosters = {s.roster() for s in servers}
    assert len(rosters) == 1  # deterministic: the same roster bytes from every server
    [roster] = rosters
    for d in c.devices:
        bundle = d.ta.secagg_share(roster)
        for s in servers:
            s.add_shares(bundle)
    live = c.devices[:len(c.devices) - drop]
    masked = []
    for d in live:
        d.ta.secagg_receive(servers[0].inbox_for(d.id))
        for s in servers[1:]:
            assert s.inbox_for(d.id) == servers[0].inbox_for(d.id)
        d.ta.verify_ticket(ticket, ree_time=NOW)
        masked.append(d.ta.train_and_seal(d.x, d.y))
    return live, masked


def test_a_modular_partial_unmasks_to_the_single_server_result(five) -> None:  # type: ignore[no-untyped-def]
    """Two 'workers' each sum their share of the masked updates mod 2^32; the round fed
    those two partials gives the very same result as the round fed every update."""
    single, cohorted = five.round(FULL5), five.round(FULL5)
    live, masked = _to_masked(five, FULL5, [single, cohorted], drop=1)
    for m in masked:
        single.add_masked(m)
    parts = [masked[:2], masked[2:]]
    for part in parts:
        ups = [parse_any_update(m) for m in part]
        assert all(isinstance(u, MaskedUpdate) for u in ups)
        total = np.zeros(ups[0].param_count, np.uint32)
        for u in ups:
            total += u.words  # type: ignore[union-attr]
        cohorted.add_masked_sum(total, {u.device_id: b"u" * 32 for u in ups})
    assert cohorted.survivors() == single.survivors()
    for d in live:
        reveals = d.ta.secagg_unmask(single.survivors())
        single.add_reveal(reveals)
        cohorted.add_reveal(reveals)
    (want, who), (got, who2) = single.result(), cohorted.result()
    assert who == who2 == sorted(d.id for d in live)
    np.testing.assert_array_equal(got, want)


def test_a_modular_partial_that_counts_twice_or_a_stranger_is_refused_whole(five) -> None:  # type: ignore[no-untyped-def]
    srv = five.round(FULL5)
    live, masked = _to_masked(five, FULL5, [srv], drop=1)
    words = {d.id: parse_any_update(m).words for d, m in zip(live, masked, strict=True)}  # type: ignore[union-attr]
    a, b, c = (d.id for d in live[:3])
    stranger = five.devices[-1].id  # shared, dropped before its masked update: fine
    outsider = b"\x01" * 16  # not enrolled
    srv.add_masked(masked[0])  # a, individually
    with pytest.raises(errors.ShareConflict):
        srv.add_masked_sum(words[a] + words[b], {a: b"x", b: b"y"})  # a again
    with pytest.raises(errors.NotForThisDevice):
        srv.add_masked_sum(words[b], {b: b"y", outsider: b"z"})
    with pytest.raises(errors.Malformed):
        srv.add_masked_sum(words[b].astype(np.int64), {b: b"y"})
    with pytest.raises(errors.Malformed):
        srv.add_masked_sum(words[b][:-1], {b: b"y"})
    srv.add_masked_sum(words[b] + words[c], {b: b"y", c: b"w"})  # nothing of the above stuck
    with pytest.raises(errors.ShareConflict):
        srv.add_masked_sum(words[c], {c: b"w"})
    assert stranger not in srv.survivors() and len(srv.survivors()) > 0


def test_masked_partials_add_mod_2_32_and_wait_for_the_drop() -> None:
    a, b, c = b"a" * 16, b"b" * 16, b"c" * 16

    def part(worker: str, seq: int, devices: list[bytes], words: list[int]) -> PartialSum:
        cs = tuple(Contribution(d, d * 2, 1, 0, 0, 0.0) for d in devices)
        return PartialSum(9, worker, seq, np.array(words, np.uint32), float(len(devices)), cs,
                          0, True)

    comb = Combiner(9, masked=True)
    assert not comb.add(PartialSum(9, "w1", 1, np.zeros(2), 1.0, ()))  # a float partial
    assert comb.add(part("w1", 1, [a, b], [2**32 - 1, 5]))
    assert comb.add(part("w2", 1, [b, c], [3, 2**31]))
    assert comb.combined() is None and comb.drops() == {"w2": [b]}
    assert comb.add(part("w2", 2, [c], [3, 2**31]))
    got = comb.combined()
    assert got is not None and got.masked and sorted(got.contributions) == [a, b, c]
    assert got.total.dtype == np.uint32
    np.testing.assert_array_equal(got.total, np.array([2, 5 + 2**31], np.uint32))  # wrapped
    assert got.weight == 3.0


def test_masked_cohort_messages_round_trip() -> None:
    p = PartialSum(4, "w2", 7, np.array([1, 2**32 - 1], np.uint32), 2.0,
                   (Contribution(b"d" * 16, b"u" * 32, 3, 0, 0, 0.5),), 1, True)
    got = PartialSum.from_message(KEY, "f", p.to_message(KEY, "f"))
    assert got.masked and got.total.dtype == np.uint32
    np.testing.assert_array_equal(got.total, p.total)
    bad = bytearray(p.to_message(KEY, "f"))
    bad[-40] ^= 1  # one word of the body
    with pytest.raises(errors.Tampered):
        PartialSum.from_message(KEY, "f", bytes(bad))
    named = PartialSum(4, "w2", 8, p.total, 2.0, p.contributions, 2, True,
                       (WorkerRefusal(b"d" * 16, "t/update", "signature", "bad"),
                        WorkerRefusal(None, "x", "malformed", "short")))
    assert PartialSum.from_message(KEY, "f", named.to_message(KEY, "f")).refusals == \
        named.refusals
    ann = Announcement(4, bytes(16), 2, 2, 1.0, 0.0, 1.0, 0.0, (), b"p" * 16, True,
                       (b"d" * 16,))
    assert Announcement.from_message(KEY, "f", ann.to_message(KEY, "f")) == ann
    assert ann.view(frozenset()).secagg


# -- over MQTT: workers, a root and boards with simulated TAs ---------------------------

@pytest.fixture
def broker_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    require_native("host")
    try:
        broker = MosquittoBroker(tmp_path / "mosquitto")
    except BrokerError as exc:
        pytest.fail(f"{exc} -- the cohort secagg tests need a real Mosquitto: run "
                    "scripts/setup.sh")
    try:
        yield broker.url
    finally:
        broker.stop()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "--verbose", "aggregator", *args]


def _rows(path: Path, round_id: int) -> list[tuple[bytes, int]]:
    """(device id, dropped) of a worker's committed rows of a round."""
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path) as db:
            return [(bytes(d), x) for d, x in db.execute(
                "SELECT device_id, dropped FROM accepted WHERE round_id = ?", (round_id,))]
    except sqlite3.OperationalError:
        return []


class Processes:
    """The root and worker processes of one test, with their logs; killed at the end."""

    def __init__(self, folder: Path, config: Path):
        self.folder, self.config = folder, config
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list = []

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115
        self.logs.append(log)
        args = _cli("run", "--config", str(self.config)) if name == "root" else _cli(
            "worker", "--config", str(self.config), "--id", name, "--state",
            str(self.folder / f"{name}.sqlite"))
        self.procs[name] = subprocess.Popen(args, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        return self.procs[name]

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-4000:]

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        for f in self.logs:
            f.close()


def _secagg_fleet(tmp_path: Path, url: str, devices: int, stage_timeout_s: float):  # type: ignore[no-untyped-def]
    fleet = make_fleet(tmp_path / "fleet", url, devices=devices, rounds=1, timeout_s=600.0,
                       quorum=devices, min_updates=1)
    enable_secagg(fleet, stage_timeout_s=stage_timeout_s)
    (tmp_path / "cohort.key").write_text(KEY.hex())
    fleet.aggregator["workers"] = {"key": str(tmp_path / "cohort.key")}
    fleet.aggregator["rounds"]["rounds"] = 1
    fleet.aggregator["dp"]["central_noise_multiplier"] = 0.0
    path = tmp_path / "root.toml"
    path.write_text(to_toml(fleet.aggregator), encoding="utf-8")
    config = AggregatorConfig.from_mapping(fleet.aggregator)
    with Store(config.state) as store:
        registry = Registry(store)
        for rec in fleet.records:
            registry.enroll(rec)
    return fleet, config, path


def test_secagg_round_through_workers_survives_a_worker_kill_and_redeliveries(
        broker_url: str, tmp_path: Path) -> None:
    """Seven boards, three workers. Four boards seal late (the masked stage stays open);
    w1 is SIGKILLed once it committed a masked update; every masked update so far is
    published twice more (a board re-sending its kept update; Mosquitto hands the copies
    round-robin, so some reach another worker than the first copy did); then the late
    boards seal: Mosquitto hands their four updates round-robin too, so at least one waits
    in w1's session, and the round cannot close until w1 restarts under its id. Lost 0,
    counted twice 0, and the model is the single-server result."""
    n = 7
    # A stage ends as soon as every device answered: the long deadline only keeps the
    # masked stage open on a loaded machine until w1 is back.
    fleet, config, path = _secagg_fleet(tmp_path, broker_url, n, stage_timeout_s=300.0)
    fed = Federation(fleet)
    released = threading.Event()
    late = [b.daemon.device_id for b in fed.boards[-4:]]
    for b in fed.boards[-4:]:
        hold(b, "secagg-inbox", released)
    procs = Processes(tmp_path, path)
    tap = Tap(broker_url, FLEET)
    try:
        for w in ("w1", "w2", "w3"):
            procs.start(w)
        fed.start_boards()
        root = procs.start("root")
        wait_for(lambda: any(not x for _, x in _rows(tmp_path / "w1.sqlite", 1)), timeout=180,
                 what="worker w1 summed a masked update")
        procs.procs["w1"].send_signal(signal.SIGKILL)
        procs.procs["w1"].wait(10)
        early = tap.on("/update")
        assert early, "no masked update was published"
        # Shifted by one, then by two: against a strict rotation over three members, some
        # copy reaches another worker than its original did, whatever the alignment.
        for shift in (1, 2):
            for topic, payload in early[shift:] + early[:shift]:
                tap.publish(topic, payload)
        # A hostile copy: one word of a masked update changed (its signature fails).
        topic, payload = early[0]
        forged = bytearray(payload)
        forged[-40] ^= 1
        tap.publish(topic, bytes(forged))
        released.set()
        # Every late board's update out (not an exact message count: on a slow machine the
        # root re-sends tickets to boards whose update waits in w1's session, and each
        # such board publishes its kept update once more).
        wait_for(lambda: all(any(d.hex() in t for t, _ in tap.on("/update")) for d in late),
                 timeout=180, what="the late boards' masked updates")
        time.sleep(1.0)
        assert root.poll() is None, "the round closed without w1's share"
        procs.start("w1")  # its session (with what it did not acknowledge) comes back
        assert root.wait(300) == 0, procs.log("root")
    finally:
        released.set()
        procs.close()
        tap.close()
        fed.close()

    with Store(config.state) as store:
        r = store.get_round(1)
        cp = store.latest_checkpoint()
        metrics = store.metrics_lines()
        audit = store.audit_rows()
    assert r is not None and r.state == "closed", metrics
    # The workers' refusals are in the root's audit table, named: the forged copy (and
    # any copy that reached the worker that had summed it already: duplicate).
    classes = {a["refusal"] for a in audit}
    assert "signature" in classes and classes <= {"signature", "duplicate"}, audit
    assert all(a["reason"].startswith("worker w") and a["round"] == 1 for a in audit)
    assert json.loads(metrics[0])["participants"] == n, metrics
    devices = {rec_id for rec_id in _device_ids(fleet)}
    # Each masked update once in the workers' sums (dropped copies aside): none lost, none
    # counted twice, and the de-duplication did happen.
    kept = [d for w in ("w1", "w2", "w3") for d, x in _rows(tmp_path / f"{w}.sqlite", 1)
            if not x]
    dropped = [d for w in ("w1", "w2", "w3") for d, x in _rows(tmp_path / f"{w}.sqlite", 1)
               if x]
    assert sorted(kept) == sorted(devices), "a masked update lost or counted twice"
    assert dropped, "no masked update reached two workers: the drop was not exercised"
    assert all(_rows(tmp_path / f"{w}.sqlite", 1) for w in ("w1", "w2", "w3"))
    assert set(late) & {d for d, x in _rows(tmp_path / "w1.sqlite", 1)}, \
        "no late update waited in w1's session"
    W, b, survivors = single_server_model(config, tap)
    assert sorted(survivors) == sorted(devices)
    assert cp is not None and cp.version == 2
    np.testing.assert_array_equal(cp.W, W)
    np.testing.assert_array_equal(cp.b, b)


def test_secagg_round_through_workers_resumes_after_a_root_sigkill(
        broker_url: str, tmp_path: Path) -> None:
    """Five boards, two workers; the last board seals late. Once the root recorded the
    workers' combined masked sum of the other four, it is SIGKILLed; the late board seals
    while it is down; the restarted root resumes the round at the masked stage (its stages
    replayed from its database, the workers' retained partials delivered again) and closes
    it with all five: the model is the single-server result of the same messages."""
    n = 5
    fleet, config, path = _secagg_fleet(tmp_path, broker_url, n, stage_timeout_s=300.0)
    fed = Federation(fleet)
    released = threading.Event()
    hold(fed.boards[-1], "secagg-inbox", released)
    procs = Processes(tmp_path, path)
    tap = Tap(broker_url, FLEET)
    try:
        for w in ("w1", "w2"):
            procs.start(w)
        fed.start_boards()
        root = procs.start("root")
        wait_for(lambda: db_count(config.state, "SELECT count(*) FROM secagg_masked "
                                "WHERE round_id = 1") >= n - 1, timeout=180,
                 what="the root to record the masked sum of four boards")
        root.send_signal(signal.SIGKILL)
        root.wait(10)
        released.set()
        wait_for(lambda: len({p for _, p in tap.on("/update")}) == n, timeout=120,
                 what="the late board's masked update")
        root = procs.start("root")
        assert root.wait(240) == 0, procs.log("root")
        assert "secagg round 1 resumed at the masked stage" in procs.log("root")
    finally:
        released.set()
        procs.close()
        tap.close()
        fed.close()
    with Store(config.state) as store:
        states = store.round_counts()
        cp = store.latest_checkpoint()
        metrics = store.metrics_rows()
        audit = store.audit_rows()
    assert states == {"closed": 1}, metrics
    assert metrics[0]["participants"] == n and audit == [], (metrics, audit)
    assert len({p for _, p in tap.on("/secagg/survivors")}) == 1
    W, b, survivors = single_server_model(config, tap)
    assert sorted(survivors) == sorted(_device_ids(fleet))
    assert cp is not None and cp.version == 2
    np.testing.assert_array_equal(cp.W, W)
    np.testing.assert_array_equal(cp.b, b)


def _device_ids(fleet) -> list[bytes]:  # type: ignore[no-untyped-def]
    from edge.formats.device import parse_device_record

    return [parse_device_record(rec).device_id for rec in fleet.records]


def test_secagg_through_workers_below_threshold_fails_and_publishes_nothing(
        broker_url: str, tmp_path: Path) -> None:
    """Five boards (t = 3), one worker: three die after sharing, two masked updates reach
    the worker; the root fails the round (too-few-survivors) and publishes neither a
    survivor list nor a model."""
    fleet, config, path = _secagg_fleet(tmp_path, broker_url, 5, stage_timeout_s=10.0)
    fed = Federation(fleet)
    for b in fed.boards[:3]:
        die_at(b, "secagg-inbox")
    procs = Processes(tmp_path, path)
    tap = Tap(broker_url, FLEET)
    try:
        procs.start("w1")
        fed.start_boards()
        root = procs.start("root")
        # Exit code 1: every round of the run failed (the CLI's rounds-failed).
        assert root.wait(240) == 1, procs.log("root")
        assert "rounds-failed" in procs.log("root")
    finally:
        procs.close()
        tap.close()
        fed.close()
    with Store(config.state) as store:
        r = store.get_round(1)
        cp = store.latest_checkpoint()
        metrics = store.metrics_lines()
    assert r is not None and r.state == "failed", metrics
    assert "too-few-survivors" in metrics[0]
    assert cp is not None and cp.version == 1
    assert tap.on("/secagg/survivors") == []
    assert len([d for d, x in _rows(tmp_path / "w1.sqlite", 1) if not x]) == 2


# -- one worker in process: the masked path without a broker -----------------------------

class _Client:
    """What a worker's commit needs of a paho client: acks and publishes, recorded."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.published: list[tuple[str, bytes]] = []

    def ack(self, mid: int, _qos: int) -> None:
        self.acked.append(mid)

    def publish(self, topic: str, payload: bytes, **_kw: object) -> object:
        self.published.append((topic, payload))
        return type("Info", (), {"rc": 0, "mid": len(self.published)})()


def _message(mid: int, topic: str, payload: bytes):  # type: ignore[no-untyped-def]
    import paho.mqtt.client as mqtt

    m = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    m.payload = payload
    m.qos = 1
    return m


def test_a_worker_sums_masked_updates_of_maskers_only_and_drops_one_exactly(
        tmp_path: Path) -> None:
    """Held until the root names U2; a non-masker's update is refused and named
    (not-for-this-device), a float32 one is wrong-mode; the sum wraps mod 2^32; a drop
    takes a device's words out exactly, and a restarted worker reloads the same sum."""
    from edge.aggregator.cohort import drop_message, round_topic
    from edge.aggregator.simulate import FakeDevice, config_mapping
    from edge.aggregator.worker import CohortWorker
    from edge.formats.envelope import Kind, build_envelope
    from edge.formats.layouts import UPDATE_HEADER
    from edge.formats.update import build_update
    from edge.tee_abi import UpdateMode

    fleet, params, package = "cs", 3, b"p" * 16
    table = config_mapping(tmp_path / "fleet", fleet=fleet, workers={
        "key": str(tmp_path / "k")})
    (tmp_path / "k").write_text(KEY.hex())
    config = AggregatorConfig.from_mapping(table)
    devs = [FakeDevice() for _ in range(3)]
    base = Announcement(5, bytes(16), 1, params, 1.0, 0.0, 1.0, 0.0,
                        tuple(d.record for d in devs), package, True)

    def masked(d: FakeDevice, words: list[int]) -> bytes:
        head = UPDATE_HEADER.struct.pack(d.device_id, 5, bytes(16), 1, package, 8, 1, 1,
                                         UpdateMode.SECAGG, bytes(3), params, 1.0, 0.0, 1.0,
                                         bytes(4))
        return build_envelope(Kind.SEALED_UPDATE, head + np.array(words, "<u4").tobytes(),
                              d.identity)

    a, b, outsider = devs
    wa, wb = [2**32 - 1, 7, 0], [5, 2**32 - 3, 9]
    client = _Client()
    worker = CohortWorker(config, "w1", tmp_path / "w1.sqlite", KEY)
    try:
        worker._inbox.put(_message(1, round_topic(fleet), base.to_message(KEY, fleet)))
        worker._inbox.put(_message(2, a.topic(fleet), masked(a, wa)))
        worker._drain(client)  # type: ignore[arg-type]
        assert worker._held and 2 not in client.acked  # U2 not known yet: held, not acked
        ann = Announcement(**{**base.__dict__, "maskers": (a.device_id, b.device_id)})
        worker._inbox.put(_message(3, round_topic(fleet), ann.to_message(KEY, fleet)))
        worker._inbox.put(_message(4, b.topic(fleet), masked(b, wb)))
        worker._inbox.put(_message(5, outsider.topic(fleet), masked(outsider, [1, 1, 1])))
        worker._inbox.put(_message(6, a.topic(fleet), build_update(
            a.identity, round_id=5, nonce=bytes(16), model_version=1, package_id=package,
            delta=np.zeros(params, np.float32), example_count=8, steps=1, total_steps=1,
            update_clip=1.0, noise_multiplier=0.0, example_clip=1.0)))
        worker._drain(client)  # type: ignore[arg-type]
        worker._drain(client)  # type: ignore[arg-type]
        p = worker.partial
        assert p is not None and p.masked and p.weight == 2.0
        assert sorted(client.acked) == [1, 2, 3, 4, 5, 6]
        np.testing.assert_array_equal(p.total, (np.array(wa, np.uint64) + wb) % 2**32)
        assert [r.refusal for r in p.refusals] == ["not-for-this-device", "wrong-mode"]
        assert p.refused == 2 and p.refusals[0].device_id == outsider.device_id
        got = PartialSum.from_message(KEY, fleet, client.published[-1][1])
        np.testing.assert_array_equal(got.total, p.total)
        worker._drop(client, drop_message(KEY, fleet, 5, "w1", [a.device_id]))  # type: ignore[arg-type]
        np.testing.assert_array_equal(worker.partial.total, np.array(wb, np.uint32))  # type: ignore[union-attr]
        assert [c.device_id for c in worker.partial.contributions] == [b.device_id]  # type: ignore[union-attr]
    finally:
        worker.store.close()
    again = CohortWorker(config, "w1", tmp_path / "w1.sqlite", KEY)
    try:
        again._announce(ann.to_message(KEY, fleet))
        q = again.partial
        assert q is not None and q.masked and q.weight == 1.0 and len(q.refusals) == 2
        np.testing.assert_array_equal(q.total, np.array(wb, np.uint32))
    finally:
        again.store.close()



def test_a_restarted_root_records_each_worker_refusal_once(tmp_path: Path) -> None:
    """A worker's partials repeat its named refusals; the root records each once, also
    when it is restarted mid-round and gets the worker's (retained) partial again."""
    from edge.aggregator import Aggregator
    from edge.aggregator.cohort import sum_topic
    from edge.aggregator.simulate import FakeDevice, config_mapping

    fleet = "rr"
    (tmp_path / "k").write_text(KEY.hex())
    table = config_mapping(tmp_path / "fleet", fleet=fleet, workers={"key": str(tmp_path / "k")})
    config = AggregatorConfig.from_mapping(table)
    devices = [FakeDevice() for _ in range(3)]
    named = tuple(WorkerRefusal(d.device_id, d.topic(fleet), "signature", f"bad {i}")
                  for i, d in enumerate(devices))

    def partial(agg: Aggregator, seq: int, refusals: int):  # type: ignore[no-untyped-def]
        r = agg.rounds.open_round
        assert r is not None
        params = agg.rounds.ensure_model().W.size + agg.rounds.ensure_model().b.size
        p = PartialSum(r.round_id, "w1", seq, np.zeros(params), 0.0, (), refusals, False,
                       named[:refusals])
        return _message(seq, sum_topic(fleet, "w1"), p.to_message(KEY, fleet))

    def start() -> Aggregator:
        agg = Aggregator(config)
        r = agg.rounds.open_round
        assert r is not None
        agg._combiner = Combiner(r.round_id)
        return agg

    agg = Aggregator(config)
    for d in devices:
        agg.enroll(d.record)
    assert agg.rounds.open_next()
    agg.close()
    client = _Client()
    agg = start()
    try:
        agg._cohort_sum(client, partial(agg, 1, 2))  # type: ignore[arg-type]
        agg._cohort_sum(client, partial(agg, 2, 2))  # type: ignore[arg-type]
        assert len(agg.store.audit_rows()) == 2
    finally:
        agg.close()
    agg = start()  # the restarted root: the same partial comes again, then a newer one
    try:
        agg._cohort_sum(client, partial(agg, 2, 2))  # type: ignore[arg-type]
        assert len(agg.store.audit_rows()) == 2
        agg._cohort_sum(client, partial(agg, 3, 3))  # type: ignore[arg-type]
        rows = agg.store.audit_rows()
        assert [r["reason"] for r in rows] == [f"worker w1: bad {i}" for i in range(3)]
        assert agg.store.refusals(1) == {"signature": 3}
    finally:
        agg.close()
