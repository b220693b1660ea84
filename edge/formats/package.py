"""Model package (kind 1): split, verify, and the reference device-side load.

``PackageLoad`` mirrors the TA's LOAD_BEGIN / LOAD_CHUNK / LOAD_FINISH in the
same check order; ``open_package`` drives it over bytes or a binary file,
one chunk at a time, so a large backbone is never held twice.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import BadState, ChunkDigestMismatch, Malformed, NotForThisDevice, Rollback
from edge.formats.envelope import (
    HEADER_SIZE,
    Envelope,
    Kind,
    check_header,
    check_length,
    verify_envelope,
)
from edge.formats.keyschedule import (
    backbone_key,
    decrypt_chunk,
    decrypt_head,
    head_key,
    unwrap_content_key,
)
from edge.formats.keywrap import parse_key_wrap
from edge.formats.manifest import (
    MAX_MANIFEST_SIZE,
    PackageManifest,
    encode_manifest,
    parse_manifest,
)

__all__ = [
    "OpenedPackage",
    "PackageLoad",
    "PackageManifest",
    "PackageSource",
    "encode_manifest",
    "iter_stored_chunks",
    "open_package",
    "parse_manifest",
    "parse_package",
    "read_manifest",
    "split_package",
    "verify_package",
]

Source = bytes | bytearray | memoryview | BinaryIO


class PackageSource:
    """Sequential reader over a bytes-like object (zero-copy views) or a binary file."""

    def __init__(self, source: Source) -> None:
        if isinstance(source, bytes | bytearray | memoryview):
            self._view: memoryview | None = memoryview(source).cast("B")
            self._file: BinaryIO | None = None
        else:
            self._view = None
            self._file = source
        self._pos = 0

    def read(self, size: int) -> bytes | memoryview:
        """Return up to ``size`` bytes (fewer only at the end)."""
        if self._view is not None:
            out = self._view[self._pos : self._pos + size]
            self._pos += len(out)
            return out
        assert self._file is not None
        parts: list[bytes] = []
        got = 0
        while got < size:
            block = self._file.read(size - got)
            if not block:
                break
            parts.append(block)
            got += len(block)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def remaining(self) -> int | None:
        """Return the bytes left, or None when the file cannot tell without reading."""
        if self._view is not None:
            return len(self._view) - self._pos
        assert self._file is not None
        try:
            if not self._file.seekable():
                return None
            here = self._file.tell()
            end = self._file.seek(0, 2)
            self._file.seek(here)
        except (OSError, AttributeError):
            return None
        return end - here


def read_manifest(src: PackageSource) -> Envelope:
    """Read the package envelope from ``src`` with the TA's envelope checks, in order.

    The limit is decided from the header alone, so an oversized manifest is
    refused before any of it is read.
    """
    head = bytes(src.read(HEADER_SIZE))
    header = check_header(head, None, kind=Kind.PACKAGE, max_len=MAX_MANIFEST_SIZE)
    rest = bytes(src.read(header.total_len - HEADER_SIZE))
    check_length(header, HEADER_SIZE + len(rest), exact=True)
    return Envelope(header, head + rest)


def split_package(data: bytes | bytearray | memoryview) -> tuple[bytes, memoryview]:
    """Return (signed manifest envelope, payload view) after the envelope checks."""
    src = PackageSource(data)
    env = read_manifest(src)
    return env.raw, memoryview(data).cast("B")[env.header.total_len :]


def iter_stored_chunks(
    src: PackageSource, manifest: PackageManifest
) -> Iterator[tuple[int, bytes | memoryview]]:
    """Yield (index, stored chunk) in order; ``Malformed`` on a short or overlong payload."""
    for index in range(manifest.chunk_count):
        want = manifest.stored_chunk_len(index)
        chunk = src.read(want)
        if len(chunk) != want:
            raise Malformed(
                f"payload: truncated in chunk {index}, {len(chunk)} of {want} bytes present"
            )
        yield index, chunk
    if len(src.read(1)):
        raise Malformed(f"payload: trailing bytes after the {manifest.payload_len}-byte payload")


def _check_digest(manifest: PackageManifest, index: int, stored: bytes | memoryview) -> None:
    """Compare a stored chunk's SHA-256 with the signed list."""
    if not hmac.compare_digest(hashlib.sha256(stored).digest(), manifest.chunk_digests[index]):
        raise ChunkDigestMismatch(f"backbone: chunk {index} differs from its signed digest")


def parse_package(data: bytes | bytearray | memoryview) -> tuple[Envelope, PackageManifest]:
    """Parse a whole package (no signature check): envelope, manifest and payload length."""
    src = PackageSource(data)
    env = read_manifest(src)
    manifest = parse_manifest(env.body)
    left = src.remaining()
    if left != manifest.payload_len:
        raise Malformed(
            f"package: {left} payload bytes after the manifest, expected {manifest.payload_len}"
        )
    return env, manifest


def verify_package(source: Source, *, signer_pub: bytes) -> PackageManifest:
    """Check signer, signature, manifest, payload length and every chunk digest (no keys)."""
    src = PackageSource(source)
    env = read_manifest(src)
    verify_envelope(env, signer_pub)
    manifest = parse_manifest(env.body)
    for index, stored in iter_stored_chunks(src, manifest):
        _check_digest(manifest, index, stored)
    return manifest


@dataclass
class PackageLoad:
    """Reference of the TA's pending load: begin with the manifest, feed chunks, finish."""

    manifest: PackageManifest
    W: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    _aead: AESGCM | None = field(default=None, repr=False)
    _next: int = 0
    _finished: bool = False

    @classmethod
    def begin(
        cls,
        envelope: Envelope | bytes | bytearray | memoryview,
        *,
        wrap: bytes | bytearray | memoryview,
        signer_pub: bytes,
        device_id: bytes | None,
        agreement: X25519PrivateKey,
        stored_version: int,
    ) -> PackageLoad:
        """LOAD_BEGIN: envelope, signer, signature, manifest, rollback, key wrap, unwrap, head."""
        if not isinstance(envelope, Envelope):
            src = PackageSource(envelope)
            envelope = read_manifest(src)
            if src.remaining():
                raise Malformed("manifest: trailing bytes after the signed manifest")
        verify_envelope(envelope, signer_pub)
        m = parse_manifest(envelope.body)
        if m.version <= stored_version:
            raise Rollback(f"package: version {m.version} is not above stored {stored_version}")
        if device_id is None:
            raise NotForThisDevice("package: this device has no identity yet")
        key_wrap = parse_key_wrap(wrap, signer_pub=signer_pub)
        key_wrap.check_for(device_id, m.package_id, envelope.digest())
        content_key = unwrap_content_key(
            key_wrap.wrapped_key, agreement, m.ephemeral_pub, key_wrap.device_id, m.package_id,
            m.version
        )
        hk = head_key(content_key, m.ephemeral_pub, m.package_id)
        plain = decrypt_head(hk, m.head_ciphertext, m.package_id, m.version)
        values = np.frombuffer(plain, dtype="<f4").astype(np.float32)
        w = values[: m.head_in * m.head_out].reshape(m.head_in, m.head_out)
        aead = None
        if m.backbone_encrypted:
            aead = AESGCM(backbone_key(content_key, m.ephemeral_pub, m.package_id))
        return cls(m, w, values[m.head_in * m.head_out :], aead)

    def chunk(self, index: int, stored: bytes | memoryview) -> bytes | memoryview:
        """LOAD_CHUNK: check order, size and digest, then decrypt; return the plaintext."""
        m = self.manifest
        if self._finished or index != self._next or index >= m.chunk_count:
            raise BadState(f"backbone: chunk {index} out of order (expected {self._next})")
        if len(stored) != m.stored_chunk_len(index):
            raise Malformed(
                f"backbone: chunk {index} has {len(stored)} bytes, expected "
                f"{m.stored_chunk_len(index)}"
            )
        _check_digest(m, index, stored)
        self._next += 1
        if self._aead is None:
            return stored
        return decrypt_chunk(self._aead, stored, m.package_id, index, index == m.chunk_count - 1)

    def finish(self) -> None:
        """LOAD_FINISH: refuse unless every chunk has passed."""
        if self._next != self.manifest.chunk_count:
            raise BadState(
                f"backbone: {self._next} of {self.manifest.chunk_count} chunks loaded at finish"
            )
        self._finished = True
        self._aead = None


@dataclass(frozen=True)
class OpenedPackage:
    """A fully loaded package: manifest, plaintext head, and the backbone when collected."""

    manifest: PackageManifest
    W: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    backbone: bytes | None = field(repr=False)


def open_package(
    source: Source,
    *,
    wrap: bytes | bytearray | memoryview,
    signer_pub: bytes,
    device_id: bytes,
    agreement: X25519PrivateKey,
    stored_version: int,
    backbone_out: BinaryIO | None = None,
) -> OpenedPackage:
    """Load a package as the device does; the plaintext backbone goes to ``backbone_out`` if given.

    Without ``backbone_out`` the backbone is collected and returned (None when absent).
    """
    src = PackageSource(source)
    env = read_manifest(src)
    load = PackageLoad.begin(
        env,
        wrap=wrap,
        signer_pub=signer_pub,
        device_id=device_id,
        agreement=agreement,
        stored_version=stored_version,
    )
    parts: list[bytes | memoryview] = []
    for index, stored in iter_stored_chunks(src, load.manifest):
        plain = load.chunk(index, stored)
        if backbone_out is not None:
            backbone_out.write(plain)
        else:
            parts.append(plain)
    load.finish()
    backbone = None
    if backbone_out is None and load.manifest.has_backbone:
        backbone = b"".join(parts)
    return OpenedPackage(load.manifest, load.W, load.b, backbone)
