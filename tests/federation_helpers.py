"""A small real federation for tests: demo data, provisioned sim devices, daemons in threads."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge.aggregator import Aggregator, AggregatorConfig
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
            wait_for(b.daemon.subscribed.is_set, what=f"{b.daemon.config.name} to subscribe")
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
