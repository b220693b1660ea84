"""[broker] settings and paho clients; TLS, credentials and the ACL of deploy/mosquitto."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from federation_helpers import (
    DEBIAN_STOCK_CONF,
    DEPLOY,
    DEPLOY_AGGREGATOR,
    DEPLOY_FLEET,
    Deployed,
    start_deployed,
)

from edge import protocol
from edge.broker import BrokerError, MosquittoBroker
from edge.errors import ConfigError
from edge.mqtt import BrokerSettings, TopicFilter, client_id, make_client, read_password


def test_urls_and_default_ports() -> None:
    s = BrokerSettings.from_mapping({"url": "mqtt://broker.local"})
    assert (s.host, s.port, s.tls, s.keepalive) == ("broker.local", 1883, False, 60)
    t = BrokerSettings.from_mapping({"url": "mqtts://10.0.0.2"})
    assert (t.port, t.tls, t.url) == (8883, True, "mqtts://10.0.0.2:8883")
    assert BrokerSettings.from_url("mqtt://127.0.0.1:1999").port == 1999


@pytest.mark.parametrize(("table", "key"), [
    ({}, "broker.url"),
    ({"url": "http://x"}, "broker.url"),
    ({"url": "mqtt://"}, "broker.url"),
    ({"url": "mqtt://h:99999"}, "broker.url"),
    ({"url": "mqtt://u:p@h"}, "broker.url"),
    ({"url": "mqtt://h/path"}, "broker.url"),
    ({"url": "mqtt://h", "keepalive": "60"}, "broker.keepalive"),
    ({"url": "mqtt://h", "keepalive": 0}, "broker.keepalive"),
    ({"url": "mqtt://h", "ca_file": "/nonexistent"}, "broker.ca_file"),
    ({"url": "mqtt://h", "port": 1}, "broker.port"),
    ({"url": "mqtt://h", "username": ""}, "broker.username"),
])
def test_bad_settings_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        BrokerSettings.from_mapping(table)


def test_file_rules(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("secret\n")
    with pytest.raises(ConfigError, match=r"broker\.ca_file: only applies to an mqtts"):
        BrokerSettings.from_mapping({"url": "mqtt://h", "ca_file": str(f)})
    with pytest.raises(ConfigError, match=r"broker\.key_file"):
        BrokerSettings.from_mapping({"url": "mqtts://h", "cert_file": str(f)})
    with pytest.raises(ConfigError, match=r"broker\.password_file: needs broker\.username"):
        BrokerSettings.from_mapping({"url": "mqtt://h", "password_file": str(f)})
    s = BrokerSettings.from_mapping({"url": "mqtt://h", "username": "u",
                                     "password_file": str(f)}, where="x")
    assert read_password(s) == "secret"
    assert "secret" not in repr(s)
    with pytest.raises(ConfigError, match=r"x\.url"):
        BrokerSettings.from_mapping({}, where="x")


def test_client_is_mqtt311_with_version2_callbacks() -> None:
    c = make_client(BrokerSettings.from_url("mqtt://127.0.0.1:1"), "id-1", clean_session=False)
    assert c.protocol == mqtt.MQTTv311
    assert c.callback_api_version == mqtt.CallbackAPIVersion.VERSION2
    assert c._client_id == b"id-1"


def _nagle_off(c: mqtt.Client) -> bool:
    sock = c.socket()
    assert sock is not None, "not connected"
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_clients_send_without_nagle(mosquitto: MosquittoBroker) -> None:
    """A packet written after a PUBACK must not wait for the broker's delayed ACK: both
    ends turn Nagle's algorithm off (a 10-device round was a third slower with it on)."""
    s = BrokerSettings.from_url(mosquitto.url)
    c = make_client(s, "nodelay", clean_session=True)
    c.connect(s.host, s.port)
    try:
        assert _nagle_off(c)
    finally:
        c.disconnect()
    assert "set_tcp_nodelay true" in mosquitto.config_file.read_text()
    assert "\nset_tcp_nodelay true\n" in (DEPLOY / "conf.d" / "edge.conf").read_text()


def test_client_id_is_the_user_name_or_unguessable(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    named = BrokerSettings.from_mapping({"url": "mqtt://h", "username": "aggregator-demo",
                                         "password_file": str(pw)})
    assert client_id(named, "edge-aggregator-demo", secret=b"k") == "aggregator-demo"
    anonymous = BrokerSettings.from_url("mqtt://h")
    # Without credentials nothing binds the id: a fixed prefix and 128 bits nobody can guess,
    # stable for the same secret (a persistent session), fresh otherwise.
    a, b = (client_id(anonymous, "edge-aggregator-demo", secret=k) for k in (b"k1", b"k2"))
    assert a.startswith("edge-aggregator-demo-") and len(a) == len("edge-aggregator-demo-") + 32
    assert a == client_id(anonymous, "edge-aggregator-demo", secret=b"k1") and a != b
    assert client_id(anonymous, "edge-x") != client_id(anonymous, "edge-x")


# -- the deployment config, with TLS, passwords and the ACL, on a real Mosquitto -----------

DEV_A, DEV_B = bytes.fromhex("aa" * 16), bytes.fromhex("bb" * 16)


@pytest.fixture(params=["standalone", "debian-stock"])
def deployed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Deployed]:
    """deploy/mosquitto/conf.d/edge.conf included by the shipped standalone mosquitto.conf,
    or by Debian's stock /etc/mosquitto/mosquitto.conf (its include_dir pointed at a
    folder holding the snippet), with paths and port pointed into tmp_path."""
    main = DEPLOY / "mosquitto.conf" if request.param == "standalone" else DEBIAN_STOCK_CONF
    dep = start_deployed(tmp_path, [DEPLOY_AGGREGATOR, DEV_A.hex(), DEV_B.hex()], main=main)
    try:
        yield dep
    finally:
        dep.broker.stop()


def _client(dep: Deployed, user: str, topics: list[str],
            got: list[tuple[str, bytes]]) -> tuple[mqtt.Client, threading.Event]:
    s = dep.settings(user)
    c = make_client(s, f"c-{user}", clean_session=True)
    ready = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: (cl.subscribe([(t, 1) for t in topics]) if topics
                                            else ready.set())
    c.on_subscribe = lambda cl, u, mid, rc, p: ready.set()
    c.on_message = lambda cl, u, m: got.append((m.topic, bytes(m.payload)))
    c.connect(s.host, s.port)
    c.loop_start()
    assert ready.wait(10), f"{user} did not connect over TLS"
    return c, ready


def test_deployed_config_tls_passwords_and_acl(deployed: Deployed) -> None:
    fleet = DEPLOY_FLEET
    agg_got: list[tuple[str, bytes]] = []
    a_got: list[tuple[str, bytes]] = []
    agg, _ = _client(deployed, DEPLOY_AGGREGATOR, [protocol.update_subscription(fleet)],
                     agg_got)
    dev, _ = _client(deployed, DEV_A.hex(),
                     [protocol.ticket_topic(fleet, DEV_A), protocol.ticket_topic(fleet, DEV_B),
                      protocol.model_topic(fleet)], a_got)
    try:
        assert _nagle_off(agg) and _nagle_off(dev)  # over TLS too
        # Device A: its own update passes; B's update topic and the model topic are denied.
        for topic in (protocol.update_topic(fleet, DEV_B), protocol.model_topic(fleet),
                      protocol.update_topic(fleet, DEV_A)):
            dev.publish(topic, b"from-a", qos=1).wait_for_publish(10)
        for topic in (protocol.ticket_topic(fleet, DEV_B), protocol.ticket_topic(fleet, DEV_A),
                      protocol.model_topic(fleet)):
            agg.publish(topic, b"from-agg", qos=1).wait_for_publish(10)
        time.sleep(0.5)
        assert agg_got == [(protocol.update_topic(fleet, DEV_A), b"from-a")]
        assert sorted(a_got) == sorted([(protocol.ticket_topic(fleet, DEV_A), b"from-agg"),
                                        (protocol.model_topic(fleet), b"from-agg")])
    finally:
        for c in (agg, dev):
            c.disconnect()
            c.loop_stop()
    # A wrong password is refused.
    wrong = deployed.root / "wrong.pw"
    wrong.write_text("nope\n")
    s = deployed.settings(DEV_B.hex(), password_file=wrong)
    c = make_client(s, "c-wrong", clean_session=True)
    codes: list[object] = []
    c.on_connect = lambda cl, u, f, rc, p: codes.append(rc)
    c.connect(s.host, s.port)
    c.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not codes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        c.loop_stop()
    assert codes and codes[0].is_failure, codes


def test_snippet_sets_nothing_debian_stock_conf_sets(tmp_path: Path) -> None:
    """The snippet starts beside Debian's stock file because it repeats none of its
    process-wide settings; the previous single file (with log_dest) did not start."""
    stock = {line.split()[0] for line in DEBIAN_STOCK_CONF.read_text().splitlines()
             if line.strip() and not line.startswith("#")} - {"include_dir", "persistence"}
    snippet = DEPLOY / "conf.d" / "edge.conf"
    keys = {line.split()[0] for line in snippet.read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert stock and not keys & stock, f"{snippet} repeats {sorted(keys & stock)}"
    # The same layout with one stock setting repeated is refused: the layout test above
    # would see it.
    doubled = tmp_path / "doubled.conf"
    doubled.write_text(snippet.read_text() + "log_dest file /var/log/mosquitto/mosquitto.log\n")
    with pytest.raises(BrokerError):
        start_deployed(tmp_path / "broker", [DEPLOY_AGGREGATOR], main=DEBIAN_STOCK_CONF,
                       snippet=doubled).broker.stop()


def test_topic_filter_matches_as_paho_does() -> None:
    filters = ["edge/v1/f/devices/+/update", "edge/v1/f/devices/+/status", "a/#", "#", "+",
               "+/+", "a/+/c", "a/b", "$SYS/#", "a/#", "edge/v1/+/devices/#", "/+", "+/"]
    topics = ["edge/v1/f/devices/abc/update", "edge/v1/f/devices/abc/status",
              "edge/v1/f/devices/update", "edge/v1/f/devices/a/b/update",
              "edge/v1/g/devices/abc/update", "a", "a/b", "a/b/c", "a/x/c", "b", "/", "a/",
              "/a", "$SYS/x", "$SYS", "edge/v1/f/devices", "edge/v1/f/devices/x/secagg/1"]
    for f in filters:
        tf = TopicFilter(f)
        for t in topics:
            assert tf.matches(t) == mqtt.topic_matches_sub(f, t), (f, t)
