"""SIGN_SKIP through the simulated secure world: the TA's own refusal, with its field and both
values, in a report signed by the identity key; nothing in storage changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Roles, head, package_id, state_files
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from training_helpers import NOW, data, policy, ready, ticket
from vectors.generate import flip

from edge import errors
from edge.formats.device import parse_device_record
from edge.formats.policy import SAMPLING_FIXED, SAMPLING_POISSON
from edge.formats.skip import build_skip, parse_skip, verify_skip
from edge.tee import TrustedApp
from edge.tee_abi import SkipField, SkipReason

STRICT = dict(noise_multiplier_min=1.1, max_example_clip=1.0, max_update_clip=2.0,
              sampling=SAMPLING_POISSON, sampling_rate=0.25, max_steps_per_round=4, no_dp=False)
GOOD = dict(round_id=5, noise_multiplier=1.1, example_clip=1.0, update_clip=2.0, epochs=1)


def _ready(ta: TrustedApp, roles: Roles, **policy_kw: object) -> bytes:
    w, b = head(21)
    ready(ta, roles, w, b, policy_bytes=policy(roles.signer, **{**STRICT, **policy_kw}))
    return ta.identity()


@pytest.mark.parametrize(("change", "refusal", "field", "text"), [
    (dict(noise_multiplier=1.0), "weaker-than-policy", SkipField.NOISE_MULTIPLIER,
     "weaker-than-policy (noise_multiplier 1.0 < policy sigma_min 1.1)"),
    (dict(example_clip=1.5), "weaker-than-policy", SkipField.EXAMPLE_CLIP,
     "weaker-than-policy (example_clip 1.5 > policy max_example_clip 1.0)"),
    (dict(update_clip=2.5), "weaker-than-policy", SkipField.UPDATE_CLIP,
     "weaker-than-policy (update_clip 2.5 > policy max_update_clip 2.0)"),
    (dict(epochs=2), "weaker-than-policy", SkipField.STEPS_PER_ROUND,
     "weaker-than-policy (8 steps per round > policy max_steps_per_round 4)"),
    (dict(deadline=NOW - 1), "expired", SkipField.DEADLINE,
     f"expired (deadline {NOW - 1} < now {NOW})"),
])
def test_the_report_names_the_field_and_both_values(
        provisioned: TrustedApp, roles: Roles, secure_world: Path, change: dict[str, object],
        refusal: str, field: SkipField, text: str) -> None:
    record = parse_device_record(_ready(provisioned, roles))
    files, budget = state_files(secure_world), provisioned.budget()
    tk = ticket(roles.aggregator, **{**GOOD, **change})
    raw = provisioned.sign_skip(tk, ree_time=NOW)
    report = verify_skip(raw, record.ed25519_pub)
    assert (report.refusal, report.field, report.describe()) == (refusal, field, text)
    assert (report.device_id, report.round_id, report.nonce) == (record.device_id, 5,
                                                                 bytes(range(16)))
    assert (report.model_version, report.package_id) == (1, package_id(1))
    assert report.reported_at == NOW
    assert state_files(secure_world) == files and provisioned.budget() == budget
    with pytest.raises(errors.BadState):  # SIGN_SKIP holds no ticket
        provisioned.train_and_seal(*data(2, 8, 16, 4))


def test_another_package_of_the_same_version_names_both(provisioned: TrustedApp,
                                                        roles: Roles) -> None:
    _ready(provisioned, roles)
    other = bytes(range(16))
    report = parse_skip(provisioned.sign_skip(
        ticket(roles.aggregator, **{**GOOD, "package_id": other}), ree_time=NOW))
    assert report.describe() == (f"wrong-model (ticket for v1 (package {other.hex()}), "
                                 f"installed v1 (package {package_id(1).hex()}))")
    assert (report.ticket_package_id, report.package_id) == (other, package_id(1))


def test_replay_and_budget_name_their_numbers(provisioned: TrustedApp, roles: Roles) -> None:
    _ready(provisioned, roles, sampling=SAMPLING_FIXED, sampling_rate=1.0,
           max_steps_per_round=100, step_budget=10)
    good = ticket(roles.aggregator, **{**GOOD, "batch_size": 4})
    provisioned.verify_ticket(good, ree_time=NOW)
    provisioned.train_and_seal(*data(1, 8, 16, 4))  # 2 steps of the 10
    replay = parse_skip(provisioned.sign_skip(good, ree_time=NOW))
    assert replay.describe() == "replay (round 5 <= last sealed round 5)"
    nxt = ticket(roles.aggregator, **{**GOOD, "round_id": 6, "batch_size": 1})
    # n = 9 examples at B = 1: 9 steps, 8 left.
    assert parse_skip(provisioned.sign_skip(nxt, examples=9, ree_time=NOW)).describe() == \
        "budget-exhausted (9 steps > 8 steps left in the budget)"
    with pytest.raises(errors.NothingToReport):  # n unknown: the budget is not checked
        provisioned.sign_skip(nxt, ree_time=NOW)


def test_a_normal_world_reason_is_carried_as_stated(provisioned: TrustedApp,
                                                    roles: Roles) -> None:
    _ready(provisioned, roles)
    good = ticket(roles.aggregator, **GOOD)
    with pytest.raises(errors.NothingToReport) as info:
        provisioned.sign_skip(good, ree_time=NOW)
    assert info.value.code == 0xED6E0018
    report = parse_skip(provisioned.sign_skip(good, reason=SkipReason.BACKBONE_UNUSABLE,
                                              ree_time=NOW))
    assert (report.result, report.describe()) == (0, "backbone-unusable")
    weak = ticket(roles.aggregator, **{**GOOD, "noise_multiplier": 1.0})
    both = parse_skip(provisioned.sign_skip(weak, reason=SkipReason.NO_SAMPLES, ree_time=NOW))
    assert both.describe() == ("weaker-than-policy (noise_multiplier 1.0 < policy sigma_min "
                               "1.1); the board also reports no-samples")
    with pytest.raises(errors.Malformed):
        provisioned.sign_skip(good, reason=99, ree_time=NOW)


def test_no_report_for_a_ticket_that_is_not_authentic(provisioned: TrustedApp,
                                                      roles: Roles) -> None:
    _ready(provisioned, roles)
    with pytest.raises(errors.UnknownSigner):
        provisioned.sign_skip(ticket(Ed25519PrivateKey.generate(), **GOOD), ree_time=NOW)
    with pytest.raises(errors.SignatureInvalid):
        provisioned.sign_skip(flip(ticket(roles.aggregator, **GOOD), -1), ree_time=NOW)


def test_reports_without_a_policy_or_model(provisioned: TrustedApp, roles: Roles) -> None:
    tk = ticket(roles.aggregator, **GOOD)
    assert parse_skip(provisioned.sign_skip(tk, ree_time=NOW)).describe() == "no-policy"
    provisioned.install_policy(policy(roles.signer, **STRICT))
    report = parse_skip(provisioned.sign_skip(tk, ree_time=NOW))
    assert (report.describe(), report.model_version) == ("no-model", 0)


def test_a_tampered_or_foreign_report_is_refused(provisioned: TrustedApp, roles: Roles) -> None:
    record = parse_device_record(_ready(provisioned, roles))
    raw = provisioned.sign_skip(ticket(roles.aggregator, **{**GOOD, "noise_multiplier": 1.0}),
                                ree_time=NOW)
    with pytest.raises(errors.SignatureInvalid):
        verify_skip(flip(raw, 40), record.ed25519_pub)
    other = Ed25519PrivateKey.generate()
    forged = build_skip(other, round_id=5, nonce=bytes(16), ticket_model_version=1,
                        ticket_package_id=bytes(16), result=0xED6E000E,
                        field=SkipField.NOISE_MULTIPLIER, value=1.0, bound=1.1)
    with pytest.raises(errors.UnknownSigner):
        verify_skip(forged, record.ed25519_pub)
    with pytest.raises(errors.Malformed, match="neither a refusal nor a reason"):
        parse_skip(build_skip(other, round_id=5, nonce=bytes(16), ticket_model_version=1,
                              ticket_package_id=bytes(16)))
