"""deploy/mosquitto as shipped, attacked by an enrolled board: session takeover, retained
messages, other fleets' topics, oversized packets and floods (issue 10, items 7 and 12).

Every test runs a real Mosquitto from the shipped mosquitto.conf and acl; only the port,
the throwaway TLS files and passwords, the folders and the plugin's path are filled in
(federation_helpers.start_deployed).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import require_native
from federation_helpers import (
    DEPLOY,
    DEPLOY_AGGREGATOR,
    DEPLOY_FLEET,
    Deployed,
    Federation,
    make_fleet,
    start_deployed,
    wait_for,
)

from edge import protocol
from edge.aggregator.config import BROKER_SIZED_COHORT
from edge.formats.device import parse_device_record
from edge.formats.manifest import MAX_MANIFEST_SIZE
from edge.formats.update import MAX_UPDATE_SIZE
from edge.mqtt import client_id, make_client

FLEET = DEPLOY_FLEET
DEV_A, DEV_B, DEV_C = (bytes.fromhex(c * 32) for c in "abc")
ATTACKER = DEV_C                 # an enrolled board with its own, valid credentials
UPDATES = [b"update-%d" % i for i in range(3)]
SETTLE_S = 1.5                   # time for the broker to deliver what it is going to deliver


class Peer:
    """A client of the deployed broker that records messages, SUBACKs and disconnects."""

    def __init__(self, dep: Deployed, user: str, *, cid: str | None = None, clean: bool = True,
                 topics: tuple[str, ...] = ()) -> None:
        self.settings = dep.settings(user)
        self.client_id = cid if cid is not None else client_id(self.settings, f"edge-{user}")
        self.got: list[tuple[str, bytes, bool]] = []
        self.granted: list[int] = []
        self.disconnects = 0
        self.ready = threading.Event()
        self.client = make_client(self.settings, self.client_id, clean_session=clean)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._connect
        self.client.on_subscribe = self._subscribe
        self.client.on_disconnect = self._disconnect
        self.client.on_message = lambda c, u, m: self.got.append(
            (m.topic, bytes(m.payload), bool(m.retain)))
        self.topics = topics
        self.client.connect(self.settings.host, self.settings.port)
        self.client.loop_start()
        assert self.ready.wait(10), f"{user} ({self.client_id}) did not connect"

    def _connect(self, client: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode,
                 _p: object) -> None:
        if rc.is_failure:
            return
        if self.topics:
            client.subscribe([(t, 1) for t in self.topics])
        else:
            self.ready.set()

    def _subscribe(self, _c: mqtt.Client, _u: object, _mid: int, codes: list[mqtt.ReasonCode],
                   _p: object) -> None:
        self.granted = [c.value for c in codes]
        self.ready.set()

    def _disconnect(self, *_args: object) -> None:
        self.disconnects += 1

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                timeout: float = 10.0) -> bool:
        """QoS 1; True when the broker acknowledged it within ``timeout``."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def wait(self, n: int, timeout: float = 15.0) -> int:
        """Wait until ``n`` messages arrived or ``timeout`` passed; how many arrived."""
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.got)

    def payloads(self) -> list[bytes]:
        return [p for _, p, _ in self.got]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    dep = start_deployed(tmp_path, [DEPLOY_AGGREGATOR, DEV_A.hex(), DEV_B.hex(), DEV_C.hex()])
    try:
        yield dep
    finally:
        dep.broker.stop()


def aggregator(dep: Deployed, *, cid: str | None = None) -> Peer:
    """The aggregator's persistent session, with its client id as edge.aggregator makes it."""
    return Peer(dep, DEPLOY_AGGREGATOR, cid=cid, clean=False,
                topics=(protocol.update_subscription(FLEET),))


def aggregator_id(dep: Deployed) -> str:
    return client_id(dep.settings(DEPLOY_AGGREGATOR), f"edge-aggregator-{FLEET}")


# -- item 7: client-id takeover ---------------------------------------------------------------

@pytest.mark.parametrize("clean", [True, False], ids=["clean", "persistent"])
@pytest.mark.parametrize("stolen", ["current", "former"])
def test_takeover_of_the_offline_aggregator_loses_no_queued_update(
        deployed: Deployed, clean: bool, stolen: str) -> None:
    """A board connects as the aggregator while it is offline with 3 queued updates."""
    agg = aggregator(deployed)
    agg.close()
    dev = Peer(deployed, DEV_A.hex())
    assert all(dev.publish(protocol.update_topic(FLEET, DEV_A), u) for u in UPDATES)
    # "current": the id the aggregator uses now; "former": the id it used before
    # (edge-aggregator-<fleet>, the one the review guessed).
    cid = aggregator_id(deployed) if stolen == "current" else f"edge-aggregator-{FLEET}"
    thief = Peer(deployed, ATTACKER.hex(), cid=cid, clean=clean,
                 topics=(protocol.update_subscription(FLEET),))
    time.sleep(SETTLE_S)
    thief.close()
    agg = aggregator(deployed)
    agg.wait(len(UPDATES))
    time.sleep(0.2)
    agg.close()
    dev.close()
    lost = len(UPDATES) - len(set(agg.payloads()) & set(UPDATES))
    assert (lost, thief.payloads()) == (0, []), f"{lost} of {len(UPDATES)} queued updates lost"


@pytest.mark.parametrize("victim", ["aggregator", "device", "device-former-id"])
def test_takeover_while_online_disconnects_no_one(deployed: Deployed, victim: str) -> None:
    """A board presents the aggregator's or another board's client id while they are online."""
    agg = aggregator(deployed)
    dev = Peer(deployed, DEV_A.hex(), topics=(protocol.ticket_topic(FLEET, DEV_A),))
    other = Peer(deployed, DEV_B.hex())
    cid = {"aggregator": agg.client_id, "device": dev.client_id,
           "device-former-id": f"edge-{DEV_A.hex()}"}[victim]
    thief = Peer(deployed, ATTACKER.hex(), cid=cid)
    try:
        time.sleep(SETTLE_S)
        kicked = {"aggregator": agg.disconnects, "device": dev.disconnects,
                  "other": other.disconnects}
        assert kicked == {"aggregator": 0, "device": 0, "other": 0}, kicked
        # ... and both still work: updates in, a ticket out.
        assert all(dev.publish(protocol.update_topic(FLEET, DEV_A), u) for u in UPDATES)
        assert agg.publish(protocol.ticket_topic(FLEET, DEV_A), b"ticket")
        wait_for(lambda: len(agg.got) >= len(UPDATES) and len(dev.got) >= 1, timeout=10,
                 what="updates at the aggregator and the ticket at the device")
        assert sorted(agg.payloads()) == sorted(UPDATES) and dev.payloads() == [b"ticket"]
    finally:
        for p in (thief, other, dev, agg):
            p.close()


# -- item 12: retain, other fleets, other topics ----------------------------------------------

def test_a_board_cannot_retain_a_message(deployed: Deployed) -> None:
    dev = Peer(deployed, DEV_A.hex())
    agg = Peer(deployed, DEPLOY_AGGREGATOR)
    try:
        dev.publish(protocol.update_topic(FLEET, DEV_A), b"parked", retain=True)
        agg.publish(protocol.model_topic(FLEET), b"model", retain=True)  # still retained
        time.sleep(0.5)
        later = aggregator(deployed)
        late_dev = Peer(deployed, DEV_B.hex(), topics=(protocol.model_topic(FLEET),))
        time.sleep(SETTLE_S)
        later.close()
        late_dev.close()
        assert later.got == [], "a board's retained message was kept for later subscribers"
        assert late_dev.got == [(protocol.model_topic(FLEET), b"model", True)]
        assert dev.disconnects == 0
    finally:
        dev.close()
        agg.close()


def test_key_wraps_retained_by_the_aggregator_read_by_their_own_board_only(
        deployed: Deployed) -> None:
    """The aggregator retains each board's key wrap on the board's own topic; a board reads
    only its own (later too, retained) and can write none, retained or not."""
    agg = Peer(deployed, DEPLOY_AGGREGATOR)
    try:
        assert agg.publish(protocol.wrap_topic(FLEET, DEV_A), b"wrap A", retain=True)
        assert agg.publish(protocol.wrap_topic(FLEET, DEV_B), b"wrap B", retain=True)
        # Forged by board B: for itself (retained and not) and for board A.
        forger = Peer(deployed, DEV_B.hex())
        forger.publish(protocol.wrap_topic(FLEET, DEV_B), b"forged", retain=True)
        forger.publish(protocol.wrap_topic(FLEET, DEV_A), b"forged")
        forger.close()
        time.sleep(0.5)
        # Board A subscribes to its own and to B's wrap topic and to every wrap.
        dev = Peer(deployed, DEV_A.hex(), topics=(protocol.wrap_topic(FLEET, DEV_A),
                                                  protocol.wrap_topic(FLEET, DEV_B),
                                                  f"edge/v1/{FLEET}/devices/+/wrap"))
        time.sleep(SETTLE_S)
        dev.close()
        # (Its own topic matches two of its subscriptions: delivered once per match.)
        assert set(dev.got) == {(protocol.wrap_topic(FLEET, DEV_A), b"wrap A", True)}, dev.got
    finally:
        agg.close()


def test_a_board_publishes_only_its_own_update_topic(deployed: Deployed) -> None:
    """Another fleet's topics, another board's, the model, tickets: nothing is delivered."""
    # Watchers that would see whatever the broker lets through: the aggregator on its fleet
    # and on every fleet (the subscriptions an aggregator could make before; one connection,
    # since its user name is its client id), the other board on its own topics.
    agg = Peer(deployed, DEPLOY_AGGREGATOR, clean=True,
               topics=(protocol.update_subscription(FLEET), "edge/v1/+/devices/+/update",
                       "edge/v1/other/#"))
    other = Peer(deployed, DEV_B.hex(), topics=(protocol.ticket_topic(FLEET, DEV_B),
                                                protocol.model_topic(FLEET)))
    dev = Peer(deployed, DEV_A.hex())
    try:
        forbidden = [protocol.update_topic("other", DEV_A), protocol.model_topic("other"),
                     protocol.ticket_topic("other", DEV_A),
                     protocol.update_topic(FLEET, DEV_B), protocol.ticket_topic(FLEET, DEV_B),
                     protocol.ticket_topic(FLEET, DEV_A), protocol.model_topic(FLEET),
                     "edge/v1/other/devices/x/update", "anything/else"]
        for topic in forbidden:
            dev.publish(topic, b"smuggled")
        dev.publish(protocol.update_topic(FLEET, DEV_A), b"own")
        agg.wait(1)      # the broker handles one client's packets in order: "own" comes last
        time.sleep(SETTLE_S)
        assert agg.got == [(protocol.update_topic(FLEET, DEV_A), b"own", False)], agg.got
        assert other.got == []
    finally:
        for p in (dev, other, agg):
            p.close()


# -- item 12: packet size and queue bounds ----------------------------------------------------

def _option(name: str) -> int:
    text = (DEPLOY / "conf.d" / "edge.conf").read_text(encoding="utf-8")
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    assert m, f"deploy/mosquitto/conf.d/edge.conf sets no {name}"
    return int(m.group(1))


def _framing(topic_len: int, payload: int) -> int:
    """Bytes of an MQTT 3.1.1 QoS 1 PUBLISH: fixed header, topic, packet id, payload."""
    remaining = 2 + topic_len + 2 + payload
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else \
        3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


BACKBONE_ALLOWANCE = 8 * 1024 * 1024    # stored backbone chunks a package may carry (broker.md)


def test_shipped_limits_are_the_protocols_largest_messages() -> None:
    fleet = "f" * 32                      # the longest fleet name
    update = _framing(len(protocol.update_topic(fleet, DEV_A)), MAX_UPDATE_SIZE)
    package = _framing(len(protocol.model_topic(fleet)), MAX_MANIFEST_SIZE + BACKBONE_ALLOWANCE)
    assert (update, package) == (524_580, 9_437_239)
    assert _option("max_packet_size") == max(update, package)
    # One round of the largest cohort at the largest head, queued for an offline aggregator.
    assert _option("max_queued_bytes") == BROKER_SIZED_COHORT * MAX_UPDATE_SIZE
    assert _option("max_queued_messages") >= BROKER_SIZED_COHORT
    assert _option("memory_limit") > _option("max_queued_bytes") + \
        _option("max_inflight_messages") * MAX_UPDATE_SIZE + _option("max_packet_size")


def test_oversized_packets_and_a_flood_leave_the_broker_bounded(deployed: Deployed) -> None:
    """A board sends 40 MiB packets, then more max-size updates than the aggregator's queue
    holds, while the aggregator is offline: broker RSS stays bounded, traffic still flows."""
    topic = protocol.update_topic(FLEET, ATTACKER)
    agg = aggregator(deployed)
    agg.close()
    before = deployed.broker.rss_bytes()
    attacker = Peer(deployed, ATTACKER.hex())
    big = bytes(40 * 1024 * 1024)
    accepted_big = 0
    for _ in range(10):
        if not attacker.publish(topic, big, timeout=10):
            break      # disconnected: Mosquitto refuses the packet from its length alone
        accepted_big += 1
    attacker.close()
    attacker = Peer(deployed, ATTACKER.hex())
    flood = bytes(MAX_UPDATE_SIZE)
    sent = 0
    queue_bytes = 134_263_808   # the shipped max_queued_bytes, whatever the config under test
    while sent * len(flood) < 1.5 * queue_bytes:
        infos = [attacker.client.publish(topic, flood, qos=1) for _ in range(32)]
        for info in infos:
            info.wait_for_publish(30)
        sent += len(infos)
    attacker.close()
    time.sleep(0.5)
    grown = deployed.broker.rss_bytes() - before
    print(f"broker RSS grew by {grown / 2**20:.0f} MiB: {accepted_big} x 40 MiB packets "
          f"accepted, {sent} x {len(flood)} bytes flooded")
    bound = queue_bytes + 100 * MAX_UPDATE_SIZE + 64 * 2**20
    assert grown < bound, f"broker RSS grew by {grown / 2**20:.0f} MiB"
    assert accepted_big == 0
    # Legitimate traffic: the aggregator comes back and drains its (bounded) queue, then
    # a board's update comes in and a ticket goes out.
    agg = aggregator(deployed)
    dev = Peer(deployed, DEV_A.hex(), topics=(protocol.ticket_topic(FLEET, DEV_A),))
    try:
        wait_for(lambda: len(agg.got) >= 1, timeout=30, what="the queued flood")
        time.sleep(SETTLE_S)
        drained = len(agg.got)
        assert drained * MAX_UPDATE_SIZE <= queue_bytes + 100 * MAX_UPDATE_SIZE
        assert dev.publish(protocol.update_topic(FLEET, DEV_A), b"genuine")
        assert agg.publish(protocol.ticket_topic(FLEET, DEV_A), b"ticket")
        wait_for(lambda: b"genuine" in agg.payloads() and dev.payloads() == [b"ticket"],
                 timeout=30, what="a genuine update and a ticket after the flood")
        assert agg.disconnects == 0 and deployed.broker.running
    finally:
        dev.close()
        agg.close()


# -- the federation itself under the shipped rules --------------------------------------------

def test_federation_runs_on_the_shipped_config(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Daemons and the aggregator, with per-device credentials, connect under their user
    names and complete rounds while two boards hold the aggregator's and a board's ids."""
    require_native("host")
    fleet = make_fleet(tmp_path / "fleet", "mqtt://127.0.0.1:1", devices=3, quorum=3,
                       min_updates=3)
    devices = [parse_device_record(r).device_id.hex() for r in fleet.records]
    thieves = [ATTACKER.hex(), DEV_A.hex()]
    dep = start_deployed(tmp_path / "broker", [DEPLOY_AGGREGATOR, *devices, *thieves])
    for table, user in [(fleet.aggregator, DEPLOY_AGGREGATOR),
                        *zip(fleet.devices, devices, strict=True)]:
        table["broker"] = {"url": f"mqtts://127.0.0.1:{dep.port}", "ca_file": str(dep.ca),
                           "username": user, "password_file": str(dep.passwords[user]),
                           "keepalive": 10}
    fed = Federation(fleet)
    try:
        fed.start_boards()
        agg = fed.make_aggregator()
        assert agg.client_id == DEPLOY_AGGREGATOR
        assert [b.daemon.client._client_id.decode() for b in fed.boards] == devices
        caplog.set_level("WARNING", logger="edge.aggregator")
        stolen = [agg.client_id, fed.boards[0].daemon.client._client_id.decode()]
        held = [Peer(dep, user, cid=cid) for user, cid in zip(thieves, stolen, strict=True)]
        rows = fed.run_rounds(2)
        for peer in held:
            peer.close()
        assert [(m.round, m.participants, m.failed) for m in rows] == [(1, 3, False),
                                                                       (2, 3, False)]
        assert [b.daemon.stats.connects for b in fed.boards] == [1, 1, 1]
        assert not [r for r in caplog.records if "disconnected" in r.getMessage()]
    finally:
        fed.close()
        dep.broker.stop()


# -- presence: a board's retained status and last will ---------------------------------------

def test_presence_own_status_retained_will_on_loss_and_no_other(deployed: Deployed) -> None:
    """A board retains online on its own status topic and its will (offline, retained) is
    published when its connection drops; it can write no other board's status."""
    settings = deployed.settings(DEV_A.hex())
    board = make_client(settings, client_id(settings, "edge-a"), clean_session=True)
    board.will_set(protocol.status_topic(FLEET, DEV_A), protocol.OFFLINE, qos=1, retain=True)
    board.connect(settings.host, settings.port)
    board.loop_start()
    other = Peer(deployed, DEV_C.hex())
    try:
        deadline = time.monotonic() + 10
        while not board.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert board.is_connected(), "a board with a retained will on its status was refused"
        board.publish(protocol.status_topic(FLEET, DEV_A), protocol.ONLINE, qos=1,
                      retain=True).wait_for_publish(10)
        other.publish(protocol.status_topic(FLEET, DEV_B), protocol.ONLINE, retain=True)
        other.publish(protocol.status_topic(FLEET, DEV_A), protocol.OFFLINE, retain=True)
        time.sleep(0.5)
        watch = Peer(deployed, DEPLOY_AGGREGATOR, cid="watch",
                     topics=(protocol.status_subscription(FLEET),))
        assert watch.wait(1, 5) == 1
        assert watch.got == [(protocol.status_topic(FLEET, DEV_A), protocol.ONLINE, True)]
        # the connection drops without a DISCONNECT (power loss, a kill): the will goes out
        board.loop_stop()
        board.socket().close()
        assert watch.wait(2, 15) == 2, "the board's will was not published"
        assert watch.got[1][:2] == (protocol.status_topic(FLEET, DEV_A), protocol.OFFLINE)
        watch.close()
        late = Peer(deployed, DEPLOY_AGGREGATOR, cid="late",
                    topics=(protocol.status_subscription(FLEET),))
        late.wait(1, 5)
        time.sleep(0.3)
        late.close()
        assert late.got == [(protocol.status_topic(FLEET, DEV_A), protocol.OFFLINE, True)]
    finally:
        other.close()
        board.loop_stop()


# -- secure aggregation (docs/secagg.md, "Over MQTT") ----------------------------------------

def test_secagg_acl_own_messages_and_own_inbox_only(deployed: Deployed) -> None:
    """A board publishes only its own advert/shares/reveals, reads only its own inbox, and
    cannot write the fleet's roster; the aggregator reads and writes what the stages need."""
    agg = Peer(deployed, DEPLOY_AGGREGATOR,
               topics=(protocol.secagg_device_subscription(FLEET),))
    a = Peer(deployed, DEV_A.hex(), topics=(protocol.secagg_inbox_topic(FLEET, DEV_A),
                                            protocol.secagg_fleet_topic(FLEET, "roster")))
    spy = Peer(deployed, DEV_B.hex(), topics=(protocol.secagg_inbox_topic(FLEET, DEV_A),))
    try:
        for stage in protocol.SECAGG_DEVICE_STAGES:
            a.publish(protocol.secagg_device_topic(FLEET, DEV_A, stage), stage.encode())
            a.publish(protocol.secagg_device_topic(FLEET, DEV_B, stage), b"forged")
        spy.publish(protocol.secagg_fleet_topic(FLEET, "roster"), b"fake roster")
        spy.publish(protocol.secagg_inbox_topic(FLEET, DEV_A), b"fake inbox")
        agg.publish(protocol.secagg_inbox_topic(FLEET, DEV_A), b"inbox-a")
        agg.publish(protocol.secagg_fleet_topic(FLEET, "roster"), b"roster")
        time.sleep(SETTLE_S)
        assert sorted(agg.payloads()) == [b"advert", b"reveals", b"shares"]
        assert sorted(a.payloads()) == [b"inbox-a", b"roster"]
        assert spy.got == []
    finally:
        for p in (spy, a, agg):
            p.close()
