"""[broker] settings and paho clients; TLS, credentials and the ACL of deploy/mosquitto."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import ROOT
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge import protocol
from edge.broker import free_port, wait_listening
from edge.errors import ConfigError
from edge.mqtt import BrokerSettings, make_client, read_password


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


# -- the deployment config, with TLS, passwords and the ACL, on a real Mosquitto -----------

def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, obj: object) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(obj.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return path


DEV_A, DEV_B = bytes.fromhex("aa" * 16), bytes.fromhex("bb" * 16)


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[Path, int, Path]]:
    """deploy/mosquitto/mosquitto.conf with its paths and port pointed into tmp_path."""
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge test CA")])
    ca = _cert("edge test CA", ca_key, ca_name, ca_key, True)
    srv = _cert("127.0.0.1", srv_key, ca_name, ca_key, False)
    files = {"ca": _pem(tmp_path / "ca.crt", ca), "crt": _pem(tmp_path / "server.crt", srv),
             "key": _pem(tmp_path / "server.key", srv_key)}
    passwd = tmp_path / "passwd"
    users = {"aggregator": "agg-pw", DEV_A.hex(): "a-pw", DEV_B.hex(): "b-pw"}
    for i, (user, pw) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd),
                        user, pw], check=True, capture_output=True)
        (tmp_path / f"{user}.pw").write_text(pw + "\n")
    port = free_port()
    text = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    for old, new in [("listener 8883", f"listener {port} 127.0.0.1"),
                     ("/etc/mosquitto/edge/ca.crt", str(files["ca"])),
                     ("/etc/mosquitto/edge/server.crt", str(files["crt"])),
                     ("/etc/mosquitto/edge/server.key", str(files["key"])),
                     ("/etc/mosquitto/edge/passwd", str(passwd)),
                     ("/etc/mosquitto/edge/acl", str(ROOT / "deploy/mosquitto/acl")),
                     ("/var/lib/mosquitto/", f"{tmp_path}/"),
                     ("/var/log/mosquitto/mosquitto.log", str(tmp_path / "log"))]:
        assert old in text, old
        text = text.replace(old, new)
    if os.geteuid() == 0:
        text += "user root\n"
    (tmp_path / "m.conf").write_text(text)
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(tmp_path / "m.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening("127.0.0.1", port, 10, alive=lambda: proc.poll() is None)
        yield tmp_path, port, files["ca"]
    finally:
        proc.terminate()
        proc.wait(10)


def _client(tmp: Path, port: int, ca: Path, user: str, name: str, topics: list[str],
            got: list[tuple[str, bytes]]) -> tuple[mqtt.Client, threading.Event]:
    s = BrokerSettings.from_mapping({"url": f"mqtts://127.0.0.1:{port}", "ca_file": str(ca),
                                     "username": user, "password_file": str(tmp / f"{name}.pw")})
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


def test_deployed_config_tls_passwords_and_acl(deployed: tuple[Path, int, Path]) -> None:
    tmp, port, ca = deployed
    fleet = "f1"
    agg_got: list[tuple[str, bytes]] = []
    a_got: list[tuple[str, bytes]] = []
    agg, _ = _client(tmp, port, ca, "aggregator", "aggregator",
                     [protocol.update_subscription(fleet)], agg_got)
    dev, _ = _client(tmp, port, ca, DEV_A.hex(), DEV_A.hex(),
                     [protocol.ticket_topic(fleet, DEV_A), protocol.ticket_topic(fleet, DEV_B),
                      protocol.model_topic(fleet)], a_got)
    try:
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
    (tmp / "wrong.pw").write_text("nope\n")
    s = BrokerSettings.from_mapping({"url": f"mqtts://127.0.0.1:{port}", "ca_file": str(ca),
                                     "username": DEV_B.hex(),
                                     "password_file": str(tmp / "wrong.pw")})
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
