"""Backbone latency and throughput: TFLite (XNNPACK, 1 and 2 threads) vs the numpy int8 reference.

Run: python3 benchmarks/inference.py [--arch mlp conv] [--seconds 0.5]. Prints a table; not a test.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import numpy as np

from edge.inference import Backbone, InferenceConfig
from edge.inference.demo import build_demo
from edge.inference.reference import run_reference


def per_call(fn: Callable[[], object], seconds: float) -> float:
    """Median seconds per call over ``seconds`` of repeated calls (after a warm-up)."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    """Build the demo backbones, time each engine at batch 1 and 64, print the table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", nargs="+", default=["mlp", "conv"], choices=("mlp", "conv"))
    ap.add_argument("--seconds", type=float, default=0.5, help="timing budget per cell")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"{'model':<5} {'engine':<20} {'batch':>5} {'us/sample':>10} {'samples/s':>11} "
          f"{'vs numpy':>9}")
    for arch in args.arch:
        built = build_demo(arch, epochs=2 if arch == "conv" else 20)
        qnet = built.quant_net
        x = np.random.default_rng(0).uniform(0, 1, (64, *qnet.input_shape)).astype(np.float32)
        engines: dict[str, Callable[[np.ndarray], object]] = {
            "numpy reference": lambda b, q=qnet: q.output.dequantize(
                run_reference(q, q.input.quantize(b))),
        }
        for threads in (1, 2):
            bb = Backbone.from_verified(built.tflite, built.metadata,
                                        InferenceConfig(npu_delegate="none", num_threads=threads))
            engines[f"tflite xnnpack x{threads}"] = bb.run
            if threads == 1:
                raw = bb
        for batch in (1, 64):
            xb = x[:batch]
            xq = raw.quantize_input(xb)  # int8 in, int8 out: no (de)quantization
            engines["invoke only x1"] = lambda _b, q=xq, m=raw: m.run_raw(q)
            base = None
            for name, fn in engines.items():
                sec = per_call(lambda f=fn, b=xb: f(b), args.seconds) / batch
                base = base or sec
                print(f"{arch:<5} {name:<20} {batch:>5} {sec * 1e6:>10.2f} {1 / sec:>11,.0f} "
                      f"{base / sec:>8.1f}x")


if __name__ == "__main__":
    main()
