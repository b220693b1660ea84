"""A small real federation for tests: demo data, provisioned sim devices, daemons in threads."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import ROOT, require_native
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.aggregator import Aggregator, AggregatorConfig
from edge.broker import MosquittoBroker
from edge.daemon import Daemon, DaemonConfig
from edge.demo import data as demo_data
from edge.demo.fleet import FLEET, Fleet, write_fleet
from edge.demo.settings import DEFAULT
from edge.mqtt import BrokerSettings, make_client


@functools.lru_cache(maxsize=4)
def prepared(devices: int, seed: int = 0) -> tuple[demo_data.Split, demo_data.DemoBackbone]:
    """The demo's split and backbone for ``devices`` devices (cached per test session)."""
    split = demo_data.split_digits(devices, 0.5, seed)
    return split, demo_data.build_backbone(split.public_x, split.public_y, seed=seed)


def make_fleet(root: Path, url: str, *, devices: int = 3, rounds: int = 3,
               timeout_s: float = 20.0, **rounds_overrides: Any) -> Fleet:
    """Keys, provisioned simulated devices, data and configs for a small federation."""
    split, backbone = prepared(devices)
    fleet = write_fleet(root, split, backbone, DEFAULT, broker_url=url, rounds=rounds + 4,
                        seed=1, timeout_s=timeout_s)
    fleet.aggregator["rounds"].update(rounds_overrides)
    return fleet


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL the processes a test started that still run, and reap them."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``cond`` until true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Board:
    """One daemon running in its own thread with its own stop event."""

    daemon: Daemon
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Board:
        self.thread = threading.Thread(target=self.daemon.run, args=(self.stop,),
                                       name=f"daemon-{self.daemon.config.name}", daemon=True)
        self.thread.start()
        return self

    def halt(self) -> None:
        """Stop the daemon thread (the TA session stays open until ``close``)."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(15)
            assert not self.thread.is_alive(), f"{self.daemon.config.name} did not stop"

    def close(self) -> None:
        self.halt()
        self.daemon.close()


class Federation:
    """Daemons in threads, plus an in-process aggregator on demand; closes everything."""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.boards = [Board(Daemon(DaemonConfig.from_mapping(c))) for c in fleet.devices]
        self.aggregator: Aggregator | None = None
        self.rounds: list[Any] = []

    def start_boards(self) -> Federation:
        for b in self.boards:
            b.start()
        for b in self.boards:
            wait_for(b.daemon.subscribed.is_set, timeout=60.0,
                     what=f"{b.daemon.config.name} to subscribe")
        return self

    def make_aggregator(self, on_round: Callable[[Any], None] | None = None) -> Aggregator:
        """The in-process aggregator with every device enrolled."""
        def record(m: Any) -> None:
            self.rounds.append(m)
            if on_round is not None:
                on_round(m)
        agg = Aggregator(AggregatorConfig.from_mapping(self.fleet.aggregator), on_round=record)
        for rec in self.fleet.records:
            agg.enroll(rec)
        self.aggregator = agg
        return agg

    def run_rounds(self, n: int, timeout: float = 60.0) -> list[Any]:
        """Run ``n`` rounds on the in-process aggregator; the new metrics rows."""
        agg = self.aggregator or self.make_aggregator()
        before = len(self.rounds)
        stop = threading.Event()
        t = threading.Thread(target=agg.run, args=(stop,), kwargs={"rounds": n}, daemon=True)
        t.start()
        t.join(timeout)
        stop.set()
        t.join(15)
        assert not t.is_alive(), "the aggregator did not stop"
        return self.rounds[before:]

    def close(self) -> None:
        for b in self.boards:
            b.close()
        if self.aggregator is not None:
            self.aggregator.close()


class Observer:
    """An MQTT client that records every payload on the fleet's update topics; can inject."""

    def __init__(self, url: str):
        self.got: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        s = BrokerSettings.from_url(url)
        self.client = make_client(s, f"test-observer-{id(self)}", clean_session=True)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            f"edge/v1/{FLEET}/devices/+/update", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.ready.set()
        self.client.on_message = self._message
        self.client.connect(s.host, s.port)
        self.client.loop_start()
        assert self.ready.wait(10), "observer did not subscribe"

    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.got.append((msg.topic, bytes(msg.payload)))

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def to_toml(table: dict[str, Any]) -> str:
    """A TOML file for a two-level table of strings, numbers and booleans."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = []
    for section, keys in table.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in keys.items()]
        lines.append("")
    return "\n".join(lines)


# -- deploy/mosquitto as shipped, on a real Mosquitto ---------------------------------------

DEPLOY = ROOT / "deploy" / "mosquitto"
DEPLOY_FLEET = "demo"                    # the fleet deploy/mosquitto is written for


def _acl_aggregator(acl: Path = DEPLOY / "acl") -> str:
    """The aggregator's user name: the one ``user`` block of the shipped ACL."""
    users = [line.split()[1] for line in acl.read_text(encoding="utf-8").splitlines()
             if line.startswith("user ")]
    assert len(users) == 1, f"{acl} should name exactly one user (the aggregator): {users}"
    return users[0]


DEPLOY_AGGREGATOR = _acl_aggregator()   # "aggregator-demo"


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


def _pem(path: Path, obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(obj.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


@dataclass
class Deployed:
    """A Mosquitto running deploy/mosquitto/mosquitto.conf with throwaway TLS and passwords."""

    broker: MosquittoBroker
    root: Path
    ca: Path
    passwords: dict[str, Path]

    @property
    def port(self) -> int:
        return self.broker.port

    def settings(self, user: str, password_file: Path | None = None) -> BrokerSettings:
        """[broker] settings of ``user`` (its own password unless another file is given)."""
        return BrokerSettings.from_mapping({
            "url": f"mqtts://127.0.0.1:{self.port}", "ca_file": str(self.ca),
            "username": user,
            "password_file": str(password_file or self.passwords[user])})


# Debian's stock /etc/mosquitto/mosquitto.conf (package mosquitto), which includes conf.d.
DEBIAN_STOCK_CONF = Path("/etc/mosquitto/mosquitto.conf")


def deployed_config(root: Path, port: int, files: dict[str, Path],
                    main: Path = DEPLOY / "mosquitto.conf",
                    snippet: Path = DEPLOY / "conf.d" / "edge.conf",
                    acl: Path = DEPLOY / "acl") -> str:
    """A main config (the shipped standalone one, or Debian's stock file) including the
    shipped conf.d snippet, with only port, file paths and folders moved into root."""
    if not main.is_file():
        raise AssertionError(f"{main} is missing (Debian's stock file comes with "
                             "apt-get install mosquitto, or run scripts/setup.sh)")
    texts = {"main": main.read_text(encoding="utf-8"),
             "snippet": snippet.read_text(encoding="utf-8")}
    moves = [("listener 8883", f"listener {port} 127.0.0.1"),
             ("/etc/mosquitto/edge/ca.crt", str(files["ca"])),
             ("/etc/mosquitto/edge/server.crt", str(files["crt"])),
             ("/etc/mosquitto/edge/server.key", str(files["key"])),
             ("/etc/mosquitto/edge/passwd", str(files["passwd"])),
             ("/etc/mosquitto/edge/acl", str(acl)),
             ("/usr/local/lib/edge/mosquitto_edge_retain.so",
              str(require_native("host") / "mosquitto_edge_retain.so")),
             ("/run/mosquitto/mosquitto.pid", str(root / "mosquitto.pid")),
             ("/var/lib/mosquitto/", f"{root}/"),
             ("/var/log/mosquitto/mosquitto.log", str(root / "mosquitto.log"))]
    for old, new in moves:
        if not any(old in t for t in texts.values()) and not old.endswith((".so", ".pid")):
            raise AssertionError(f"{main} and {snippet} no longer name {old}")
        texts = {k: t.replace(old, new) for k, t in texts.items()}
    confd = root / "conf.d"
    confd.mkdir(exist_ok=True)
    (confd / "edge.conf").write_text(texts["snippet"], encoding="utf-8")
    text, n = re.subn(r"^include_dir .*$", f"include_dir {confd}", texts["main"], flags=re.M)
    if n != 1:
        raise AssertionError(f"{main} has {n} include_dir lines, not one")
    if os.geteuid() == 0:
        text += "user root\n"   # mosquitto would drop to "mosquitto", who cannot write root
    return text


def start_deployed(root: Path, users: list[str], **paths: Path) -> Deployed:
    """deploy/mosquitto with a throwaway CA, server certificate and one password per user."""
    root.mkdir(parents=True, exist_ok=True)
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge test CA")])
    ca = _cert("edge test CA", ca_key, ca_name, ca_key, True)
    srv = _cert("127.0.0.1", srv_key, ca_name, ca_key, False)
    files = {"ca": _pem(root / "ca.crt", ca), "crt": _pem(root / "server.crt", srv),
             "key": _pem(root / "server.key", srv_key), "passwd": root / "passwd"}
    passwords = {}
    for i, user in enumerate(users):
        pw = f"pw-{i}-{os.urandom(8).hex()}"
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []),
                        str(files["passwd"]), user, pw], check=True, capture_output=True)
        passwords[user] = root / f"{user}.pw"
        passwords[user].write_text(pw + "\n")
    broker = MosquittoBroker(root, config=lambda port: deployed_config(root, port, files,
                                                                         **paths))
    return Deployed(broker, root, files["ca"], passwords)
