"""Strict Ed25519 everywhere a key enters or a signature is checked (issue 10, item 2).

With the identity point as public key, R = identity and S = 0 "verify" any
message under RFC 8032: a forged policy installed itself and a forged package
loaded. Keys that are off the curve, non-canonical or of small order are now
refused by the TA (``weak-key``), by Python and by the tools; signatures with
S >= L or R of small order are refused as ``signature``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import Roles, load, make_package
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge import errors
from edge.formats import ed25519_strict as strict
from edge.formats.anchors import Role
from edge.formats.device import parse_device_record
from edge.formats.envelope import Kind, encode_header, parse_envelope, verify_envelope
from edge.formats.keys import ed25519_public_from_raw, ed25519_raw_public, key_id, x25519_raw_public
from edge.formats.layouts import ANCHOR_STATEMENT_BODY
from edge.tee import TrustedApp
from firmware_sign.cli import main as firmware_sign

VECTORS = Path(__file__).resolve().parent / "vectors" / "ed25519_points.tsv"
IDENTITY = (1).to_bytes(32, "little")
FORGED_SIG = IDENTITY + bytes(32)  # R = identity, S = 0: "valid" under the identity key


def _points() -> list[tuple[bytes, str, str]]:
    rows = []
    for line in VECTORS.read_text().splitlines():
        if line and not line.startswith("#"):
            hexa, klass, note = line.split("\t")
            rows.append((bytes.fromhex(hexa), klass, note))
    return rows


POINTS = _points()
WEAK = [(raw, klass, note) for raw, klass, note in POINTS if klass != "ok"]


def test_vectors_cover_every_class() -> None:
    classes = [k for _, k, _ in POINTS]
    assert classes.count("small-order") == 8
    assert {"ok", "non-canonical", "off-curve"} <= set(classes)


@pytest.mark.parametrize(("raw", "klass", "note"), POINTS, ids=[n for _, _, n in POINTS])
def test_python_classifies_each_vector(raw: bytes, klass: str, note: str) -> None:
    if klass == "ok":
        strict.check_public_key(raw)
        ed25519_public_from_raw(raw)
        return
    with pytest.raises(errors.WeakKey, match={"small-order": "small order",
                                              "non-canonical": "non-canonical",
                                              "off-curve": "not a point"}[klass]):
        ed25519_public_from_raw(raw, note)


def test_forged_envelope_under_the_identity_key_is_refused() -> None:
    body = b"policy: no DP, budget 2^62"
    signed = encode_header(Kind.PRIVACY_POLICY, len(body), key_id(IDENTITY)) + body
    env = parse_envelope(signed + FORGED_SIG, kind=Kind.PRIVACY_POLICY, max_len=1 << 16)
    with pytest.raises(errors.WeakKey):
        verify_envelope(env, IDENTITY)


def test_signature_with_small_order_r_or_unreduced_s_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    pub = ed25519_raw_public(key)
    body = b"x" * 8
    signed = encode_header(Kind.PRIVACY_POLICY, len(body), key_id(pub)) + body
    good = parse_envelope(signed + bytes(64), kind=Kind.PRIVACY_POLICY, max_len=1 << 16)
    real = key.sign(good.digest())
    verify_envelope(parse_envelope(signed + real, kind=Kind.PRIVACY_POLICY, max_len=1 << 16), pub)
    s = int.from_bytes(real[32:], "little")
    for sig, why in ((real[:32] + (s + strict.L).to_bytes(32, "little"), "not reduced"),
                     (IDENTITY + real[32:], "R is a point of small order")):
        env = parse_envelope(signed + sig, kind=Kind.PRIVACY_POLICY, max_len=1 << 16)
        with pytest.raises(errors.SignatureInvalid, match=why):
            verify_envelope(env, pub)


def test_device_record_with_a_small_order_key_is_refused() -> None:
    body = struct.pack("<32s32sI4s", IDENTITY, x25519_raw_public(X25519PrivateKey.generate()),
                       1, bytes(4))
    signed = encode_header(Kind.DEVICE_RECORD, len(body), key_id(IDENTITY)) + body
    with pytest.raises(errors.WeakKey):
        parse_device_record(signed + FORGED_SIG)


@pytest.mark.parametrize(("raw", "klass", "note"), WEAK, ids=[n for _, _, n in WEAK])
def test_ta_refuses_weak_anchor_keys(ta: TrustedApp, roles: Roles, raw: bytes, klass: str,
                                     note: str) -> None:
    with pytest.raises(errors.WeakKey):
        ta.install_anchors(raw, roles.aggregator_pub)
    with pytest.raises(errors.WeakKey):
        ta.install_anchors(roles.signer_pub, raw)
    assert not ta.status().has_anchors
    ta.install_anchors(roles.signer_pub, roles.aggregator_pub)


def test_ta_refuses_a_statement_replacing_an_anchor_with_a_weak_key(
        provisioned: TrustedApp, roles: Roles) -> None:
    before = provisioned.status()
    for weak in (IDENTITY, bytes(32)):
        body = ANCHOR_STATEMENT_BODY.pack({"role": Role.MODEL_SIGNER, "epoch": 1,
                                           "new_pub": weak})
        signed = encode_header(Kind.ANCHOR_STATEMENT, len(body),
                               key_id(roles.signer_pub)) + body
        stmt = signed + roles.signer.sign(parse_envelope(
            signed + bytes(64), kind=Kind.ANCHOR_STATEMENT, max_len=1 << 10).digest())
        with pytest.raises(errors.WeakKey):
            provisioned.replace_anchor(stmt)
        assert provisioned.status() == before
    # The same signer's package still loads: nothing was replaced.
    dev = parse_device_record(provisioned.identity())
    assert load(provisioned, make_package(roles.signer, [dev], version=2)).version == 2


def test_firmware_sign_refuses_a_weak_new_anchor(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert firmware_sign(["keygen", "--role", "model-signer", "--out",
                          str(tmp_path / "signer")]) == 0
    (tmp_path / "zero.pub").write_bytes(bytes(32))
    capsys.readouterr()
    assert firmware_sign(["anchor", "replace", "--role", "model-signer", "--current",
                          str(tmp_path / "signer.key"), "--new", str(tmp_path / "zero.pub"),
                          "--epoch", "1", "--out", str(tmp_path / "st.bin")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("weak-key: ") and "small order" in err, err
    assert not (tmp_path / "st.bin").exists()


def test_the_small_order_blocklist_is_every_encoding_of_a_small_order_point() -> None:
    # R is checked against a blocklist (R changes with every signature); it must
    # hold exactly the encodings a lax decoder (y mod p, any sign for x = 0)
    # reads as a point of small order: here, against every vector and the
    # blocklist's own members.
    def lax_small_order(raw: bytes) -> bool:
        y = (int.from_bytes(raw, "little") & ((1 << 255) - 1)) % strict.P
        for sign in (0, 1):
            point = strict.decode_point((y | (sign << 255)).to_bytes(32, "little"))
            if isinstance(point, str) or not strict.has_small_order(*point):
                continue
            if point[0] == 0 or sign == raw[31] >> 7:
                return True
        return False

    candidates = {raw for raw, _, _ in POINTS} | set(strict.SMALL_ORDER_ENCODINGS)
    for raw in candidates:
        assert (raw in strict.SMALL_ORDER_ENCODINGS) == lax_small_order(raw), raw.hex()
    assert len(strict.SMALL_ORDER_ENCODINGS) == 14
