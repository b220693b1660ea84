"""Signed envelope: header, body and Ed25519 signature (docs/formats.md "Signed envelope")."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import tee_abi
from edge.errors import (
    Malformed,
    Oversized,
    RetiredFormat,
    SignatureInvalid,
    UnknownSigner,
    UnsupportedVersion,
    WrongKind,
)
from edge.formats.ed25519_strict import check_signature_form
from edge.formats.keys import KEY_ID_SIZE, ed25519_public_from_raw, ed25519_raw_public, key_id
from edge.formats.layouts import ENVELOPE_HEADER
from edge.tee_abi import Kind

MAGIC = tee_abi.MAGIC
FORMAT_VERSION = tee_abi.FORMAT_VERSION


def format_version(kind: int) -> int:
    """The format version an envelope of ``kind`` must carry (its layout's own, if it has
    moved past FORMAT_VERSION)."""
    return tee_abi.KIND_FORMAT_VERSIONS.get(kind, FORMAT_VERSION)


HEADER_SIZE = ENVELOPE_HEADER.size
SIG_SIZE = tee_abi.SIG_SIZE
MAX_BODY_LEN = 0xFFFFFFFF

_HEADER = ENVELOPE_HEADER.struct

KIND_NAMES = {kind: kind.name.lower().replace("_", " ") for kind in Kind}
KIND_NAMES[Kind.PACKAGE] = "model package"


def kind_name(kind: int) -> str:
    """Return the human name of a kind code (``"kind 9"`` for unknown codes)."""
    try:
        return KIND_NAMES[Kind(kind)]
    except ValueError:
        return f"kind {kind}"


@dataclass(frozen=True)
class EnvelopeHeader:
    """The fixed 28-byte header of an envelope, after its checks."""

    version: int
    kind: int
    body_len: int
    signer_key_id: bytes

    @property
    def signed_len(self) -> int:
        """Bytes covered by the signature digest (header and body)."""
        return HEADER_SIZE + self.body_len

    @property
    def total_len(self) -> int:
        """Bytes of the whole envelope including the signature."""
        return HEADER_SIZE + self.body_len + SIG_SIZE


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope; ``raw`` is exactly header, body and signature."""

    header: EnvelopeHeader
    raw: bytes

    @property
    def kind(self) -> int:
        """The envelope kind code."""
        return self.header.kind

    @property
    def signer_key_id(self) -> bytes:
        """The key id the envelope names as its signer."""
        return self.header.signer_key_id

    @property
    def body(self) -> bytes:
        """The body bytes."""
        return self.raw[HEADER_SIZE : self.header.signed_len]

    @property
    def signature(self) -> bytes:
        """The 64-byte Ed25519 signature."""
        return self.raw[self.header.signed_len :]

    def digest(self) -> bytes:
        """Return SHA-256 of header and body: the message that is signed."""
        return hashlib.sha256(memoryview(self.raw)[: self.header.signed_len]).digest()


def check_header(
    header: bytes | memoryview,
    available: int | None,
    *,
    kind: int | None = None,
    max_len: int | None = None,
    exact: bool = True,
) -> EnvelopeHeader:
    """Run the TA's envelope checks, in its order, on a header and the bytes available.

    ``available`` is the length of the whole input (header included), or None
    to skip the length check (a stream, checked as it is read). With ``exact``
    it must equal the envelope length, else it must be at least that.
    """
    if len(header) < HEADER_SIZE or (available is not None and available < HEADER_SIZE):
        got = len(header) if available is None else min(available, len(header))
        raise Malformed(f"envelope: {got} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, got_kind, body_len, signer = _HEADER.unpack_from(header, 0)
    parsed = EnvelopeHeader(version, got_kind, body_len, bytes(signer))
    if magic != MAGIC:
        if bytes(header[:11]) == b"-----BEGIN ":
            # The usual mix-up: a key or certificate given where an artefact goes.
            raise Malformed("envelope: this is a PEM file (a key or certificate), not an edge "
                            "artefact (device record, package, ticket, ...)")
        raise Malformed(f"envelope: bad magic {bytes(magic).hex()}, expected {MAGIC.hex()}")
    # The version of the kind the header names (as the TA does); then the kind.
    expected = format_version(got_kind)
    if version != expected:
        if got_kind == Kind.PACKAGE and version == 1:
            raise RetiredFormat(
                "envelope: model package format 1 (a manifest listing every recipient) is "
                "retired; rebuild the release: format 2 ships one key wrap per device")
        raise UnsupportedVersion(
            f"envelope: {kind_name(got_kind)} format version {version} is not supported "
            f"(expected {expected})"
        )
    if kind is not None and got_kind != kind:
        raise WrongKind(f"envelope: got {kind_name(got_kind)}, expected {kind_name(kind)}")
    if max_len is not None and parsed.total_len > max_len:
        raise Oversized(
            f"envelope: {kind_name(got_kind)} of {parsed.total_len} bytes exceeds {max_len}"
        )
    if available is not None:
        check_length(parsed, available, exact=exact)
    return parsed


def check_length(header: EnvelopeHeader, available: int, *, exact: bool = True) -> None:
    """Refuse an input shorter than the envelope, or (``exact``) longer than it."""
    if available < header.total_len:
        raise Malformed(
            f"envelope: truncated, {available} bytes but header implies {header.total_len}"
        )
    if exact and available > header.total_len:
        raise Malformed(
            f"envelope: {available - header.total_len} trailing bytes after {header.total_len}"
        )


def parse_envelope(
    data: bytes | bytearray | memoryview,
    *,
    kind: int | None = None,
    max_len: int | None = None,
    exact: bool = True,
) -> Envelope:
    """Parse an envelope from the start of ``data`` (no signature check yet).

    With ``exact=False`` bytes after the signature are allowed (a package payload).
    """
    view = memoryview(data)
    header = check_header(view[:HEADER_SIZE], len(view), kind=kind, max_len=max_len, exact=exact)
    if type(data) is bytes and len(data) == header.total_len:
        return Envelope(header, data)  # immutable already: no copy of a 400 KB update
    return Envelope(header, bytes(view[: header.total_len]))


def verify_envelope(envelope: Envelope, signer_pub: bytes, *, digest: bytes | None = None) -> None:
    """Check the signer key id against ``signer_pub``, then the signature over the digest.

    ``digest``: ``envelope.digest()`` if the caller computed it already (a 400 KB update
    is hashed once, not twice).
    """
    expected = key_id(signer_pub)
    if not hmac.compare_digest(envelope.signer_key_id, expected):
        raise UnknownSigner(
            f"envelope: signer key id {envelope.signer_key_id.hex()} is not the expected key "
            f"{expected.hex()}"
        )
    pub = ed25519_public_from_raw(signer_pub, "signer public key")
    check_signature_form(envelope.signature, f"envelope: {kind_name(envelope.kind)} signature")
    try:
        pub.verify(envelope.signature, envelope.digest() if digest is None else digest)
    except InvalidSignature as exc:
        raise SignatureInvalid(
            f"envelope: {kind_name(envelope.kind)} signature does not verify under key id "
            f"{expected.hex()}"
        ) from exc


def encode_header(
    kind: int,
    body_len: int,
    signer_key_id: bytes,
    *,
    version: int | None = None,
    magic: bytes = MAGIC,
) -> bytes:
    """Return the 28-byte header (no validation; builders and test vectors only); the
    version defaults to the kind's."""
    if len(signer_key_id) != KEY_ID_SIZE:
        raise ValueError("signer key id must be 16 bytes")
    v = format_version(kind) if version is None else version
    return _HEADER.pack(magic, v, kind, body_len, signer_key_id)


def sign_digest(signer: Ed25519PrivateKey, signed: bytes | memoryview) -> bytes:
    """Return the Ed25519 signature over SHA-256 of ``signed`` (header and body)."""
    return signer.sign(hashlib.sha256(signed).digest())


def build_envelope(kind: int, body: bytes, signer: Ed25519PrivateKey) -> bytes:
    """Return a signed envelope of ``kind`` around ``body``."""
    if len(body) > MAX_BODY_LEN:
        raise Oversized(f"envelope: body of {len(body)} bytes does not fit a u32 length")
    signed = encode_header(kind, len(body), key_id(ed25519_raw_public(signer))) + body
    return signed + sign_digest(signer, signed)
