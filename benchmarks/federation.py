"""Rounds of simulated fleets of N = 10, 100, 300, 1,000 devices on Mosquitto, next to Flower.

Run: python3 benchmarks/federation.py [--devices 10,100,300,1000] [--rounds 4] [--seed 0]
[--fleet-max N] [--no-flower]. Prints a table; not a test.

What each simulated device runs: a real board daemon (``edge.daemon``; thread) with its own
simulated secure world (one ``edge-sim-tee`` process per device: anchors, a real DP policy,
identity keys made inside it), 12 digits samples (drawn with replacement past ~65 devices,
``edge.demo.data.dirichlet_resample``) through the demo's int8 TFLite backbone, DP-SGD and
sealing in the TA, the outbox, QoS 1 to Mosquitto (saving every 5 s, as deploy/mosquitto).
The daemons run in device host processes of ceil(N/2), at most 100 (``edge.demo.hosts``:
paho's ``select()`` fails for descriptors >= 1024). One fleet per N by default (a release is
one package and a key wrap per device: no recipient cap); ``--fleet-max 250`` splits N into
fleets of at most 250 on one broker, as before key wraps, one aggregator each (threads of
this process). Every device is in every round's cohort (quorum = cohort).

Per round (the fleets' rounds of the same number together): participants, lost (cohort
minus participants), refused, updates sent (update messages of that round through the
broker, copies included: N when nothing was published twice), seconds (the slowest
fleet's ticket issue to checkpoint),
wall seconds per round (from one round's close to the next's, over the rounds after the
first: model package publication and loading included), and bytes per
device per round through the broker: the model package, its own key wrap and the ticket it
downloads, the sealed update it uploads (measured by a subscriber on every topic). Flower: a
simulation round of the same N (64x10 softmax head, 4 epochs, no checks) in ``.venv-flower``
(``scripts/setup.sh --with-flower``), run by ``benchmarks/flower_federation.py``; its first
round (Ray start-up) is left out, as for the anchor figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.broker import MosquittoBroker
from edge.demo import data as demo_data
from edge.demo.fleet import Fleet, write_fleet
from edge.demo.hosts import DEVICES_PER_PROCESS
from edge.demo.runner import run_fleets
from edge.demo.settings import DEFAULT, quiet_absl
from edge.errors import EdgeError
from edge.formats.update import parse_any_update
from edge.mqtt import BrokerSettings

ROOT = Path(__file__).resolve().parent.parent
FLOWER = ROOT / ".venv-flower" / "bin" / "python"
BENCH_KEEPALIVE_S = 60


class Traffic:
    """Bytes on the fleets' model, wrap, ticket and update topics, as a subscriber sees them."""

    def __init__(self, url: str) -> None:
        self.model: dict[str, int] = {}  # fleet -> size of its newest package
        self.wraps: list[int] = []
        self.tickets: list[int] = []
        self.updates: list[int] = []
        self.copies: dict[int, int] = defaultdict(int)  # round -> update messages seen
        self._lock = threading.Lock()
        s = BrokerSettings.from_url(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-traffic")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [("edge/v1/+/model", 0), ("edge/v1/+/devices/+/wrap", 0),
             ("edge/v1/+/devices/+/ticket", 0), ("edge/v1/+/devices/+/update", 1)])
        self.client.on_message = self._message
        self.client.connect(s.host, s.port)
        self.client.loop_start()

    def _message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        kind, fleet = m.topic.rsplit("/", 1)[1], m.topic.split("/")[2]
        with self._lock:
            if kind == "model":
                self.model[fleet] = len(m.payload)
            elif kind == "wrap":
                self.wraps.append(len(m.payload))
            elif kind == "ticket":
                self.tickets.append(len(m.payload))
            else:
                self.updates.append(len(m.payload))
                with contextlib.suppress(EdgeError):
                    self.copies[parse_any_update(bytes(m.payload)).round_id] += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def provision(root: Path, n: int, url: str, rounds: int, seed: int,
              fleet_max: int | None) -> list[Fleet]:
    """One fleet, or ceil(n / fleet_max) of near-equal size, each with its own keys and data."""
    count = math.ceil(n / fleet_max) if fleet_max else 1
    sizes = [n // count + (i < n % count) for i in range(count)]
    split = demo_data.split_digits(n, 0.5, seed)
    backbone = demo_data.build_backbone(split.public_x, split.public_y, seed=seed)
    fleets, at = [], 0
    for i, size in enumerate(sizes):
        part = demo_data.Split(split.public_x, split.public_y, split.test_x, split.test_y,
                               split.devices[at:at + size], split.resampled)
        at += size
        fleet = write_fleet(root / f"fleet-{i}", part, backbone, DEFAULT, broker_url=url,
                            rounds=rounds, seed=seed, timeout_s=300, fleet_name=f"bench-{i}")
        for cfg in fleet.devices:
            # The product's keepalive (60 s), not the demo's 10 s: 1,000 boards, their
            # secure worlds and the broker on 2 cores starve a board's network thread for
            # over 15 s while every board loads the new model at once (the broker then
            # dropped 961 of them in one round; real boards each have their own cores).
            cfg["broker"]["keepalive"] = BENCH_KEEPALIVE_S
        fleets.append(fleet)
    return fleets


def measure(n: int, rounds: int, seed: int, fleet_max: int | None = None,
            per_process: int = DEVICES_PER_PROCESS) -> dict[str, Any]:
    """Provision and run ``rounds`` rounds of n devices on a fresh Mosquitto."""
    with tempfile.TemporaryDirectory(prefix="edge-bench-fed.") as tmp:
        # Saved every 5 s, as deploy/mosquitto does: the tests' save after every change
        # rewrites the whole database (1,000 sessions, wraps, queues) per message and
        # stalled the broker for minutes at 1,000 devices (keepalive drops, a model
        # not acknowledged within 120 s). The daemons' outboxes cover a broker crash.
        broker = MosquittoBroker(Path(tmp) / "mosquitto", autosave_each_change=False,
                                 autosave_s=5)
        try:
            t0 = time.monotonic()
            fleets = provision(Path(tmp), n, broker.url, rounds, seed, fleet_max)
            setup = time.monotonic() - t0
            traffic = Traffic(broker.url)
            try:
                result = run_fleets(fleets, rounds, per_process=per_process)
            finally:
                traffic.close()
        finally:
            broker.stop()
    for e in result.errors:  # shown, and the rounds that closed still reported
        print(f"N={n}: ERROR {e[-600:]}", file=sys.stderr)
    by_round: dict[int, list[Any]] = defaultdict(list)
    for m in result.rounds:
        by_round[m.round].append(m)
    rows = []
    for r in sorted(by_round):
        ms = by_round[r]
        part = sum(m.participants for m in ms)
        rows.append({"round": r, "participants": part, "lost": n - part,
                     "refused": sum(sum(m.refused.values()) for m in ms),
                     "sent": traffic.copies.get(r, 0),
                     "seconds": max(m.seconds for m in ms), "fleets": len(ms)})
    model = statistics.mean(traffic.model.values()) if traffic.model else 0
    down = (model + (statistics.mean(traffic.wraps) if traffic.wraps else 0)
            + (statistics.mean(traffic.tickets) if traffic.tickets else 0))
    up = statistics.mean(traffic.updates) if traffic.updates else 0
    # Round to round, package publication and loading included: the slowest fleet's closes.
    closed = [max(m.closed_at or 0.0 for m in by_round[r]) for r in sorted(by_round)]
    wall = ((closed[-1] - closed[0]) / (len(closed) - 1) if len(closed) > 1
            else rows[0]["seconds"])
    return {"n": n, "fleets": len(fleets), "setup": setup, "rows": rows,
            "wall": wall, "down": down, "up": up, "errors": len(result.errors)}


def flower(n: int, rounds: int, seed: int) -> dict[str, Any] | str:
    """Flower's simulation rounds of n clients, or why they could not run."""
    if not FLOWER.exists():
        return "no .venv-flower (scripts/setup.sh --with-flower)"
    proc = subprocess.run([str(FLOWER), str(ROOT / "benchmarks" / "flower_federation.py"),
                           str(n), str(rounds + 1), str(seed)], capture_output=True,
                          text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure each N, print the per-round rows and the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="10,100,300,1000")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fleet-max", type=int, default=0,
                        help="devices per fleet at most (default 0: one fleet per N)")
    parser.add_argument("--per-process", type=int, default=0,
                        help="daemons per device host process (default 0: ceil(N/2), at "
                             f"most {DEVICES_PER_PROCESS}, so the daemons use both cores "
                             "apart from the aggregator; N at most this: threads of this "
                             "process, next to the aggregators)")
    parser.add_argument("--no-flower", action="store_true")
    args = parser.parse_args()
    quiet_absl()
    ns = [int(x) for x in args.devices.split(",")]
    print(f"Mosquitto on loopback, sim TAs (one process each), local DP-SGD "
          f"{DEFAULT.steps_per_round} steps per round, 12 samples per device, quorum = cohort")
    summary = []
    for n in ns:
        per_process = args.per_process or min(DEVICES_PER_PROCESS, max(1, math.ceil(n / 2)))
        r = measure(n, args.rounds, args.seed, args.fleet_max or None, per_process)
        print(f"\nN={n}: {r['fleets']} fleet(s), {math.ceil(n / per_process)} device host "
              f"process(es), provisioned in {r['setup']:.1f} s"
              + (f"; {r['errors']} ERROR(S) on stderr" if r["errors"] else ""))
        print(f"{'round':>5}  {'participants':>12}  {'lost':>5}  {'refused':>7}  "
              f"{'updates sent':>12}  {'seconds':>8}")
        for row in r["rows"]:
            print(f"{row['round']:>5}  {row['participants']:>12}  {row['lost']:>5}  "
                  f"{row['refused']:>7}  {row['sent']:>12}  {row['seconds']:>8.3f}")
        fl = None if args.no_flower else flower(n, args.rounds, args.seed)
        summary.append((r, fl))
    print(f"\n{'N':>5}  {'fleets':>6}  {'round s (median)':>16}  {'wall s/round':>12}  "
          f"{'lost':>5}  {'down B/dev/round':>16}  {'up B/dev/round':>14}  "
          f"{'Flower s/round':>14}  {'ratio wall/Flower':>17}")
    for r, fl in summary:
        med = statistics.median(row["seconds"] for row in r["rows"])
        lost = sum(row["lost"] for row in r["rows"])
        if isinstance(fl, dict) and fl["rounds_s"]:
            f_s = statistics.median(fl["rounds_s"])
            f_txt, ratio = f"{f_s:.3f}", f"{r['wall'] / f_s:.2f}"
        else:
            f_txt, ratio = "-" if fl is None else str(fl)[:14], "-"
        print(f"{r['n']:>5}  {r['fleets']:>6}  {med:>16.3f}  {r['wall']:>12.3f}  {lost:>5}  "
              f"{r['down']:>16.0f}  {r['up']:>14.0f}  {f_txt:>14}  {ratio:>17}")


if __name__ == "__main__":
    main()
