"""End-to-end round time of a simulated fleet on loopback (embedded broker and Mosquitto).

Run: python3 benchmarks/federation.py [--devices 50] [--rounds 5] [--seed 0].
Prints a table; not a test. Each device is a real board daemon (thread) with its own
simulated secure world (one ``edge-sim-tee`` process each), its share of the digits data
(Dirichlet alpha 0.5) and the demo's int8 TFLite backbone; the aggregator runs in the same
process. The round time is ``RoundMetrics.seconds``: from the tickets' issue to the new
model checkpoint (ticket delivery, TA ticket check, backbone inference, DP-SGD and sealing
in the TA, update publication, verification, commit, aggregation). Model package
publication and loading between rounds is outside it, so the wall time per round is also
shown. Mosquitto is skipped (with a note) when it is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from edge.broker import BrokerError, EmbeddedBroker, MosquittoBroker
from edge.demo import data as demo_data
from edge.demo.fleet import write_fleet
from edge.demo.runner import run_federation
from edge.demo.settings import DEFAULT, quiet_absl


@contextlib.contextmanager
def broker(kind: str, workdir: Path) -> Iterator[str]:
    """A started broker of ``kind``; yields its URL."""
    if kind == "embedded":
        with EmbeddedBroker() as b:
            yield b.url
        return
    b = MosquittoBroker(workdir / "mosquitto")
    try:
        yield b.url
    finally:
        b.stop()


def measure(kind: str, devices: int, rounds: int, seed: int) -> dict[str, float]:
    """Provision and run one federation; round-time statistics in seconds."""
    split = demo_data.split_digits(devices, 0.5, seed, min_size=5)
    backbone = demo_data.build_backbone(split.public_x, split.public_y, seed=seed)
    with tempfile.TemporaryDirectory(prefix="edge-bench-fed.") as tmp, \
            broker(kind, Path(tmp)) as url:
        t0 = time.monotonic()
        fleet = write_fleet(Path(tmp) / "fleet", split, backbone, DEFAULT, broker_url=url,
                            rounds=rounds, seed=seed, timeout_s=60)
        setup = time.monotonic() - t0
        result = run_federation(fleet, rounds)
        if result.errors or len(result.rounds) != rounds:
            raise SystemExit(f"{kind}: federation failed: {result.errors}")
    times = [m.seconds for m in result.rounds]
    return {"setup": setup, "median": statistics.median(times), "min": min(times),
            "max": max(times), "wall": result.seconds / rounds,
            "participants": min(m.participants for m in result.rounds)}


def main() -> None:
    """Measure on each broker and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet_absl()
    print(f"{args.devices} devices, {args.rounds} rounds, loopback, sim TAs, "
          f"local DP-SGD {DEFAULT.steps_per_round} steps per round")
    print(f"{'broker':<10}  {'provision s':>11}  {'round median s':>14}  {'min s':>6}  "
          f"{'max s':>6}  {'wall/round s':>12}  {'participants':>12}")
    for kind in ("embedded", "mosquitto"):
        try:
            r = measure(kind, args.devices, args.rounds, args.seed)
        except BrokerError as exc:
            print(f"{kind:<10}  skipped: {exc}")
            continue
        print(f"{kind:<10}  {r['setup']:>11.2f}  {r['median']:>14.3f}  {r['min']:>6.3f}  "
              f"{r['max']:>6.3f}  {r['wall']:>12.3f}  {int(r['participants']):>12}")


if __name__ == "__main__":
    main()
