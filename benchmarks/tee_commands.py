"""TA command latency through the simulated secure world vs the same work in-process.

Rows: load-model with a 1 MiB and a 32 MiB encrypted backbone (signature,
key unwrap, head decryption, every chunk hashed and decrypted), and infer on a
1024x100 head at batch 1 and 256. The reference column does the same work in
this process with ``cryptography`` (edge.formats.package.open_package, the
Python reference loader) and numpy. Ratio = TA / reference.

    python benchmarks/tee_commands.py [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.formats.device import build_device_record, parse_device_record
from edge.formats.keys import ed25519_raw_public
from edge.formats.package import open_package
from edge.formats.package_builder import build_package
from edge.tee import TrustedApp

MIB = 1024 * 1024


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def package(signer: Ed25519PrivateKey, record: bytes, version: int, w: np.ndarray,
            b: np.ndarray, backbone: bytes) -> tuple[bytes, bytes]:
    """The package and the device's key wrap."""
    out = io.BytesIO()
    dev = parse_device_record(record)
    release = build_package(out, signer=signer, version=version, W=w, b=b,
                            recipients=[dev], backbone=backbone,
                            encrypt_backbone=True, chunk_log2=20)
    return out.getvalue(), release.wraps[dev.device_id]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    signer, aggregator = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    w, b = rng.normal(size=(1024, 100)).astype("f4"), rng.normal(size=100).astype("f4")
    # The in-process reference opens packages as a device with a Python-held key.
    ref_ed, ref_x = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    ref_record = build_device_record(ref_ed, ref_x)
    ref_id = parse_device_record(ref_record).device_id
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp, TrustedApp("sim", Path(tmp) / "tee") as ta:
        ta.install_anchors(ed25519_raw_public(signer), ed25519_raw_public(aggregator))
        record = ta.identity()
        version = 0
        for size in (1 * MIB, 32 * MIB):
            backbone = rng.bytes(size)
            pkgs = []
            for _ in range(args.repeat + 1):
                version += 1
                path = Path(tmp) / f"v{version}.pkg"
                data, wrap = package(signer, record, version, w, b, backbone)
                path.write_bytes(data)
                pkgs.append((path, wrap))
            out = Path(tmp) / "backbone.bin"
            queue = iter(pkgs)

            def ta_load(q: Iterator[tuple[Path, bytes]] = queue, o: Path = out) -> None:
                path, wrap = next(q)
                ta.load_model(path, wrap=wrap, backbone_out=o)

            ta_ms = median_ms(ta_load, args.repeat)
            ref_pkg, ref_wrap = package(signer, ref_record, 1, w, b, backbone)

            def ref_load(data: bytes = ref_pkg, wrap: bytes = ref_wrap) -> None:
                sink = io.BytesIO()
                open_package(data, wrap=wrap, signer_pub=ed25519_raw_public(signer),
                             device_id=ref_id,
                             agreement=ref_x, stored_version=0, backbone_out=sink)

            rows.append((f"load-model, {size // MIB} MiB encrypted backbone", ta_ms,
                         median_ms(ref_load, args.repeat)))
        for batch in (1, 256):
            x = rng.normal(size=(batch, 1024)).astype("f4")
            rows.append((f"infer 1024x100, batch {batch}",
                         median_ms(lambda x=x: ta.infer(x), args.repeat * 20),
                         median_ms(lambda x=x: x @ w + b, args.repeat * 20)))
    print(f"{'operation':<40} {'sim TA (ms)':>12} {'in-process (ms)':>16} {'ratio':>7}")
    for name, ta_ms, ref_ms in rows:
        print(f"{name:<40} {ta_ms:>12.3f} {ref_ms:>16.3f} {ta_ms / ref_ms:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
