"""Write the artefact test vectors shared by the Python and C tests, deterministically.

Run from the repository root: ``python tests/vectors/generate.py`` (or
``python -m tests.vectors.generate``); ``--out DIR`` writes elsewhere. Every key,
package id, content key and ephemeral key is derived from a fixed label with
SHA-256, so a re-run writes byte-identical files. Test keys only.

Each defective vector carries exactly one defect; where the defect sits in the
signed bytes and must get past the signature, the envelope is re-signed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402

from edge import tee_abi  # noqa: E402
from edge.formats.anchors import build_anchor_statement  # noqa: E402
from edge.formats.device import DeviceRecord, build_device_record  # noqa: E402
from edge.formats.envelope import (  # noqa: E402
    HEADER_SIZE,
    SIG_SIZE,
    build_envelope,
    format_version,
    sign_digest,
)
from edge.formats.keys import (  # noqa: E402
    ed25519_private_seed,
    ed25519_raw_public,
    key_id,
    x25519_private_raw,
    x25519_raw_public,
)
from edge.formats.keyschedule import wrap_content_key  # noqa: E402
from edge.formats.keywrap import KeyWrap, build_key_wrap  # noqa: E402
from edge.formats.layouts import (  # noqa: E402
    ANCHOR_STATEMENT_BODY,
    KEY_WRAP_BODY,
    MANIFEST_FIXED,
    TICKET_BODY,
    UPDATE_HEADER,
)
from edge.formats.manifest import (  # noqa: E402
    FIXED_SIZE,
    MAX_CHUNKS,
    MAX_MANIFEST_SIZE,
    InferPolicy,
    InferRelease,
)
from edge.formats.package_builder import build_package  # noqa: E402
from edge.formats.policy import build_policy  # noqa: E402
from edge.formats.ticket import build_ticket  # noqa: E402
from edge.formats.update import build_update  # noqa: E402
from edge.tee_abi import Kind  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent
OFF = MANIFEST_FIXED.offset
SEED_PREFIX = b"edge/v1 test vector: "

def _ta_codes() -> dict[str, int]:
    """Refusal class -> the TA's result code, from the contract's one table."""
    codes = {"ok": int(tee_abi.TEE_SUCCESS)}
    for code, exc in tee_abi.REFUSALS.items():
        codes.setdefault(exc.refusal, int(code))
    return codes


TA_CODES = _ta_codes()

INDEX_COLUMNS = (
    "name",
    "kind",
    "file",
    "expect",
    "ta_code",
    "stored_version",
    "stored_epoch",
    "extra",
)


def seed(label: str) -> bytes:
    """Return the 32-byte seed of ``label``: SHA-256 of a fixed prefix and the label."""
    return hashlib.sha256(SEED_PREFIX + label.encode()).digest()


def ed_key(label: str) -> Ed25519PrivateKey:
    """Return the Ed25519 key whose RFC 8032 seed is ``seed(label)``."""
    return Ed25519PrivateKey.from_private_bytes(seed(label))


def x_key(label: str) -> X25519PrivateKey:
    """Return the X25519 key whose private scalar bytes are ``seed(label)``."""
    return X25519PrivateKey.from_private_bytes(seed(label))


def stream(label: str, size: int) -> bytes:
    """Return ``size`` deterministic bytes (SHAKE-256 of the label's seed)."""
    return hashlib.shake_256(seed(label)).digest(size)


def head_arrays(label: str, head_in: int, head_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Return deterministic W (I x O) and b (O) in [-1, 1)."""
    raw = np.frombuffer(stream(label, 4 * (head_in * head_out + head_out)), dtype="<u4")
    values = (raw.astype(np.float64) / 2**31 - 1.0).astype(np.float32)
    return values[: head_in * head_out].reshape(head_in, head_out), values[head_in * head_out :]


@dataclass(frozen=True)
class Device:
    """A test device: identity key, key-agreement key and its record."""

    identity: Ed25519PrivateKey
    agreement: X25519PrivateKey

    @property
    def record(self) -> DeviceRecord:
        """The device record fields (as the verified record would give them)."""
        pub = ed25519_raw_public(self.identity)
        return DeviceRecord(key_id(pub), pub, x25519_raw_public(self.agreement), 1)


def device(label: str) -> Device:
    """Return the test device named ``label``."""
    return Device(ed_key(label + " ed25519"), x_key(label + " x25519"))


MODEL_SIGNER = ed_key("model_signer")
AGGREGATOR = ed_key("aggregator")
ROGUE = ed_key("rogue_signer")
NEW_SIGNER = ed_key("new_signer")
DEVICE = device("device")
OTHER = device("other_device")
THIRD = device("third_device")
REGISTRAR = ed_key("registrar")


def keys_table() -> dict[str, str]:
    """Return keys.tsv as name -> hex, in file order."""
    return {
        "model_signer_pub": ed25519_raw_public(MODEL_SIGNER).hex(),
        "model_signer_priv": ed25519_private_seed(MODEL_SIGNER).hex(),
        "aggregator_pub": ed25519_raw_public(AGGREGATOR).hex(),
        "aggregator_priv": ed25519_private_seed(AGGREGATOR).hex(),
        "rogue_signer_pub": ed25519_raw_public(ROGUE).hex(),
        "rogue_signer_priv": ed25519_private_seed(ROGUE).hex(),
        "new_signer_pub": ed25519_raw_public(NEW_SIGNER).hex(),
        "device_ed25519_pub": ed25519_raw_public(DEVICE.identity).hex(),
        "device_ed25519_priv": ed25519_private_seed(DEVICE.identity).hex(),
        "device_x25519_pub": x25519_raw_public(DEVICE.agreement).hex(),
        "device_x25519_priv": x25519_private_raw(DEVICE.agreement).hex(),
        "device_id": DEVICE.record.device_id.hex(),
        "other_device_x25519_pub": x25519_raw_public(OTHER.agreement).hex(),
        "other_device_id": OTHER.record.device_id.hex(),
        "registrar_pub": ed25519_raw_public(REGISTRAR).hex(),
    }


# package id -> the label its content key and ephemeral key derive from.
PACKAGE_LABELS: dict[bytes, str] = {}


def package(
    label: str,
    *,
    version: int = 1,
    backbone: bytes | None = None,
    encrypt: bool = False,
    chunk_log2: int = 12,
    head: tuple[int, int] = (8, 3),
    signer: Ed25519PrivateKey = MODEL_SIGNER,
    metadata: dict[str, object] | None = None,
    enforce_limits: bool = True,
    infer: InferPolicy | None = None,
) -> bytes:
    """Build a package with ids and keys derived from ``label``."""
    w, b = head_arrays("head " + label, *head)
    out = io.BytesIO()
    PACKAGE_LABELS[seed("package id " + label)[:16]] = label
    build_package(
        out,
        signer=signer,
        version=version,
        W=w,
        b=b,
        backbone=backbone,
        encrypt_backbone=encrypt,
        chunk_log2=chunk_log2,
        metadata=metadata if metadata is not None else {"name": label},
        package_id=seed("package id " + label)[:16],
        content_key=seed("content key " + label),
        ephemeral_key=x_key("ephemeral " + label),
        enforce_limits=enforce_limits,
        infer=infer,
    )
    return out.getvalue()


def key_wrap(
    data: bytes, to: Device = DEVICE, signer: Ed25519PrivateKey = MODEL_SIGNER
) -> bytes | None:
    """The key wrap of ``to`` for the package ``data`` as it is (after any re-signing).

    None when ``data`` is too broken to name a package built here (its
    refusal comes before any wrap is read).
    """
    if len(data) < HEADER_SIZE + FIXED_SIZE:
        return None
    body = data[HEADER_SIZE:]
    fixed = MANIFEST_FIXED.read(body[:FIXED_SIZE])
    label = PACKAGE_LABELS.get(fixed["package_id"])
    signed_len = HEADER_SIZE + int.from_bytes(data[8:12], "little")
    if label is None or signed_len > len(data):
        return None
    wrapped = wrap_content_key(seed("content key " + label), x_key("ephemeral " + label),
                               x25519_raw_public(to.agreement), to.record.device_id,
                               fixed["package_id"], fixed["version"])
    digest = hashlib.sha256(data[:signed_len]).digest()
    return build_key_wrap(signer, KeyWrap(to.record.device_id, fixed["package_id"], digest,
                                          wrapped))


Edit = Callable[[bytearray, bytearray], bytearray | None]


def resign(data: bytes, edit: Edit, signer: Ed25519PrivateKey = MODEL_SIGNER) -> bytes:
    """Apply ``edit(header, body)`` (may return a new body), fix body_len and re-sign."""
    body_len = int.from_bytes(data[8:12], "little")
    header = bytearray(data[:HEADER_SIZE])
    body = bytearray(data[HEADER_SIZE : HEADER_SIZE + body_len])
    payload = data[HEADER_SIZE + body_len + SIG_SIZE :]
    new_body = edit(header, body)
    body = new_body if new_body is not None else body
    header[8:12] = len(body).to_bytes(4, "little")
    signed = bytes(header + body)
    return signed + sign_digest(signer, signed) + payload


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    """Return ``data`` with one byte XOR-ed with ``mask``."""
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def envelope_len(data: bytes) -> int:
    """Return 28 + body_len + 64 of an envelope."""
    return HEADER_SIZE + int.from_bytes(data[8:12], "little") + SIG_SIZE


def manifest_offsets(body: bytes | bytearray) -> tuple[int, int]:
    """Return (chunk digests, head ciphertext) offsets in a manifest body."""
    chunks = MANIFEST_FIXED.read(body)["chunk_count"]
    return FIXED_SIZE, FIXED_SIZE + 32 * chunks


@dataclass
class Vector:
    """One row of index.tsv / manifest.json."""

    name: str
    kind: str
    file: str
    expect: str
    description: str
    stored_version: int = 0
    stored_epoch: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def extra_text(self) -> str:
        """The extra column: comma-separated key=value."""
        return ",".join(f"{k}={v}" for k, v in self.extra.items())


def ok_extra(
    version: int, backbone: bytes | None, label: str, head: tuple[int, int] = (8, 3)
) -> dict[str, str]:
    """Return the extra fields of an ok package: version and plaintext digests."""
    w, b = head_arrays("head " + label, *head)
    head_bytes = w.astype("<f4").tobytes() + b.astype("<f4").tobytes()
    return {
        "version": str(version),
        "head_sha256": hashlib.sha256(head_bytes).hexdigest(),
        "backbone_sha256": hashlib.sha256(backbone).hexdigest() if backbone else "",
    }


def build_all() -> tuple[dict[str, bytes], list[Vector]]:
    """Build every vector file and the list of rows."""
    files: dict[str, bytes] = {}
    rows: list[Vector] = []

    def add(
        name: str,
        kind: str,
        data: bytes,
        expect: str,
        description: str,
        *,
        file: str | None = None,
        **kw: object,
    ) -> None:
        fname = file or f"{name}.bin"
        if file is None:
            files[fname] = data
        rows.append(Vector(name, kind, fname, expect, description, **kw))

    def pkg(
        name: str,
        data: bytes,
        expect: str,
        description: str,
        stage: str = "load_begin",
        wrap: bytes | None = None,
        **kw: object,
    ) -> None:
        extra = dict(kw.pop("extra", None) or {"stage": stage})  # type: ignore[call-overload]
        wrap = wrap if wrap is not None else key_wrap(data) or default_wrap
        files[f"{name}.wrap.bin"] = wrap
        extra["wrap"] = f"{name}.wrap.bin"
        add(name, "package", data, expect, description, extra=extra, **kw)

    # --- ok packages ---
    head_only = package("pkg_ok_head_only")
    # Refusals before any wrap is read get this one.
    default_wrap = key_wrap(head_only)
    assert default_wrap is not None
    pkg(
        "pkg_ok_head_only",
        head_only,
        "ok",
        "head only, one recipient",
        extra=ok_extra(1, None, "pkg_ok_head_only"),
    )
    public_bb = stream("backbone public", 3 * 4096 + 2048)
    public = package("pkg_ok_public_backbone", backbone=public_bb)
    pkg(
        "pkg_ok_public_backbone",
        public,
        "ok",
        "public backbone, chunk 4096, 3.5 chunks (last one partial)",
        extra=ok_extra(1, public_bb, "pkg_ok_public_backbone"),
    )
    enc_bb = stream("backbone encrypted", 2 * 4096 + 1000)
    encrypted = package("pkg_ok_encrypted_backbone", backbone=enc_bb, encrypt=True)
    pkg(
        "pkg_ok_encrypted_backbone",
        encrypted,
        "ok",
        "encrypted backbone, chunk 4096, 3 chunks",
        extra=ok_extra(1, enc_bb, "pkg_ok_encrypted_backbone"),
    )

    # --- signature ---
    pkg(
        "pkg_bad_signature",
        flip(head_only, envelope_len(head_only) - 20, 0x04),
        "signature",
        "one bit of the signature flipped",
    )
    pkg(
        "pkg_body_flipped",
        flip(head_only, HEADER_SIZE + 8),
        "signature",
        "package id byte flipped, not re-signed",
    )

    # --- tampered ciphertexts (re-signed) ---
    def head_edit(_h: bytearray, body: bytearray) -> None:
        body[manifest_offsets(body)[1] + 5] ^= 0x01

    pkg(
        "pkg_tampered_head",
        resign(head_only, head_edit),
        "tampered",
        "head ciphertext byte flipped, re-signed",
    )

    # --- key wraps (docs/formats.md "Key wrap") ---
    wrap_key_at = HEADER_SIZE + KEY_WRAP_BODY.offset("wrapped_key") + 3

    def wrap_edit(_h: bytearray, body: bytearray) -> None:
        body[KEY_WRAP_BODY.offset("wrapped_key") + 3] ^= 0x01

    pkg(
        "pkg_wrap_tampered_key",
        head_only,
        "tampered",
        "the key wrap's wrapped content key byte flipped, wrap re-signed",
        wrap=resign(default_wrap, wrap_edit),
    )
    pkg(
        "pkg_wrap_bad_signature",
        head_only,
        "signature",
        "the key wrap's wrapped content key byte flipped, not re-signed",
        wrap=flip(default_wrap, wrap_key_at),
    )
    pkg(
        "pkg_wrap_other_device",
        head_only,
        "not-for-this-device",
        "the key wrap of another device (the package itself serves any device)",
        wrap=key_wrap(head_only, OTHER),
    )
    other_package = package("pkg_wrap_other_package")
    pkg(
        "pkg_wrap_other_package",
        head_only,
        "wrong-package",
        "this device's key wrap of another package",
        wrap=key_wrap(other_package),
    )

    def version_bump(_h: bytearray, body: bytearray) -> None:
        struct.pack_into("<Q", body, OFF("version"), 2)

    pkg(
        "pkg_wrap_other_manifest",
        resign(head_only, version_bump),
        "wrong-package",
        "version 1 -> 2 with the same package id, re-signed; the wrap of version 1 (same "
        "package id, other manifest digest)",
        wrap=default_wrap,
    )
    pkg(
        "pkg_wrap_unknown_signer",
        head_only,
        "unknown-signer",
        "the key wrap signed by the rogue key",
        wrap=key_wrap(head_only, signer=ROGUE),
    )
    pkg(
        "pkg_wrap_wrong_kind",
        head_only,
        "wrong-kind",
        "the device record given where the key wrap goes",
        wrap=build_device_record(DEVICE.identity, DEVICE.agreement),
    )
    pkg(
        "pkg_chunk_digest",
        flip(public, envelope_len(public) + 4096 + 7),
        "chunk-digest",
        "payload byte flipped in public chunk 1",
        stage="load_chunk",
    )

    def chunk_edit(_h: bytearray, body: bytearray) -> None:
        start = envelope_len(encrypted) + 4096 + 16
        chunk = flip(encrypted, start + 9)[start : start + 4096 + 16]
        digests = manifest_offsets(body)[0]
        body[digests + 32 : digests + 64] = hashlib.sha256(chunk).digest()

    tampered_chunk = resign(encrypted, chunk_edit)
    tampered_chunk = flip(tampered_chunk, envelope_len(encrypted) + 4096 + 16 + 9)
    pkg(
        "pkg_tampered_chunk",
        tampered_chunk,
        "tampered",
        "encrypted chunk 1 ciphertext flipped, its digest recomputed, re-signed",
        stage="load_chunk",
    )

    # --- truncation and length ---
    env_end = envelope_len(public)
    body_len = env_end - HEADER_SIZE - SIG_SIZE
    for cls, cut, stage in (
        ("header", 17, "load_begin"),
        ("body", HEADER_SIZE + body_len // 2, "load_begin"),
        ("signature", HEADER_SIZE + body_len + 40, "load_begin"),
        ("payload", env_end + 4096 + 100, "load_chunk"),
    ):
        pkg(
            f"pkg_truncated_{cls}",
            public[:cut],
            "malformed",
            f"public-backbone package truncated to {cut} bytes, inside the {cls}",
            stage=stage,
        )
    pkg(
        "pkg_trailing_byte",
        head_only + b"\x00",
        "malformed",
        "one byte after a package without backbone (the host sees it, not the TA)",
        stage="file",
    )

    # --- header fields (re-signed so only the field is wrong) ---
    def magic_edit(header: bytearray, _b: bytearray) -> None:
        header[0:4] = b"EDGX"

    pkg("pkg_bad_magic", resign(head_only, magic_edit), "malformed", "magic EDGX, re-signed")

    def version_edit(version: int) -> Edit:
        def edit(header: bytearray, _b: bytearray) -> None:
            header[4:6] = version.to_bytes(2, "little")

        return edit

    pkg(
        "pkg_format_version_3",
        resign(head_only, version_edit(3)),
        "unsupported-version",
        "format version 3, re-signed",
    )
    pkg(
        "pkg_format_version_1",
        resign(head_only, version_edit(1)),
        "retired-format",
        "format version 1 (the retired recipient-list format), re-signed",
    )
    record = build_device_record(DEVICE.identity, DEVICE.agreement)
    files["device_record.bin"] = record
    pkg(
        "pkg_wrong_kind_device_record",
        record,
        "wrong-kind",
        "the device record given where a package goes",
        file="device_record.bin",
    )

    # --- device-side policy ---
    pkg(
        "pkg_rollback_older",
        package("pkg_rollback_older", version=3),
        "rollback",
        "version 3 with stored version 5",
        stored_version=5,
    )
    pkg(
        "pkg_rollback_equal",
        package("pkg_rollback_equal", version=5),
        "rollback",
        "version 5 with stored version 5",
        stored_version=5,
    )
    pkg(
        "pkg_unknown_signer",
        package("pkg_unknown_signer", signer=ROGUE),
        "unknown-signer",
        "signed by the rogue key",
    )

    # --- limits ---
    probe = package("pkg_oversized_manifest", metadata={"pad": ""}, enforce_limits=False)
    pad = MAX_MANIFEST_SIZE + 1 - envelope_len(probe)
    big = package("pkg_oversized_manifest", metadata={"pad": "x" * pad}, enforce_limits=False)
    assert envelope_len(big) == MAX_MANIFEST_SIZE + 1
    pkg(
        "pkg_oversized_manifest",
        big,
        "oversized",
        "manifest of 1 MiB + 1 bytes (metadata padded; the envelope limit fires first)",
    )
    pkg(
        "pkg_oversized_head",
        package("pkg_oversized_head", head=(4096, 32), enforce_limits=False),
        "oversized",
        "head 4096x32: I*O+O = 131104 > 131072, each dimension in range, manifest < 1 MiB",
    )

    def too_many_chunks(_h: bytearray, body: bytearray) -> None:
        log2 = body[OFF("chunk_log2")]
        struct.pack_into("<Q", body, OFF("backbone_len"), (MAX_CHUNKS + 1) << log2)

    pkg(
        "pkg_backbone_too_many_chunks",
        resign(public, too_many_chunks),
        "oversized",
        "backbone length implying 4097 chunks (chunk count field unchanged), re-signed: the "
        "implied count is over the limit before it is compared",
    )

    def big_chunks(_h: bytearray, body: bytearray) -> None:
        body[OFF("chunk_log2")] = 21

    pkg(
        "pkg_chunk_log2_too_large",
        resign(public, big_chunks),
        "oversized",
        "chunk_log2 = 21 (limit 20), re-signed",
    )
    huge = bytearray(head_only)
    huge[8:12] = struct.pack("<I", 0x7FFFFF00)
    pkg(
        "pkg_oversized_header",
        bytes(huge),
        "oversized",
        "header claims a body of 2 GiB in a short input: oversized from the header alone, "
        "before the truncation check",
    )

    # --- inference release (manifest bytes 92..103) ---
    pkg(
        "pkg_ok_topk_budget",
        package("pkg_ok_topk_budget", infer=InferPolicy(InferRelease.TOPK, 2, 5000, 8.0)),
        "ok",
        "top-2 labels, 5000 rows per version, |feature| <= 8",
        extra=ok_extra(1, None, "pkg_ok_topk_budget"),
    )

    def infer_edit(offset: int, value: bytes) -> Edit:
        def edit(_h: bytearray, body: bytearray) -> None:
            body[offset : offset + len(value)] = value

        return edit

    for name, offset, value, what in (
        ("pkg_infer_release_unknown", OFF("infer_release"), b"\x04", "inference release 4"),
        ("pkg_infer_reserved_nonzero", OFF("reserved3"), b"\x01", "reserved byte 93 = 1"),
        ("pkg_infer_topk_k_too_large", OFF("infer_release"), b"\x02\x00\x03\x00",
         "top-k with k = O = 3"),
        ("pkg_infer_label_with_k", OFF("infer_release"), b"\x01\x00\x01\x00",
         "label release with k = 1"),
        ("pkg_infer_bound_nan", OFF("feature_bound"), struct.pack("<f", float("nan")),
         "feature bound NaN"),
        ("pkg_infer_bound_negative", OFF("feature_bound"), struct.pack("<f", -1.0),
         "feature bound -1"),
    ):
        pkg(name, resign(head_only, infer_edit(offset, value)), "malformed", what + ", re-signed")

    # --- manifest field defects (re-signed) ---
    def reserved_edit(_h: bytearray, body: bytearray) -> None:
        body[OFF("reserved1")] = 0x01

    pkg(
        "pkg_reserved_nonzero",
        resign(head_only, reserved_edit),
        "malformed",
        "manifest reserved byte 60 = 1 (the recipient count of format 1), re-signed",
    )

    def flags_edit(_h: bytearray, body: bytearray) -> None:
        struct.pack_into("<I", body, OFF("flags"), 0x2)

    pkg(
        "pkg_encrypted_without_backbone",
        resign(head_only, flags_edit),
        "malformed",
        "flags = backbone-encrypted without backbone, re-signed",
    )

    def count_edit(_h: bytearray, body: bytearray) -> bytearray:
        chunks = MANIFEST_FIXED.read(body)["chunk_count"]
        head_at = manifest_offsets(body)[1]
        struct.pack_into("<I", body, OFF("chunk_count"), chunks + 1)
        return body[:head_at] + hashlib.sha256(b"extra").digest() + body[head_at:]

    pkg(
        "pkg_chunk_count_inconsistent",
        resign(public, count_edit),
        "malformed",
        "chunk count 5 for 3.5 chunks, an extra digest listed so lengths agree, re-signed",
    )

    # --- anchor statements ---
    new_pub = ed25519_raw_public(NEW_SIGNER)
    statement = build_anchor_statement(MODEL_SIGNER, 1, 1, new_pub)
    anchor_extra = {"role": "1", "current": "model_signer_pub"}

    def anchor(name: str, data: bytes, expect: str, description: str, **kw: object) -> None:
        extra = kw.pop("extra", anchor_extra)
        add(name, "anchor_statement", data, expect, description, extra=extra, **kw)

    anchor("anchor_ok", statement, "ok", "model signer -> new_signer, epoch 1, stored epoch 0")
    anchor(
        "anchor_stale",
        statement,
        "stale-statement",
        "anchor_ok.bin replayed: epoch 1 with stored epoch 1",
        stored_epoch=1,
        file="anchor_ok.bin",
    )
    anchor(
        "anchor_unknown_signer",
        build_anchor_statement(ROGUE, 1, 1, new_pub),
        "unknown-signer",
        "model-signer statement signed by the rogue key",
    )
    anchor(
        "anchor_bad_signature",
        flip(statement, len(statement) - 1, 0x80),
        "signature",
        "one bit of the signature flipped",
    )

    def role_edit(_h: bytearray, body: bytearray) -> None:
        body[ANCHOR_STATEMENT_BODY.offset("role")] = 9  # 3 is the registrar

    anchor(
        "anchor_bad_role",
        resign(statement, role_edit),
        "malformed",
        "role 9, re-signed by the model signer",
        extra={"role": "9", "current": "model_signer_pub"},
    )

    policy_and_ticket_vectors(add)
    update_vectors(add)
    secagg_vectors(add)

    add(
        "device_record_ok",
        "device_record",
        record,
        "ok",
        "the device's self-signed record",
        file="device_record.bin",
    )
    return files, rows


def ed25519_points() -> list[tuple[str, str, str]]:
    """Rows of ed25519_points.tsv: (hex encoding, class, note) for the strict key check.

    Every point of order dividing 8 (found as multiples of [L]Q for a Q whose
    [L]Q has order 8), non-canonical encodings (y >= p; x = 0 with the sign bit
    set), encodings with no curve point, and public keys of real key pairs.
    """
    from edge.formats import ed25519_strict as ed

    p = ed.P

    def enc(x: int, y: int) -> str:
        return (y | ((x & 1) << 255)).to_bytes(32, "little").hex()

    def add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        (x1, y1), (x2, y2) = a, b
        t = ed.D * x1 * x2 * y1 * y2 % p
        return ((x1 * y2 + y1 * x2) * pow(1 + t, p - 2, p) % p,
                (y1 * y2 + x1 * x2) * pow(1 - t, p - 2, p) % p)

    def mul(k: int, pt: tuple[int, int]) -> tuple[int, int]:
        acc, cur = (0, 1), pt
        while k:
            if k & 1:
                acc = add(acc, cur)
            cur, k = add(cur, cur), k >> 1
        return acc

    rows: list[tuple[str, str, str]] = []
    torsion: tuple[int, int] | None = None
    for counter in range(1000):
        y = int.from_bytes(hashlib.sha256(b"edge torsion %d" % counter).digest(), "little") % p
        point = ed.decode_point(y.to_bytes(32, "little"))
        if isinstance(point, str):
            continue
        q = mul(ed.L, point)
        if mul(4, q) != (0, 1):  # order exactly 8
            torsion = q
            break
    assert torsion is not None
    for k in range(8):
        pt = mul(k, torsion)
        rows.append((enc(*pt), "small-order", f"[{k}]T, T of order 8"))
    for k in range(19):  # y = p + k < 2^255: the only non-canonical y values
        rows.append(((p + k).to_bytes(32, "little").hex(), "non-canonical", f"y = p + {k}"))
    rows.append((((1 << 255) | 1).to_bytes(32, "little").hex(), "non-canonical",
                 "identity with the sign bit set (x = 0)"))
    found = 0
    for counter in range(1000):
        raw = hashlib.sha256(b"edge off-curve %d" % counter).digest()
        raw = raw[:31] + bytes([raw[31] & 0x7F])
        if ed.decode_point(raw) == "not a point of the curve":
            rows.append((raw.hex(), "off-curve", f"no x for this y ({counter})"))
            found += 1
            if found == 4:
                break
    for label in ("model_signer", "aggregator", "device_identity"):
        rows.append((ed25519_raw_public(ed_key(label)).hex(), "ok", f"public key of {label}"))
    for k in (1, 2, 3, 12345):  # multiples of the base point B, y = 4/5
        base = (ed.decode_point((4 * pow(5, p - 2, p) % p).to_bytes(32, "little")))
        rows.append((enc(*mul(k, base)), "ok", f"[{k}]B"))
        rows.append((enc(*add(mul(k, base), torsion)), "ok", f"[{k}]B + T (mixed order)"))
    return rows


POLICY_ARGS: dict[str, Any] = dict(
    version=1, noise_multiplier_min=1.1, max_example_clip=1.0, max_update_clip=4.0,
    sampling_rate=0.25, max_steps_per_round=8, step_budget=1000, target_epsilon=3.0,
    delta=1e-5)
TICKET_ARGS: dict[str, Any] = dict(
    round_id=2, model_version=1, package_id=bytes(range(16, 32)), nonce=bytes(range(16)),
    issued_at=1_700_000_000,
    deadline=1_700_000_600, example_clip=1.0, noise_multiplier=1.1, update_clip=4.0,
    learning_rate=0.1, epochs=1, batch_size=8)


def policy_and_ticket_vectors(add: Callable[..., None]) -> None:
    """Privacy policies and round tickets: one ok vector and one per refusal class."""
    kinds = (
        ("policy", "privacy_policy", MODEL_SIGNER, AGGREGATOR, Kind.ROUND_TICKET,
         lambda **kw: build_policy(MODEL_SIGNER, **(POLICY_ARGS | kw)),
         dict(sampling_rate=1.5), 26, Kind.PRIVACY_POLICY),
        ("ticket", "round_ticket", AGGREGATOR, MODEL_SIGNER, Kind.PRIVACY_POLICY,
         lambda **kw: build_ticket(AGGREGATOR, **(TICKET_ARGS | kw)),
         dict(epochs=0), TICKET_BODY.offset("reserved"), Kind.ROUND_TICKET),
    )
    for short, kind, signer, other, wrong, build, bad_field, reserved_at, code in kinds:
        ok = build()
        body = ok[HEADER_SIZE:-SIG_SIZE]

        def reserved(_h: bytearray, b: bytearray, at: int = reserved_at) -> None:
            b[at] = 1

        # The retired layout of a kind whose format changed (a policy before its
        # steps -> epsilon table, a ticket before the package id: 1), else the next one.
        bad_version = format_version(code) - 1 or format_version(code) + 1

        def version(h: bytearray, _b: bytearray, v: int = bad_version) -> None:
            h[4] = v

        add(f"{short}_ok", kind, ok, "ok", f"a valid {kind.replace('_', ' ')}")
        add(f"{short}_bad_field", kind, build(check=False, **bad_field), "malformed",
            f"{bad_field} out of its range, signed")
        add(f"{short}_reserved_nonzero", kind, resign(ok, reserved, signer), "malformed",
            f"reserved byte {reserved_at} set, re-signed")
        add(f"{short}_truncated", kind, ok[:-1], "malformed", "last signature byte missing")
        add(f"{short}_short_body", kind, resign(ok, lambda _h, b: b[:-1], signer), "malformed",
            "body one byte short, re-signed")
        add(f"{short}_oversized", kind, resign(ok, lambda _h, b: b + b"\0", signer),
            "oversized", "body one byte over the fixed size, re-signed")
        add(f"{short}_format_version_{bad_version}", kind, resign(ok, version, signer),
            "unsupported-version", f"format version {bad_version}, re-signed")
        add(f"{short}_wrong_kind", kind, build_envelope(wrong, body, signer), "wrong-kind",
            f"the same body under kind {int(wrong)}")
        add(f"{short}_unknown_signer", kind, build_envelope(
            Kind.PRIVACY_POLICY if short == "policy" else Kind.ROUND_TICKET, body, other),
            "unknown-signer", "signed by the other anchor's key")
        add(f"{short}_bad_signature", kind, flip(ok, len(ok) - 1, 0x80), "signature",
            "one bit of the signature flipped")


UPDATE_ARGS: dict[str, Any] = dict(
    round_id=2, nonce=bytes(range(16)), model_version=1, package_id=bytes(range(16, 32)),
    example_count=40, steps=4,
    total_steps=12, update_clip=4.0, noise_multiplier=1.1, example_clip=1.0)


def update_vectors(add: Callable[..., None]) -> None:
    """Sealed updates: the TA's own output for fixed inputs, then one per refusal class.

    ``stage=envelope`` defects are refused by the envelope checks both languages
    share; ``stage=body`` ones by the body checks of the aggregator's verifier
    (the TA writes updates and never parses one).
    """
    delta = (np.frombuffer(stream("update delta", 27), dtype=np.uint8).astype(np.float32)
             - 128.0) / 256.0  # 27 = a 8 x 3 head: norm about 1.4, under U = 4
    ok = build_update(DEVICE.identity, delta=delta, **UPDATE_ARGS)
    expect = {"round_id": str(UPDATE_ARGS["round_id"]),
              "model_version": str(UPDATE_ARGS["model_version"]),
              "param_count": str(delta.size)}

    def up(name: str, data: bytes, refusal: str, description: str, stage: str,
           audit: str | None = None) -> None:
        # ``audit``: the aggregator's audit class where it names the defect by what it
        # means for a round (the verifier checks the topic's device before the signer).
        extra = expect | {"stage": stage, "audit_refusal": audit or refusal}
        add(name, "sealed_update", data, refusal, description, extra=extra)

    def at(offset: int, value: bytes) -> Edit:
        def edit(_h: bytearray, body: bytearray) -> None:
            body[offset:offset + len(value)] = value
        return edit

    def sign(edit: Edit) -> bytes:
        return resign(ok, edit, DEVICE.identity)

    up("update_ok", ok, "ok", "as the TA seals it: 27 parameters, ‖Δ‖ < U", "envelope")
    up("update_truncated", ok[:-1], "malformed", "last signature byte missing", "envelope")
    up("update_bad_signature", flip(ok, len(ok) - 1, 0x80), "signature",
       "one bit of the signature flipped", "envelope")
    up("update_unknown_signer", build_update(OTHER.identity, delta=delta, **UPDATE_ARGS),
       "unknown-signer", "sealed by another device", "envelope", audit="topic-mismatch")
    up("update_wrong_kind", build_envelope(Kind.ROUND_TICKET, ok[HEADER_SIZE:-SIG_SIZE],
                                           DEVICE.identity),
       "wrong-kind", "the same body under kind 4", "envelope")
    up("update_format_version_1", resign(ok, lambda h, _b: h.__setitem__(4, 1),
                                         DEVICE.identity),
       "unsupported-version", "format version 1 (before the package id), re-signed",
       "envelope")
    reserved, mode = UPDATE_HEADER.offset("reserved1"), UPDATE_HEADER.offset("update_mode")
    count = UPDATE_HEADER.offset("param_count")
    up("update_reserved_nonzero", sign(at(reserved, b"\x01")), "malformed",
       f"reserved byte {reserved} set, re-signed", "body")
    up("update_mode_2", sign(at(mode, b"\x02")), "malformed",
       "update mode 2 outside a secure-aggregation round, re-signed", "body",
       audit="wrong-mode")
    up("update_param_count", sign(at(count, (28).to_bytes(4, "little"))), "malformed",
       "parameter count 28 with 27 values, re-signed", "body")
    up("update_delta_nan", sign(at(UPDATE_HEADER.size, np.array([np.nan], "<f4").tobytes())),
       "malformed", "first delta value NaN, re-signed", "body")
    up("update_over_clip", build_update(DEVICE.identity, delta=delta * 8, **UPDATE_ARGS),
       "weaker-than-policy", "‖Δ‖ about 11 above U = 4", "body", audit="norm")


def secagg_vectors(add: Callable[..., None]) -> None:
    """Secure-aggregation artefacts: roster entries (certificate and advert), directives,
    shares bundles and reveals, each valid once and then once per refusal class.

    The round binding and the device a directive is checked for are in ``extra``.
    C checks roster entries and directives as SECAGG_SHARE/RECEIVE/UNMASK parse
    them; bundles and reveals, which the TA writes and never parses, at the envelope
    (``stage=envelope``), their bodies in Python (``stage=body``).
    """
    from edge.formats import secagg as fmt
    from edge.formats.layouts import CERT_BODY, REVEALS_HEADER, SHARES_HEADER
    from edge.tee_abi import SecAggShare, SecAggStage

    binding = fmt.RoundBinding(fmt.fleet_id("vectors"), 7, bytes(range(16)), 3)
    other_round = fmt.RoundBinding(binding.fleet_id, 8, binding.nonce, 3)
    dev_id = DEVICE.record.device_id
    extra = {"binding": binding.raw().hex(), "self": dev_id.hex()}
    c_pub, s_pub = (x25519_raw_public(x_key("secagg c")), x25519_raw_public(x_key("secagg s")))
    cert = fmt.build_cert(REGISTRAR, ed25519_raw_public(DEVICE.identity), binding.fleet_id)
    advert = fmt.build_advert(DEVICE.identity, binding, c_pub, s_pub)

    def entry(name: str, data: bytes, expect: str, description: str) -> None:
        add(name, "secagg_entry", data, expect, description, extra=extra)

    entry("secagg_entry_ok", cert + advert, "ok", "a certified device's advert")
    entry("secagg_entry_cert_rogue",
          fmt.build_cert(ROGUE, ed25519_raw_public(DEVICE.identity), binding.fleet_id) + advert,
          "unknown-enrollment", "certificate signed by another key than the registrar")
    entry("secagg_entry_cert_other_fleet",
          fmt.build_cert(REGISTRAR, ed25519_raw_public(DEVICE.identity), bytes(16)) + advert,
          "unknown-enrollment", "certificate for another fleet")
    bad_id = build_envelope(Kind.ENROLLMENT_CERT, CERT_BODY.pack({
        "device_id": OTHER.record.device_id, "identity_pub": ed25519_raw_public(DEVICE.identity),
        "fleet_id": binding.fleet_id}), REGISTRAR)
    entry("secagg_entry_cert_wrong_id", bad_id + advert, "unknown-enrollment",
          "certificate whose device id is not its key's id")
    entry("secagg_entry_advert_forged",
          cert + fmt.build_advert(OTHER.identity, binding, c_pub, s_pub, device_id=dev_id),
          "forged-advert", "advert for the device signed by another device's key")
    entry("secagg_entry_advert_other_round",
          cert + fmt.build_advert(DEVICE.identity, other_round, c_pub, s_pub),
          "wrong-round", "advert bound to another round")

    ids = sorted([dev_id, OTHER.record.device_id, THIRD.record.device_id])

    def directive(name: str, data: bytes, expect: str, description: str,
                  stage: SecAggStage = SecAggStage.SURVIVORS) -> None:
        add(name, "secagg_directive", data, expect, description,
            extra={**extra, "stage": str(int(stage))})

    def d(stage: SecAggStage, entries: list[bytes], *, by: Ed25519PrivateKey = AGGREGATOR,
          b: fmt.RoundBinding = binding, recipient: bytes = bytes(16)) -> bytes:
        return fmt.build_directive(by, stage, b, entries, recipient)

    ok = d(SecAggStage.SURVIVORS, ids)
    directive("secagg_directive_ok", ok, "ok", "a survivor list of three devices")
    inbox = d(SecAggStage.INBOX, [OTHER.record.device_id + stream("ct", 64)], recipient=dev_id)
    directive("secagg_directive_inbox_ok", inbox, "ok", "an inbox with one share pair",
              SecAggStage.INBOX)
    directive("secagg_directive_inbox_other_device",
              d(SecAggStage.INBOX, [], recipient=OTHER.record.device_id),
              "not-for-this-device", "an inbox for another device", SecAggStage.INBOX)
    directive("secagg_directive_wrong_stage", inbox, "wrong-kind",
              "an inbox where a survivor list goes")
    directive("secagg_directive_unsorted", d(SecAggStage.SURVIVORS, ids[::-1]), "malformed",
              "device ids not increasing")
    directive("secagg_directive_duplicate", d(SecAggStage.SURVIVORS, [ids[0], ids[0]]),
              "malformed", "a device listed twice")
    directive("secagg_directive_other_round", d(SecAggStage.SURVIVORS, ids, b=other_round),
              "wrong-round", "bound to another round")
    directive("secagg_directive_unknown_signer", d(SecAggStage.SURVIVORS, ids, by=ROGUE),
              "unknown-signer", "signed by another key than the aggregator")
    directive("secagg_directive_bad_signature", flip(ok, len(ok) - 40), "signature",
              "one bit of the signature flipped")
    directive("secagg_directive_truncated", ok[:-1], "malformed", "one byte short")

    def over(_h: bytearray, body: bytearray) -> None:
        body[4:8] = (1025).to_bytes(4, "little")

    directive("secagg_directive_count_over", resign(ok, over, AGGREGATOR), "oversized",
              "entry count 1025, above the cohort limit")

    def head(layout: object, **fields: object) -> bytes:
        base = {"device_id": dev_id, "fleet_id": binding.fleet_id, "round_id": 7,
                "nonce": binding.nonce, "model_version": 3}
        return layout.pack({**base, **fields})  # type: ignore[attr-defined]

    pairs = [OTHER.record.device_id + stream("pair other", 64),
             THIRD.record.device_id + stream("pair third", 64)]
    pairs.sort()
    shares = build_envelope(Kind.SECAGG_SHARES, head(SHARES_HEADER, count=2) + b"".join(pairs),
                            DEVICE.identity)

    def device_msg(name: str, kind: str, data: bytes, expect: str, description: str,
                   stage: str) -> None:
        add(name, kind, data, expect, description, extra={**extra, "stage": stage})

    device_msg("secagg_shares_ok", "secagg_shares", shares, "ok", "two encrypted share pairs",
               "envelope")
    device_msg("secagg_shares_bad_signature", "secagg_shares", flip(shares, len(shares) - 40),
               "signature", "one bit of the signature flipped", "envelope")
    device_msg("secagg_shares_unsorted", "secagg_shares",
               build_envelope(Kind.SECAGG_SHARES, head(SHARES_HEADER, count=2)
                              + b"".join(pairs[::-1]), DEVICE.identity),
               "malformed", "recipients not increasing", "body")

    def reveal(owner: bytes, which: SecAggShare, x: int, share: bytes) -> bytes:
        return owner + bytes([which, x]) + bytes(6) + share.ljust(32, b"\0")

    entries = sorted([reveal(dev_id, SecAggShare.SEED, 1, stream("seed share", 16)),
                      reveal(OTHER.record.device_id, SecAggShare.SKEY, 2,
                             stream("key share", 32))])
    digest = fmt.digest16(ok)
    reveals = build_envelope(Kind.SECAGG_REVEALS,
                             head(REVEALS_HEADER, count=2, survivors_digest=digest)
                             + b"".join(entries), DEVICE.identity)
    device_msg("secagg_reveals_ok", "secagg_reveals", reveals, "ok",
               "a seed share and a key share", "envelope")
    device_msg("secagg_reveals_wrong_kind", "secagg_reveals",
               build_envelope(Kind.SECAGG_SHARES, reveals[HEADER_SIZE:-SIG_SIZE],
                              DEVICE.identity),
               "wrong-kind", "reveals under the shares kind", "envelope")
    seed_at = next(i for i, e in enumerate(entries) if e[16] == SecAggShare.SEED)
    padded = bytearray(entries[seed_at])
    padded[16 + 8 + 20] = 1  # a seed share is 16 bytes: the rest is zero
    bad = list(entries)
    bad[seed_at] = bytes(padded)
    device_msg("secagg_reveals_bad_padding", "secagg_reveals",
               build_envelope(Kind.SECAGG_REVEALS,
                              head(REVEALS_HEADER, count=2, survivors_digest=digest)
                              + b"".join(bad), DEVICE.identity),
               "malformed", "a seed share with non-zero padding", "body")


def secagg_rows() -> list[str]:
    """Rows of secagg.tsv: Shamir splits, PRG masks and quantized words, from Python's twins.

    ``shamir  secret  t  coefficients  points  shares`` (hex, "-" for none; coefficients and shares
    concatenated), ``prg  seed  sign  words-in  words-out`` (little-endian u32 hex),
    ``quant  clip  scale_log2  x  r  words`` (x as little-endian float64 hex),
    ``graph  seed  n  k  neighbours`` (each device's neighbours, as u16 LE roster indices of
    the devices sorted by id, device after device), ``pair  binding  z  seed`` and
    ``sharekey  binding  sender  recipient  sender_c_sk  sender_c_pub  recipient_c_pub  key``.
    """
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )

    from edge.secagg import graph, prg, shamir
    from edge.secagg.quantize import Quantizer

    rng = np.random.default_rng(11)
    rows = ["# kind\tfields (see tests/vectors/generate.py: secagg_rows)"]
    for length, t, n in ((16, 1, 1), (16, 2, 3), (32, 3, 5), (16, 6, 11), (32, 11, 20),
                         (1, 255, 255)):
        secret = rng.bytes(length)
        coeffs = [rng.bytes(length) for _ in range(t - 1)]
        xs = [int(x) for x in rng.choice(np.arange(1, 256), n, replace=False)]
        shares = shamir.split_with(secret, coeffs, xs)
        rows.append("\t".join(("shamir", secret.hex(), str(t), b"".join(coeffs).hex() or "-",
                               bytes(xs).hex(), b"".join(shares[x] for x in xs).hex())))
    for n, sign in ((1, 1), (37, 1), (512, -1), (1500, 1), (1500, -1)):
        seed = rng.bytes(16)
        before = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        mask = prg.expand(seed, n)
        after = before + mask if sign > 0 else before - mask
        rows.append("\t".join(("prg", seed.hex(), str(sign), before.astype("<u4").tobytes().hex(),
                               after.astype("<u4").tobytes().hex())))
    for clip, cohort in ((1.0, 10), (5.0, 1000), (0.25, 3)):
        q = Quantizer.for_cohort(clip, cohort)
        edges = np.array([clip, -clip, 0.0, -0.0, 1e-300, -1e-300, clip / 3, -clip / 7])
        x = np.concatenate([edges, rng.uniform(-clip, clip, 56)])
        r = rng.integers(0, 2**32, x.size, dtype=np.uint64).astype(np.uint32)
        r[:4] = [0, 2**32 - 1, 2**31, 1]
        words = q.quantize(x, r)
        rows.append("\t".join(("quant", struct.pack("<d", clip).hex(), str(q.scale_log2),
                               x.astype("<f8").tobytes().hex(), r.astype("<u4").tobytes().hex(),
                               words.astype("<u4").tobytes().hex())))
    for n, k in ((2, 1), (5, 4), (8, 4), (13, 6), (40, 10), (300, 20)):
        seed = rng.bytes(16)
        ids = sorted(rng.bytes(16) for _ in range(n))
        nb = graph.neighbours(ids, k, seed)
        flat = b"".join(ids.index(j).to_bytes(2, "little") for i in ids for j in nb[i])
        rows.append("\t".join(("graph", seed.hex(), str(n), str(k), flat.hex())))
    for _ in range(3):
        binding, z = rng.bytes(48), rng.bytes(32)
        rows.append("\t".join(("pair", binding.hex(), z.hex(), prg.pair_seed(z, binding).hex())))
    for _ in range(3):
        binding, sender, recipient = rng.bytes(48), rng.bytes(16), rng.bytes(16)
        priv = X25519PrivateKey.from_private_bytes(rng.bytes(32))
        peer = X25519PrivateKey.from_private_bytes(rng.bytes(32)).public_key()
        peer_raw = peer.public_bytes_raw()
        key = prg.share_key(priv.exchange(X25519PublicKey.from_public_bytes(peer_raw)), binding,
                            sender, recipient)
        rows.append("\t".join(("sharekey", binding.hex(), sender.hex(), recipient.hex(),
                                priv.private_bytes_raw().hex(),
                                priv.public_key().public_bytes_raw().hex(), peer_raw.hex(),
                                key.hex())))
    return rows


def dgauss_rows() -> list[str]:
    """Rows of dgauss.tsv: discrete Gaussian draws of edge/discrete_gaussian.py from SplitMix64.

    ``dgauss  sn  sd  seed  values`` (sigma² = sn/sd; values comma-separated decimal integers), all
    within the TA's range (sd ≤ 2^8, sigma² ≤ 2^40): ta/dgauss.c fed the same words must agree.
    """
    from edge import discrete_gaussian as dg

    rows = ["# kind\tsn\tsd\tseed\tvalues (see tests/vectors/generate.py: dgauss_rows)"]
    for sn, sd, seed, count in ((1, 1, 1, 200), (1, 4, 2, 200), (1, 256, 3, 200), (9, 4, 4, 200),
                                (3, 7, 5, 200), (2, 1, 6, 200), (4000000, 3, 7, 100),
                                (2**40 * 256, 256, 8, 50), (1, 255, 9, 200), (255, 1, 10, 100)):
        words = dg.splitmix64(seed)
        values = [dg.sample(sn, sd, words.__next__) for _ in range(count)]
        rows.append("\t".join(("dgauss", str(sn), str(sd), str(seed),
                               ",".join(map(str, values)))))
    return rows


def write_all(out: Path) -> None:
    """Write the vector files, manifest.json, keys.tsv and index.tsv into ``out``."""
    files, rows = build_all()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.bin"):
        if stale.name not in files:
            stale.unlink()
    for name, data in sorted(files.items()):
        (out / name).write_bytes(data)
    keys = keys_table()
    (out / "keys.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in keys.items()))
    (out / "ed25519_points.tsv").write_text(
        "# encoding\tclass (ok, small-order, non-canonical, off-curve)\tnote\n"
        + "".join("\t".join(r) + "\n" for r in ed25519_points()))
    (out / "secagg.tsv").write_text("\n".join(secagg_rows()) + "\n")
    (out / "dgauss.tsv").write_text("\n".join(dgauss_rows()) + "\n")
    lines = ["\t".join(INDEX_COLUMNS)]
    for r in rows:
        lines.append(
            "\t".join(
                (
                    r.name,
                    r.kind,
                    r.file,
                    r.expect,
                    f"0x{TA_CODES[r.expect]:08X}",
                    str(r.stored_version),
                    str(r.stored_epoch),
                    r.extra_text(),
                )
            )
        )
    (out / "index.tsv").write_text("\n".join(lines) + "\n")
    manifest = {
        "generator": "tests/vectors/generate.py",
        "format_version": 1,
        "keys": keys,
        "vectors": [
            {
                "name": r.name,
                "kind": r.kind,
                "file": r.file,
                "expect": r.expect,
                "ta_code": f"0x{TA_CODES[r.expect]:08X}",
                "stored_version": r.stored_version,
                "stored_epoch": r.stored_epoch,
                "extra": r.extra,
                "description": r.description,
                "sha256": hashlib.sha256((out / r.file).read_bytes()).hexdigest(),
            }
            for r in rows
        ],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Parse ``--out`` and write the vectors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    write_all(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
