"""Model package manifest (the body of a kind-1 envelope): fields, limits, encode, parse."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from edge import tee_abi
from edge.errors import Malformed, Oversized
from edge.formats.keyschedule import TAG_SIZE
from edge.formats.layouts import MANIFEST_FIXED
from edge.tee_abi import InferRelease, PackageFlag

MAX_MANIFEST_SIZE = tee_abi.MAX_MANIFEST_SIZE
MAX_CHUNKS = tee_abi.MAX_CHUNKS
MIN_CHUNK_LOG2 = tee_abi.MIN_CHUNK_LOG2
MAX_CHUNK_LOG2 = tee_abi.MAX_CHUNK_LOG2
MAX_HEAD_IN = tee_abi.MAX_HEAD_IN
MAX_HEAD_OUT = tee_abi.MAX_HEAD_OUT
MAX_HEAD_PARAMS = tee_abi.MAX_HEAD_PARAMS
MAX_METADATA = tee_abi.MAX_METADATA

FLAG_BACKBONE = PackageFlag.BACKBONE
FLAG_BACKBONE_ENCRYPTED = PackageFlag.BACKBONE_ENCRYPTED
# An int: ~ of an IntFlag keeps only known bits, so it could not find unknown ones.
KNOWN_FLAGS = int(FLAG_BACKBONE | FLAG_BACKBONE_ENCRYPTED)

FIXED_SIZE = MANIFEST_FIXED.size
DIGEST_SIZE = 32
PACKAGE_ID_SIZE = 16

INFER_RELEASE_NAMES = {InferRelease.NONE: "none", InferRelease.LABEL: "label",
                       InferRelease.TOPK: "top-k", InferRelease.SCORES: "scores"}


@dataclass(frozen=True)
class InferPolicy:
    """The inference release a package carries, signed with it (docs/formats.md)."""

    release: InferRelease = InferRelease.LABEL
    top_k: int = 0  # labels per row for TOPK, 1 <= k < O; else 0
    budget: int = 0  # rows INFER may answer per model version; 0 = no budget
    feature_bound: float = 0.0  # every |feature| <= bound; 0 = no bound

    @property
    def name(self) -> str:
        """``none``, ``label``, ``top-k`` or ``scores``."""
        return INFER_RELEASE_NAMES[self.release]


def check_infer_policy(p: InferPolicy, head_out: int) -> None:
    """Refuse an inference release the TA refuses (``Malformed``), naming the field."""
    if p.release not in INFER_RELEASE_NAMES:
        raise Malformed(f"manifest: inference release {int(p.release)} is not 0..3")
    if p.release == InferRelease.TOPK:
        if not 1 <= p.top_k < head_out:
            raise Malformed(f"manifest: top-k k = {p.top_k} is not in 1..{head_out - 1} "
                            f"(head output {head_out})")
    elif p.top_k:
        raise Malformed(f"manifest: top-k k = {p.top_k} without the top-k release")
    if not 0 <= p.budget < 2**32:
        raise Malformed(f"manifest: query budget {p.budget} is not in 0..2^32-1")
    bound = struct.unpack("<f", struct.pack("<f", p.feature_bound))[0]
    if not math.isfinite(bound) or math.copysign(1.0, bound) < 0:
        raise Malformed(f"manifest: feature bound {p.feature_bound} is not finite and >= 0")


@dataclass(frozen=True)
class PackageManifest:
    """A model package manifest; ``parse_manifest`` guarantees every invariant."""

    version: int
    package_id: bytes
    flags: int
    ephemeral_pub: bytes
    head_in: int
    head_out: int
    backbone_len: int
    chunk_log2: int
    chunk_digests: tuple[bytes, ...]
    head_ciphertext: bytes
    metadata: bytes
    infer: InferPolicy = field(default_factory=InferPolicy)

    @property
    def has_backbone(self) -> bool:
        """Whether the package carries a backbone payload."""
        return bool(self.flags & FLAG_BACKBONE)

    @property
    def backbone_encrypted(self) -> bool:
        """Whether the backbone chunks are encrypted."""
        return bool(self.flags & FLAG_BACKBONE_ENCRYPTED)

    @property
    def chunk_size(self) -> int:
        """Plaintext chunk size ``C`` in bytes (0 without backbone)."""
        return 1 << self.chunk_log2 if self.has_backbone else 0

    @property
    def chunk_count(self) -> int:
        """Number of backbone chunks ``N``."""
        return len(self.chunk_digests)

    @property
    def head_params(self) -> int:
        """Number of float32 head parameters ``I*O + O``."""
        return self.head_in * self.head_out + self.head_out

    def plain_chunk_len(self, index: int) -> int:
        """Plaintext bytes of chunk ``index``."""
        if not 0 <= index < self.chunk_count:
            raise IndexError(index)
        return min(self.chunk_size, self.backbone_len - index * self.chunk_size)

    def stored_chunk_len(self, index: int) -> int:
        """Stored (payload) bytes of chunk ``index``."""
        extra = TAG_SIZE if self.backbone_encrypted else 0
        return self.plain_chunk_len(index) + extra

    @property
    def payload_len(self) -> int:
        """Bytes of the backbone payload that follows the envelope."""
        extra = TAG_SIZE * self.chunk_count if self.backbone_encrypted else 0
        return self.backbone_len + extra

    def metadata_object(self) -> dict[str, Any]:
        """The metadata as a JSON object (empty when there is none)."""
        return json.loads(self.metadata) if self.metadata else {}



def body_len_for(chunks: int, head_params: int, metadata: int) -> int:
    """Return the manifest length the counts imply."""
    return (
        FIXED_SIZE
        + DIGEST_SIZE * chunks
        + 4 * head_params
        + TAG_SIZE
        + metadata
    )


def chunks_for(backbone_len: int, chunk_log2: int) -> int:
    """Return ``ceil(L / 2^chunk_log2)``."""
    return -(-backbone_len // (1 << chunk_log2))


def check_head_shape(head_in: int, head_out: int) -> None:
    """Refuse a head size of zero (``Malformed``) or over a limit (``Oversized``)."""
    if head_in < 1 or head_out < 1:
        raise Malformed(f"head: size {head_in}x{head_out}, both dimensions must be at least 1")
    if head_in > MAX_HEAD_IN:
        raise Oversized(f"head: input size {head_in} exceeds {MAX_HEAD_IN}")
    if head_out > MAX_HEAD_OUT:
        raise Oversized(f"head: output size {head_out} exceeds {MAX_HEAD_OUT}")
    params = head_in * head_out + head_out
    if params > MAX_HEAD_PARAMS:
        raise Oversized(
            f"head: {head_in}x{head_out} has {params} parameters (I*O+O), exceeds {MAX_HEAD_PARAMS}"
        )


def check_backbone_layout(backbone_len: int, chunk_log2: int, chunk_count: int) -> None:
    """Refuse a backbone whose chunk size, count or length are out of range or inconsistent."""
    if backbone_len < 1:
        raise Malformed("manifest: backbone flag set but backbone length is 0")
    if chunk_log2 < MIN_CHUNK_LOG2:
        raise Malformed(f"manifest: chunk_log2 {chunk_log2} is below {MIN_CHUNK_LOG2}")
    if chunk_log2 > MAX_CHUNK_LOG2:
        raise Oversized(f"manifest: chunk_log2 {chunk_log2} exceeds {MAX_CHUNK_LOG2}")
    expected = chunks_for(backbone_len, chunk_log2)
    if expected > MAX_CHUNKS:
        raise Oversized(f"manifest: a backbone of {backbone_len} bytes in chunks of "
                        f"{1 << chunk_log2} needs {expected} chunks, over {MAX_CHUNKS}")
    if chunk_count > MAX_CHUNKS:
        raise Oversized(f"manifest: chunk count {chunk_count} exceeds {MAX_CHUNKS}")
    if chunk_count != expected:
        raise Malformed(
            f"manifest: chunk count {chunk_count} but backbone of {backbone_len} bytes in "
            f"chunks of {1 << chunk_log2} needs {expected}"
        )


def check_metadata(metadata: bytes) -> None:
    """Refuse metadata over 4096 bytes (``Oversized``) or not a UTF-8 JSON object."""
    if len(metadata) > MAX_METADATA:
        raise Oversized(f"manifest: metadata of {len(metadata)} bytes exceeds {MAX_METADATA}")
    if not metadata:
        return
    try:
        value = json.loads(metadata.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"manifest: metadata is not UTF-8 JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise Malformed("manifest: metadata is not a JSON object")


def encode_manifest(m: PackageManifest) -> bytes:
    """Serialise a manifest without validating it (builders and test vectors)."""
    fixed = MANIFEST_FIXED.pack({
        "version": m.version,
        "package_id": m.package_id,
        "flags": m.flags,
        "ephemeral_pub": m.ephemeral_pub,
        "head_in": m.head_in,
        "head_out": m.head_out,
        "backbone_len": m.backbone_len,
        "chunk_log2": m.chunk_log2,
        "chunk_count": len(m.chunk_digests),
        "metadata_len": len(m.metadata),
        "infer_release": int(m.infer.release),
        "topk": m.infer.top_k,
        "query_budget": m.infer.budget,
        "feature_bound": m.infer.feature_bound,
    })
    parts = [fixed]
    parts += list(m.chunk_digests)
    parts += [m.head_ciphertext, m.metadata]
    return b"".join(parts)


def parse_manifest(body: bytes | memoryview) -> PackageManifest:
    """Parse and validate a manifest: fields, limits, lengths, metadata."""
    body = bytes(body)
    if len(body) < FIXED_SIZE:
        raise Malformed(
            f"manifest: {len(body)} bytes, shorter than the {FIXED_SIZE}-byte fixed part"
        )
    f = MANIFEST_FIXED.read(body)
    version, flags = f["version"], f["flags"]
    head_in, head_out, length = f["head_in"], f["head_out"], f["backbone_len"]
    chunk_log2, chunks, meta_len = f["chunk_log2"], f["chunk_count"], f["metadata_len"]
    release, top_k, budget, bound = (f["infer_release"], f["topk"], f["query_budget"],
                                     f["feature_bound"])
    if version < 1:
        raise Malformed("manifest: model version 0, versions start at 1")
    if flags & ~KNOWN_FLAGS:
        raise Malformed(f"manifest: unknown flag bits 0x{flags & ~KNOWN_FLAGS:x}")
    if flags & FLAG_BACKBONE_ENCRYPTED and not flags & FLAG_BACKBONE:
        raise Malformed("manifest: backbone-encrypted flag set without backbone flag")
    MANIFEST_FIXED.check_reserved(body, "manifest")
    check_head_shape(head_in, head_out)
    if meta_len > MAX_METADATA:
        raise Oversized(f"manifest: metadata length {meta_len} exceeds {MAX_METADATA}")
    if release not in INFER_RELEASE_NAMES:
        raise Malformed(f"manifest: inference release {release} is not 0..3")
    infer = InferPolicy(InferRelease(release), top_k, budget, bound)
    check_infer_policy(infer, head_out)
    if flags & FLAG_BACKBONE:
        check_backbone_layout(length, chunk_log2, chunks)
    elif length or chunk_log2 or chunks:
        raise Malformed(
            f"manifest: no backbone flag but length {length}, chunk_log2 {chunk_log2}, "
            f"chunk count {chunks}"
        )
    params = head_in * head_out + head_out
    expected = body_len_for(chunks, params, meta_len)
    if len(body) != expected:
        raise Malformed(f"manifest: body of {len(body)} bytes, its counts imply {expected}")
    pos = FIXED_SIZE
    digests = tuple(
        body[pos + DIGEST_SIZE * i : pos + DIGEST_SIZE * (i + 1)] for i in range(chunks)
    )
    pos += DIGEST_SIZE * chunks
    head_ct = body[pos : pos + 4 * params + TAG_SIZE]
    metadata = body[pos + 4 * params + TAG_SIZE :]
    check_metadata(metadata)
    return PackageManifest(
        version,
        f["package_id"],
        flags,
        f["ephemeral_pub"],
        head_in,
        head_out,
        length,
        chunk_log2,
        digests,
        head_ct,
        metadata,
        infer,
    )
