"""Device records and anchor statements: round trips and every refusal."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge import tee_abi
from edge.errors import (
    Malformed,
    Oversized,
    SignatureInvalid,
    StaleStatement,
    UnknownSigner,
    WrongKind,
)
from edge.formats import (
    ANCHOR_STATEMENT_SIZE,
    DEVICE_RECORD_SIZE,
    HEADER_SIZE,
    Role,
    build_anchor_statement,
    build_device_record,
    key_id,
    parse_anchor_statement,
    parse_device_record,
    verify_anchor_statement,
)
from edge.formats.envelope import sign_digest
from edge.formats.keys import ed25519_raw_public, x25519_raw_public


def ed(label: str) -> Ed25519PrivateKey:
    """A deterministic Ed25519 test key."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


IDENTITY = ed("device identity")
AGREEMENT = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"device x25519").digest())
SIGNER, AGG, NEW, ROGUE = ed("signer"), ed("aggregator"), ed("new"), ed("rogue")
ANCHORS = {Role.MODEL_SIGNER: ed25519_raw_public(SIGNER), Role.AGGREGATOR: ed25519_raw_public(AGG)}


def resign(data: bytes, offset: int, value: int, key: Ed25519PrivateKey) -> bytes:
    """Set one byte of a fixed-size envelope and re-sign it."""
    out = bytearray(data)
    out[offset] = value
    signed = bytes(out[:-64])
    return signed + sign_digest(key, signed)


def test_device_record_round_trip() -> None:
    data = build_device_record(IDENTITY, AGREEMENT)
    assert len(data) == DEVICE_RECORD_SIZE == 164
    rec = parse_device_record(data)
    assert rec.ed25519_pub == ed25519_raw_public(IDENTITY)
    assert rec.x25519_pub == x25519_raw_public(AGREEMENT)
    assert rec.device_id == key_id(rec.ed25519_pub)
    assert rec.abi_version == tee_abi.ABI_VERSION
    assert data[12:28] == rec.device_id


def test_device_record_refusals() -> None:
    data = build_device_record(IDENTITY, AGREEMENT)
    with pytest.raises(Malformed):
        parse_device_record(data[:-1])
    with pytest.raises(Malformed):
        parse_device_record(data + b"\x00")
    flipped = bytearray(data)
    flipped[HEADER_SIZE + 40] ^= 1  # x25519 key changed after signing
    with pytest.raises(SignatureInvalid):
        parse_device_record(bytes(flipped))
    # Signed by another key than the one in the body: not a proof of possession.
    foreign = bytearray(data)
    foreign[12:28] = key_id(ed25519_raw_public(ROGUE))
    signed = bytes(foreign[:-64])
    with pytest.raises(UnknownSigner):
        parse_device_record(signed + sign_digest(ROGUE, signed))
    with pytest.raises(Malformed, match="reserved"):
        parse_device_record(resign(data, HEADER_SIZE + 70, 1, IDENTITY))
    statement = build_anchor_statement(SIGNER, 1, 1, ed25519_raw_public(NEW))
    with pytest.raises(WrongKind):
        parse_device_record(statement)


def test_device_record_body_length() -> None:
    from edge.formats.envelope import Kind, build_envelope

    with pytest.raises(Malformed):
        parse_device_record(build_envelope(Kind.DEVICE_RECORD, bytes(71), IDENTITY))
    with pytest.raises(Oversized):
        parse_device_record(build_envelope(Kind.DEVICE_RECORD, bytes(73), IDENTITY))


def test_anchor_round_trip() -> None:
    new_pub = ed25519_raw_public(NEW)
    data = build_anchor_statement(AGG, Role.AGGREGATOR, 4, new_pub)
    assert len(data) == ANCHOR_STATEMENT_SIZE == 140
    st = parse_anchor_statement(data)
    assert (st.role, st.epoch, st.new_pub) == (Role.AGGREGATOR, 4, new_pub)
    assert st.signer_key_id == key_id(ed25519_raw_public(AGG))
    assert st.new_key_id == key_id(new_pub)
    ok = verify_anchor_statement(data, anchors=ANCHORS, epochs={Role.AGGREGATOR: 3})
    assert ok == st


def test_anchor_refusals() -> None:
    new_pub = ed25519_raw_public(NEW)
    data = build_anchor_statement(SIGNER, Role.MODEL_SIGNER, 1, new_pub)
    verify_anchor_statement(data, anchors=ANCHORS, epochs={})
    for stored in (1, 2, 7):
        with pytest.raises(StaleStatement):
            verify_anchor_statement(data, anchors=ANCHORS, epochs={Role.MODEL_SIGNER: stored})
    # The aggregator's epoch does not matter for a model-signer statement.
    verify_anchor_statement(data, anchors=ANCHORS, epochs={Role.AGGREGATOR: 9})
    # Signed by the aggregator's key but claims the model-signer role.
    with pytest.raises(UnknownSigner):
        verify_anchor_statement(
            build_anchor_statement(AGG, 1, 1, new_pub), anchors=ANCHORS, epochs={}
        )
    with pytest.raises(UnknownSigner):
        verify_anchor_statement(
            build_anchor_statement(ROGUE, 1, 1, new_pub), anchors=ANCHORS, epochs={}
        )
    bad = bytearray(data)
    bad[-5] ^= 0x10
    with pytest.raises(SignatureInvalid):
        verify_anchor_statement(bytes(bad), anchors=ANCHORS, epochs={})
    for role in (0, 4, 255):  # 3 is the registrar
        with pytest.raises(Malformed, match="role"):
            verify_anchor_statement(
                resign(data, HEADER_SIZE, role, SIGNER), anchors=ANCHORS, epochs={}
            )
    with pytest.raises(Malformed, match="reserved"):
        verify_anchor_statement(
            resign(data, HEADER_SIZE + 3, 1, SIGNER), anchors=ANCHORS, epochs={}
        )
    with pytest.raises(Malformed):
        parse_anchor_statement(data[:100])
    with pytest.raises(Malformed):
        parse_anchor_statement(data + b"\x00")


def test_anchor_epoch_zero_is_stale() -> None:
    data = resign(
        build_anchor_statement(SIGNER, 1, 1, ed25519_raw_public(NEW)), HEADER_SIZE + 8, 0, SIGNER
    )
    assert parse_anchor_statement(data).epoch == 0
    with pytest.raises(StaleStatement):
        verify_anchor_statement(data, anchors=ANCHORS, epochs={})


def test_anchor_builder_refuses_bad_input() -> None:
    new_pub = ed25519_raw_public(NEW)
    with pytest.raises(Malformed):
        build_anchor_statement(SIGNER, 4, 1, new_pub)
    with pytest.raises(Malformed):
        build_anchor_statement(SIGNER, 1, 0, new_pub)
    with pytest.raises(Malformed):
        build_anchor_statement(SIGNER, 1, 1, new_pub[:31])


def test_a_b_a_replay_is_stale() -> None:
    """After A->B->A the old statement A->B (epoch 1) is refused when 3 is expected."""
    a_pub, b_pub = ed25519_raw_public(SIGNER), ed25519_raw_public(NEW)
    a_to_b = build_anchor_statement(SIGNER, 1, 1, b_pub)
    b_to_a = build_anchor_statement(NEW, 1, 2, a_pub)
    verify_anchor_statement(a_to_b, anchors={1: a_pub}, epochs={1: 0})
    verify_anchor_statement(b_to_a, anchors={1: b_pub}, epochs={1: 1})
    with pytest.raises(StaleStatement):
        verify_anchor_statement(a_to_b, anchors={1: a_pub}, epochs={1: 2})


def test_device_record_class_helpers() -> None:
    from edge.formats import DeviceRecord

    data = DeviceRecord.build(IDENTITY, AGREEMENT)
    assert data == build_device_record(IDENTITY, AGREEMENT)
    assert DeviceRecord.parse(data) == parse_device_record(data)
