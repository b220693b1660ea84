"""Secure-aggregation federations over MQTT for tests: registrar, certificates, dying boards."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from federation_helpers import Board

from edge.demo.fleet import Fleet
from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public
from edge.formats.secagg import build_cert, fleet_id
from edge.keyfiles import public_pem
from edge.mqtt import BrokerSettings, make_client
from edge.tee import TrustedApp


def enable_secagg(fleet: Fleet, *, stage_timeout_s: float = 6.0, **secagg: Any) -> None:
    """Install a registrar in every simulated TA, certify each device, configure secagg+."""
    registrar = Ed25519PrivateKey.generate()
    keys, certs = fleet.root / "keys", fleet.root / "aggregator" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    (keys / "registrar.pub").write_bytes(public_pem(ed25519_raw_public(registrar)))
    for cfg in fleet.devices:
        with TrustedApp("sim", Path(cfg["tee"]["state_dir"])) as ta:
            ta.install_registrar(ed25519_raw_public(registrar))
            rec = parse_device_record(ta.identity())
        (certs / f"{rec.device_id.hex()}.cert").write_bytes(
            build_cert(registrar, rec.ed25519_pub, fleet_id(fleet.name)))
    fleet.aggregator["rounds"]["secagg"] = "secagg+"
    fleet.aggregator["secagg"] = {"registrar": str(keys / "registrar.pub"),
                                  "certificates": str(certs),
                                  "stage_timeout_s": stage_timeout_s, **secagg}


def die_at(board: Board, kind: str) -> None:
    """Stop ``board``'s daemon when it receives ``kind`` (ticket, secagg-roster,
    secagg-inbox, secagg-survivors) instead of handling it: a board killed after the
    previous stage."""
    d = board.daemon
    if kind == "ticket":
        def never(rid: int, payload: bytes) -> None:
            board.stop.set()
        d._secagg_advertise = never  # type: ignore[method-assign]
        return
    handle = d._handle_secagg

    def dying(k: str, payload: bytes) -> None:
        if k == kind:
            board.stop.set()
            return
        handle(k, payload)
    d._handle_secagg = dying  # type: ignore[method-assign]


class Tap:
    """An MQTT client that records every message of a fleet, and can publish (hostile)."""

    def __init__(self, url: str, fleet: str):
        self.got: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        s = BrokerSettings.from_url(url)
        self.client = make_client(s, f"test-tap-{id(self)}", clean_session=True)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"edge/v1/{fleet}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rc, p: ready.set()
        self.client.on_message = self._message
        self.client.connect(s.host, s.port)
        self.client.loop_start()
        assert ready.wait(10), "tap did not subscribe"

    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def on(self, suffix: str) -> list[tuple[str, bytes]]:
        """Messages whose topic ends with ``suffix``."""
        with self._lock:
            return [(t, p) for t, p in self.got if t.endswith(suffix)]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
