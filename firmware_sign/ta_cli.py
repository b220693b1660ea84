"""``firmware-sign ta``: keys for, signing and verifying OP-TEE trusted application images."""

from __future__ import annotations

import argparse
import uuid as uuidlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edge.errors import ConfigError
from edge.keyfiles import write_new_file
from firmware_sign.outputs import write_output
from firmware_sign.ta_image import (
    ALGO_NAMES,
    MAX_IMAGE_SIZE,
    EncKeyType,
    ImageType,
    describe_ta,
    parse_ta,
    sign_ta,
    verify_ta,
)

MAX_KEY_FILE = 64 * 1024
DEFAULT_BITS = 3072


def _read(path: str, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def load_rsa_private(path: str) -> rsa.RSAPrivateKey:
    """Load an unencrypted PEM RSA private key (PKCS#1 or PKCS#8, as OpenSSL writes)."""
    try:
        key = serialization.load_pem_private_key(_read(path, MAX_KEY_FILE, "TA key"), None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"TA key {path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"TA key {path}: not an RSA key (OP-TEE verifies TAs with RSA)")
    return key


def load_rsa_public(path: str) -> rsa.RSAPublicKey:
    """Load an RSA public key from a PEM public key, or the public half of a private key."""
    data = _read(path, MAX_KEY_FILE, "TA key")
    try:
        key: object = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            key = serialization.load_pem_private_key(data, None).public_key()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"TA key {path}: not a PEM public or private key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"TA key {path}: not an RSA key (OP-TEE verifies TAs with RSA)")
    return key


def _uuid(text: str) -> uuidlib.UUID:
    try:
        return uuidlib.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UUID") from None


def _enc_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--enc-key wants hexadecimal") from None
    if len(key) not in (16, 24, 32):
        raise argparse.ArgumentTypeError(f"--enc-key: {len(key)} bytes, expected 16, 24 or 32")
    return key


def _u32(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is not in 0..2^32-1")
    return value


def cmd_keygen(args: argparse.Namespace) -> int:
    """ta keygen: PREFIX.pem (RSA private, 0600) and PREFIX.pub.pem."""
    priv_path, pub_path = Path(args.out + ".pem"), Path(args.out + ".pub.pem")
    key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    write_new_file(priv_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), mode=0o600, force=args.force)
    write_new_file(pub_path, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        mode=0o644, force=args.force)
    print(f"TA signing key RSA-{args.bits}: wrote {priv_path} (private, 0600) and {pub_path} "
          f"(build OP-TEE OS with TA_PUBLIC_KEY={pub_path})")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """ta sign: the stripped ELF -> a signed (optionally encrypted) .ta."""
    elf_path = args.elf or args.inf
    if not elf_path or (args.elf and args.inf):
        raise ConfigError("ta sign: give the stripped ELF once (ELF or --in ELF)")
    elf = _read(elf_path, MAX_IMAGE_SIZE, "TA ELF")
    image = sign_ta(elf, load_rsa_private(args.key), args.uuid, ta_version=args.ta_version,
                    algo=ALGO_NAMES[args.algo], enc_key=args.enc_key,
                    enc_key_type=EncKeyType[args.enc_key_type.upper().replace("-", "_")])
    out = Path(args.out)
    write_output(out, lambda fh: fh.write(image))
    kind = "encrypted and signed" if args.enc_key else "signed"
    print(f"wrote {out}: TA {args.uuid} version {args.ta_version}, {kind} ({args.algo}), "
          f"{len(elf)}-byte ELF")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """ta verify: check a .ta's signature and hash under a public key."""
    data = _read(args.file, MAX_IMAGE_SIZE + 8192, "TA image")
    image = verify_ta(data, load_rsa_public(args.key), uuid=args.uuid, enc_key=args.enc_key)
    print(f"OK: {args.file}: TA {image.uuid} version {image.ta_version}, "
          f"{image.algo.name}, RSA-{len(image.signature) * 8}")
    return 0


def cmd_resign(args: argparse.Namespace) -> int:
    """ta resign: verify TAs under their vendor's key, sign their ELF with ours."""
    vendor, key = load_rsa_public(args.verify_key), load_rsa_private(args.key)
    out_dir = Path(args.out)
    done = 0
    for path in args.files:
        data = _read(path, MAX_IMAGE_SIZE + 8192, "TA image")
        if args.skip_subkey and data[4:8] == ImageType.SUBKEY.to_bytes(4, "little"):
            # Its signature chains through a subkey whose private half we do not hold.
            print(f"skipped {path}: signed through a subkey chain")
            continue
        image = verify_ta(data, vendor)
        if image.enc is not None:
            raise ConfigError(f"{path}: an encrypted TA cannot be re-signed here")
        signed = sign_ta(image.payload, key, image.uuid, ta_version=image.ta_version,
                         algo=ALGO_NAMES[args.algo])
        write_output(out_dir / Path(path).name, lambda fh, signed=signed: fh.write(signed))
        done += 1
    print(f"re-signed {done} TA(s) into {out_dir}")
    return 0


def inspect_ta(path: str) -> dict[str, object]:
    """``firmware-sign inspect`` of a TA image (structure only; ``ta verify`` checks it)."""
    return describe_ta(parse_ta(_read(path, MAX_IMAGE_SIZE + 8192, "TA image")))


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``firmware-sign ta ...`` to the main parser."""
    ta = sub.add_parser("ta", help="OP-TEE trusted application images").add_subparsers(
        dest="ta_command", required=True, metavar="COMMAND")

    kg = ta.add_parser("keygen", help="generate an RSA TA signing key (PREFIX.pem, .pub.pem)")
    kg.add_argument("--out", required=True, metavar="PREFIX",
                  help="writes PREFIX.pem (private, 0600) and PREFIX.pub.pem")
    kg.add_argument("--bits", type=int, choices=(2048, 3072, 4096), default=DEFAULT_BITS,
                  help="RSA modulus size (default %(default)s)")
    kg.add_argument("--force", action="store_true", help="overwrite existing key files")
    kg.set_defaults(func=cmd_keygen)

    sg = ta.add_parser("sign", help="sign a stripped TA ELF in OP-TEE's format")
    sg.add_argument("elf", nargs="?", metavar="ELF", help="the stripped ELF")
    sg.add_argument("--in", dest="inf", metavar="ELF",
                    help="the stripped ELF (the TA dev kit's SIGN_ENC calling convention)")
    sg.add_argument("--key", required=True, metavar="KEY.pem",
                  help="the RSA signing key (PEM)")
    sg.add_argument("--uuid", required=True, type=_uuid,
                  help="the TA's UUID")
    sg.add_argument("--ta-version", type=_u32, default=0, metavar="N",
                  help="TA version in the signed header (default 0)")
    sg.add_argument("--algo", choices=sorted(ALGO_NAMES), default="pkcs1v15",
                    help="pkcs1v15 (default: deterministic, reproducible images) or pss")
    sg.add_argument("--enc-key", type=_enc_key, metavar="HEX",
                    help="encrypt the ELF with AES-GCM under this key (CFG_ENCRYPT_TA)")
    sg.add_argument("--enc-key-type", choices=("dev-specific", "class-wide"),
                    default="dev-specific",
                  help="which key the TA is encrypted under on the device")
    sg.add_argument("-o", "--out", required=True, metavar="OUT.ta",
                  help="the signed .ta to write")
    sg.set_defaults(func=cmd_sign)

    vf = ta.add_parser("verify", help="verify a .ta under a public key")
    vf.add_argument("file", metavar="FILE.ta",
                  help="the signed TA image")
    vf.add_argument("--key", required=True, metavar="PUB.pem",
                  help="the public key it must be signed with (PEM)")
    vf.add_argument("--uuid", type=_uuid, help="also require this TA UUID")
    vf.add_argument("--enc-key", type=_enc_key, metavar="HEX",
                    help="the encryption key of an encrypted TA")
    vf.set_defaults(func=cmd_verify)

    rs = ta.add_parser("resign", help="verify TAs under a vendor key, re-sign with ours")
    rs.add_argument("files", nargs="+", metavar="FILE.ta",
                  help="the vendor-signed TA images")
    rs.add_argument("--verify-key", required=True, metavar="VENDOR.pem",
                  help="the vendor's public key they must verify under (PEM)")
    rs.add_argument("--key", required=True, metavar="KEY.pem",
                  help="our RSA signing key (PEM)")
    rs.add_argument("--algo", choices=sorted(ALGO_NAMES), default="pkcs1v15",
                  help="signature scheme of the new signatures (default pkcs1v15)")
    rs.add_argument("--out", required=True, metavar="DIR",
                  help="folder to write the re-signed images to")
    rs.add_argument("--skip-subkey", action="store_true",
                    help="leave out TAs signed through a subkey chain instead of failing")
    rs.set_defaults(func=cmd_resign)
