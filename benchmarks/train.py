"""Train-and-seal latency through the simulated TA vs the numpy DP-SGD reference, and the
TA's Gaussian sampler throughput vs numpy's standard_normal.

Run: python3 benchmarks/train.py [--repeats 5] [--build build/host]. Prints tables; not a test.
The TA column includes the round trip to the simulated secure world, signing and the
atomic secure-storage write; the numpy column is the DP-SGD arithmetic alone.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from reference_dpsgd import FIXED, Round, dpsgd_round  # noqa: E402

from edge.formats.device import parse_device_record  # noqa: E402
from edge.formats.keys import ed25519_raw_public  # noqa: E402
from edge.formats.package_builder import build_package  # noqa: E402
from edge.formats.policy import SAMPLING_FIXED, build_policy  # noqa: E402
from edge.formats.ticket import build_ticket  # noqa: E402
from edge.tee import TrustedApp  # noqa: E402

NOW = int(time.time())
BATCH = 32
LR, SIGMA, CLIP = 0.1, 1.0, 1.0


class Bench:
    """A provisioned simulated TA that loads heads and seals rounds."""

    def __init__(self, ta: TrustedApp) -> None:
        """Provision ``ta`` with fresh role keys and a permissive no-DP test policy."""
        self.ta = ta
        self.signer, self.agg = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        ta.install_anchors(ed25519_raw_public(self.signer), ed25519_raw_public(self.agg))
        self.device = parse_device_record(ta.identity())
        ta.install_policy(build_policy(
            self.signer, version=1, noise_multiplier_min=0.0, max_example_clip=1e30,
            max_update_clip=1e30, sampling_rate=1.0, sampling=SAMPLING_FIXED,
            max_steps_per_round=100_000, step_budget=2**62, target_epsilon=1.0, delta=1e-5,
            no_dp=True))
        self.version = 0
        self.round = 0

    def load(self, w: np.ndarray, b: np.ndarray) -> None:
        """Load a head as the next model version."""
        self.version += 1
        out = io.BytesIO()
        release = build_package(out, signer=self.signer, version=self.version, W=w, b=b,
                                recipients=[self.device], backbone=None,
                                encrypt_backbone=False, chunk_log2=12)
        self.ta.load_model(out.getvalue(), wrap=release.wraps[self.device.device_id])

    def seal(self, x: np.ndarray, y: np.ndarray, *, sigma: float, batch: int) -> float:
        """Verify a fresh ticket, then time one TRAIN_AND_SEAL; return seconds."""
        self.round += 1
        self.ta.verify_ticket(build_ticket(
            self.agg, round_id=self.round, model_version=self.version,
            package_id=self.ta.status().package_id, nonce=bytes(16),
            issued_at=NOW, deadline=NOW + 86400, example_clip=CLIP, noise_multiplier=sigma,
            update_clip=1e30, learning_rate=LR, epochs=1, batch_size=batch), ree_time=NOW)
        t0 = time.perf_counter()
        self.ta.train_and_seal(x, y)
        return time.perf_counter() - t0


def median(fn: Callable[[], float], repeats: int) -> float:
    """Median of ``repeats`` timings after one warm-up."""
    fn()
    return float(np.median([fn() for _ in range(repeats)]))


def timed(fn: Callable[[], object]) -> float:
    """Seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def latency_table(bench: Bench, repeats: int) -> None:
    """Train-and-seal latency per head and example count, TA vs numpy."""
    print(f"train-and-seal, fixed-size sampling B={BATCH}, E=1, sigma={SIGMA}")
    print(f"{'head':>9} {'n':>5} {'steps':>5} {'TA ms':>9} {'numpy ms':>9} {'TA/numpy':>9}")
    rng = np.random.default_rng(0)
    for head_in, head_out in ((256, 10), (1024, 100)):
        w = rng.normal(size=(head_in, head_out)).astype(np.float32) * 0.01
        b = np.zeros(head_out, np.float32)
        bench.load(w, b)
        for n in (64, 1024):
            x = rng.normal(size=(n, head_in)).astype(np.float32)
            y = rng.integers(0, head_out, size=n).astype(np.uint32)
            r = Round(lr=LR, clip=CLIP, sigma=SIGMA, update_clip=1e30, batch=BATCH, q=1.0,
                      sampling=FIXED)
            ta_s = median(lambda x=x, y=y: bench.seal(x, y, sigma=SIGMA, batch=BATCH), repeats)
            np_s = median(lambda x=x, y=y, r=r, w=w, b=b: timed(
                lambda: dpsgd_round(w, b, x, y, r)), repeats)
            print(f"{head_in:>5}x{head_out:<3} {n:>5} {n // BATCH:>5} {ta_s * 1e3:>9.2f} "
                  f"{np_s * 1e3:>9.2f} {ta_s / np_s:>9.2f}")


def sampler_table(bench: Bench, repeats: int) -> None:
    """Gaussian draws per second: a 1024x100 head, one example, sigma > 0 minus sigma = 0."""
    head_in, head_out = 1024, 100
    bench.load(np.zeros((head_in, head_out), np.float32), np.zeros(head_out, np.float32))
    x = np.zeros((1, head_in), np.float32)
    y = np.zeros(1, np.uint32)
    draws = head_in * head_out + head_out
    noisy = median(lambda: bench.seal(x, y, sigma=1.0, batch=1), repeats)
    quiet = median(lambda: bench.seal(x, y, sigma=0.0, batch=1), repeats)
    ta_rate = draws / max(noisy - quiet, 1e-9)
    gen = np.random.default_rng(1)
    np_s = median(lambda: timed(lambda: gen.standard_normal(draws)), repeats)
    print(f"\nGaussian sampler, {draws} draws per round (round with sigma=1 minus sigma=0)")
    print(f"{'engine':<24} {'draws/s':>12} {'vs numpy':>9}")
    print(f"{'TA (polar, TEE RNG)':<24} {ta_rate:>12.3g} {ta_rate * np_s / draws:>9.3f}")
    print(f"{'numpy standard_normal':<24} {draws / np_s:>12.3g} {1.0:>9.3f}")


def main() -> None:
    """Run both tables on a throwaway simulated secure world."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--build", type=Path, default=ROOT / "build" / "host",
                    help="build directory holding edge-sim-tee (host or host-asan)")
    args = ap.parse_args()
    os.environ.setdefault("EDGE_SIM_TEE", str(args.build / "edge-sim-tee"))
    with tempfile.TemporaryDirectory() as state, TrustedApp("sim", state) as ta:
        bench = Bench(ta)
        latency_table(bench, args.repeats)
        sampler_table(bench, args.repeats)


if __name__ == "__main__":
    main()
