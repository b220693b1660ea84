"""``edge tee ...``: provision, inspect and feed the trusted application."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge import errors
from edge.formats.device import DeviceRecord
from edge.tee import TaStatus, TrustedApp
from firmware_sign.keys import load_public_key_raw


def _open(args: argparse.Namespace) -> TrustedApp:
    if args.tee == "sim" and args.state is None:
        raise errors.ConfigError("--tee sim needs --state DIR (the simulated TEE's storage)")
    return TrustedApp(args.tee, args.state if args.tee == "sim" else None)


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tee", choices=("sim", "optee"), default="optee",
                   help="TEE backend: the real OP-TEE (/dev/tee0) or the simulated one")
    p.add_argument("--state", type=Path, metavar="DIR",
                   help="state directory of the simulated TEE (with --tee sim)")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(path)


def cmd_provision(args: argparse.Namespace) -> int:
    """Create the device keys, install the trust anchors, write DEVICE.pub."""
    signer = load_public_key_raw(args.model_signer)
    aggregator = load_public_key_raw(args.aggregator)
    with _open(args) as ta:
        record = ta.identity()
        device = DeviceRecord.parse(record)
        try:
            ta.install_anchors(signer, aggregator)
        except errors.AlreadyProvisioned as exc:
            raise errors.AlreadyProvisioned(
                f"device {device.device_id.hex()} is already provisioned; "
                f"replace an anchor with `edge tee replace-anchor`",
                code=exc.code, origin=exc.origin,
            ) from None
    _write_atomic(args.out_pub, record)
    print(f"provisioned device {device.device_id.hex()}; public record in {args.out_pub}")
    return 0


def _info(ta: TrustedApp, status: TaStatus) -> dict[str, Any]:
    info: dict[str, Any] = {
        "backend": ta.backend,
        "abi_version": status.abi_version,
        "provisioned": status.has_anchors,
        "device_id": None,
        "identity_public_key": None,
        "key_agreement_public_key": None,
        "model_version": status.model_version if status.has_model else None,
        "head_shape": [status.head_in, status.head_out] if status.has_model else None,
        "package_id": status.package_id.hex() if status.has_model else None,
        "model_signer_key_id": status.signer_key_id.hex() if status.has_anchors else None,
        "model_signer_epoch": status.signer_epoch,
        "aggregator_key_id": status.aggregator_key_id.hex() if status.has_anchors else None,
        "aggregator_epoch": status.aggregator_epoch,
    }
    if status.has_identity:
        device = DeviceRecord.parse(ta.identity())
        info["device_id"] = device.device_id.hex()
        info["identity_public_key"] = device.ed25519_pub.hex()
        info["key_agreement_public_key"] = device.x25519_pub.hex()
    return info


def cmd_info(args: argparse.Namespace) -> int:
    """Print identity, anchors and installed model; creates nothing."""
    with _open(args) as ta:
        info = _info(ta, ta.status())
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        shown = "-" if value is None else (
            "x".join(map(str, value)) if isinstance(value, list) else value)
        print(f"{key.replace('_', ' '):<{width}}  {shown}")
    return 0


def cmd_load_model(args: argparse.Namespace) -> int:
    """Hand a package to the TA; exit 0 only when it is accepted."""
    with _open(args) as ta:
        loaded = ta.load_model(args.package, backbone_out=args.backbone_out)
    where = f", backbone ({loaded.backbone_len} bytes) in {args.backbone_out}" \
        if args.backbone_out and loaded.backbone_len else ""
    print(f"accepted model version {loaded.version}{where}")
    return 0


def cmd_replace_anchor(args: argparse.Namespace) -> int:
    """Replace a trust anchor with a statement signed by its current key."""
    with _open(args) as ta:
        ta.replace_anchor(args.statement.read_bytes())
        status = ta.status()
    print(f"anchor replaced; model-signer epoch {status.signer_epoch}, "
          f"aggregator epoch {status.aggregator_epoch}")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    """Run the private head on features from a .npy file."""
    try:
        features = np.load(args.features, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"--features {args.features}: {exc}") from None
    with _open(args) as ta:
        scores = ta.infer(features)
    if args.out:
        np.save(args.out, scores)
    else:
        np.savetxt(sys.stdout, scores, fmt="%.6g")
    return 0


def register(nouns: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``edge tee`` and its verbs."""
    tee = nouns.add_parser("tee", help="the trusted application on this board")
    verbs = tee.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("provision", help="create device keys and install trust anchors")
    _add_backend(p)
    p.add_argument("--model-signer", type=Path, required=True, metavar="PUB")
    p.add_argument("--aggregator", type=Path, required=True, metavar="PUB")
    p.add_argument("--out-pub", type=Path, required=True, metavar="DEVICE.pub")
    p.set_defaults(run=cmd_provision)

    p = verbs.add_parser("info", help="identity, anchors and installed model")
    _add_backend(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_info)

    p = verbs.add_parser("load-model", help="verify and install a model package")
    _add_backend(p)
    p.add_argument("package", type=Path, metavar="PKG")
    p.add_argument("--backbone-out", type=Path, metavar="FILE",
                   help="where to write the verified backbone")
    p.set_defaults(run=cmd_load_model)

    p = verbs.add_parser("replace-anchor", help="replace a trust anchor (signed statement)")
    _add_backend(p)
    p.add_argument("statement", type=Path, metavar="STATEMENT")
    p.set_defaults(run=cmd_replace_anchor)

    p = verbs.add_parser("infer", help="run the private head on features (.npy)")
    _add_backend(p)
    p.add_argument("--features", type=Path, required=True, metavar="X.npy")
    p.add_argument("--out", type=Path, metavar="SCORES.npy")
    p.set_defaults(run=cmd_infer)
