"""Sealed updates verified and aggregated per second: the verify-and-sum floor, our in-memory
verify + aggregate, our durable per-update path, and Flower's FedAvg on the same arrays.

Run: python3 benchmarks/aggregate.py [--updates 1000] [--params 100000] [--batch 64]
[--repeat 3] [--store 200] [--mosquitto 250]. Prints a table and ratios from one run
(the floor, verify and group-commit rows: the best of ``--repeat`` alternating runs);
not a test. The updates are built
once with the Python builder (``edge.formats.update.build_update``) under one test
identity key per device.

Rows:
- floor: what one update costs at least: Ed25519 verify of the signed digest (key objects
  loaded beforehand), SHA-256 over header and body, and a numpy add of the float32 delta
  (a view of the received bytes) into a float64 sum. No parsing, no checks, no disk.
- edge verify + aggregate: ``edge.aggregator.verify.verify`` (envelope, signer, Ed25519
  signature, binding to round/nonce/model, cohort, parameter count, norm bound, duplicate
  check) and ``fedavg.add_into`` per update, then the weighted mean. In memory.
- edge durable, group commit: the real per-update path of the aggregator, in-process and
  without a broker: ``RoundManager.stage`` (the same verification, the running sum in
  memory) per update and ``RoundManager.commit`` every ``--batch`` updates (64; the
  service's batches are bounded by the broker's in-flight window, 100 in
  deploy/mosquitto/mosquitto.conf and in the tests' Mosquitto; one SQLite
  transaction, rollback journal, synchronous=FULL: the update rows and the running sum).
  The service commits what arrives in a 50 ms tick (at most 256 messages), then acks it.
  The updates come as rounds of 250 devices each (the fleet cap of 256 is gone since key
  wraps; rounds of 250 keep the figures comparable with earlier runs).
- edge durable, commit per update: the same with a commit after every update (how the
  aggregator worked before group commit), on ``--store`` updates.
- edge service over Mosquitto: ``Aggregator.run`` (the process's loop: paho, manual acks
  after each group commit) counting ``--mosquitto`` updates that were queued for its
  persistent session on a real Mosquitto on loopback (at most 100 unacked in flight), from
  the aggregator's start to the round's close (includes connecting and the round close).
- Flower: ``flwr.server.strategy.aggregate.aggregate`` on the same deltas and counts
  (averaging only: Flower verifies nothing), in Flower's own virtualenv
  (``scripts/setup.sh --with-flower`` makes ``.venv-flower``), or in this interpreter if
  flwr imports here.

``--loopback N`` adds the round time of this aggregator with N fake devices (keys in
Python, no TA, no training) on the embedded broker over loopback: the aggregator's and
broker's share of a round. The end-to-end round time of 50 simulated devices with their
daemons and simulated TAs is the demo's measurement (``edge demo``; ``RoundMetrics.seconds``
is the same clock: ticket issue to model checkpoint).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import subprocess
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
from edge.formats.envelope import HEADER_SIZE, SIG_SIZE
from edge.formats.keys import ed25519_public_from_raw
from edge.formats.ticket import build_ticket, parse_ticket
from edge.formats.update import UPDATE_HEADER_SIZE
from edge.protocol import update_topic

FLEET = "bench"
ROOT = Path(__file__).resolve().parent.parent
FLOWER_PYTHON = ROOT / ".venv-flower" / "bin" / "python"
# Devices per round of the durable rows (as in runs from before key wraps lifted the cap).
ROUND_DEVICES = 250
HEAD_OUT = 25  # 100k parameters = 3,999 x 25 + 25 (a package's head has at most 4,096 inputs)


def build(n: int, params: int, seed: int = 0) -> tuple[list[FakeDevice], list[bytes], bytes]:
    """n devices and one sealed update each for one round; returns devices, updates, ticket."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    rng = np.random.default_rng(seed)
    ticket = build_ticket(Ed25519PrivateKey.generate(), round_id=1, model_version=1,
                          package_id=bytes(16), nonce=bytes(range(16)), issued_at=0, deadline=2**40,
                          example_clip=1.0, noise_multiplier=1.0, update_clip=1.0,
                          learning_rate=0.1)
    devices = [FakeDevice(example_count=int(rng.integers(10, 200))) for _ in range(n)]
    updates = [d.update(ticket, clip(rng.normal(size=params), 1.0)) for d in devices]
    return devices, updates, ticket


def bench_floor(devices: list[FakeDevice], updates: list[bytes], params: int) -> float:
    """Seconds for Ed25519 verify + SHA-256 + numpy add of every update (no checks)."""
    keys = [ed25519_public_from_raw(parse_device_record(d.record).ed25519_pub)
            for d in devices]
    total = np.zeros(params, dtype=np.float64)
    start = time.perf_counter()
    for key, payload in zip(keys, updates, strict=True):
        signed = len(payload) - SIG_SIZE
        key.verify(payload[signed:], hashlib.sha256(memoryview(payload)[:signed]).digest())
        np.add(total, np.frombuffer(payload, dtype="<f4", count=params,
                                    offset=HEADER_SIZE + UPDATE_HEADER_SIZE), out=total)
    return time.perf_counter() - start


def bench_verify(devices: list[FakeDevice], updates: list[bytes], ticket: bytes,
                 params: int) -> tuple[float, np.ndarray]:
    """Seconds to verify and aggregate every update in memory; and the mean."""
    records = {d.device_id: parse_device_record(d.record) for d in devices}
    t = parse_ticket(ticket)
    view = RoundView(1, t.nonce, 1, params, t.update_clip, frozenset(records),
                     t.noise_multiplier, t.example_clip, t.package_id)
    topics = [update_topic(FLEET, d.device_id) for d in devices]
    start = time.perf_counter()
    total, scratch, weight = np.zeros(params), np.empty(params), 0.0
    accepted: dict[bytes, bytes] = {}
    for topic, payload in zip(topics, updates, strict=True):
        a = verify(FLEET, topic, payload, records, view, accepted)
        accepted[a.device_id] = a.update_id
        fedavg.add_into(total, a.delta, float(a.example_count), scratch)
        weight += a.example_count
    mean = fedavg.mean(fedavg.RunningSum(total, weight, len(updates)))
    return time.perf_counter() - start, mean


def bench_sum(deltas: np.ndarray, counts: list[int]) -> tuple[float, np.ndarray]:
    """Seconds for our running weighted sum and mean alone."""
    start = time.perf_counter()
    total, scratch = np.zeros(deltas.shape[1]), np.empty(deltas.shape[1])
    for d, n in zip(deltas, counts, strict=True):
        fedavg.add_into(total, d, float(n), scratch)
    mean = fedavg.mean(fedavg.RunningSum(total, float(sum(counts)), len(counts)))
    return time.perf_counter() - start, mean


def bench_flower(deltas: np.ndarray, counts: list[int], folder: Path) \
        -> tuple[float, np.ndarray] | None:
    """Seconds for Flower's FedAvg on the same arrays (its own virtualenv), or None."""
    try:
        from flwr.server.strategy.aggregate import aggregate
    except ImportError:
        pass
    else:
        results = [([d], n) for d, n in zip(deltas, counts, strict=True)]
        start = time.perf_counter()
        out = aggregate(results)
        return time.perf_counter() - start, np.asarray(out[0])
    if not FLOWER_PYTHON.exists():
        return None
    np.save(folder / "deltas.npy", deltas)
    np.save(folder / "counts.npy", np.asarray(counts))
    run = subprocess.run([str(FLOWER_PYTHON), str(ROOT / "benchmarks" / "flower_aggregate.py"),
                          str(folder / "deltas.npy"), str(folder / "counts.npy"),
                          str(folder / "mean.npy")],
                         capture_output=True, text=True, timeout=600, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"Flower's aggregate failed: {run.stderr.strip()[-500:]}")
    return float(run.stdout.split()[-1]), np.load(folder / "mean.npy")


def bench_durable(n: int, params: int, folder: Path, batch: int) -> tuple[float, int]:
    """Seconds to stage about n updates through RoundManager, committing every ``batch``, in
    whole rounds of at most ROUND_DEVICES devices; returns (seconds, updates committed)."""
    head_in = params // HEAD_OUT - 1
    per_round = -(-n // -(-n // ROUND_DEVICES))  # ceil(n / rounds), rounds = ceil(n / 250)
    table = config_mapping(folder, fleet=FLEET, rounds={
        "cohort_size": per_round, "quorum": per_round, "min_updates": 1})
    np.savez(table["aggregator"]["initial_head"], W=np.zeros((head_in, HEAD_OUT), np.float32),
             b=np.zeros(HEAD_OUT, np.float32))
    config = AggregatorConfig.from_mapping(table)
    p = head_in * HEAD_OUT + HEAD_OUT
    rng = np.random.default_rng(1)
    devices = [FakeDevice(example_count=int(rng.integers(10, 200))) for _ in range(per_round)]
    seconds, done = 0.0, 0
    with Store(config.state) as store:
        registry = Registry(store)
        for d in devices:
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry)
        while done < n:
            tickets = dict(manager.open_next())
            msgs = [(d.topic(FLEET), d.update(tickets[d.topic(FLEET)[:-6] + "ticket"],
                                              clip(rng.normal(size=p), 1.0)))
                    for d in devices]
            start = time.perf_counter()
            for i, (topic, payload) in enumerate(msgs, 1):
                if not manager.stage(topic, payload).accepted:
                    raise RuntimeError("benchmark update refused")
                if i % batch == 0:
                    manager.commit()
            manager.commit()
            seconds += time.perf_counter() - start
            done += len(msgs)
            manager.close()  # quorum: the whole cohort
    return seconds, done


def mosquitto_rate(n: int, params: int, folder: Path) -> tuple[float, int]:
    """Seconds for the aggregator service (``Aggregator.run``: MQTT, group commit, acks) to
    count n updates queued for it on a real Mosquitto, from its start to the round's close."""
    import queue
    import threading

    from edge.aggregator import Aggregator
    from edge.broker import MosquittoBroker
    from edge.mqtt import BrokerSettings, make_client

    # Saved every 60 s, as packaged Mosquitto configs do: the tests' save after every
    # change rewrites the whole queue (here 100 MB) per message.
    broker = MosquittoBroker(folder / "mosquitto", autosave_each_change=False)
    try:
        table = config_mapping(folder / "fleet", broker.url, fleet=FLEET, rounds={
            "cohort_size": n, "quorum": n, "min_updates": 1, "timeout_s": 600, "rounds": 1})
        head_in = params // HEAD_OUT - 1
        np.savez(table["aggregator"]["initial_head"],
                 W=np.zeros((head_in, HEAD_OUT), np.float32), b=np.zeros(HEAD_OUT, np.float32))
        config = AggregatorConfig.from_mapping(table)
        devices = {d.device_id.hex(): d for d in (FakeDevice() for _ in range(n))}
        s = BrokerSettings.from_url(broker.url)
        client = make_client(s, "bench-devices", clean_session=True)
        tickets: queue.Queue[tuple[str, bytes]] = queue.Queue()
        client.on_message = lambda _c, _u, m: tickets.put((m.topic, bytes(m.payload)))
        client.connect(s.host, s.port)
        client.loop_start()
        client.subscribe(f"edge/v1/{FLEET}/devices/+/ticket", qos=1)
        time.sleep(0.5)
        # First start: publish the model, open the round, send the tickets; then stop.
        stop = threading.Event()
        with Aggregator(config) as agg:
            for d in devices.values():
                agg.enroll(d.record)
            failed: list[BaseException] = []

            def first_run() -> None:
                try:
                    agg.run(stop)
                except BaseException as exc:
                    failed.append(exc)
                    raise

            runner = threading.Thread(target=first_run)
            runner.start()
            got: dict[str, bytes] = {}
            deadline = time.monotonic() + 120
            while len(got) < n and runner.is_alive() and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    got.update([tickets.get(timeout=0.2)])
            stop.set()
            runner.join(60)
            if len(got) < n:
                raise RuntimeError(f"{len(got)} of {n} tickets arrived: {failed}")
        # The updates wait on the broker for the aggregator's persistent session.
        rng = np.random.default_rng(2)
        p = head_in * HEAD_OUT + HEAD_OUT
        for topic, ticket in got.items():
            d = devices[topic.split("/")[4]]
            client.publish(d.topic(FLEET), d.update(ticket, clip(rng.normal(size=p), 1.0)),
                           qos=1).wait_for_publish(60)
        client.disconnect()
        client.loop_stop()
        closed: list[float] = []
        with Aggregator(config, on_round=lambda _m: closed.append(time.perf_counter())) as agg:
            start = time.perf_counter()
            agg.run(threading.Event(), rounds=1)
        if not closed:
            raise RuntimeError("the round did not close")
        with Store(config.state) as store:
            counted = len(store.accepted(1))
        return closed[0] - start, counted
    finally:
        broker.stop()


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
                for d in devices.values():
                    agg.enroll(d.record)
                agg.run(threading.Event())
        finally:
            client.disconnect()
            client.loop_stop()
        return times


def main() -> None:
    """Build the updates once, time every row, print the table and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--params", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=64,
                    help="updates per commit of the group-commit row")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of the floor, verify and group-commit rows (best is shown)")
    ap.add_argument("--store", type=int, default=200,
                    help="updates for the commit-per-update row; 0 to skip")
    ap.add_argument("--mosquitto", type=int, default=250, metavar="N",
                    help="updates counted by the aggregator service over a real Mosquitto "
                         "(at most 250: one fleet); 0 to skip")
    ap.add_argument("--loopback", type=int, default=0, metavar="N",
                    help="also time rounds of N fake devices over the embedded broker")
    args = ap.parse_args()
    if args.params % HEAD_OUT:
        ap.error(f"--params must be a multiple of {HEAD_OUT} (a head of I x {HEAD_OUT} + "
                 f"{HEAD_OUT})")
    t0 = time.perf_counter()
    devices, updates, ticket = build(args.updates, args.params)
    print(f"built {args.updates} sealed updates of {args.params} parameters in "
          f"{time.perf_counter() - t0:.1f} s ({len(updates[0])} bytes each)")
    deltas = np.stack([np.frombuffer(u, dtype="<f4", offset=HEADER_SIZE + UPDATE_HEADER_SIZE,
                                     count=args.params) for u in updates])
    counts = [d.example_count for d in devices]
    rows: list[tuple[str, int, float]] = []
    # Best of --repeat for the rows the targets compare (the machine is shared: the
    # fastest run is the one least disturbed); the floor and ours alternate.
    floors, verifies, sums, durables = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            floors.append(bench_floor(devices, updates, args.params))
            secs, ours = bench_verify(devices, updates, ticket, args.params)
            verifies.append(secs)
            secs_sum, ours_sum = bench_sum(deltas, counts)
            sums.append(secs_sum)
            durables.append(bench_durable(args.updates, args.params, Path(tmp) / f"group{i}",
                                          args.batch))
    floor, secs, secs_sum = min(floors), min(verifies), min(sums)
    durable, n_durable = min(durables)
    rows.append(("floor: Ed25519 + SHA-256 + add", args.updates, floor))
    rows.append(("edge verify + aggregate (memory)", args.updates, secs))
    rows.append(("edge aggregate only", args.updates, secs_sum))
    with tempfile.TemporaryDirectory() as tmp:
        rows.append((f"edge durable, commit per {args.batch}", n_durable, durable))
        if args.store:
            single, n_single = bench_durable(min(args.store, args.updates), args.params,
                                             Path(tmp) / "single", 1)
            rows.append(("edge durable, commit per update", n_single, single))
        if args.mosquitto:
            from edge.broker import MOSQUITTO

            if Path(MOSQUITTO).exists():
                secs_mq, n_mq = mosquitto_rate(min(args.mosquitto, ROUND_DEVICES),
                                               args.params, Path(tmp) / "mq")
                rows.append(("edge service over Mosquitto", n_mq, secs_mq))
            else:
                print(f"{MOSQUITTO} is missing (scripts/setup.sh installs it): no MQTT row")
        flower = bench_flower(deltas, counts, Path(tmp))
    del updates
    if flower is not None:
        rows.append(("Flower aggregate (FedAvg)", args.updates, flower[0]))
    print(f"\n| {'path':<34} | {'updates':>7} | {'seconds':>8} | {'updates/s':>10} |"
          f" {'ms/update':>9} | {'x floor':>7} |")
    print(f"| {'-' * 34} | {'-' * 6}: | {'-' * 7}: | {'-' * 9}: | {'-' * 8}: | {'-' * 6}: |")
    per_floor = floor / args.updates
    for name, n, s in rows:
        print(f"| {name:<34} | {n:>7} | {s:>8.3f} | {n / s:>10.0f} | {1000 * s / n:>9.3f} |"
              f" {s / n / per_floor:>7.2f} |")
    np.testing.assert_allclose(ours, ours_sum, rtol=1e-9, atol=1e-12)
    rate = n_durable / durable
    print(f"\ndurable (group commit) updates/s: {rate:.0f} (target >= 1,000: "
          f"{'met' if rate >= 1000 else 'NOT met'}); time per update / floor: "
          f"{durable / n_durable / per_floor:.2f}x (target <= 2x: "
          f"{'met' if durable / n_durable <= 2 * per_floor else 'NOT met'})")
    if args.loopback:
        times = loopback_round_time(args.loopback, 5)
        print(f"\nloopback, {args.loopback} fake devices, embedded broker, 650-parameter head: "
              f"round time median {np.median(times):.3f} s over {len(times)} rounds "
              f"(min {min(times):.3f}, max {max(times):.3f})")
    if flower is None:
        print("\nFlower (flwr) is not installed: `scripts/setup.sh --with-flower` makes "
              ".venv-flower for it; our rows only.")
        return
    diff = float(np.max(np.abs(flower[1] - ours)))
    print(f"ratio, edge durable / Flower aggregate (updates per second): "
          f"{(n_durable / durable) / (args.updates / flower[0]):.2f}x")
    print(f"ratio, edge verify + aggregate / Flower aggregate (updates per second): "
          f"{flower[0] / secs:.2f}x")
    print(f"ratio, edge aggregate only / Flower aggregate (updates per second): "
          f"{flower[0] / secs_sum:.2f}x")
    print(f"max |edge mean - Flower mean| = {diff:.2e}")


if __name__ == "__main__":
    main()
