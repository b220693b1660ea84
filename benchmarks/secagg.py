"""A full secure-aggregation round (SecAgg+, device side in the TA) next to Flower's SecAgg+.

Ours: n simulated secure worlds (one process each) and the aggregator's SecAggRound in
this process, every stage of docs/secagg.md (advertise, share, receive, masked
TRAIN_AND_SEAL, unmask, the aggregator's unmasking), d = 100,000 parameters (a 999 x 100
head + 100 biases), 128-bit seeds, 32-bit words, the threshold t and neighbourhood k of
``SecAggParams.for_cohort(n)``. Dropouts (``--dropout 0.1``) leave after sharing, the
case that costs the aggregator most (their s-keys are rebuilt and their pairwise masks
regenerated). Devices run one after another here; the round time of a fleet, whose
devices work in parallel, is estimated as the sum over stages of the slowest device's
TA time plus the aggregator's time (the network is not counted: MQTT over loopback adds
a few ms per stage, tests/test_secagg_mqtt.py).

Flower: ``benchmarks/flower_secagg.py`` in Flower's own virtualenv (``scripts/setup.sh
--with-flower``) runs its SecAggPlusWorkflow in its simulation engine with the same n, d,
num_shares = k + 1 (ours: k neighbours and the device itself hold a share) and
reconstruction_threshold = t, clients returning a fixed update (no training), and
reports the seconds of the fit stage (all SecAgg+ stages, client and server).

    python benchmarks/secagg.py [--n 20 50 100] [--dropout 0 0.1] [--no-flower]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public
from edge.formats.package_builder import build_package
from edge.formats.policy import SAMPLING_FIXED, build_policy
from edge.formats.secagg import build_cert, fleet_id
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


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def run_ours(n: int, dropout: float, work: Path) -> dict[str, object]:
    """One full round; per-stage times and bytes."""
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
    try:
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
        by_id = {rec.device_id: ta for ta, rec in zip(tas, records, strict=True)}
        x = rng.normal(size=(8, HEAD_IN)).astype(np.float32)
        y = rng.integers(0, HEAD_OUT, 8)
        now = int(time.time())
        nonce = bytes(range(16))
        ticket = build_ticket(aggregator, round_id=1, model_version=1,
                              package_id=release.manifest.package_id, nonce=nonce,
                              issued_at=now - 10, deadline=now + 3600, example_clip=1.0,
                              noise_multiplier=0.0, learning_rate=0.1, epochs=1, batch_size=8,
                              **params.ticket_fields(fleet_id(FLEET)))  # type: ignore[arg-type]
        st = {s: Stage() for s in STAGES}
        srv, t_setup = _timed(lambda: SecAggRound(params, FLEET, 1, nonce, 1, certs, aggregator,
                                                  registrar_pub=ed25519_raw_public(registrar)))
        st["advertise"].agg += t_setup
        live = sorted(by_id)
        for d in live:
            adv, t = _timed(by_id[d].secagg_advertise, ticket)
            st["advertise"].ta.append(t)
            st["advertise"].up.append(len(adv))
            st["advertise"].down.append(len(ticket))
            st["advertise"].agg += _timed(srv.add_advert, adv)[1]
        roster, t = _timed(srv.roster)
        st["share"].agg += t
        for d in live:
            bundle, t = _timed(by_id[d].secagg_share, roster)
            st["share"].ta.append(t)
            st["share"].up.append(len(bundle))
            st["share"].down.append(len(roster))
            st["share"].agg += _timed(srv.add_shares, bundle)[1]
        for d in live:
            inbox, t = _timed(srv.inbox_for, d)
            st["receive"].agg += t
            st["receive"].down.append(len(inbox))
            st["receive"].ta.append(_timed(by_id[d].secagg_receive, inbox)[1])
        dropped = set(live[:round(dropout * n)])  # leave after sharing
        live = [d for d in live if d not in dropped]
        for d in live:
            ta = by_id[d]
            start = time.perf_counter()
            ta.verify_ticket(ticket)
            sealed = ta.train_and_seal(x, y)
            st["masked"].ta.append(time.perf_counter() - start)
            st["masked"].up.append(len(sealed))
            st["masked"].agg += _timed(srv.add_masked, sealed)[1]
        survivors, t = _timed(srv.survivors)
        st["unmask"].agg += t
        for d in live:
            rev, t = _timed(by_id[d].secagg_unmask, survivors)
            st["unmask"].ta.append(t)
            st["unmask"].up.append(len(rev))
            st["unmask"].down.append(len(survivors))
            st["unmask"].agg += _timed(srv.add_reveal, rev)[1]
        (total, u3), t = _timed(srv.result)
        st["unmask"].agg += t
        assert len(u3) == len(live) and total.size == HEAD_IN * HEAD_OUT + HEAD_OUT
    finally:
        for ta in tas:
            ta.close()
    round_s = sum(max(s.ta, default=0.0) + s.agg for s in st.values())
    return {"n": n, "dropout": dropout, "t": params.t, "k": params.k,
            "round_s": round_s,
            "stages": {name: {"ta_max_s": max(s.ta, default=0.0),
                              "ta_mean_s": statistics.fmean(s.ta) if s.ta else 0.0,
                              "agg_s": s.agg,
                              "up_bytes": statistics.fmean(s.up) if s.up else 0,
                              "down_bytes": statistics.fmean(s.down) if s.down else 0}
                       for name, s in st.items()}}


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
    print("| n | dropout | t | k | ours: round s (TA + aggregator) | advertise | share | "
          "receive | masked | unmask | bytes up/device | bytes down/device | Flower SecAgg+ s "
          "| Flower / ours |")
    print("| --- " * 14 + "|")
    for n in args.n:
        for dropout in args.dropout:
            with tempfile.TemporaryDirectory(prefix="edge-secagg-bench.") as tmp:
                ours = run_ours(n, dropout, Path(tmp))
            flower = "not run" if args.no_flower else run_flower(
                n, dropout, int(ours["k"]) + 1, int(ours["t"]))  # type: ignore[call-overload]
            ours["flower_s"] = flower
            rows.append(ours)
            st = ours["stages"]
            assert isinstance(st, dict)
            cells = [f"{v['ta_max_s']:.3f}+{v['agg_s']:.3f}" for v in st.values()]
            up = sum(v["up_bytes"] for v in st.values())
            down = sum(v["down_bytes"] for v in st.values())
            ratio = f"{flower / ours['round_s']:.1f}x" if isinstance(flower, float) else "-"
            fl = f"{flower:.2f}" if isinstance(flower, float) else str(flower)
            print(f"| {n} | {dropout:.0%} | {ours['t']} | {ours['k']} | "
                  f"{ours['round_s']:.2f} | " + " | ".join(cells)
                  + f" | {up:,.0f} | {down:,.0f} | {fl} | {ratio} |", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
