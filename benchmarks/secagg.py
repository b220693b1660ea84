"""A full secure-aggregation round (SecAgg+, device side in the TA) next to Flower's SecAgg+.

Ours: n simulated secure worlds (one process each) and the aggregator's SecAggRound in
this process, every stage of docs/secagg.md (advertise, share, receive, masked
TRAIN_AND_SEAL, unmask, the aggregator's unmasking), d = 100,000 parameters (a 999 x 100
head + 100 biases), 128-bit seeds, 32-bit words, the threshold t and neighbourhood k of
``SecAggParams.for_cohort(n)``. Dropouts (``--dropout 0.1``) leave after sharing, the
case that costs the aggregator most (their s-keys are rebuilt and their pairwise masks
regenerated). Two rounds on the same devices give two round times:

- fleet (round 1): the devices answer one after another, each TA call timed; a fleet
  whose devices work in parallel needs the sum over stages of the slowest device's TA
  time plus the aggregator's time (the network is not counted: MQTT over loopback adds a
  few ms per stage, tests/test_secagg_mqtt.py);
- all-on-this-machine (round 2): every device is driven at once (a thread per device
  waiting on its own secure-world process, so the n TAs share this machine's cores as
  Flower's simulated clients do) and the aggregator takes each answer as it arrives;
  measured wall clock from the first advert asked to the unmasked sum.

Our masked stage trains (DP-SGD on 8 examples) before it seals; Flower's clients return a
fixed update. The aggregator checks its fleet's certificates once when it loads them
(edge/aggregator/secagg_certs.py), so that is done before the rounds.

Durable cost: since issue 14 the aggregator records every secagg message it takes (and
the masked sum with each masked update) in its SQLite database before acknowledging it
(docs/secagg.md, "Crash safety"). The fleet round also commits each answer alone into an
aggregator Store, the worst case (a group commit takes what arrives during one commit,
so a busy aggregator commits many at once): "durable s" is that time summed over the
round, "per message ms" its mean; it is not in the aggregator column.

Flower: ``benchmarks/flower_secagg.py`` in Flower's own virtualenv (``scripts/setup.sh
--with-flower``) runs its SecAggPlusWorkflow in its simulation engine with the same n, d,
num_shares = k + 1 (ours: k neighbours and the device itself hold a share) and
reconstruction_threshold = t, clients returning a fixed update (no training), and
reports the seconds of the fit stage (all SecAgg+ stages, client and server).
Each row ends with the load average (1 min) before and after it: the machine is shared.

    python benchmarks/secagg.py [--n 20 50 100] [--dropout 0 0.1] [--no-flower]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.aggregator.store import Store
from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public
from edge.formats.package_builder import build_package
from edge.formats.policy import SAMPLING_FIXED, build_policy
from edge.formats.secagg import build_cert, fleet_id, verify_cert
from edge.formats.ticket import build_ticket
from edge.secagg.server import SecAggParams, SecAggRound
from edge.tee import TrustedApp

ROOT = Path(__file__).resolve().parent.parent
FLOWER_PY = ROOT / ".venv-flower" / "bin" / "python"
HEAD_IN, HEAD_OUT = 999, 100  # d = 999 * 100 + 100 = 100,000
FLEET = "bench"
STAGES = ("advertise", "share", "receive", "masked", "unmask")


@dataclass
class Stage:
    """One stage: each device's TA time, the aggregator's time, bytes up/down per device."""

    ta: list[float] = field(default_factory=list)
    agg: float = 0.0
    up: list[int] = field(default_factory=list)
    down: list[int] = field(default_factory=list)
    durable: list[float] = field(default_factory=list)


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _exchange(stage: Stage, device_call, directive: bytes, take, record) -> None:  # type: ignore[no-untyped-def]
    """One device answers ``directive`` (timed as TA time), the aggregator takes the
    answer (timed as aggregator time) and commits it (timed as durable time); bytes both
    ways."""
    answer, t = _timed(device_call, directive)
    stage.ta.append(t)
    stage.up.append(len(answer))
    stage.down.append(len(directive))
    dev, t = _timed(take, answer)
    stage.agg += t
    stage.durable.append(_timed(record, dev, answer)[1])


class Record:
    """The aggregator's durable record of one secagg round (edge/aggregator/store.py), one
    commit per message taken."""

    def __init__(self, path: Path, round_id: int, certs: dict[bytes, bytes]):
        self.store = Store(path)
        self.round_id = round_id
        with self.store.transaction() as db:
            self.store.add_secagg_round(db, round_id, certs, time.time())

    def message(self, stage: str):  # type: ignore[no-untyped-def]
        def commit(dev: bytes, payload: bytes) -> None:
            with self.store.transaction() as db:
                self.store.add_secagg_messages(db, self.round_id, [(stage, dev, payload)])
        return commit

    def masked(self, srv: SecAggRound):  # type: ignore[no-untyped-def]
        def commit(dev: bytes, _payload: bytes) -> None:
            total, uid = srv.masked_sum(), srv.masked_id(dev)
            assert total is not None and uid is not None
            with self.store.transaction() as db:
                self.store.set_secagg_masked(db, self.round_id, total, {dev: uid},
                                             replace=False)
        return commit


@dataclass
class Fleet:
    """n provisioned simulated TAs (one secure-world process each), their certificates and
    the roles' keys; ``ticket(r)`` is round r's secagg ticket."""

    params: SecAggParams
    tas: list[TrustedApp]
    by_id: dict[bytes, TrustedApp]
    certs: dict[bytes, bytes]
    aggregator: Ed25519PrivateKey
    registrar_pub: bytes
    package_id: bytes
    x: np.ndarray
    y: np.ndarray
    work: Path

    def ticket(self, round_id: int) -> tuple[bytes, bytes]:
        nonce = bytes([round_id]) * 16
        now = int(time.time())
        return nonce, build_ticket(
            self.aggregator, round_id=round_id, model_version=1, package_id=self.package_id,
            nonce=nonce, issued_at=now - 10, deadline=now + 3600, example_clip=1.0,
            noise_multiplier=0.0, learning_rate=0.1, epochs=1, batch_size=8,
            **self.params.ticket_fields(fleet_id(FLEET)))  # type: ignore[arg-type]

    def server(self, round_id: int, nonce: bytes) -> SecAggRound:
        return SecAggRound(self.params, FLEET, round_id, nonce, 1, self.certs, self.aggregator,
                           registrar_pub=self.registrar_pub)


def make_fleet(n: int, work: Path) -> Fleet:
    """Provision n devices (not timed)."""
    signer, aggregator, registrar = (Ed25519PrivateKey.generate() for _ in range(3))
    params = SecAggParams.for_cohort(n, 1.0)
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.01, (HEAD_IN, HEAD_OUT)).astype(np.float32)
    b = np.zeros(HEAD_OUT, np.float32)
    big = 1e6
    policy = build_policy(signer, version=1, noise_multiplier_min=0.0, max_example_clip=big,
                          max_update_clip=big, sampling_rate=1.0, sampling=SAMPLING_FIXED,
                          max_steps_per_round=100_000, step_budget=1_000_000,
                          target_epsilon=1.0, delta=1e-5, no_dp=True)
    tas = [TrustedApp("sim", work / f"dev{i}") for i in range(n)]
    records = []
    for ta in tas:
        ta.install_anchors(ed25519_raw_public(signer), ed25519_raw_public(aggregator))
        ta.install_registrar(ed25519_raw_public(registrar))
        records.append(parse_device_record(ta.identity()))
    buf = io.BytesIO()
    release = build_package(buf, signer=signer, version=1, W=w, b=b, recipients=records)
    pkg = work / "model.pkg"
    pkg.write_bytes(buf.getvalue())
    certs = {}
    for ta, rec in zip(tas, records, strict=True):
        ta.load_model(pkg, wrap=release.wraps[rec.device_id])
        ta.install_policy(policy)
        certs[rec.device_id] = build_cert(registrar, rec.ed25519_pub, fleet_id(FLEET))
    # The aggregator checks its fleet's certificates when it loads them (once, at start:
    # edge/aggregator/secagg_certs.py), not in each round: so here.
    for cert in certs.values():
        verify_cert(cert, ed25519_raw_public(registrar), fleet_id(FLEET))
    x = rng.normal(size=(8, HEAD_IN)).astype(np.float32)
    y = rng.integers(0, HEAD_OUT, 8)
    return Fleet(params, tas, {rec.device_id: ta for ta, rec in zip(tas, records, strict=True)},
                 certs, aggregator, ed25519_raw_public(registrar),
                 release.manifest.package_id, x, y, work)


def _masked(ta: TrustedApp, ticket: bytes, x: np.ndarray, y: np.ndarray,
            inbox: bytes | None = None) -> bytes:
    """What a daemon does once its inbox came: receive, verify the kept ticket, train, seal."""
    if inbox is not None:
        ta.secagg_receive(inbox)
    ta.verify_ticket(ticket)
    return ta.train_and_seal(x, y)


def run_fleet(f: Fleet, dropout: float, round_id: int) -> dict[str, object]:
    """One round, devices one after another, each call timed: per-stage TA and aggregator
    times and bytes. The fleet estimate (devices in parallel) is the sum over stages of the
    slowest device's TA time plus the aggregator's."""
    nonce, ticket = f.ticket(round_id)
    by_id = f.by_id
    st = {s: Stage() for s in STAGES}
    srv, t_setup = _timed(lambda: f.server(round_id, nonce))
    st["advertise"].agg += t_setup
    record = Record(f.work / "aggregator.sqlite", round_id, f.certs)
    live = sorted(by_id)
    for d in live:
        _exchange(st["advertise"], by_id[d].secagg_advertise, ticket, srv.add_advert,
                  record.message("advert"))
    roster, t = _timed(srv.roster)
    st["share"].agg += t
    for d in live:
        _exchange(st["share"], by_id[d].secagg_share, roster, srv.add_shares,
                  record.message("shares"))
    for d in live:
        inbox, t = _timed(srv.inbox_for, d)
        st["receive"].agg += t
        st["receive"].down.append(len(inbox))
        st["receive"].ta.append(_timed(by_id[d].secagg_receive, inbox)[1])
    dropped = set(live[:round(dropout * len(f.tas))])  # leave after sharing
    live = [d for d in live if d not in dropped]
    for d in live:
        sealed, t = _timed(_masked, by_id[d], ticket, f.x, f.y)
        st["masked"].ta.append(t)
        st["masked"].up.append(len(sealed))
        dev, t = _timed(srv.add_masked, sealed)
        st["masked"].agg += t
        st["masked"].durable.append(_timed(record.masked(srv), dev, sealed)[1])
    survivors, t = _timed(srv.survivors)
    st["unmask"].agg += t
    for d in live:
        _exchange(st["unmask"], by_id[d].secagg_unmask, survivors, srv.add_reveal,
                  record.message("reveals"))
    (total, u3), t = _timed(srv.result)
    st["unmask"].agg += t
    record.store.close()
    assert len(u3) == len(live) and total.size == HEAD_IN * HEAD_OUT + HEAD_OUT
    durable = [x for s in st.values() for x in s.durable]
    return {"round_s": sum(max(s.ta, default=0.0) + s.agg for s in st.values()),
            "serial_s": sum(sum(s.ta) + s.agg for s in st.values()),
            "agg_s": sum(s.agg for s in st.values()),
            "durable_s": sum(durable), "durable_ms_per_message": 1e3 * statistics.fmean(durable),
            "durable_masked_ms": 1e3 * statistics.fmean(st["masked"].durable),
            "stages": {name: {"ta_max_s": max(s.ta, default=0.0),
                              "ta_mean_s": statistics.fmean(s.ta) if s.ta else 0.0,
                              "agg_s": s.agg,
                              "up_bytes": statistics.fmean(s.up) if s.up else 0,
                              "down_bytes": statistics.fmean(s.down) if s.down else 0}
                       for name, s in st.items()}}


def run_concurrent(f: Fleet, dropout: float, round_id: int) -> float:
    """One round with every device driven at once (a thread per device waiting on its own
    secure-world process, so the TAs share this machine's cores as Flower's simulated
    clients do) and the aggregator taking each answer as it comes: wall-clock seconds from
    the first advert asked to the unmasked sum."""
    nonce, ticket = f.ticket(round_id)
    ids = sorted(f.by_id)
    dropped = set(ids[:round(dropout * len(f.tas))])
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        start = time.perf_counter()
        srv = f.server(round_id, nonce)
        for fut in as_completed([pool.submit(f.by_id[d].secagg_advertise, ticket)
                                 for d in ids]):
            srv.add_advert(fut.result())
        roster = srv.roster()
        for fut in as_completed([pool.submit(f.by_id[d].secagg_share, roster) for d in ids]):
            srv.add_shares(fut.result())
        futs = []
        for d in ids:
            inbox = srv.inbox_for(d)
            if d in dropped:  # leaves after sharing: takes its inbox, never seals
                futs.append(pool.submit(f.by_id[d].secagg_receive, inbox))
            else:
                futs.append(pool.submit(_masked, f.by_id[d], ticket, f.x, f.y, inbox))
        for fut in as_completed(futs):
            sealed = fut.result()
            if sealed is not None:
                srv.add_masked(sealed)
        survivors = srv.survivors()
        for fut in as_completed([pool.submit(f.by_id[d].secagg_unmask, survivors)
                                 for d in ids if d not in dropped]):
            srv.add_reveal(fut.result())
        total, u3 = srv.result()
        wall = time.perf_counter() - start
    assert len(u3) == len(ids) - len(dropped) and total.size == HEAD_IN * HEAD_OUT + HEAD_OUT
    return wall


def run_ours(n: int, dropout: float, work: Path) -> dict[str, object]:
    """Round 1 device by device (per-stage split, fleet estimate), round 2 with every
    device at once (measured wall clock)."""
    f = make_fleet(n, work)
    try:
        out: dict[str, object] = {"n": n, "dropout": dropout, "t": f.params.t,
                                  "k": f.params.k}
        out.update(run_fleet(f, dropout, 1))
        out["concurrent_s"] = run_concurrent(f, dropout, 2)
        return out
    finally:
        for ta in f.tas:
            ta.close()


def run_flower(n: int, dropout: float, shares: int, threshold: int) -> float | str:
    """Seconds of Flower's SecAgg+ fit stage, or why it could not run."""
    if not FLOWER_PY.exists():
        return "no .venv-flower (scripts/setup.sh --with-flower)"
    cmd = [str(FLOWER_PY), str(ROOT / "benchmarks" / "flower_secagg.py"), str(n),
           str(HEAD_IN * HEAD_OUT + HEAD_OUT), str(shares), str(threshold), str(dropout)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1:]}"
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["fit_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--no-flower", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = []
    print("| n | dropout | t | k | fleet s | all-on-machine s | Flower s | Flower / fleet "
          "| Flower / all-on-machine | aggregator s | durable s | per message ms (masked) | "
          "advertise | share | receive | masked | unmask | bytes up/device | "
          "bytes down/device | load avg |")
    print("| --- " * 20 + "|")
    for n in args.n:
        for dropout in args.dropout:
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory(prefix="edge-secagg-bench.") as tmp:
                ours = run_ours(n, dropout, Path(tmp))
            flower = "not run" if args.no_flower else run_flower(
                n, dropout, int(ours["k"]) + 1, int(ours["t"]))  # type: ignore[call-overload]
            ours["flower_s"] = flower
            ours["load_avg"] = (load, os.getloadavg()[0])
            rows.append(ours)
            st = ours["stages"]
            assert isinstance(st, dict)
            cells = [f"{v['ta_max_s']:.3f}+{v['agg_s']:.3f}" for v in st.values()]
            up = sum(v["up_bytes"] for v in st.values())
            down = sum(v["down_bytes"] for v in st.values())
            fleet, conc = float(ours["round_s"]), float(ours["concurrent_s"])  # type: ignore[arg-type]
            ratios = ([f"{flower / fleet:.1f}x", f"{flower / conc:.1f}x"]
                      if isinstance(flower, float) else ["-", "-"])
            fl = f"{flower:.2f}" if isinstance(flower, float) else str(flower)
            print(f"| {n} | {dropout:.0%} | {ours['t']} | {ours['k']} | {fleet:.2f} | "
                  f"{conc:.2f} | {fl} | " + " | ".join(ratios)
                  + f" | {float(ours['agg_s']):.2f} | "  # type: ignore[arg-type]
                  + f"{float(ours['durable_s']):.2f} | "  # type: ignore[arg-type]
                  + f"{float(ours['durable_ms_per_message']):.1f} "  # type: ignore[arg-type]
                  + f"({float(ours['durable_masked_ms']):.1f}) | "  # type: ignore[arg-type]
                  + " | ".join(cells)
                  + f" | {up:,.0f} | {down:,.0f} | {load:.1f}-{os.getloadavg()[0]:.1f} |",
                  flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
