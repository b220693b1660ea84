"""Runs INSIDE the QEMU guest (Python 3.13, real libteec): TA commands via
``edge.tee.TrustedApp('optee')``, results as one JSON line on stdout.

    python3 guest_ta.py status
    python3 guest_ta.py identity
    python3 guest_ta.py load PKG [BACKBONE_OUT]
    python3 guest_ta.py refusals DIR     # every DIR/*.pkg must be refused, state unchanged
    python3 guest_ta.py infer N FEATURES_F32
    python3 guest_ta.py bench PKG FEATURES_F32 N REPEAT
    python3 guest_ta.py policy FILE      # install_policy; the budget after
    python3 guest_ta.py budget
    python3 guest_ta.py round TICKET REE_TIME N FEATURES_F32 LABELS_U32 OUT
        # verify_ticket + train_and_seal in one session; the sealed update to OUT,
        # or the refusal's class and whether the budget stayed unchanged
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from edge import errors
from edge.tee import TrustedApp


def _status(ta: TrustedApp) -> dict[str, object]:
    return {k: (v.hex() if isinstance(v, bytes) else v)
            for k, v in dataclasses.asdict(ta.status()).items()}


def _budget(ta: TrustedApp) -> dict[str, object]:
    return {k: (v.hex() if isinstance(v, bytes) else v)
            for k, v in dataclasses.asdict(ta.budget()).items()}


def train_round(ta: TrustedApp, args: list[str]) -> dict[str, object]:
    """One round: the ticket, then DP-SGD on the head; refusals reported, not raised."""
    ticket, ree, n = Path(args[0]).read_bytes(), int(args[1]), int(args[2])
    x = np.fromfile(args[3], dtype="<f4").reshape(n, -1)
    y = np.fromfile(args[4], dtype="<u4")
    before = ta.budget()
    result: dict[str, object] = {}
    try:
        accepted = ta.verify_ticket(ticket, ree_time=ree)
        result["ticket"] = dataclasses.asdict(accepted)
        t0 = time.perf_counter()
        update = ta.train_and_seal(x, y)
        result["train_ms"] = (time.perf_counter() - t0) * 1000
        Path(args[5]).write_bytes(update)
    except errors.EdgeError as e:
        result.update(error=type(e).__name__, message=str(e), unchanged=ta.budget() == before)
    result["budget"] = _budget(ta)
    return result


def _wrap(pkg: str | Path) -> bytes:
    """The key wrap put beside a package (PKG.wrap)."""
    return Path(f"{pkg}.wrap").read_bytes()


def main(argv: list[str]) -> dict[str, object]:
    cmd, args = argv[0], argv[1:]
    with TrustedApp("optee") as ta:
        if cmd == "status":
            return _status(ta)
        if cmd == "identity":
            return {"record": ta.identity().hex()}
        if cmd == "load":
            out = args[1] if len(args) > 1 else None
            loaded = ta.load_model(args[0], wrap=_wrap(args[0]), backbone_out=out)
            return {"version": loaded.version, "backbone_len": loaded.backbone_len}
        if cmd == "refusals":
            result: dict[str, object] = {}
            for pkg in sorted(Path(args[0]).glob("*.pkg")):
                before = ta.status()
                try:
                    ta.load_model(pkg, wrap=_wrap(pkg))
                    got = "accepted"
                except errors.EdgeError as e:
                    got = type(e).__name__
                result[pkg.stem] = {"error": got, "unchanged": ta.status() == before}
            return result
        if cmd == "infer":
            n = int(args[0])
            x = np.fromfile(args[1], dtype="<f4").reshape(n, -1)
            try:
                got = ta.infer(x)
            except errors.EdgeError as e:
                return {"error": type(e).__name__}
            values = got.scores if got.scores is not None else got.labels
            return {"release": int(got.release), "rows_left": got.rows_left,
                    "scores" if got.scores is not None else "labels": values.tolist()}
        if cmd == "bench":
            return bench(ta, args)
        if cmd == "policy":
            ta.install_policy(Path(args[0]).read_bytes())
            return _budget(ta)
        if cmd == "budget":
            return _budget(ta)
        if cmd == "round":
            return train_round(ta, args)
        if cmd == "backbone":
            return run_backbone(args)
    raise SystemExit(f"unknown command {cmd}")


def run_backbone(args: list[str]) -> dict[str, object]:
    """TFLite on the verified backbone the TA released: BACKBONE METADATA N X."""
    from edge.inference import Backbone, InferenceConfig, runtime_info

    metadata = json.loads(Path(args[1]).read_text())
    config = InferenceConfig.from_mapping({"npu_delegate": "auto", "num_threads": 1})
    backbone = Backbone.from_verified(Path(args[0]).read_bytes(), metadata, config)
    x = np.fromfile(args[3], dtype="<f4").reshape(int(args[2]), -1)
    return {"features": backbone.run(x).tolist(), "runtime": runtime_info()["runtime"],
            "accelerator": backbone.report.accelerator}


def bench(ta: TrustedApp, args: list[str]) -> dict[str, object]:
    """Median latency (ms) of each TA command, measured in this process."""
    pkg, feats, n, repeat = Path(args[0]), args[1], int(args[2]), int(args[3])
    x = np.fromfile(feats, dtype="<f4").reshape(n, -1)
    data = pkg.read_bytes()

    def median_ms(fn: object, times: int) -> float:
        samples = []
        for _ in range(times):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            samples.append((time.perf_counter() - t0) * 1000)
        return sorted(samples)[len(samples) // 2]

    wrap = _wrap(pkg)
    t0 = time.perf_counter()
    ta.load_model(data, wrap=wrap)
    out = {"load_accept": (time.perf_counter() - t0) * 1000,
           "status": median_ms(ta.status, repeat),
           "identity": median_ms(ta.identity, repeat),
           "infer": median_ms(lambda: ta.infer(x), repeat)}

    # The same package again: refused (rollback) once the signed manifest is checked.
    def refused() -> None:
        with contextlib.suppress(errors.Rollback):
            ta.load_model(data, wrap=wrap)

    out["load_refused_rollback"] = median_ms(refused, max(1, repeat // 4))
    return out


if __name__ == "__main__":
    print("@@JSON " + json.dumps(main(sys.argv[1:])))
