"""``edge tee ...``: provision, inspect and feed the trusted application."""

from __future__ import annotations

import argparse
import hmac
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge import errors
from edge.formats.device import DeviceRecord
from edge.formats.manifest import INFER_RELEASE_NAMES, parse_manifest
from edge.formats.package import PackageSource, read_manifest
from edge.formats.policy import POLICY_SIZE, PrivacyPolicy, parse_policy, policy_id
from edge.keyfiles import load_public_key
from edge.state_files import write_durably
from edge.tee import (
    BACKENDS,
    DEFAULT_BACKEND,
    BudgetStatus,
    TaStatus,
    TrustedApp,
    check_backend_state,
)

SIM_STATE_ENV = "EDGE_SIM_STATE"  # docs/simulator.md: the simulated TEE's default folder


def _open(args: argparse.Namespace, *, create: bool = False) -> TrustedApp:
    """The TA on --tee/--state; only ``create`` (provisioning) may start a new simulated TEE
    in a folder that does not exist yet: a mistyped --state is refused, not created."""
    state = args.state
    if state is None and args.tee == "sim" and os.environ.get(SIM_STATE_ENV):
        state = Path(os.environ[SIM_STATE_ENV])
    try:
        check_backend_state(args.tee, state)
    except errors.ConfigError as exc:
        raise errors.ConfigError(f"--tee {args.tee} --state: {exc} (or set "
                                 f"{SIM_STATE_ENV})") from None
    if state is not None and not create and not Path(state).is_dir():
        raise errors.ConfigError(f"--state {state}: no simulated TEE there (`edge tee provision "
                                 f"--tee sim --state {state}` creates one)")
    return TrustedApp(args.tee, state)


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tee", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="TEE backend: the real OP-TEE (/dev/tee0) or the simulated one")
    p.add_argument("--state", type=Path, metavar="DIR",
                   help=f"state directory of the simulated TEE (with --tee sim; default "
                        f"${SIM_STATE_ENV})")


def _check_writable(path: Path, what: str, *, force: bool) -> None:
    """Refuse an output that cannot be written, before anything irreversible happens."""
    if path.is_dir():
        raise errors.ConfigError(f"{what} {path} is a folder")
    if path.exists() and not force:
        raise errors.ConfigError(f"{what} {path} exists; give --force to overwrite it")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent or Path("."), prefix=".edge-check-"):
            pass
    except OSError as exc:
        raise errors.ConfigError(f"{what} {path}: cannot write in {path.parent} "
                                 f"({exc.strerror})") from None


def cmd_provision(args: argparse.Namespace) -> int:
    """Create the device keys, install the trust anchors, write DEVICE.pub."""
    signer = load_public_key(args.model_signer)
    aggregator = load_public_key(args.aggregator)
    # Checked first: anchors are installed once, so a crash after them left a device whose
    # record nobody had (`edge tee export-record` writes it again).
    _check_writable(args.out_pub, "--out-pub", force=True)
    with _open(args, create=True) as ta:
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
        if args.registrar is not None:
            ta.install_registrar(load_public_key(args.registrar))
    write_durably(args.out_pub, record, mode=0o644)
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


def cmd_export_record(args: argparse.Namespace) -> int:
    """Write the device record (DEVICE.pub) of a TEE that has its identity already."""
    _check_writable(args.out, "--out", force=args.force)
    with _open(args) as ta:
        if not ta.status().has_identity:
            raise errors.NotProvisioned("export record: this TEE has no identity yet; run "
                                        "`edge tee provision`")
        record = ta.identity()
    write_durably(args.out, record, mode=0o644)
    device = DeviceRecord.parse(record)
    if args.json:
        print(json.dumps({"device_id": device.device_id.hex(), "record": str(args.out)}))
    else:
        print(f"device {device.device_id.hex()}: public record in {args.out}")
    return 0


def _package_backbone(path: Path) -> int:
    """The backbone length a package file declares (0 without one); its header only."""
    try:
        with path.open("rb") as fh:
            return parse_manifest(read_manifest(PackageSource(fh)).body).backbone_len
    except OSError as exc:
        raise errors.ConfigError(f"package {path}: {exc.strerror}") from None


def cmd_load_model(args: argparse.Namespace) -> int:
    """Hand a package to the TA; exit 0 only when it is accepted."""
    if args.package.is_file():
        length = _package_backbone(args.package)
        if length and args.backbone_out is None:
            # The TA commits the version: the backbone could never be had again from it.
            print(f"usage: edge tee load-model {args.package} --backbone-out FILE: the package "
                  f"carries a backbone of {length} bytes, verified by the TA as it is written "
                  "there", file=sys.stderr)
            return 2
        if args.backbone_out is not None:
            _check_writable(args.backbone_out, "--backbone-out", force=args.force)
    try:
        wrap = args.wrap.read_bytes()
    except OSError as exc:
        raise errors.ConfigError(f"--wrap {args.wrap}: {exc.strerror}") from exc
    with _open(args) as ta:
        loaded = ta.load_model(args.package, wrap=wrap, backbone_out=args.backbone_out)
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
    """Run the private head on features from a .npy file; print what the package releases."""
    try:
        features = np.load(args.features, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"--features {args.features}: {exc}") from None
    with _open(args) as ta:
        result = ta.infer(features)
    values = result.scores if result.scores is not None else result.labels
    assert values is not None
    if args.out:
        np.save(args.out, values)
    else:
        np.savetxt(sys.stdout, values, fmt="%.6g" if result.scores is not None else "%d")
    left = "unlimited" if result.rows_left is None else str(result.rows_left)
    print(f"release: {INFER_RELEASE_NAMES[result.release]}; query budget left: {left} rows",
          file=sys.stderr)
    return 0


def _read_policy(path: Path) -> tuple[bytes, PrivacyPolicy]:
    """Read and parse a policy file (its signature is the TA's to check)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(POLICY_SIZE + 1)
    except OSError as exc:
        raise errors.ConfigError(f"cannot read policy {path}: {exc.strerror}") from None
    try:
        return data, parse_policy(data)
    except errors.EdgeError as exc:
        raise type(exc)(f"{path}: {exc}", code=exc.code, origin=exc.origin) from None


def cmd_install_policy(args: argparse.Namespace) -> int:
    """Install or replace the privacy policy (signed by the model signer)."""
    data, policy = _read_policy(args.policy)
    with _open(args) as ta:
        ta.install_policy(data)
        budget = ta.budget()
    print(f"installed privacy policy version {policy.version} (id {policy_id(data).hex()}); "
          f"{budget.steps_spent} of {budget.step_budget} steps spent")
    return 0


def _budget_info(budget: BudgetStatus, policy: tuple[bytes, PrivacyPolicy] | None
                 ) -> dict[str, Any]:
    """The budget block with the (epsilon, delta) spent, which the TA reads from the installed
    policy's signed steps -> epsilon table: no accountant runs here (nor is one imported).
    ``policy``, if given, must be the installed policy (its id is checked)."""
    has = budget.has_policy

    def eps(value: float) -> float | None:
        return None if not has or math.isinf(value) else value

    info: dict[str, Any] = {
        "policy_installed": has,
        "policy_version": budget.policy_version if has else None,
        "policy_id": budget.policy_id.hex() if has else None,
        "steps_spent": budget.steps_spent,
        "step_budget": budget.step_budget,
        "steps_left": budget.steps_left,
        "rounds_sealed": budget.rounds_sealed,
        "last_round": budget.last_round or None,
        "time_floor": budget.time_floor,
        "epsilon_spent": eps(budget.epsilon_spent),
        "epsilon_at_budget": eps(budget.epsilon_budget),
        "delta": budget.delta if has else None,
        "accounting": ("no policy installed" if not has else
                       "none: no-DP test policy (noise may be 0)"
                       if math.isinf(budget.epsilon_budget) else
                       "the installed policy's signed steps -> epsilon table (an upper bound: "
                       "the first entry at or above the steps)"),
    }
    if policy is not None:
        data, p = policy
        if not has:
            raise errors.NoPolicy("budget: no privacy policy is installed")
        if not hmac.compare_digest(policy_id(data), budget.policy_id):
            raise errors.ConfigError(
                f"budget: --policy has id {policy_id(data).hex()} (version {p.version}), the "
                f"installed policy is {budget.policy_id.hex()} (version "
                f"{budget.policy_version})")
    return info


def cmd_budget(args: argparse.Namespace) -> int:
    """Print steps spent and left, rounds sealed and the (epsilon, delta) spent."""
    policy = _read_policy(args.policy) if args.policy else None
    with _open(args) as ta:
        info = _budget_info(ta.budget(), policy)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        shown = "-" if value is None else (f"{value:.6g}" if isinstance(value, float) else value)
        print(f"{key.replace('_', ' '):<{width}}  {shown}")
    return 0


def register(nouns: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``edge tee`` and its verbs."""
    tee = nouns.add_parser("tee", help="the trusted application on this board")
    verbs = tee.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("provision", help="create device keys and install trust anchors")
    _add_backend(p)
    p.add_argument("--model-signer", type=Path, required=True, metavar="PUB")
    p.add_argument("--aggregator", type=Path, required=True, metavar="PUB")
    p.add_argument("--out-pub", type=Path, required=True, metavar="DEVICE.pub",
                   help="where to write the device record the aggregator enrolls")
    p.add_argument("--registrar", type=Path, metavar="PUB",
                   help="the registrar key that signs enrollment certificates (secure "
                        "aggregation, docs/secagg.md)")
    p.set_defaults(run=cmd_provision)

    p = verbs.add_parser("export-record", help="write the device record (DEVICE.pub) again")
    _add_backend(p)
    p.add_argument("--out", type=Path, required=True, metavar="DEVICE.pub",
                   help="where to write the device record")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--json", action="store_true", help="print the device id as JSON")
    p.set_defaults(run=cmd_export_record)

    p = verbs.add_parser("info", help="identity, anchors and installed model")
    _add_backend(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_info)

    p = verbs.add_parser("load-model", help="verify and install a model package")
    _add_backend(p)
    p.add_argument("package", type=Path, metavar="PKG")
    p.add_argument("--wrap", type=Path, required=True, metavar="WRAP",
                   help="this device's key wrap for the package (firmware-sign writes "
                        "PKG.wraps/<device id>.wrap)")
    p.add_argument("--backbone-out", type=Path, metavar="FILE",
                   help="where to write the verified backbone (required when the package "
                        "has one)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --backbone-out")
    p.set_defaults(run=cmd_load_model)

    p = verbs.add_parser("replace-anchor", help="replace a trust anchor (signed statement)")
    _add_backend(p)
    p.add_argument("statement", type=Path, metavar="STATEMENT")
    p.set_defaults(run=cmd_replace_anchor)

    p = verbs.add_parser("infer", help="run the private head on features (.npy)")
    _add_backend(p)
    p.add_argument("--features", type=Path, required=True, metavar="X.npy")
    p.add_argument("--out", type=Path, metavar="OUT.npy",
                   help="scores, top-k labels or labels, as the package releases")
    p.set_defaults(run=cmd_infer)

    p = verbs.add_parser("install-policy", help="install or replace the privacy policy")
    _add_backend(p)
    p.add_argument("policy", type=Path, metavar="POLICY")
    p.set_defaults(run=cmd_install_policy)

    p = verbs.add_parser("budget", help="privacy budget: steps, rounds, (epsilon, delta) spent")
    _add_backend(p)
    p.add_argument("--policy", type=Path, metavar="POLICY",
                   help="the installed policy file: checked to be the one installed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_budget)
