"""``edge demo --secagg`` run small: the secagg model equals the plain mean within the
bound, and nothing the aggregator stores or receives is that close to one device's update."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from secnet_helpers import Tap

import edge.demo.fleet as demo_fleet
from edge.aggregator.store import Store
from edge.broker import MosquittoBroker
from edge.demo import settings
from edge.demo.app import DemoOptions, run_demo
from edge.demo.settings import DemoPrivacy
from edge.formats.policy import SAMPLING_POISSON, build_policy
from edge.formats.update import SealedUpdate, parse_any_update
from edge.secagg.server import SecAggParams

DEVICES = 3


class NoNoise(DemoPrivacy):
    """Full-batch DP-GD with sigma 0: both runs train exactly the same updates."""

    def device_epsilon(self, rounds: int) -> float:
        return math.inf


def no_dp_policy(signer: Ed25519PrivateKey, dp: DemoPrivacy, rounds: int) -> tuple[bytes, float]:
    return build_policy(signer, version=1, noise_multiplier_min=0.0,
                        max_example_clip=dp.example_clip, max_update_clip=dp.update_clip,
                        sampling_rate=1.0, sampling=SAMPLING_POISSON,
                        max_steps_per_round=dp.steps_per_round, step_budget=10_000,
                        target_epsilon=1.0, delta=dp.delta, no_dp=True), math.inf


@pytest.fixture
def broker_url(mosquitto: MosquittoBroker) -> str:
    """conftest's Mosquitto (started, and stopped after the test), by its URL."""
    return mosquitto.url


def test_demo_secagg_model_is_the_plain_mean_within_the_quantization_bound(
        broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain run's round-1 updates (seen on the wire) and the secagg run's round-1 model
    (same data, head, seed; sigma 0): head delta = their unweighted mean within 2^-s."""
    zero = NoNoise("zero", noise_multiplier=0.0, example_clip=1.0, sampling_rate=1.0,
                   learning_rate=1.0, local_epochs=1, update_clip=5.0,
                   central_noise_multiplier=0.0)
    monkeypatch.setitem(settings.PRESETS, "off", zero)
    monkeypatch.setattr(demo_fleet, "make_policy", no_dp_policy)
    tap = Tap(broker_url, "+")
    out = io.StringIO()
    work = tmp_path / "demo"
    try:
        report: dict[str, Any] = run_demo(DemoOptions(devices=DEVICES, rounds=1,
                                                      broker=broker_url, secagg=True,
                                                      workdir=work), out=out)
    finally:
        tap.close()
    text = out.getvalue()
    assert "secure aggregation (secagg+): t=" in text and "with, " in text, text
    assert report["without_secagg"]["final_accuracy"] is not None
    [row] = report["rows"]
    assert row["participants"] == DEVICES

    plain = [u for u in (parse_any_update(p) for _, p in tap.on("/update"))
             if isinstance(u, SealedUpdate)]
    assert len(plain) == DEVICES
    mean = np.mean([u.delta.astype(np.float64) for u in plain], axis=0)
    with np.load(work / "secagg" / "aggregator" / "head.npz") as h:
        start = np.concatenate([h["W"].ravel(), h["b"]]).astype(np.float64)
    store = Store(work / "secagg" / "aggregator" / "state.sqlite")
    try:
        cp = store.latest_checkpoint()
    finally:
        store.close()
    assert cp is not None and cp.version == 2
    new = np.concatenate([cp.W.ravel(), cp.b]).astype(np.float64)
    s = SecAggParams.for_cohort(DEVICES, zero.update_clip).quantizer.scale_log2
    # the quantization bound on the mean, plus the float32 rounding of the stored head
    bound = 2.0 ** -s + 2 * float(np.spacing(np.float32(np.abs(new).max())))
    assert np.abs(mean).max() > 1e3 * bound  # a real update, not a trivially equal zero
    assert np.abs((new - start) - mean).max() < bound

    # Privacy: no array the secagg aggregator stored (any blob of its database, read as
    # float32 or float64, as is or less the initial head) and no masked update it received
    # is within the quantization bound of any single device's update.
    updates = [u.delta.astype(np.float64) for u in plain]
    seen = _stored_arrays(work / "secagg" / "aggregator" / "state.sqlite", mean.size)
    masked = [u for u in (parse_any_update(p) for _, p in tap.on("/update"))
              if not isinstance(u, SealedUpdate)]
    assert len(masked) == DEVICES
    quantizer = SecAggParams.for_cohort(DEVICES, zero.update_clip).quantizer
    seen += [quantizer.dequantize(m.words.copy()) for m in masked]
    assert len(seen) >= 2 + DEVICES  # the two checkpoints' heads at least, and the words
    for arr in seen:
        for candidate in (arr, arr - start):
            for u in updates:
                assert np.abs(candidate - u).max() > bound


def _stored_arrays(db: Path, size: int) -> list[np.ndarray]:
    """Every blob of the database that holds ``size`` float32 or float64 values, and every
    pair of blobs (W, b) of one row that does together."""
    import sqlite3

    out: list[np.ndarray] = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in con.execute(f"SELECT * FROM {table}"):
                blobs = [bytes(v) for v in row if isinstance(v, bytes)]
                # ids (package, device, nonce: 16 bytes) sit beside W and b in a row
                arrays = [b for b in blobs if len(b) != 16]
                for joined in [*blobs, b"".join(blobs), b"".join(arrays)]:
                    for dtype in ("<f4", "<f8"):
                        width = np.dtype(dtype).itemsize
                        if len(joined) == size * width:
                            out.append(np.frombuffer(joined, dtype).astype(np.float64))
    return out
