"""Verified, durably summed updates per second: one aggregator, and a root with 1 and 2
cohort workers (MQTT 5 shared subscription), side by side on one Mosquitto; and the same
for secure-aggregation rounds (one secagg aggregator, root + 1 and + 2 workers).

Run: python3 benchmarks/cohort.py [--updates 500] [--params 100000] [--workers 1,2]
[--secagg-devices 20] [--secagg-rounds 3]. Prints two tables with the ratio to the single
aggregator measured in the same run, and the load average beside each; not a test.
Every process is a real one (``edge aggregator run``, ``edge aggregator worker``); fake
devices (keys in Python, no TA, no training) answer the round's tickets with sealed
updates of ``--params`` parameters, built before the clock starts. The clock runs from the
first update published to the round's close as the root records it (metrics.jsonl), so
it includes the broker and, with workers, their partial sums and the root's combination.

Secure aggregation needs the device side of SecAgg+, which only a TA runs: that table
runs ``--secagg-devices`` board daemons (threads of this process) each with its own
simulated secure world (an ``edge-sim-tee`` process), on the demo's data, backbone and
head, every stage over the broker; the figure is the round's seconds from its opening
to its checkpoint as the root (or aggregator) records them (median over the rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.simulate import FakeDevice, clip, config_mapping
from edge.aggregator.store import Store
from edge.broker import MosquittoBroker
from edge.demo import data as demo_data
from edge.demo.fleet import enable_secagg, write_fleet
from edge.demo.settings import DEFAULT
from edge.mqtt import BrokerSettings, make_client

ROOT = Path(__file__).resolve().parent.parent
FLEET = "bench"
HEAD_OUT = 25  # 100k parameters = 3,999 x 25 + 25, as benchmarks/aggregate.py


def _toml(table: dict) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from ops_helpers import to_toml

    return to_toml(table)


def run_once(folder: Path, n: int, params: int, workers: int) -> float:
    """Seconds from the first update published to the round's close (0 workers: the
    single aggregator)."""
    broker = MosquittoBroker(folder / "mosquitto", autosave_each_change=False)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        extra = {}
        if workers:
            (folder / "cohort.key").write_text(os.urandom(32).hex())
            extra["workers"] = {"key": str(folder / "cohort.key")}
        table = config_mapping(folder / "fleet", broker.url, fleet=FLEET, rounds={
            "cohort_size": n, "quorum": n, "min_updates": 1, "timeout_s": 900, "rounds": 1},
            **extra)
        head_in = params // HEAD_OUT - 1
        np.savez(table["aggregator"]["initial_head"],
                 W=np.zeros((head_in, HEAD_OUT), np.float32), b=np.zeros(HEAD_OUT, np.float32))
        path = folder / "root.toml"
        path.write_text(_toml(table), encoding="utf-8")
        config = AggregatorConfig.from_mapping(table)
        devices = {d.device_id.hex(): d for d in (FakeDevice() for _ in range(n))}
        with Store(config.state) as store:
            registry = Registry(store)
            for d in devices.values():
                registry.enroll(d.record)
        s = BrokerSettings.from_url(broker.url)
        client = make_client(s, "bench-devices", clean_session=True)
        tickets: queue.Queue[tuple[str, bytes]] = queue.Queue()
        client.on_message = lambda _c, _u, m: tickets.put((m.topic, bytes(m.payload)))
        client.connect(s.host, s.port)
        client.loop_start()
        client.subscribe(f"edge/v1/{FLEET}/devices/+/ticket", qos=1)
        procs += _start_workers_and_root(path, folder, workers)
        got: dict[str, bytes] = {}
        deadline = time.monotonic() + 120
        while len(got) < n and time.monotonic() < deadline:
            try:
                topic, ticket = tickets.get(timeout=0.5)
            except queue.Empty:
                continue
            got.setdefault(topic.split("/")[4], ticket)
        if len(got) < n:
            raise RuntimeError(f"{len(got)} of {n} tickets arrived")
        rng = np.random.default_rng(2)
        p = head_in * HEAD_OUT + HEAD_OUT
        updates = [(devices[h].topic(FLEET), devices[h].update(t, clip(rng.normal(size=p), 1.0)))
                   for h, t in got.items()]
        start = time.time()
        for topic, payload in updates:
            client.publish(topic, payload, qos=1)
        if procs[-1].wait(900) != 0:
            raise RuntimeError("the root (or aggregator) failed")
        client.disconnect()
        client.loop_stop()
        rows = [json.loads(line) for line in config.metrics.read_text().splitlines()]
        if not rows or rows[-1]["participants"] != n:
            raise RuntimeError(f"the round did not count {n} updates: {rows[-1:]}")
        return float(rows[-1]["closed_at"]) - start
    finally:
        _stop(procs)
        broker.stop()


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def run_secagg(folder: Path, split: demo_data.Split, backbone: demo_data.DemoBackbone,
               rounds: int, workers: int) -> tuple[list[dict[str, Any]], int]:
    """The metrics rows of ``rounds`` secure-aggregation rounds of the split's devices (0
    workers: one secagg aggregator, else a root and ``workers`` workers), and the head's
    parameter count."""
    from edge.daemon import Daemon, DaemonConfig

    broker = MosquittoBroker(folder / "mosquitto", autosave_each_change=False)
    procs: list[subprocess.Popen[bytes]] = []
    boards: list[tuple[Any, threading.Event, threading.Thread]] = []
    try:
        fleet = write_fleet(folder / "fleet", split, backbone, DEFAULT, broker_url=broker.url,
                            rounds=rounds, seed=1, timeout_s=300)
        enable_secagg(fleet, stage_timeout_s=60.0)
        if workers:
            (folder / "cohort.key").write_text(os.urandom(32).hex())
            fleet.aggregator["workers"] = {"key": str(folder / "cohort.key")}
        path = folder / "root.toml"
        path.write_text(_toml(fleet.aggregator), encoding="utf-8")
        config = AggregatorConfig.from_mapping(fleet.aggregator)
        with Store(config.state) as store:
            registry = Registry(store)
            for rec in fleet.records:
                registry.enroll(rec)
        for cfg in fleet.devices:
            daemon, stop = Daemon(DaemonConfig.from_mapping(cfg)), threading.Event()
            thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
            thread.start()
            boards.append((daemon, stop, thread))
        for daemon, _, _ in boards:
            if not daemon.subscribed.wait(60):
                raise RuntimeError(f"{daemon.config.name} did not subscribe")
        procs += _start_workers_and_root(path, folder, workers)
        if procs[-1].wait(900) != 0:
            raise RuntimeError("the secagg root (or aggregator) failed")
        rows = [json.loads(line) for line in config.metrics.read_text().splitlines()]
        if len(rows) != rounds or any(r["participants"] != len(boards) for r in rows):
            raise RuntimeError(f"rounds did not count all {len(boards)} devices: {rows}")
        with np.load(config.initial_head) as head:
            params = int(head["W"].size + head["b"].size)
        return rows, params
    finally:
        _stop(procs)
        for daemon, stop, thread in boards:
            stop.set()
            thread.join(15)
            daemon.close()
        broker.stop()


def secagg_table(n: int, rounds: int, counts: list[int]) -> None:
    """Print the secure-aggregation table: seconds per round per setup."""
    split = demo_data.split_digits(n, 0.5, 0)
    backbone = demo_data.build_backbone(split.public_x, split.public_y, seed=0)
    results, params = [], 0
    for k in counts:
        with tempfile.TemporaryDirectory(prefix="edge-bench-cohort-secagg.") as tmp:
            rows, params = run_secagg(Path(tmp), split, backbone, rounds, k)
        results.append((k, statistics.median(r["seconds"] for r in rows), _load()))
    base = results[0][1]
    print(f"\nsecure aggregation (SecAgg+): {n} boards with simulated TAs, {rounds} rounds, "
          f"demo head of {params} parameters, {os.cpu_count()} cores")
    print(f"{'setup':<34}{'s/round':>9}{'vs one aggregator':>19}   load (1/5/15 min)")
    for k, seconds, load in results:
        name = "one secagg aggregator" if k == 0 else \
            f"root + {k} worker{'s' if k > 1 else ''}"
        print(f"{name:<34}{seconds:>9.2f}{base / seconds:>19.2f}   {load}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, then SIGKILL what has not exited in 20 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _start_workers_and_root(config: Path, folder: Path, workers: int) \
        -> list[subprocess.Popen[bytes]]:
    """``workers`` cohort workers, then (once their shared subscription exists) the root,
    or one aggregator when ``workers`` is 0; the root is last."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "edge.cli", "aggregator"]
    procs = [subprocess.Popen([*cli, "worker", "--config", str(config), "--id", f"w{i}",
                               "--state", str(folder / f"w{i}.sqlite")], env=env)
             for i in range(workers)]
    time.sleep(1.0)  # the workers' shared subscription exists before any update
    procs.append(subprocess.Popen([*cli, "run", "--config", str(config)], env=env,
                                  stdout=subprocess.DEVNULL))
    return procs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=500)
    ap.add_argument("--params", type=int, default=100_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--secagg-devices", type=int, default=20,
                    help="boards of the secure-aggregation table (0: no such table)")
    ap.add_argument("--secagg-rounds", type=int, default=3)
    args = ap.parse_args()
    counts = [0] + [int(x) for x in args.workers.split(",")]
    rows = []
    for k in counts:
        with tempfile.TemporaryDirectory(prefix="edge-bench-cohort.") as tmp:
            seconds = run_once(Path(tmp), args.updates, args.params, k)
        rows.append((k, seconds))
    base = args.updates / rows[0][1]
    print(f"{args.updates} updates of {args.params} parameters, Mosquitto on loopback, "
          f"{os.cpu_count()} cores, {_load()} at the end")
    print(f"{'setup':<34}{'seconds':>9}{'updates/s':>11}{'vs one aggregator':>19}")
    for k, seconds in rows:
        name = "one aggregator" if k == 0 else f"root + {k} worker{'s' if k > 1 else ''}"
        rate = args.updates / seconds
        print(f"{name:<34}{seconds:>9.2f}{rate:>11.0f}{rate / base:>19.2f}")
    if args.secagg_devices:
        secagg_table(args.secagg_devices, args.secagg_rounds, counts)


if __name__ == "__main__":
    main()
