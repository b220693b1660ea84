"""Write the OP-TEE signed-TA vectors (firmware_sign.ta_image) from the two committed test keys.

Run from the repository root: ``python tests/vectors/ta_image/generate.py`` (``--out DIR``
writes elsewhere). ``test_ta_key.pem`` and ``other_ta_key.pem`` are test keys only (RSA
key generation cannot be seeded, so they are committed). Every vector but ``ok_pss``
(PSS draws a salt) is byte-identical on a re-run. Each defective vector carries one defect.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402

from firmware_sign.ta_image import (  # noqa: E402
    HASH_SIZE,
    MAX_IMAGE_SIZE,
    SHDR,
    SigAlgo,
    sign_ta,
)

HERE = Path(__file__).resolve().parent
UUID = uuid.UUID("5441d9b6-a634-4050-9731-e70ae47dd281")
ENC_KEY = bytes(range(32))
IV = bytes(range(100, 112))
SIG_SIZE = 256  # both keys are RSA-2048
TA_HDR_END = SHDR.size + HASH_SIZE + SIG_SIZE + 20


def elf() -> bytes:
    """A stand-in stripped ELF: the ELF magic, then 4 KiB derived from a label."""
    body = b"".join(hashlib.sha256(b"edge ta_image vector %d" % i).digest() for i in range(128))
    return b"\x7fELF\x02\x01\x01" + body


def _key(name: str):
    return serialization.load_pem_private_key((HERE / name).read_bytes(), None)


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def _set_u32(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


# name -> (expected refusal, what the defect is)
VECTORS: dict[str, tuple[str, str]] = {
    "ok_pkcs1v15": ("ok", "RSASSA-PKCS1-v1_5, TA version 7"),
    "ok_pss": ("ok", "RSASSA-PSS (salt 32): not reproducible, verified instead"),
    "ok_encrypted": ("ok", "AES-256-GCM encrypted (class-wide key), fixed IV"),
    "bad_magic": ("malformed", "shdr.magic changed"),
    "truncated_header": ("malformed", "cut inside the signature"),
    "truncated_image": ("malformed", "last byte of the ELF missing"),
    "trailing_bytes": ("malformed", "one byte after the ELF"),
    "subkey": ("malformed", "img_type 3 (subkey chains are not supported)"),
    "unknown_algo": ("malformed", "shdr.algo not an RSA TA algorithm"),
    "oversized": ("oversized", "img_size over the 16 MiB limit"),
    "tampered_image": ("tampered", "one bit of the ELF flipped"),
    "tampered_version": ("tampered", "ta_version changed after signing"),
    "tampered_ciphertext": ("tampered", "one bit of the encrypted ELF flipped"),
    "tampered_hash": ("signature", "one bit of the hash field flipped"),
    "wrong_key": ("signature", "signed by other_ta_key.pem"),
}


def build() -> dict[str, bytes]:
    """Every vector's bytes."""
    key, other = _key("test_ta_key.pem"), _key("other_ta_key.pem")
    ok = sign_ta(elf(), key, UUID, ta_version=7)
    enc = sign_ta(elf(), key, UUID, enc_key=ENC_KEY, enc_key_type=1, iv=IV)
    return {
        "ok_pkcs1v15": ok,
        "ok_pss": sign_ta(elf(), key, UUID, algo=SigAlgo.RSASSA_PKCS1_PSS_MGF1_SHA256),
        "ok_encrypted": enc,
        "bad_magic": _set_u32(ok, 0, 0x4F545349),
        "truncated_header": ok[:SHDR.size + HASH_SIZE + 100],
        "truncated_image": ok[:-1],
        "trailing_bytes": ok + b"\0",
        "subkey": _set_u32(ok, 4, 3),
        "unknown_algo": _set_u32(ok, 12, 0x70005830),
        "oversized": _set_u32(ok, 8, MAX_IMAGE_SIZE + 1),
        "tampered_image": _flip(ok, len(ok) - 100),
        "tampered_version": _set_u32(ok, TA_HDR_END - 4, 8),
        "tampered_ciphertext": _flip(enc, len(enc) - 100),
        "tampered_hash": _flip(ok, SHDR.size),
        "wrong_key": sign_ta(elf(), other, UUID, ta_version=7),
    }


def write(out: Path) -> None:
    """Write every vector and index.tsv into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = ["name\tfile\texpect\tdefect"]
    for name, data in build().items():
        (out / f"{name}.ta").write_bytes(data)
        expect, defect = VECTORS[name]
        rows.append(f"{name}\t{name}.ta\t{expect}\t{defect}")
    (out / "index.tsv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    write(ap.parse_args().out)
