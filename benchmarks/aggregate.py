"""Sealed updates verified and aggregated per second, next to Flower's FedAvg on the same arrays.

Run: python3 benchmarks/aggregate.py [--updates 1000] [--params 100000] [--store 200].
Prints a table; not a test. The updates are built once with the Python builder
(``edge.formats.update.build_update``) under one test identity key per device.

Rows:
- edge verify + aggregate: ``edge.aggregator.verify.verify`` (envelope, signer, Ed25519
  signature, binding to round/nonce/model, cohort, parameter count, norm bound, duplicate
  check) and ``fedavg.accumulate`` per update, then the weighted mean.
- edge aggregate only: ``fedavg.accumulate`` on the already-parsed deltas, then the mean.
- edge, committed per update: ``RoundManager.handle`` (verification, one SQLite
  transaction with the running sum per update, synchronous=FULL), on ``--store`` updates.
- Flower: ``flwr.server.strategy.aggregate.aggregate`` on the same deltas and counts
  (averaging only: Flower verifies nothing). Flower is optional (``pip install flwr``).

``--loopback N`` adds the round time of this aggregator with N fake devices (keys in
Python, no TA, no training) on the embedded broker over loopback: the aggregator's and
broker's share of a round. The end-to-end round time of 50 simulated devices with their
daemons and simulated TAs is the demo's measurement (``edge demo``; ``RoundMetrics.seconds``
is the same clock: ticket issue to model checkpoint).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.aggregator import fedavg
from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, clip, config_mapping
from edge.aggregator.store import Store
from edge.aggregator.verify import RoundView, verify
from edge.formats.device import parse_device_record
from edge.formats.ticket import build_ticket, parse_ticket
from edge.protocol import update_topic

FLEET = "bench"


def build(n: int, params: int, seed: int = 0) -> tuple[list[FakeDevice], list[bytes], bytes]:
    """n devices and one sealed update each for one round; returns devices, updates, ticket."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    rng = np.random.default_rng(seed)
    ticket = build_ticket(Ed25519PrivateKey.generate(), round_id=1, model_version=1,
                          nonce=bytes(range(16)), issued_at=0, deadline=2**40,
                          example_clip=1.0, noise_multiplier=1.0, update_clip=1.0,
                          learning_rate=0.1)
    devices = [FakeDevice(example_count=int(rng.integers(10, 200))) for _ in range(n)]
    updates = [d.update(ticket, clip(rng.normal(size=params), 1.0)) for d in devices]
    return devices, updates, ticket


def bench_verify(devices: list[FakeDevice], updates: list[bytes], ticket: bytes,
                 params: int) -> tuple[float, np.ndarray]:
    """Seconds to verify and aggregate every update; and the mean."""
    records = {d.device_id: parse_device_record(d.record) for d in devices}
    t = parse_ticket(ticket)
    view = RoundView(1, t.nonce, 1, params, t.update_clip, frozenset(records),
                     t.noise_multiplier, t.example_clip)
    topics = [update_topic(FLEET, d.device_id) for d in devices]
    start = time.perf_counter()
    acc = fedavg.RunningSum.empty(params)
    accepted: dict[bytes, bytes] = {}
    for topic, payload in zip(topics, updates, strict=True):
        a = verify(FLEET, topic, payload, records, view, accepted)
        accepted[a.device_id] = a.update_id
        acc = fedavg.accumulate(acc, a.delta, float(a.example_count))
    mean = fedavg.mean(acc)
    return time.perf_counter() - start, mean


def bench_sum(deltas: list[np.ndarray], counts: list[int]) -> tuple[float, np.ndarray]:
    """Seconds for our running weighted sum and mean alone."""
    start = time.perf_counter()
    acc = fedavg.RunningSum.empty(deltas[0].size)
    for d, n in zip(deltas, counts, strict=True):
        acc = fedavg.accumulate(acc, d, float(n))
    mean = fedavg.mean(acc)
    return time.perf_counter() - start, mean


def bench_flower(deltas: list[np.ndarray], counts: list[int]) -> tuple[float, np.ndarray] | None:
    """Seconds for Flower's FedAvg on the same arrays, or None without flwr."""
    try:
        from flwr.server.strategy.aggregate import aggregate
    except ImportError:
        return None
    results = [([d], n) for d, n in zip(deltas, counts, strict=True)]
    start = time.perf_counter()
    out = aggregate(results)
    return time.perf_counter() - start, np.asarray(out[0])


def bench_store(devices: list[FakeDevice], n: int, params: int, folder: Path) -> float:
    """Seconds to handle n updates through RoundManager (one SQLite commit each)."""
    head_out = 10
    head_in = (params - head_out) // (head_out + 0) // 1
    head_in = max(1, (params - head_out) // head_out)
    table = config_mapping(folder, fleet=FLEET, rounds={"cohort_size": n, "quorum": n,
                                                         "min_updates": 1})
    np.savez(table["aggregator"]["initial_head"], W=np.zeros((head_in, head_out), np.float32),
             b=np.zeros(head_out, np.float32))
    config = AggregatorConfig.from_mapping(table)
    p = head_in * head_out + head_out
    rng = np.random.default_rng(1)
    with Store(config.state) as store:
        registry = Registry(store, max_devices=n)
        for d in devices[:n]:
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry)
        tickets = dict(manager.open_next())
        msgs = []
        for d in devices[:n]:
            ticket = tickets[update_topic(FLEET, d.device_id)[:-6] + "ticket"]
            msgs.append((update_topic(FLEET, d.device_id),
                         d.update(ticket, clip(rng.normal(size=p), 1.0))))
        start = time.perf_counter()
        for topic, payload in msgs:
            if not manager.handle(topic, payload).accepted:
                raise RuntimeError("benchmark update refused")
        return time.perf_counter() - start


def loopback_round_time(n: int, rounds: int, params: int = 650) -> list[float]:
    """Round seconds (RoundMetrics.seconds) of n fake devices over the embedded broker."""
    import threading

    from edge.aggregator import Aggregator
    from edge.broker import EmbeddedBroker
    from edge.mqtt import BrokerSettings, make_client

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        folder = Path(tmp)
        table = config_mapping(folder, broker.url, fleet=FLEET,
                               rounds={"cohort_size": n, "quorum": n, "min_updates": 1,
                                       "timeout_s": 120, "rounds": rounds})
        out = 10
        np.savez(table["aggregator"]["initial_head"],
                 W=np.zeros((params // out - 1, out), np.float32), b=np.zeros(out, np.float32))
        devices = {d.device_id.hex(): d for d in (FakeDevice() for _ in range(n))}
        settings = BrokerSettings.from_url(broker.url)
        client = make_client(settings, "bench-devices", clean_session=True)
        rng = np.random.default_rng(0)

        def answer(c: object, _u: object, msg: object) -> None:
            dev = devices[msg.topic.split("/")[4]]  # type: ignore[attr-defined]
            delta = clip(rng.normal(size=params), 1.0)
            c.publish(dev.topic(FLEET), dev.update(bytes(msg.payload), delta),  # type: ignore
                      qos=1)

        client.on_message = answer
        client.connect(settings.host, settings.port)
        client.loop_start()
        for hexid in devices:
            client.subscribe(f"edge/v1/{FLEET}/devices/{hexid}/ticket", qos=1)
        times: list[float] = []
        try:
            config = AggregatorConfig.from_mapping(table)
            with Aggregator(config, on_round=lambda m: times.append(m.seconds)) as agg:
                agg.package_settle_s = 0.0
                for d in devices.values():
                    agg.enroll(d.record)
                agg.run(threading.Event())
        finally:
            client.disconnect()
            client.loop_stop()
        return times


def main() -> None:
    """Build the updates once, time every row, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--params", type=int, default=100_000)
    ap.add_argument("--store", type=int, default=200,
                    help="updates for the SQLite row (at most 256: one fleet); 0 to skip")
    ap.add_argument("--loopback", type=int, default=0, metavar="N",
                    help="also time rounds of N fake devices over the embedded broker")
    args = ap.parse_args()
    t0 = time.perf_counter()
    devices, updates, ticket = build(args.updates, args.params)
    print(f"built {args.updates} sealed updates of {args.params} parameters in "
          f"{time.perf_counter() - t0:.1f} s ({len(updates[0])} bytes each)")
    deltas = [np.frombuffer(u, dtype="<f4", offset=28 + 88, count=args.params).astype(np.float32)
              for u in updates]
    counts = [d.example_count for d in devices]
    rows: list[tuple[str, int, float]] = []
    secs, ours = bench_verify(devices, updates, ticket, args.params)
    rows.append(("edge verify + aggregate", args.updates, secs))
    secs_sum, ours_sum = bench_sum(deltas, counts)
    rows.append(("edge aggregate only", args.updates, secs_sum))
    flower = bench_flower(deltas, counts)
    if flower is not None:
        rows.append(("Flower aggregate (FedAvg)", args.updates, flower[0]))
        diff = float(np.max(np.abs(flower[1] - ours)))
    if args.store:
        n = min(args.store, args.updates, 256)
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(("edge, SQLite commit per update", n,
                         bench_store(devices, n, args.params, Path(tmp))))
    print(f"\n| {'path':<32} | {'updates':>7} | {'seconds':>8} | {'updates/s':>10} |")
    print(f"| {'-' * 32} | {'-' * 6}: | {'-' * 7}: | {'-' * 9}: |")
    for name, n, s in rows:
        print(f"| {name:<32} | {n:>7} | {s:>8.3f} | {n / s:>10.0f} |")
    np.testing.assert_allclose(ours, ours_sum, rtol=1e-9, atol=1e-12)
    if args.loopback:
        times = loopback_round_time(args.loopback, 5)
        print(f"\nloopback, {args.loopback} fake devices, embedded broker, 650-parameter head: "
              f"round time median {np.median(times):.3f} s over {len(times)} rounds "
              f"(min {min(times):.3f}, max {max(times):.3f})")
    if flower is None:
        print("\nFlower (flwr) is not installed: `pip install flwr` to compare; our rows only.")
        return
    print(f"\nratio, edge verify + aggregate / Flower aggregate (updates per second): "
          f"{flower[0] / secs:.2f}x")
    print(f"ratio, edge aggregate only / Flower aggregate: {flower[0] / secs_sum:.2f}x")
    print(f"max |edge mean - Flower mean| = {diff:.2e}")


if __name__ == "__main__":
    main()
