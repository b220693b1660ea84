"""Secure-aggregation federations over MQTT for tests: registrar, certificates, dying boards."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from federation_helpers import Board

from edge import errors
from edge.aggregator import AggregatorConfig, fedavg
from edge.aggregator.rounds import load_head
from edge.aggregator.secagg_certs import load_certificates
from edge.demo.fleet import Fleet
from edge.demo.fleet import enable_secagg as fleet_secagg
from edge.formats.ticket import parse_ticket
from edge.keyfiles import load_private_key, load_public_key
from edge.mqtt import BrokerSettings, make_client
from edge.secagg.server import SecAggRound


def enable_secagg(fleet: Fleet, *, stage_timeout_s: float = 6.0, **secagg: Any) -> None:
    """The demo's secure-aggregation set-up with a short stage deadline (dropout tests)."""
    fleet_secagg(fleet, stage_timeout_s=stage_timeout_s, **secagg)


def hold(board: Board, kind: str, released: threading.Event) -> None:
    """``board`` answers the directive ``kind`` (secagg-roster, secagg-inbox,
    secagg-survivors) only once ``released``."""
    handle = board.daemon._handle_secagg

    def later(k: str, payload: bytes) -> None:
        if k == kind:
            released.wait(300)
        handle(k, payload)
    board.daemon._handle_secagg = later  # type: ignore[method-assign]


def db_count(db: Path, sql: str) -> int:
    """One number read from an aggregator's database (-1 while it cannot be read)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            row = con.execute(sql).fetchone()
    except sqlite3.Error:
        return -1
    return -1 if row is None or row[0] is None else int(row[0])


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


def single_server_result(config: AggregatorConfig, tap: Tap) -> tuple[np.ndarray, list[bytes]]:
    """The round replayed through one SecAggRound from every message the tap saw: the
    result a single secagg aggregator gets from the same adverts, shares, updates and
    reveals. Every roster, inbox and survivor list published (a re-send too) must be the
    very bytes this replay signs: Ed25519 signatures are deterministic."""
    sa = config.secagg
    assert sa is not None
    ticket = parse_ticket(tap.on("/ticket")[0][1])
    registrar = load_public_key(sa.registrar)
    srv = SecAggRound(sa.params, config.fleet, ticket.round_id, ticket.nonce,
                      ticket.model_version,
                      load_certificates(sa.certificates, config.fleet, registrar),
                      load_private_key(config.aggregator_key), registrar_pub=registrar)
    for _, p in tap.on("/secagg/advert"):
        srv.add_advert(p)
    rosters = {p for _, p in tap.on("/secagg/roster")}
    assert rosters == {srv.roster()}
    for _, p in tap.on("/secagg/shares"):
        srv.add_shares(p)
    for topic, p in tap.on("/secagg-inbox"):
        assert srv.inbox_for(bytes.fromhex(topic.split("/")[4])) == p
    for _, p in tap.on("/update"):  # copies too: the same update again is taken once
        try:
            srv.add_masked(p)
        except errors.SignatureInvalid:
            continue  # a test's forged copy
    assert {p for _, p in tap.on("/secagg/survivors")} == {srv.survivors()}
    for _, p in tap.on("/secagg/reveals"):
        srv.add_reveal(p)
    return srv.result()


def single_server_model(config: AggregatorConfig,
                        tap: Tap) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """The next model (W, b) a single secagg aggregator makes from what the tap saw,
    without central noise, and the round's survivors."""
    total, survivors = single_server_result(config, tap)
    sa = config.secagg
    assert sa is not None
    mean = fedavg.aggregate_masked(total, len(survivors), central_noise=0.0,
                                   update_clip=config.dp.update_clip,
                                   scale_log2=int(sa.params.scale_log2 or 0))
    W, b = fedavg.apply_to_head(*load_head(config.initial_head), mean)
    return W, b, survivors
