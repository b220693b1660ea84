"""Build a release: one model package and one key wrap per device (docs/formats.md).

The manifest lists the digest of every stored chunk and precedes the payload,
so the backbone is read twice: once to hash (and encrypt) each chunk, once to
write it. Memory stays at a few chunks whatever the backbone size; the second
pass checks each chunk against the first, so a file changed meanwhile is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import ConfigError, Malformed, Oversized
from edge.formats.device import DeviceRecord
from edge.formats.envelope import HEADER_SIZE, SIG_SIZE, Kind, encode_header, sign_digest
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.keyschedule import (
    CONTENT_KEY_SIZE,
    backbone_key,
    encrypt_chunk,
    encrypt_head,
    head_key,
    wrap_content_key,
)
from edge.formats.keywrap import KeyWrap, build_key_wrap
from edge.formats.manifest import (
    FLAG_BACKBONE,
    FLAG_BACKBONE_ENCRYPTED,
    MAX_CHUNK_LOG2,
    MAX_CHUNKS,
    MAX_MANIFEST_SIZE,
    MIN_CHUNK_LOG2,
    PACKAGE_ID_SIZE,
    InferPolicy,
    PackageManifest,
    check_head_shape,
    check_infer_policy,
    check_metadata,
    chunks_for,
    encode_manifest,
    parse_manifest,
)

DEFAULT_CHUNK_LOG2 = 16
MAX_VERSION = 2**64 - 1

Backbone = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO


def head_plaintext(W: Any, b: Any) -> tuple[bytes, int, int]:
    """Return (W row-major then b as float32 LE, I, O) after shape and value checks."""
    with np.errstate(over="ignore", invalid="ignore"):
        w = np.asarray(W, dtype=np.float32)
        bias = np.asarray(b, dtype=np.float32)
    if w.ndim != 2:
        raise Malformed(f"head: W must be a 2-D array (I x O), got shape {w.shape}")
    if bias.ndim != 1 or bias.shape[0] != w.shape[1]:
        raise Malformed(f"head: b must have shape ({w.shape[1]},) to match W, got {bias.shape}")
    if not (np.isfinite(w).all() and np.isfinite(bias).all()):
        raise Malformed("head: W or b has NaN or infinite values (as float32)")
    plain = np.ascontiguousarray(w, dtype="<f4").tobytes() + bias.astype("<f4").tobytes()
    return plain, int(w.shape[0]), int(w.shape[1])


def encode_metadata(metadata: Mapping[str, Any] | None) -> bytes:
    """Encode metadata as compact, key-sorted UTF-8 JSON (empty when None or empty)."""
    if not metadata:
        return b""
    try:
        text = json.dumps(
            dict(metadata),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metadata: not representable as JSON ({exc})") from exc
    return text.encode("utf-8")


def backbone_length(backbone: Backbone) -> int:
    """Return the backbone's length in bytes without reading it."""
    if isinstance(backbone, bytes | bytearray | memoryview):
        return memoryview(backbone).nbytes
    if isinstance(backbone, str | os.PathLike):
        try:
            return os.stat(backbone).st_size
        except OSError as exc:
            raise ConfigError(f"backbone {os.fspath(backbone)}: {exc.strerror}") from exc
    here = backbone.tell()
    end = backbone.seek(0, os.SEEK_END)
    backbone.seek(here)
    return end - here


@contextmanager
def _opened(backbone: Backbone) -> Iterator[BinaryIO | memoryview]:
    """Open a path, rewind a stream to where it started, or view a bytes-like backbone."""
    if isinstance(backbone, bytes | bytearray | memoryview):
        yield memoryview(backbone).cast("B")
    elif isinstance(backbone, str | os.PathLike):
        try:
            fh = open(backbone, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ConfigError(f"backbone {os.fspath(backbone)}: {exc.strerror}") from exc
        with fh:
            yield fh
    else:
        start = backbone.tell()
        yield backbone
        backbone.seek(start)


def iter_plain_chunks(backbone: Backbone, length: int, chunk_size: int) -> Iterator[bytes]:
    """Yield the backbone's plaintext chunks (one chunk in memory at a time)."""
    with _opened(backbone) as src:
        for offset in range(0, length, chunk_size):
            want = min(chunk_size, length - offset)
            if isinstance(src, memoryview):
                chunk = bytes(src[offset : offset + want])
            else:
                chunk = src.read(want)
            if len(chunk) != want:
                raise ConfigError(f"backbone: file shrank while packing (at byte {offset})")
            yield chunk


def _stored_chunks(
    backbone: Backbone, length: int, chunk_log2: int, aead: AESGCM | None, package_id: bytes
) -> Iterator[bytes]:
    """Yield stored chunks: plaintext, or AEAD-sealed under the backbone key."""
    count = chunks_for(length, chunk_log2)
    for index, chunk in enumerate(iter_plain_chunks(backbone, length, 1 << chunk_log2)):
        if aead is None:
            yield chunk
        else:
            yield encrypt_chunk(aead, chunk, package_id, index, index == count - 1)


@dataclass
class Release:
    """A built package's manifest, and what wraps its content key for any device.

    Holds the content key and the ephemeral private key in memory (the
    aggregator wraps for devices that enroll after the release); an offline
    tool drops it once the wraps are written.
    """

    manifest: PackageManifest
    manifest_digest: bytes
    _signer: Ed25519PrivateKey = field(repr=False)
    _content_key: bytes = field(repr=False)
    _ephemeral: X25519PrivateKey = field(repr=False)
    wraps: dict[bytes, bytes] = field(default_factory=dict, repr=False)

    def wrap_for(self, device: DeviceRecord) -> bytes:
        """The signed key wrap of ``device`` for this package (made once, then kept)."""
        found = self.wraps.get(device.device_id)
        if found is None:
            m = self.manifest
            wrapped = wrap_content_key(self._content_key, self._ephemeral, device.x25519_pub,
                                       device.device_id, m.package_id, m.version)
            found = build_key_wrap(self._signer, KeyWrap(device.device_id, m.package_id,
                                                         self.manifest_digest, wrapped))
            self.wraps[device.device_id] = found
        return found

    def wrap_all(self, devices: Iterable[DeviceRecord]) -> dict[bytes, bytes]:
        """Wraps for every device given, by device id."""
        return {d.device_id: self.wrap_for(d) for d in devices}


def build_package(
    out: BinaryIO,
    *,
    signer: Ed25519PrivateKey,
    version: int,
    W: Any,
    b: Any,
    recipients: Sequence[DeviceRecord] = (),
    backbone: Backbone | None = None,
    encrypt_backbone: bool = False,
    chunk_log2: int = DEFAULT_CHUNK_LOG2,
    metadata: Mapping[str, Any] | None = None,
    package_id: bytes | None = None,
    content_key: bytes | None = None,
    ephemeral_key: X25519PrivateKey | None = None,
    enforce_limits: bool = True,
    infer: InferPolicy | None = None,
) -> Release:
    """Write a signed package to ``out``; return its release with a wrap per recipient.

    The package names no device; ``recipients`` only get their key wraps made
    now (``Release.wraps``), and any other device can get one later with
    ``Release.wrap_for``. ``package_id``, ``content_key``, ``ephemeral_key``
    and ``enforce_limits=False`` exist only for deterministic test vectors;
    releases leave them unset. ``infer`` says what the TA's INFER may release
    of the head (default: the label only, no query budget).
    """
    infer = infer if infer is not None else InferPolicy()
    if not 1 <= version <= MAX_VERSION:
        raise ConfigError(f"version {version} is not in 1..2^64-1")
    plain_head, head_in, head_out = head_plaintext(W, b)
    meta = encode_metadata(metadata)
    if encrypt_backbone and backbone is None:
        raise ConfigError("encrypted backbone requested without a backbone")
    length = backbone_length(backbone) if backbone is not None else 0
    if backbone is not None and length == 0:
        raise Malformed("backbone: empty; omit the backbone instead")
    if backbone is not None and not MIN_CHUNK_LOG2 <= chunk_log2 <= MAX_CHUNK_LOG2:
        raise ConfigError(
            f"chunk_log2 {chunk_log2} is not in {MIN_CHUNK_LOG2}..{MAX_CHUNK_LOG2} "
            f"(chunk size {1 << MIN_CHUNK_LOG2}..{1 << MAX_CHUNK_LOG2})"
        )
    count = chunks_for(length, chunk_log2) if backbone is not None else 0
    ids = [r.device_id for r in recipients]
    if enforce_limits:
        check_head_shape(head_in, head_out)
        check_metadata(meta)
        check_infer_policy(infer, head_out)
        if count > MAX_CHUNKS:
            raise Oversized(
                f"backbone: {length} bytes in chunks of {1 << chunk_log2} make {count} chunks, "
                f"over {MAX_CHUNKS}; use a larger chunk size"
            )
    dup = next((d for i, d in enumerate(ids) if d in ids[:i]), None)
    if dup is not None:
        raise Malformed(f"recipients: device {dup.hex()} listed twice")

    package_id = package_id if package_id is not None else os.urandom(PACKAGE_ID_SIZE)
    content_key = content_key if content_key is not None else os.urandom(CONTENT_KEY_SIZE)
    ephemeral = ephemeral_key if ephemeral_key is not None else X25519PrivateKey.generate()
    if len(package_id) != PACKAGE_ID_SIZE or len(content_key) != CONTENT_KEY_SIZE:
        raise ValueError("package id must be 16 bytes and content key 32 bytes")
    eph_pub = ephemeral.public_key().public_bytes_raw()
    hk = head_key(content_key, eph_pub, package_id)
    aead = None
    if encrypt_backbone:
        aead = AESGCM(backbone_key(content_key, eph_pub, package_id))

    digests: tuple[bytes, ...] = ()
    if backbone is not None:
        digests = tuple(
            hashlib.sha256(c).digest()
            for c in _stored_chunks(backbone, length, chunk_log2, aead, package_id)
        )
    flags = (FLAG_BACKBONE if backbone is not None else 0) | (
        FLAG_BACKBONE_ENCRYPTED if encrypt_backbone else 0
    )
    manifest = PackageManifest(
        version=version,
        package_id=package_id,
        flags=flags,
        ephemeral_pub=eph_pub,
        head_in=head_in,
        head_out=head_out,
        backbone_len=length,
        chunk_log2=chunk_log2 if backbone is not None else 0,
        chunk_digests=digests,
        head_ciphertext=encrypt_head(hk, plain_head, package_id, version),
        metadata=meta,
        infer=infer,
    )
    body = encode_manifest(manifest)
    if enforce_limits:
        total = HEADER_SIZE + len(body) + SIG_SIZE
        if total > MAX_MANIFEST_SIZE:
            raise Oversized(f"manifest: {total} bytes exceeds {MAX_MANIFEST_SIZE}")
        parse_manifest(body)
    signed = encode_header(Kind.PACKAGE, len(body), key_id(ed25519_raw_public(signer))) + body
    out.write(signed)
    out.write(sign_digest(signer, signed))
    release = Release(manifest, hashlib.sha256(signed).digest(), signer, content_key, ephemeral)
    release.wrap_all(recipients)
    if backbone is not None:
        stored = _stored_chunks(backbone, length, chunk_log2, aead, package_id)
        for index, (chunk, digest) in enumerate(zip(stored, digests, strict=True)):
            if not hmac.compare_digest(hashlib.sha256(chunk).digest(), digest):
                raise ConfigError(f"backbone: chunk {index} changed while packing")
            out.write(chunk)
    return release
