"""Privacy policy, round ticket and sealed update: build, parse and verify in Python."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from conftest import package_id
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from update_helpers import verify_sealed
from vectors.generate import flip, resign

from edge import errors
from edge.aggregator.verify import UpdateRefused
from edge.errors import Malformed
from edge.formats.device import build_device_record, parse_device_record
from edge.formats.envelope import HEADER_SIZE, Kind, parse_envelope
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.layouts import UPDATE_HEADER
from edge.formats.policy import (
    POLICY_SIZE,
    SAMPLING_FIXED,
    SAMPLING_POISSON,
    build_policy,
    parse_policy,
    policy_id,
    verify_policy,
)
from edge.formats.ticket import (
    TICKET_SIZE,
    build_ticket,
    parse_ticket,
    poisson_steps,
    verify_ticket,
)
from edge.formats.update import build_update, parse_update
from edge.tee_abi import POLICY_SIZE as ABI_POLICY_SIZE
from edge.tee_abi import TICKET_SIZE as ABI_TICKET_SIZE

SIGNER = Ed25519PrivateKey.generate()
AGG = Ed25519PrivateKey.generate()
IDENTITY = Ed25519PrivateKey.generate()
DEVICE = parse_device_record(build_device_record(IDENTITY, X25519PrivateKey.generate()))
NONCE = b"n" * 16


def _policy(**kw: object) -> bytes:
    fields: dict[str, object] = dict(
        version=2, noise_multiplier_min=1.1, max_example_clip=1.0, max_update_clip=5.0,
        sampling_rate=0.01, sampling=SAMPLING_POISSON, max_steps_per_round=200,
        step_budget=3132, target_epsilon=3.0, delta=1e-5)
    fields.update(kw)
    return build_policy(SIGNER, **fields)  # type: ignore[arg-type]


def _ticket(**kw: object) -> bytes:
    fields: dict[str, object] = dict(
        round_id=4, model_version=3, package_id=package_id(3), nonce=NONCE, issued_at=100,
        deadline=200,
        example_clip=1.0, noise_multiplier=1.1, update_clip=5.0, learning_rate=0.1,
        epochs=1, batch_size=8)
    fields.update(kw)
    return build_ticket(AGG, **fields)  # type: ignore[arg-type]


def _update(delta: np.ndarray | None = None, **kw: object) -> bytes:
    fields: dict[str, object] = dict(
        round_id=4, nonce=NONCE, model_version=3, package_id=package_id(3),
        delta=np.full(20, 0.1, np.float32) if delta is None else delta,
        example_count=50, steps=100, total_steps=300, update_clip=5.0,
        noise_multiplier=1.1, example_clip=1.0)
    fields.update(kw)
    return build_update(IDENTITY, **fields)  # type: ignore[arg-type]


# -- policy ----------------------------------------------------------------------

def test_policy_round_trip_and_layout() -> None:
    raw = _policy()
    assert len(raw) == POLICY_SIZE == ABI_POLICY_SIZE == 676  # 28 + 584 + 64 (format 2)
    assert struct.unpack_from("<H", raw, 4)[0] == 2
    p = verify_policy(raw, ed25519_raw_public(SIGNER))
    assert (p.version, p.sampling, p.max_steps_per_round, p.step_budget) == (2, 1, 200, 3132)
    assert p.noise_multiplier_min == pytest.approx(1.1, rel=1e-7) and not p.no_dp
    assert (p.delta, p.target_epsilon, p.accountant) == (1e-5, 3.0, 1)
    assert p.signer_key_id == key_id(ed25519_raw_public(SIGNER))
    body = raw[HEADER_SIZE:HEADER_SIZE + 64]
    assert struct.unpack_from("<Q", body, 32)[0] == 3132
    assert struct.unpack_from("<d", body, 48)[0] == 1e-5
    table = raw[HEADER_SIZE + 72:HEADER_SIZE + 72 + 512]
    assert struct.unpack_from("<I", raw, HEADER_SIZE + 64)[0] == len(p.table) == 32
    assert struct.unpack_from("<Qd", table, 16 * 31) == p.table[-1]
    assert p.table[-1][0] == 3132 and p.table[-1][1] == pytest.approx(3.0, rel=0.02)
    assert parse_policy(raw) == p
    assert policy_id(raw) == __import__("hashlib").sha256(raw).digest()[:8]


@pytest.mark.parametrize("kw,match", [
    (dict(noise_multiplier_min=0.0), "no-DP"),
    (dict(noise_multiplier_min=-1.0), "negative"),
    (dict(max_example_clip=0.0), "C_max"),
    (dict(max_update_clip=-1.0), "U_max"),
    (dict(sampling_rate=0.0), "sampling rate"),
    (dict(sampling_rate=1.5), "sampling rate"),
    (dict(sampling=3), "sampling 3"),
    (dict(delta=float("nan")), "delta"),
    (dict(accountant=7), "accountant"),
    (dict(max_steps_per_round=0), "per round"),
    (dict(max_steps_per_round=100_001), "per round"),
    (dict(step_budget=0), "step budget"),
])
def test_policy_field_refusals(kw: dict[str, object], match: str) -> None:
    with pytest.raises(errors.Malformed, match=match):
        _policy(**kw)
    raw = _policy(check=False, **kw)
    with pytest.raises(errors.Malformed, match=match):
        parse_policy(raw)


def test_no_dp_policy_allows_zero_noise() -> None:
    p = parse_policy(_policy(noise_multiplier_min=0.0, no_dp=True, sampling=SAMPLING_FIXED))
    assert p.no_dp and p.noise_multiplier_min == 0.0 and p.sampling_name == "fixed"


def test_policy_envelope_refusals() -> None:
    raw = _policy()
    pub = ed25519_raw_public(SIGNER)
    with pytest.raises(errors.SignatureInvalid):
        verify_policy(flip(raw, len(raw) - 1), pub)
    with pytest.raises(errors.UnknownSigner):
        verify_policy(raw, ed25519_raw_public(AGG))
    with pytest.raises(errors.WrongKind):
        verify_policy(_ticket(), pub)
    with pytest.raises(errors.Malformed):
        parse_policy(raw[:-1])
    with pytest.raises(errors.Malformed, match="reserved"):
        parse_policy(resign(raw, lambda _h, b: b.__setitem__(27, 1), SIGNER))
    with pytest.raises(errors.Malformed, match="reserved"):
        parse_policy(resign(raw, lambda _h, b: b.__setitem__(63, 1), SIGNER))
    with pytest.raises(errors.Malformed, match="flag"):
        parse_policy(resign(raw, lambda _h, b: b.__setitem__(25, 0x80), SIGNER))


# -- ticket ----------------------------------------------------------------------

def test_ticket_round_trip_and_layout() -> None:
    raw = _ticket()
    assert len(raw) == TICKET_SIZE == ABI_TICKET_SIZE == 204
    t = parse_ticket(raw)
    assert (t.round_id, t.model_version, t.nonce, t.issued_at, t.deadline) == (4, 3, NONCE,
                                                                              100, 200)
    assert (t.epochs, t.batch_size, t.update_mode) == (1, 8, 1)
    assert t.learning_rate == pytest.approx(0.1, rel=1e-7)
    assert raw[4:6] == b"\x02\x00"  # format version 2: the package id is bound
    assert raw[HEADER_SIZE + 16:HEADER_SIZE + 32] == t.package_id == package_id(3)
    assert raw[HEADER_SIZE + 32:HEADER_SIZE + 48] == NONCE


def test_ticket_of_the_old_layout_is_refused_by_name() -> None:
    old = resign(_ticket(), lambda h, _b: h.__setitem__(4, 1), AGG)
    with pytest.raises(errors.UnsupportedVersion,
                       match="round ticket format version 1 is not supported"):
        parse_ticket(old)


def test_ticket_for_another_package_of_the_same_version_names_both() -> None:
    """A second aggregator's "v3" is not the v3 this board holds."""
    other = bytes(range(16))
    with pytest.raises(errors.WrongModel) as got:
        verify_ticket(_ticket(package_id=other), ed25519_raw_public(AGG),
                      package_id=package_id(3), **_state())
    assert str(got.value) == (f"round ticket: for model v3 (package {other.hex()}), loaded is "
                              f"v3 (package {package_id(3).hex()})")


@pytest.mark.parametrize("kw,match", [
    (dict(round_id=0), "round id"),
    (dict(example_clip=0.0), "clip C"),
    (dict(noise_multiplier=-0.1), "noise"),
    (dict(update_clip=0.0), "update clip"),
    (dict(learning_rate=float("inf")), "learning_rate"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch"),
    (dict(update_mode=3), "update mode"),
    (dict(update_mode=2), "secagg neighbours"),
    (dict(fleet_id=b"f" * 16), "secure-aggregation fields set in a float32 round"),
    (dict(update_mode=2, secagg_neighbours=4, secagg_threshold=2, secagg_cohort=5),
     "threshold"),
    (dict(update_mode=2, secagg_neighbours=3, secagg_threshold=2, secagg_cohort=9),
     "odd k"),
    (dict(update_mode=2, secagg_neighbours=4, secagg_threshold=3, secagg_cohort=9,
          secagg_scale_log2=30), "overflow"),
])
def test_ticket_field_refusals(kw: dict[str, object], match: str) -> None:
    with pytest.raises(errors.Malformed, match=match):
        _ticket(**kw)
    with pytest.raises(errors.Malformed, match=match):
        parse_ticket(_ticket(check=False, **kw))


def _state(**kw: object) -> dict[str, object]:
    state: dict[str, object] = dict(policy=parse_policy(_policy()), model_version=3,
                                    last_round=3, time_floor=150, ree_time=120)
    state.update(kw)
    return state


@pytest.mark.parametrize("ticket_kw,state_kw,exc", [
    ({}, dict(policy=None), errors.NoPolicy),
    ({}, dict(model_version=0), errors.NoModel),
    (dict(model_version=2), {}, errors.WrongModel),
    (dict(round_id=3), {}, errors.Replay),
    ({}, dict(ree_time=201), errors.Expired),
    ({}, dict(time_floor=201), errors.Expired),
    (dict(example_clip=1.5), {}, errors.PolicyViolation),
    (dict(noise_multiplier=1.0), {}, errors.PolicyViolation),
    (dict(update_clip=5.5), {}, errors.PolicyViolation),
    ({}, "steps", errors.PolicyViolation),
])
def test_ticket_checks_in_ta_order(ticket_kw: dict[str, object],
                                   state_kw: dict[str, object] | str,
                                   exc: type[errors.EdgeError]) -> None:
    if state_kw == "steps":  # 1 * ceil(1/0.01f) = 101 steps > 100
        state_kw = dict(policy=parse_policy(_policy(max_steps_per_round=100)))
    assert isinstance(state_kw, dict)
    with pytest.raises(exc) as info:
        verify_ticket(_ticket(**ticket_kw), ed25519_raw_public(AGG), **_state(**state_kw))
    assert type(info.value) is exc


def test_ticket_accepted_and_signature_checks() -> None:
    pub = ed25519_raw_public(AGG)
    assert verify_ticket(_ticket(), pub, **_state()).round_id == 4
    with pytest.raises(errors.UnknownSigner):
        verify_ticket(_ticket(), ed25519_raw_public(SIGNER), **_state())
    with pytest.raises(errors.SignatureInvalid):
        verify_ticket(flip(_ticket(), HEADER_SIZE + 2), pub, **_state())


def test_poisson_steps_use_the_stored_float32_rate() -> None:
    assert poisson_steps(1, 0.01) == 101  # 1.0 / (double)0.01f = 100.0000022
    assert poisson_steps(3, 0.3) == 12
    assert poisson_steps(2, 1.0) == 2


# -- sealed update ---------------------------------------------------------------

def test_update_round_trip_verifies_with_device_key() -> None:
    delta = np.random.default_rng(0).normal(size=20).astype(np.float32)
    raw = _update(delta)
    env = parse_envelope(raw, kind=Kind.SEALED_UPDATE)
    Ed25519PublicKey.from_public_bytes(DEVICE.ed25519_pub).verify(env.signature, env.digest())
    u = verify_sealed(raw, DEVICE, round_id=4, nonce=NONCE, model_version=3, param_count=20,
                      update_clip=5.0, noise_multiplier=1.1)
    assert u.delta.dtype == np.float32
    np.testing.assert_array_equal(u.delta, delta)
    assert (u.example_count, u.steps, u.total_steps, u.device_id) == (50, 100, 300,
                                                                      DEVICE.device_id)
    assert len(raw) == HEADER_SIZE + 104 + 4 * 20 + 64
    assert u.package_id == package_id(3)


@pytest.mark.parametrize("kw,refusal", [
    (dict(round_id=5), "wrong-round"),
    (dict(nonce=b"m" * 16), "replay"),
    (dict(model_version=4), "wrong-model"),
    (dict(pkg_id=bytes(16)), "wrong-model"),
    (dict(param_count=21), "malformed"),
    (dict(update_clip=4.0), "norm"),
    (dict(noise_multiplier=1.2), "ticket-mismatch"),
])
def test_update_binding_refusals(kw: dict[str, object], refusal: str) -> None:
    expect: dict[str, object] = dict(round_id=4, nonce=NONCE, model_version=3, param_count=20,
                                     update_clip=5.0, noise_multiplier=1.1)
    expect.update(kw)
    with pytest.raises(UpdateRefused) as got:
        verify_sealed(_update(), DEVICE, **expect)  # type: ignore[arg-type]
    assert got.value.refusal == refusal


def test_update_norm_above_clip_is_refused() -> None:
    raw = _update(np.full(20, 2.0, np.float32))  # norm 8.94 > 5
    with pytest.raises(UpdateRefused, match="exceeds") as got:
        verify_sealed(raw, DEVICE, round_id=4, nonce=NONCE, model_version=3, param_count=20,
                      update_clip=5.0, noise_multiplier=1.1)
    assert got.value.refusal == "norm"


def test_update_signature_and_structure_refusals() -> None:
    raw = _update()
    other = parse_device_record(build_device_record(Ed25519PrivateKey.generate(),
                                                    X25519PrivateKey.generate()))
    kw = dict(round_id=4, nonce=NONCE, model_version=3, param_count=20, update_clip=5.0,
              noise_multiplier=1.1)
    with pytest.raises(UpdateRefused) as got:
        verify_sealed(raw, other, **kw)  # type: ignore[arg-type]
    assert got.value.refusal == "topic-mismatch"  # signed by DEVICE, sent as ``other``
    with pytest.raises(UpdateRefused) as got:
        verify_sealed(flip(raw, HEADER_SIZE + 100), DEVICE, **kw)  # type: ignore[arg-type]
    assert got.value.refusal == "signature"
    with pytest.raises(errors.Malformed):
        parse_update(raw[:-1])
    with pytest.raises(errors.Malformed, match="parameters imply"):
        parse_update(resign(raw, lambda _h, b: b.__setitem__(UPDATE_HEADER.offset("param_count"),
                                                             19), IDENTITY))
    with pytest.raises(errors.Malformed, match="reserved"):
        parse_update(resign(raw, lambda _h, b: b.__setitem__(UPDATE_HEADER.offset("reserved2")
                                                             + 2, 1), IDENTITY))
    with pytest.raises(errors.Malformed, match="non-finite"):
        parse_update(_update(np.array([np.nan] * 20, np.float32)))
    with pytest.raises(errors.WrongKind):
        parse_update(_ticket())


# -- ABI mirror of the training commands ------------------------------------------------

def test_training_abi_matches_header() -> None:
    import re
    from pathlib import Path

    from edge import tee_abi
    text = (Path(__file__).resolve().parent.parent / "ta/include/edge_ta.h").read_text()
    d = dict(re.findall(r"^#define\s+(\w+)\s+(\d+|0x[0-9A-Fa-f]+)\b", text, re.M))
    for name in ("VERIFY_TICKET", "TRAIN_AND_SEAL", "BUDGET_STATUS", "INSTALL_POLICY"):
        assert int(d[f"TA_EDGE_CMD_{name}"]) == getattr(tee_abi, f"CMD_{name}"), name
    for name in ("FLAGS", "STEPS_SPENT", "STEP_BUDGET", "POLICY_VERSION", "ROUNDS_SEALED",
                 "LAST_ROUND", "TIME_FLOOR", "POLICY_ID"):
        assert int(d[f"EDGE_BUDGET_OFF_{name}"]) == getattr(tee_abi, f"BUDGET_OFF_{name}"), name
    assert int(d["EDGE_BUDGET_SIZE"]) == tee_abi.BUDGET_SIZE
    assert int(d["EDGE_UPDATE_HEADER_SIZE"]) == tee_abi.UPDATE_HEADER_SIZE
    assert int(d["EDGE_MAX_TRAIN_EXAMPLES"]) == tee_abi.MAX_TRAIN_EXAMPLES
    assert int(d["EDGE_MAX_STEPS_PER_ROUND"]) == tee_abi.MAX_STEPS_PER_ROUND


def test_budget_block_parse() -> None:
    from edge.tee import BudgetStatus
    block = struct.pack("<II6Q8s3d", 1, 0, 40, 100, 2, 3, 7, 1234, b"policyid", 2.5, 6.0, 1e-5)
    b = BudgetStatus.parse(block)
    assert (b.epsilon_spent, b.epsilon_budget, b.delta) == (2.5, 6.0, 1e-5)
    assert (b.has_policy, b.steps_spent, b.step_budget, b.policy_version) == (True, 40, 100, 2)
    assert (b.rounds_sealed, b.last_round, b.time_floor, b.policy_id) == (3, 7, 1234,
                                                                          b"policyid")
    assert b.steps_left == 60
    with pytest.raises(errors.Malformed):
        BudgetStatus.parse(block[:-1])


def test_policy_format_1_is_refused_by_name() -> None:
    """The layout before the steps -> epsilon table (format 1) is unsupported-version."""
    from edge.errors import UnsupportedVersion
    from edge.formats.envelope import build_envelope, encode_header, sign_digest

    raw = _policy()
    body = raw[HEADER_SIZE:-64]
    old = encode_header(Kind.PRIVACY_POLICY, len(body), key_id(ed25519_raw_public(SIGNER)),
                        version=1) + body
    with pytest.raises(UnsupportedVersion, match="privacy policy format version 1"):
        parse_policy(old + sign_digest(SIGNER, old))
    assert parse_policy(build_envelope(Kind.PRIVACY_POLICY, body, SIGNER)).version == 2


@pytest.mark.parametrize("edit,match", [
    (lambda t: t[:16] + t[:16] + bytes(480), "not above"),
    (lambda t: t[:8] + struct.pack("<d", float("nan")) + t[16:], "not finite"),
    (lambda t: t[:16 * 31] + struct.pack("<Qd", 3131, 3.0) + bytes(0), "not at the step"),
    (lambda t: t[:16] + t[16:24] + struct.pack("<d", 0.0) + t[32:], "non-decreasing"),
])
def test_policy_table_defects_are_malformed(edit: object, match: str) -> None:
    from edge.formats.envelope import build_envelope

    raw = _policy()
    body = bytearray(raw[HEADER_SIZE:-64])
    table = bytes(body[72:72 + 512])
    body[72:72 + 512] = edit(table)  # type: ignore[operator]
    with pytest.raises(Malformed, match=match):
        parse_policy(build_envelope(Kind.PRIVACY_POLICY, bytes(body), SIGNER))


def test_policy_table_bytes_past_the_count_are_malformed() -> None:
    from edge.formats.envelope import build_envelope

    raw = _policy()
    body = bytearray(raw[HEADER_SIZE:-64])
    struct.pack_into("<I", body, 64, 31)
    struct.pack_into("<Q", body, 72 + 16 * 30, 3132)  # entry 30 ends the table at the budget
    with pytest.raises(Malformed, match="past the count"):
        parse_policy(build_envelope(Kind.PRIVACY_POLICY, bytes(body), SIGNER))
