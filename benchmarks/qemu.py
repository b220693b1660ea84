"""QEMU OP-TEE benchmark: boot-to-ready, TA command latencies in the emulated
real secure world versus the simulated backend on the same inputs, image size.

    python3 benchmarks/qemu.py [--repeat 20] [--json OUT]

Builds the image if needed (scripts/qemu/build.sh), boots it once, provisions
the guest's TA, and runs tests/qemu/guest_ta.py's ``bench`` inside the guest;
the same inputs go through ``TrustedApp('sim')`` on the host (build/host must
exist: ``make``). Latencies are medians measured inside each process around
the TA call (client library + TEE + TA), so console transfer is excluded.
QEMU emulates the CPU (TCG): report ratios, not claims about boards.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "qemu"))
sys.path.insert(0, str(ROOT / "tests" / "qemu"))
import guest_ta  # noqa: E402
from guest import OUT, Guest, build_image  # noqa: E402

from edge.formats.device import DeviceRecord, parse_device_record  # noqa: E402
from edge.formats.keys import ed25519_raw_public  # noqa: E402
from edge.formats.package_builder import build_package  # noqa: E402
from edge.tee import TrustedApp  # noqa: E402

HEAD_IN, HEAD_OUT, BATCH = 1024, 100, 64
BACKBONE = 1 << 20  # 1 MiB, encrypted


def package(signer: Ed25519PrivateKey, dev: DeviceRecord, version: int) -> tuple[bytes, bytes]:
    """The package and the device's key wrap (guest_ta.py reads PKG.wrap)."""
    rng = np.random.default_rng(7)
    w = rng.normal(size=(HEAD_IN, HEAD_OUT)).astype(np.float32)
    b = rng.normal(size=HEAD_OUT).astype(np.float32)
    out = io.BytesIO()
    release = build_package(out, signer=signer, version=version, W=w, b=b, recipients=[dev],
                            backbone=rng.bytes(BACKBONE), encrypt_backbone=True, chunk_log2=16)
    return out.getvalue(), release.wraps[dev.device_id]


def features() -> bytes:
    return np.random.default_rng(8).normal(size=(BATCH, HEAD_IN)).astype("<f4").tobytes()


def qemu_side(repeat: int, signer: Ed25519PrivateKey, aggregator: Ed25519PrivateKey
              ) -> tuple[dict[str, float], dict[str, float]]:
    t0 = time.monotonic()
    build_image()
    info: dict[str, float] = {"build_or_check_s": round(time.monotonic() - t0, 1)}
    with Guest.boot() as g:
        info["boot_to_ready_s"] = round(g.boot_to_ready_s, 2)
        info["guest_uptime_at_ready_s"] = g.guest_uptime_at_ready_s
        g.put("/root/guest_ta.py", (ROOT / "tests" / "qemu" / "guest_ta.py").read_bytes())
        t1 = time.monotonic()
        g.check('python3 -c "import numpy, cryptography, edge.tee"', timeout=300)
        info["python_first_import_s"] = round(time.monotonic() - t1, 2)
        g.check("edge-ta-cli identity /tmp/dev.rec")
        dev = parse_device_record(g.get("/tmp/dev.rec"))
        g.check(f"edge-ta-cli anchors {ed25519_raw_public(signer).hex()} "
                f"{ed25519_raw_public(aggregator).hex()}")
        pkg_bytes, wrap = package(signer, dev, 1)
        g.put("/tmp/bench.pkg", pkg_bytes)
        g.put("/tmp/bench.pkg.wrap", wrap)
        g.put("/tmp/x.f32", features())
        out = g.check(f"cd /root && python3 guest_ta.py bench /tmp/bench.pkg /tmp/x.f32 "
                      f"{BATCH} {repeat}", timeout=1200)
        m = re.search(r"@@JSON (.*)", out)
        assert m, out
        return info, json.loads(m.group(1))


def sim_side(repeat: int, signer: Ed25519PrivateKey, aggregator: Ed25519PrivateKey
             ) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, TrustedApp("sim", Path(tmp) / "state") as ta:
        dev = parse_device_record(ta.identity())
        ta.install_anchors(ed25519_raw_public(signer), ed25519_raw_public(aggregator))
        pkg, feats = Path(tmp) / "bench.pkg", Path(tmp) / "x.f32"
        pkg_bytes, wrap = package(signer, dev, 1)
        pkg.write_bytes(pkg_bytes)
        Path(f"{pkg}.wrap").write_bytes(wrap)
        feats.write_bytes(features())
        return guest_ta.bench(ta, [str(pkg), str(feats), str(BATCH), str(repeat)])


def image_size() -> dict[str, int]:
    env = dict(line.split("=", 1) for line in (OUT / "image.env").read_text().split())
    rootfs = sum(p.stat().st_size for p in (OUT / "rootfs").rglob("*")
                 if p.is_file() and not p.is_symlink())
    return {"firmware_bios_bytes": Path(env["BIOS"]).stat().st_size,
            "initrd_gz_bytes": Path(env["INITRD"]).stat().st_size,
            "rootfs_bytes": rootfs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    signer, aggregator = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    info, qemu = qemu_side(args.repeat, signer, aggregator)
    sim = sim_side(args.repeat, signer, aggregator)
    report = {"boot": info, "image": image_size(), "qemu_ms": qemu, "sim_ms": sim,
              "ratio_qemu_over_sim": {k: round(qemu[k] / sim[k], 1) for k in qemu if sim[k]},
              "inputs": {"head": [HEAD_IN, HEAD_OUT], "infer_batch": BATCH,
                         "backbone_bytes": BACKBONE, "chunk_bytes": 1 << 16}}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print(f"\n{'command':<24}{'QEMU ms':>12}{'sim ms':>12}{'ratio':>8}")
    for k, v in qemu.items():
        print(f"{k:<24}{v:>12.2f}{sim[k]:>12.2f}{v / sim[k]:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
