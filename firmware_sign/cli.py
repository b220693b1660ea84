"""``firmware-sign``: the release engineer's tool for keys, packages, anchors and policies."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from edge.errors import ConfigError, EdgeError, Malformed, WrongKind
from edge.formats.anchors import ANCHOR_STATEMENT_SIZE, parse_anchor_statement
from edge.formats.device import DEVICE_RECORD_SIZE, DeviceRecord, parse_device_record
from edge.formats.envelope import (
    HEADER_SIZE,
    Kind,
    check_header,
    kind_name,
    parse_envelope,
    verify_envelope,
)
from edge.formats.keys import key_id
from edge.formats.keywrap import KEY_WRAP_SIZE, read_key_wrap
from edge.formats.manifest import (
    INFER_RELEASE_NAMES,
    InferPolicy,
    InferRelease,
    parse_manifest,
)
from edge.formats.package import PackageSource, read_manifest, verify_package
from edge.formats.package_builder import build_package
from edge.formats.policy import POLICY_SIZE, parse_policy
from edge.formats.secagg import build_cert, fleet_id
from edge.formats.ticket import TICKET_SIZE, parse_ticket
from edge.formats.update import MAX_UPDATE_SIZE, parse_update
from edge.keyfiles import ROLES, generate_role_key, load_private_key, load_public_key
from firmware_sign import ta_cli, training
from firmware_sign.inspect import (
    describe_anchor,
    describe_device,
    describe_key_wrap,
    describe_package,
    describe_policy,
    describe_ticket,
    describe_update,
    render,
)
from firmware_sign.outputs import UsageError, write_output
from firmware_sign.statements import replace_anchor
from firmware_sign.ta_image import is_ta_image

PROG = "firmware-sign"
MIN_CHUNK, MAX_CHUNK = 4096, 1 << 20
MAX_U64 = 2**64 - 1


def _u32(text: str) -> int:
    """argparse type: an integer in 0..2^32-1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is not in 0..2^32-1")
    return value


def _u64(text: str) -> int:
    """argparse type: an integer in 1..2^64-1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= MAX_U64:
        raise argparse.ArgumentTypeError(f"{value} is not in 1..2^64-1")
    return value


def _chunk_size(text: str) -> int:
    """argparse type: a power of two in 4096..1048576, returned as its log2."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not MIN_CHUNK <= value <= MAX_CHUNK or value & (value - 1):
        raise argparse.ArgumentTypeError(f"{value} is not a power of two in 4096..1048576")
    return value.bit_length() - 1


def _read_bounded(path: str, limit: int, what: str) -> bytes:
    """Read at most ``limit + 1`` bytes of a file, with errors that name it."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _named(path: str, exc: EdgeError) -> EdgeError:
    """Return a copy of ``exc`` (same class) whose message starts with the file name."""
    return type(exc)(f"{path}: {exc}", code=exc.code, origin=exc.origin)


def load_device(path: str) -> DeviceRecord:
    """Load and verify a device record file (kind 3, self-signed)."""
    data = _read_bounded(path, DEVICE_RECORD_SIZE, "device record")
    try:
        return parse_device_record(data)
    except EdgeError as exc:
        raise _named(path, exc) from exc


def load_head(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Load W (I x O) and b (O) from an .npz file as real numbers."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise ConfigError(f"cannot read head {path}: {exc.strerror or exc}") from exc
    except (ValueError, EOFError) as exc:
        raise ConfigError(f"head {path}: not a NumPy .npz archive") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ConfigError(f"head {path}: not an .npz archive with arrays W and b")
    with loaded as npz:
        missing = [k for k in ("W", "b") if k not in npz.files]
        if missing:
            raise ConfigError(f"head {path}: missing array(s) {', '.join(missing)}")
        try:
            arrays = npz["W"], npz["b"]
        except (OSError, ValueError, EOFError) as exc:
            raise ConfigError(f"head {path}: cannot load W and b ({exc})") from exc
    for name, arr in zip(("W", "b"), arrays, strict=True):
        if arr.dtype.kind not in "biuf":
            raise Malformed(f"head {path}: {name} has dtype {arr.dtype}, expected real numbers")
    return arrays


def load_metadata(path: str) -> dict[str, Any]:
    """Load a JSON object from a metadata file."""
    data = _read_bounded(path, 1 << 20, "metadata")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"metadata {path}: not UTF-8 JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"metadata {path}: not a JSON object")
    return value


def cmd_keygen(args: argparse.Namespace) -> int:
    """keygen: write PREFIX.key (0600) and PREFIX.pub."""
    priv, pub, key = generate_role_key(args.out, force=args.force)
    kid = key_id(key.public_key().public_bytes_raw()).hex()
    print(f"{args.role} key id {kid}: wrote {priv} (private, 0600) and {pub}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """model pack: build and sign a model package."""
    if args.encrypt_backbone and not args.backbone:
        raise UsageError("--encrypt-backbone needs --backbone")
    signer = load_private_key(args.signer)
    w, b = load_head(args.head)
    recipients = [load_device(p) for p in args.to]
    metadata = load_metadata(args.metadata) if args.metadata else None
    release = {v: k for k, v in INFER_RELEASE_NAMES.items()}[args.infer]
    if (release == InferRelease.TOPK) != (args.infer_top_k is not None):
        raise UsageError("--infer top-k needs --infer-top-k K, and only it takes one")
    infer = InferPolicy(release, args.infer_top_k or 0, args.infer_budget, args.feature_bound)

    def write(fh: BinaryIO) -> Any:
        return build_package(
            fh,
            signer=signer,
            version=args.version,
            W=w,
            b=b,
            recipients=recipients,
            backbone=args.backbone,
            encrypt_backbone=args.encrypt_backbone,
            chunk_log2=args.chunk_size,
            metadata=metadata,
            infer=infer,
        )

    release = write_output(Path(args.out), write)
    wraps = Path(args.wraps) if args.wraps else Path(args.out + ".wraps")
    try:
        wraps.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {wraps}: {exc.strerror}") from exc
    for device_id, wrap in release.wraps.items():
        write_output(wraps / f"{device_id.hex()}.wrap", lambda fh, w=wrap: fh.write(w))
    m = release.manifest
    backbone = "no backbone"
    if m.has_backbone:
        kind = "encrypted" if m.backbone_encrypted else "public"
        backbone = f"{kind} backbone {m.backbone_len} bytes in {m.chunk_count} chunks"
    print(
        f"wrote {args.out}: model package version {m.version}, package id {m.package_id.hex()}, "
        f"head {m.head_in}x{m.head_out}, {backbone}; {len(release.wraps)} key wrap(s) in "
        f"{wraps}/<device id>.wrap"
    )
    return 0


def cmd_anchor_replace(args: argparse.Namespace) -> int:
    """anchor replace: sign a statement replacing a role's anchor."""
    current = load_private_key(args.current)
    new_pub = load_public_key(args.new)
    data = replace_anchor(current, args.role, args.epoch, new_pub)
    write_output(Path(args.out), lambda fh: fh.write(data))
    signer_kid = key_id(current.public_key().public_bytes_raw()).hex()
    print(
        f"wrote {args.out}: {args.role} anchor -> key id {key_id(new_pub).hex()}, "
        f"epoch {args.epoch}, signed by key id {signer_kid}"
    )
    return 0


def cmd_registrar_certify(args: argparse.Namespace) -> int:
    """registrar certify: sign an enrollment certificate for a device record."""
    registrar = load_private_key(args.registrar)
    device = load_device(args.device)
    fleet = fleet_id(args.fleet)
    data = build_cert(registrar, device.ed25519_pub, fleet)
    write_output(Path(args.out), lambda fh: fh.write(data))
    print(f"wrote {args.out}: device {device.device_id.hex()} enrolled in fleet {args.fleet!r} "
          f"(fleet id {fleet.hex()}), signed by registrar key id "
          f"{key_id(registrar.public_key().public_bytes_raw()).hex()}")
    return 0


def _open_artefact(path: str) -> tuple[BinaryIO, int, int]:
    """Open an artefact, run the kind-independent header checks, return (file, size, kind)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    size = os.fstat(fh.fileno()).st_size
    head = fh.read(HEADER_SIZE)
    try:
        header = check_header(head, size, exact=False)
    except EdgeError:
        fh.close()
        raise
    fh.seek(0)
    return fh, size, header.kind


def _small(fh: BinaryIO, size: int, kind: Kind, limit: int) -> bytes:
    """Read a fixed-size artefact after the exact-length and limit checks."""
    check_header(fh.read(HEADER_SIZE), size, kind=kind, max_len=limit)
    fh.seek(0)
    return fh.read(limit)


def _unsupported(kind: int) -> EdgeError:
    """The refusal for a kind firmware-sign does not handle."""
    return WrongKind(f"{kind_name(kind)} (kind {kind}) is not handled by firmware-sign")


def cmd_inspect(args: argparse.Namespace) -> int:
    """inspect: print the fields of any artefact (no signature check beyond self-signed)."""
    if is_ta_image(_read_bounded(args.file, 4, "artefact")):
        info = {"file": args.file, "size": os.path.getsize(args.file),
                **ta_cli.inspect_ta(args.file)}
        print(json.dumps(info) if args.json else render(info))
        return 0
    fh, size, kind = _open_artefact(args.file)
    with fh:
        if kind == Kind.PACKAGE:
            src = PackageSource(fh)
            env = read_manifest(src)
            manifest = parse_manifest(env.body)
            left = src.remaining()
            if left != manifest.payload_len:
                raise Malformed(
                    f"package: {left} payload bytes after the manifest, expected "
                    f"{manifest.payload_len}"
                )
            info = describe_package(env, manifest)
        elif kind == Kind.ANCHOR_STATEMENT:
            data = _small(fh, size, Kind.ANCHOR_STATEMENT, ANCHOR_STATEMENT_SIZE)
            info = describe_anchor(parse_anchor_statement(data))
        elif kind == Kind.DEVICE_RECORD:
            data = _small(fh, size, Kind.DEVICE_RECORD, DEVICE_RECORD_SIZE)
            info = describe_device(parse_device_record(data))
        elif kind == Kind.PRIVACY_POLICY:
            data = _small(fh, size, Kind.PRIVACY_POLICY, POLICY_SIZE)
            info = describe_policy(parse_policy(data), data)
        elif kind == Kind.ROUND_TICKET:
            info = describe_ticket(parse_ticket(_small(fh, size, Kind.ROUND_TICKET, TICKET_SIZE)))
        elif kind == Kind.KEY_WRAP:
            data = _small(fh, size, Kind.KEY_WRAP, KEY_WRAP_SIZE)
            env = parse_envelope(data, kind=Kind.KEY_WRAP)
            info = describe_key_wrap(env, read_key_wrap(env))
        elif kind == Kind.SEALED_UPDATE:
            data = _small(fh, size, Kind.SEALED_UPDATE, MAX_UPDATE_SIZE)
            info = describe_update(parse_update(data))
        else:
            raise _unsupported(kind)
    info = {"file": args.file, "size": size, **info}
    if args.json:
        print(json.dumps(info, sort_keys=False))
    else:
        print(render(info))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """verify: check an artefact's signer and signature (packages: payload and chunk digests)."""
    signer = _verify_key(args.signer)
    kid = key_id(signer).hex()
    fh, size, kind = _open_artefact(args.file)
    with fh:
        if kind == Kind.PACKAGE:
            m = verify_package(fh, signer_pub=signer)
            what = f"model package version {m.version}, {m.chunk_count} chunk digest(s) verified"
        elif kind == Kind.ANCHOR_STATEMENT:
            data = _small(fh, size, Kind.ANCHOR_STATEMENT, ANCHOR_STATEMENT_SIZE)
            verify_envelope(parse_envelope(data, kind=Kind.ANCHOR_STATEMENT), signer)
            st = parse_anchor_statement(data)
            what = f"anchor statement role {int(st.role)} epoch {st.epoch}"
        elif kind == Kind.DEVICE_RECORD:
            data = _small(fh, size, Kind.DEVICE_RECORD, DEVICE_RECORD_SIZE)
            verify_envelope(parse_envelope(data, kind=Kind.DEVICE_RECORD), signer)
            rec = parse_device_record(data)
            what = f"device record {rec.device_id.hex()}"
        elif kind in _SMALL:
            limit, parse, name = _SMALL[Kind(kind)]
            data = _small(fh, size, Kind(kind), limit)
            verify_envelope(parse_envelope(data, kind=kind), signer)
            what = name(parse(data))
        else:
            raise _unsupported(kind)
    print(f"OK: {args.file}: {what}, signed by key id {kid}")
    return 0


_SMALL: dict[Kind, tuple[int, Callable[[bytes], Any], Callable[[Any], str]]] = {
    Kind.PRIVACY_POLICY: (POLICY_SIZE, parse_policy,
                          lambda p: f"privacy policy version {p.version}"),
    Kind.ROUND_TICKET: (TICKET_SIZE, parse_ticket, lambda t: f"round ticket round {t.round_id}"),
    Kind.KEY_WRAP: (KEY_WRAP_SIZE, lambda d: read_key_wrap(parse_envelope(d)),
                    lambda w: f"key wrap for device {w.device_id.hex()}, package "
                              f"{w.package_id.hex()}"),
    Kind.SEALED_UPDATE: (MAX_UPDATE_SIZE, parse_update,
                         lambda u: f"sealed update round {u.round_id} from {u.device_id.hex()}"),
}


def _verify_key(path: str) -> bytes:
    """A public key file (PEM or raw), or a device record file (its identity key)."""
    try:
        return load_public_key(path)
    except ConfigError:
        if Path(path).is_file() and Path(path).stat().st_size == DEVICE_RECORD_SIZE:
            return load_device(path).ed25519_pub
        raise


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of firmware-sign."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kg = sub.add_parser("keygen", help="generate a role key pair (PREFIX.key, PREFIX.pub)")
    kg.add_argument("--role", required=True, choices=ROLES)
    kg.add_argument("--out", required=True, metavar="PREFIX")
    kg.add_argument("--force", action="store_true", help="overwrite existing key files")
    kg.set_defaults(func=cmd_keygen)

    model = sub.add_parser("model", help="model packages").add_subparsers(
        dest="model_command", required=True, metavar="COMMAND"
    )
    pack = model.add_parser("pack", help="build and sign a model package")
    pack.add_argument("--signer", required=True, metavar="KEY")
    pack.add_argument("--version", required=True, type=_u64, metavar="N")
    pack.add_argument("--head", required=True, metavar="HEAD.npz")
    pack.add_argument("--backbone", metavar="FILE")
    pack.add_argument("--encrypt-backbone", action="store_true")
    pack.add_argument("--to", required=True, action="append", metavar="DEVICE.pub")
    pack.add_argument("--out", required=True, metavar="PKG")
    pack.add_argument("--wraps", metavar="DIR",
                      help="folder for one key wrap per --to device, named <device id>.wrap "
                           "(default: PKG.wraps)")
    pack.add_argument(
        "--chunk-size",
        type=_chunk_size,
        default=16,
        metavar="BYTES",
        help="power of two in 4096..1048576 (default 65536)",
    )
    pack.add_argument("--metadata", metavar="FILE.json")
    pack.add_argument(
        "--infer", choices=list(INFER_RELEASE_NAMES.values()), default="label",
        help="what the TA's INFER may release of the head (default: label; scores give "
             "the head away to anyone who can query it, see docs/formats.md)")
    pack.add_argument("--infer-top-k", type=int, metavar="K", help="labels per row for top-k")
    pack.add_argument("--infer-budget", type=_u32, default=0, metavar="ROWS",
                      help="rows INFER answers per model version (default 0: no budget)")
    pack.add_argument("--feature-bound", type=float, default=0.0, metavar="B",
                      help="refuse features with |x| > B (default 0: finite values only)")
    pack.set_defaults(func=cmd_pack)

    anchor = sub.add_parser("anchor", help="trust anchor statements").add_subparsers(
        dest="anchor_command", required=True, metavar="COMMAND"
    )
    rep = anchor.add_parser("replace", help="sign a statement replacing a role's anchor")
    rep.add_argument("--role", required=True, choices=ROLES)
    rep.add_argument("--current", required=True, metavar="KEY")
    rep.add_argument("--new", required=True, metavar="PUB")
    rep.add_argument("--epoch", required=True, type=_u64, metavar="N")
    rep.add_argument("--out", required=True, metavar="STATEMENT")
    rep.set_defaults(func=cmd_anchor_replace)

    reg = sub.add_parser("registrar", help="enrollment certificates for secure aggregation "
                         "(keys: keygen --role registrar)").add_subparsers(
        dest="registrar_command", required=True, metavar="COMMAND")
    cert = reg.add_parser("certify", help="sign an enrollment certificate for a device record")
    cert.add_argument("--registrar", required=True, metavar="KEY")
    cert.add_argument("--device", required=True, metavar="DEVICE.pub")
    cert.add_argument("--fleet", required=True, metavar="NAME")
    cert.add_argument("--out", required=True, metavar="CERT")
    cert.set_defaults(func=cmd_registrar_certify)

    training.register(sub, _u64)
    ta_cli.register(sub)

    ins = sub.add_parser("inspect", help="show the fields of an artefact")
    ins.add_argument("file", metavar="FILE")
    ins.add_argument("--json", action="store_true", help="print one JSON object")
    ins.set_defaults(func=cmd_inspect)

    ver = sub.add_parser("verify", help="verify an artefact's signature")
    ver.add_argument("file", metavar="FILE")
    ver.add_argument("--signer", required=True, metavar="PUB")
    ver.set_defaults(func=cmd_verify)
    return p


def _refuse(refusal: str, message: str) -> None:
    """Print the one-line refusal on stderr."""
    text = " ".join(str(message).split())
    print(f"{refusal}: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run firmware-sign; return 0 on success, 1 on a refusal, 2 on a usage error."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except EdgeError as exc:
        _refuse(exc.refusal, str(exc))
        return 1
    except OSError as exc:
        _refuse("error", f"{exc.filename or ''} {exc.strerror or exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
