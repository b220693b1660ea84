"""Pieces for the aggregator operations tests and benchmark: fake devices over MQTT, a CLI run.

``TicketAnswerer`` answers every ticket with a sealed update from a FakeDevice (no TA), so a
real aggregator process can close rounds without boards; ``aggregator_cmd`` runs the real
CLI of a chosen checkout (this one, or another for before/after numbers).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.mqtt import BrokerSettings, make_client

ROOT = Path(__file__).resolve().parent.parent
PARAMS = 8 * 3 + 3  # the head of edge.aggregator.simulate.write_fleet_files


def to_toml(table: dict[str, Any]) -> str:
    """A two-level TOML table (values as JSON, which TOML reads for these types)."""
    lines = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def aggregator_cmd(*args: str, root: Path = ROOT) -> tuple[list[str], dict[str, str]]:
    """argv and environment of ``edge aggregator ARGS`` from the checkout ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return [sys.executable, "-m", "edge.cli", "aggregator", *args], env


class TicketAnswerer:
    """Answers every ticket of ``devices`` with a zero update, unless held."""

    def __init__(self, url: str, fleet: str, devices: list[FakeDevice]) -> None:
        self.fleet = fleet
        self.by_id = {d.device_id.hex(): d for d in devices}
        self.hold = threading.Event()
        self.held: list[tuple[str, bytes]] = []
        self.answered = 0
        self.ready = threading.Event()
        s = BrokerSettings.from_url(url)
        self.client = make_client(s, f"test-devices-{os.getpid()}-{id(self)}",
                                  clean_session=True)
        self.client.on_connect = self._connect
        self.client.on_subscribe = lambda *_a: self.ready.set()
        self.client.on_message = self._message
        self.client.connect(s.host, s.port)
        self.client.loop_start()
        assert self.ready.wait(10), "the fake devices did not subscribe"

    def _connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(f"edge/v1/{self.fleet}/devices/+/ticket", qos=1)

    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        device = self.by_id.get(msg.topic.split("/")[4])
        if device is None:
            return
        update = device.update(bytes(msg.payload), np.zeros(PARAMS, np.float32))
        if self.hold.is_set():
            self.held.append((device.topic(self.fleet), update))
            return
        self.client.publish(device.topic(self.fleet), update, qos=1)
        self.answered += 1

    def release(self) -> None:
        """Publish the held updates and answer at once from now on."""
        self.hold.clear()
        held, self.held = self.held, []
        for topic, update in held:
            self.client.publish(topic, update, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _enroll(config: Path, devices: list[FakeDevice], root: Path) -> None:
    records = []
    for i, d in enumerate(devices):
        records.append(config.parent / f"device{i}.pub")
        records[-1].write_bytes(d.record)
    argv, env = aggregator_cmd("enroll", "--config", str(config), *map(str, records), root=root)
    subprocess.run(argv, env=env, cwd=root, check=True, capture_output=True, timeout=120)


def metrics_census(state: Path, metrics: Path) -> dict[str, int]:
    """Rows of ``metrics`` against the database's finished rounds: lost, duplicated, torn."""
    # Not read-only: right after a SIGKILL mid-transaction the file has a hot journal, which
    # only a connection that may write can roll back ("attempt to write a readonly database").
    with contextlib.closing(sqlite3.connect(state, timeout=30)) as db:
        finished = {r for (r,) in db.execute(
            "SELECT round_id FROM rounds WHERE state IN ('closed', 'failed')")}
    data = metrics.read_bytes() if metrics.exists() else b""
    lines = data.split(b"\n")
    torn = 1 if lines[-1] else 0  # text after the last newline
    seen: list[int] = []
    for line in lines[:-1]:
        try:
            seen.append(int(json.loads(line)["round"]))
        except (ValueError, KeyError, TypeError):
            torn += 1
    return {"rounds": len(finished), "rows": len(seen), "lost": len(finished - set(seen)),
            "duplicated": len(seen) - len(set(seen)), "torn": torn,
            "stray": len(set(seen) - finished)}


def kill_scenario(work: Path, url: str, kills: int, *, root: Path = ROOT, seed: int = 0,
                  lifetime: tuple[float, float] = (0.3, 2.5)) -> dict[str, int]:
    """SIGKILL a real aggregator ``kills`` times at random points, then run it once cleanly."""
    rng = random.Random(seed)
    table = config_mapping(work / "fleet", url, rounds={
        "cohort_size": 2, "quorum": 2, "min_updates": 1, "timeout_s": 30, "rounds": 0})
    config = work / "aggregator.toml"
    config.write_text(to_toml(table), encoding="utf-8")
    devices = [FakeDevice(), FakeDevice()]
    _enroll(config, devices, root)
    answerer = TicketAnswerer(url, table["aggregator"]["fleet"], devices)
    argv, env = aggregator_cmd("run", "--config", str(config), root=root)
    try:
        for _ in range(kills):
            proc = subprocess.Popen(argv, env=env, cwd=root, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(*lifetime))
            proc.kill()
            proc.wait(30)
        state, metrics = Path(table["aggregator"]["state"]), Path(table["aggregator"]["metrics"])
        # The clean run lasts until it has closed a round of its own (and 5 in all), not
        # a fixed time: on a loaded machine 3 s did not even cover the start-up.
        want = max(metrics_census(state, metrics)["rounds"] + 1, 5)
        proc = subprocess.Popen(argv, env=env, cwd=root, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while metrics_census(state, metrics)["rounds"] < want and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.terminate()
        proc.wait(30)
    finally:
        answerer.close()
    census = metrics_census(state, metrics)
    census["kills"] = kills
    return census


def flood_scenario(work: Path, url: str, garbage: int, *, root: Path = ROOT) \
        -> dict[str, float]:
    """Seconds from an aggregator's restart to the close of its open round, when ``garbage``
    refused messages from one client are queued before the round's only update."""
    fleet = "flood"
    table = config_mapping(work / "fleet", url, fleet=fleet, rounds={
        "cohort_size": 1, "quorum": 1, "min_updates": 1, "timeout_s": 600, "rounds": 0})
    config = work / "aggregator.toml"
    config.write_text(to_toml(table), encoding="utf-8")
    device = FakeDevice()
    _enroll(config, [device], root)
    answerer = TicketAnswerer(url, fleet, [device])
    answerer.hold.set()
    argv, env = aggregator_cmd("run", "--config", str(config), root=root)
    hostile = make_client(BrokerSettings.from_url(url), f"hostile-{os.getpid()}",
                          clean_session=True)
    try:
        proc = subprocess.Popen(argv, env=env, cwd=root, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not answerer.held and time.monotonic() < deadline:
            time.sleep(0.02)
        assert answerer.held, "no ticket reached the device"
        proc.terminate()  # the open round stays open; the broker queues for the session
        assert proc.wait(30) == 0
        s = BrokerSettings.from_url(url)
        hostile.connect(s.host, s.port)
        hostile.loop_start()
        topic = f"edge/v1/{fleet}/devices/{'ab' * 16}/update"
        info = None
        for i in range(garbage):
            info = hostile.publish(topic, b"garbage %d" % i, qos=1)
        if info is not None:
            info.wait_for_publish(120)
        answerer.release()  # the round's update, queued behind the garbage
        answerer.hold.set()  # the ticket re-sent at restart gets no second answer
        started = time.monotonic()
        run = subprocess.Popen([*argv, "--rounds", "1"], env=env, cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out, _ = run.communicate(timeout=600)
        closed = time.monotonic() - started
        assert run.returncode == 0 and len(out.splitlines()) == 2, out
    finally:
        hostile.disconnect()
        hostile.loop_stop()
        answerer.close()
    argv, env = aggregator_cmd("status", "--config", str(config), "--json", root=root)
    status = json.loads(subprocess.run(argv, env=env, cwd=root, check=True, text=True,
                                       capture_output=True, timeout=120).stdout)
    with sqlite3.connect(f"file:{table['aggregator']['state']}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    return {"garbage": garbage, "seconds_to_close": closed,
            "refused": sum(status["refusals"].values()),
            "malformed": status["refusals"].get("malformed", 0), "audit_rows": rows}
