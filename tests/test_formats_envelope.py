"""Signed envelope: round trip, each check, and the order in which the checks fire."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import (
    Malformed,
    Oversized,
    RetiredFormat,
    SignatureInvalid,
    UnknownSigner,
    UnsupportedVersion,
    WrongKind,
)
from edge.formats import (
    HEADER_SIZE,
    MAGIC,
    SIG_SIZE,
    Kind,
    build_envelope,
    check_header,
    key_id,
    parse_envelope,
    verify_envelope,
)
from edge.formats.envelope import encode_header, sign_digest
from edge.formats.keys import ed25519_raw_public

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"envelope test key").digest())
OTHER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"envelope other key").digest())
PUB = ed25519_raw_public(KEY)
BODY = b"hello, body" * 3


def make(
    kind: int = Kind.ANCHOR_STATEMENT,
    body: bytes = BODY,
    *,
    version: int = 1,
    magic: bytes = MAGIC,
    signer: Ed25519PrivateKey = KEY,
) -> bytes:
    """Return an envelope with the given header fields, validly signed."""
    signed = (
        encode_header(
            kind, len(body), key_id(ed25519_raw_public(signer)), version=version, magic=magic
        )
        + body
    )
    return signed + sign_digest(signer, signed)


def test_key_id_is_sha256_prefix() -> None:
    assert key_id(PUB) == hashlib.sha256(PUB).digest()[:16]
    with pytest.raises(Malformed):
        key_id(b"short")


def test_round_trip_and_layout() -> None:
    data = build_envelope(Kind.ANCHOR_STATEMENT, BODY, KEY)
    assert len(data) == HEADER_SIZE + len(BODY) + SIG_SIZE
    assert data[:4] == b"EDGE"
    assert data[4:6] == b"\x01\x00" and data[6:8] == b"\x02\x00"
    assert int.from_bytes(data[8:12], "little") == len(BODY)
    assert data[12:28] == key_id(PUB)
    env = parse_envelope(data, kind=Kind.ANCHOR_STATEMENT)
    assert env.body == BODY and env.kind == Kind.ANCHOR_STATEMENT
    assert env.signer_key_id == key_id(PUB)
    verify_envelope(env, PUB)
    # The signature is over SHA-256 of header and body (RFC 8032 pure Ed25519).
    KEY.public_key().verify(env.signature, hashlib.sha256(data[: HEADER_SIZE + len(BODY)]).digest())
    assert make() == data


def test_empty_body() -> None:
    env = parse_envelope(build_envelope(Kind.DEVICE_RECORD, b"", KEY))
    assert env.body == b""
    verify_envelope(env, PUB)


@pytest.mark.parametrize("cut", [0, 1, 27, 28, 28 + len(BODY), 28 + len(BODY) + 63])
def test_truncated_is_malformed(cut: int) -> None:
    with pytest.raises(Malformed) as info:
        parse_envelope(make()[:cut])
    assert type(info.value) is Malformed


def test_trailing_bytes() -> None:
    data = make() + b"\x00"
    with pytest.raises(Malformed, match="trailing"):
        parse_envelope(data)
    assert parse_envelope(data, exact=False).raw == data[:-1]


def test_bad_magic() -> None:
    with pytest.raises(Malformed, match="magic") as info:
        parse_envelope(make(magic=b"EDGF"))
    assert type(info.value) is Malformed


def test_version() -> None:
    with pytest.raises(UnsupportedVersion):
        parse_envelope(make(version=2))
    with pytest.raises(UnsupportedVersion):
        parse_envelope(make(version=0))
    # Model packages are format 2; format 1 (a recipient list) is refused by name.
    assert parse_envelope(make(Kind.PACKAGE, version=2), kind=Kind.PACKAGE).header.version == 2
    for version in (0, 3):
        with pytest.raises(UnsupportedVersion) as info:
            parse_envelope(make(Kind.PACKAGE, version=version))
        assert type(info.value) is UnsupportedVersion
    with pytest.raises(RetiredFormat, match="format 1"):
        parse_envelope(make(Kind.PACKAGE, version=1))


def test_wrong_kind() -> None:
    with pytest.raises(WrongKind, match="expected model package"):
        parse_envelope(make(Kind.DEVICE_RECORD), kind=Kind.PACKAGE)


def test_oversized() -> None:
    data = make()
    parse_envelope(data, max_len=len(data))
    with pytest.raises(Oversized):
        parse_envelope(data, max_len=len(data) - 1)


def test_unknown_signer_and_signature() -> None:
    env = parse_envelope(make())
    with pytest.raises(UnknownSigner):
        verify_envelope(env, ed25519_raw_public(OTHER))
    bad = bytearray(make())
    bad[-1] ^= 0x01
    with pytest.raises(SignatureInvalid):
        verify_envelope(parse_envelope(bytes(bad)), PUB)
    body_flip = bytearray(make())
    body_flip[HEADER_SIZE] ^= 0x01
    with pytest.raises(SignatureInvalid):
        verify_envelope(parse_envelope(bytes(body_flip)), PUB)


def test_kind_is_signed() -> None:
    """A signature over one kind never verifies as another."""
    data = bytearray(make(Kind.ANCHOR_STATEMENT))
    data[4], data[6] = 2, Kind.PACKAGE  # a package's format version, or it is refused first
    with pytest.raises(SignatureInvalid):
        verify_envelope(parse_envelope(bytes(data), kind=Kind.PACKAGE), PUB)


# Two defects at once: the earlier check in formats.md's order must win.
@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        (make(magic=b"XXXX")[:20], {}, Malformed),  # shorter than the header
        (make(magic=b"XXXX", version=2), {}, Malformed),  # magic before version
        (make(version=2)[:40], {}, UnsupportedVersion),  # version before length
        (make(Kind.DEVICE_RECORD, version=2), {"kind": Kind.PACKAGE}, UnsupportedVersion),
        (make(Kind.ROUND_TICKET, version=1), {"kind": Kind.ROUND_TICKET}, UnsupportedVersion),
        (make(Kind.DEVICE_RECORD), {"kind": Kind.PACKAGE, "max_len": 10}, WrongKind),
        (make(Kind.DEVICE_RECORD) + b"!", {"kind": Kind.PACKAGE}, WrongKind),  # kind first
        (make()[:40], {"max_len": 40}, Oversized),  # limit from the header, before length
        (make() + b"!", {"max_len": 40}, Oversized),
    ],
)
def test_check_order(data: bytes, kwargs: dict, expected: type) -> None:
    with pytest.raises(expected) as info:
        parse_envelope(data, **kwargs)
    assert type(info.value) is expected


def test_oversized_before_signer() -> None:
    data = make(signer=OTHER)
    with pytest.raises(Oversized):
        parse_envelope(data, max_len=len(data) - 1)


def test_unknown_signer_before_signature() -> None:
    bad = bytearray(make(signer=OTHER))
    bad[-1] ^= 0xFF
    with pytest.raises(UnknownSigner):
        verify_envelope(parse_envelope(bytes(bad)), PUB)


def test_check_header_with_available_length() -> None:
    data = make()
    header = check_header(data[:HEADER_SIZE], len(data))
    assert header.total_len == len(data) and header.signed_len == len(data) - SIG_SIZE
    with pytest.raises(Malformed):
        check_header(data[:HEADER_SIZE], len(data) - 1)


def test_huge_body_len() -> None:
    """Over the limit is decided from the header alone; without a limit it is truncation."""
    data = bytearray(make())
    data[8:12] = b"\xff\xff\xff\xff"
    with pytest.raises(Oversized):
        parse_envelope(bytes(data), max_len=1024)
    with pytest.raises(Malformed, match="truncated"):
        parse_envelope(bytes(data))
