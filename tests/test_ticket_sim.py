"""Every round-ticket refusal through the simulated secure world (plain and ASan).

After each refusal the budget block and the secure storage are unchanged, and the TA still
accepts a good ticket. Needs the TA side of the training commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Roles, head, package_id, state_files
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from training_helpers import NOW, data, policy, ready, ticket
from vectors.generate import flip, resign

from edge import errors
from edge.formats.envelope import HEADER_SIZE
from edge.formats.layouts import TICKET_BODY
from edge.formats.policy import SAMPLING_FIXED, SAMPLING_POISSON
from edge.tee import TrustedApp

STRICT = dict(noise_multiplier_min=0.5, max_example_clip=1.0, max_update_clip=2.0,
              sampling=SAMPLING_POISSON, sampling_rate=0.25, max_steps_per_round=4, no_dp=False)
FLOOR = NOW + 1000  # issued-at of the round sealed before each refusal
GOOD = dict(round_id=5, noise_multiplier=0.5, example_clip=1.0, update_clip=2.0, epochs=1)


def _reserved(tk: bytes, agg: Ed25519PrivateKey) -> bytes:
    def edit(_h: bytearray, body: bytearray) -> None:
        body[TICKET_BODY.offset("reserved") + 1] = 1
    return resign(tk, edit, agg)


# name -> (ticket from (roles, good ticket bytes), REE time, expected class)
Case = tuple[Callable[[Roles, bytes], bytes], int, type[errors.EdgeError]]
CASES: dict[str, Case] = {
    "expired-ree-time": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "deadline": FLOOR + 5}),
                         FLOOR + 6, errors.Expired),
    "expired-time-floor": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "deadline": FLOOR - 1}),
                           NOW - 10_000, errors.Expired),
    "wrong-model": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "model_version": 2}),
                    NOW, errors.WrongModel),
    "replay-equal": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "round_id": 2}),
                     NOW, errors.Replay),
    "replay-older": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "round_id": 1}),
                     NOW, errors.Replay),
    "clip-above-policy": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "example_clip": 1.01}),
                          NOW, errors.PolicyViolation),
    "noise-below-policy": (lambda r, _t: ticket(r.aggregator,
                                                **{**GOOD, "noise_multiplier": 0.49}),
                           NOW, errors.PolicyViolation),
    "update-clip-above-policy": (lambda r, _t: ticket(r.aggregator,
                                                      **{**GOOD, "update_clip": 2.5}),
                                 NOW, errors.PolicyViolation),
    "poisson-steps-above-policy": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "epochs": 2}),
                                   NOW, errors.PolicyViolation),
    "bad-signature": (lambda _r, t: flip(t, len(t) - 1), NOW, errors.SignatureInvalid),
    "body-flipped": (lambda _r, t: flip(t, HEADER_SIZE + 3), NOW, errors.SignatureInvalid),
    "unknown-signer": (lambda _r, _t: ticket(Ed25519PrivateKey.generate(), **GOOD),
                       NOW, errors.UnknownSigner),
    "signed-by-model-signer": (lambda r, _t: ticket(r.signer, **GOOD), NOW, errors.UnknownSigner),
    "truncated": (lambda _r, t: t[:-1], NOW, errors.Malformed),
    "trailing-byte": (lambda _r, t: t + b"\0", NOW, errors.Malformed),
    "reserved-byte": (lambda r, t: _reserved(t, r.aggregator), NOW, errors.Malformed),
    "zero-learning-rate": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "learning_rate": 0.0},
                                                check=False), NOW, errors.Malformed),
    "update-mode-2": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "update_mode": 2},
                                           check=False), NOW, errors.Malformed),
    # Format version 1: the layout before the package id and the secure-aggregation fields.
    "format-version": (lambda r, t: resign(t, lambda h, _b: h.__setitem__(4, 1), r.aggregator),
                       NOW, errors.UnsupportedVersion),
    "another-package": (lambda r, _t: ticket(r.aggregator, **{**GOOD, "package_id": bytes(16)}),
                        NOW, errors.WrongModel),
    "wrong-kind": (lambda r, _t: policy(r.aggregator), NOW, errors.WrongKind),
}


def _sealed_round(ta: TrustedApp, roles: Roles) -> None:
    """Seal round 2, issued at FLOOR: the time floor is FLOOR and the last round 2."""
    x, y = data(1, 8, 16, 4)
    ta.verify_ticket(ticket(roles.aggregator, **{**GOOD, "round_id": 2, "issued_at": FLOOR}),
                     ree_time=NOW - 10_000)
    ta.train_and_seal(x, y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_ticket_refusal_changes_nothing(provisioned: TrustedApp, roles: Roles,
                                            secure_world: Path, name: str) -> None:
    make, ree_time, expected = CASES[name]
    w, b = head(21)
    ready(provisioned, roles, w, b, policy_bytes=policy(roles.signer, **STRICT))
    _sealed_round(provisioned, roles)
    good = ticket(roles.aggregator, **GOOD)
    before, files = provisioned.budget(), state_files(secure_world)
    with pytest.raises(expected) as info:
        provisioned.verify_ticket(make(roles, good), ree_time=ree_time)
    assert type(info.value) is expected, f"{type(info.value).__name__}: {info.value}"
    assert provisioned.budget() == before
    assert state_files(secure_world) == files, "secure storage changed on refusal"
    with pytest.raises(errors.BadState):  # a refused ticket is not held
        provisioned.train_and_seal(*data(2, 8, 16, 4))
    assert provisioned.verify_ticket(good, ree_time=NOW).steps_per_round == 4


def test_no_policy_then_no_model(provisioned: TrustedApp, roles: Roles,
                                 secure_world: Path) -> None:
    tk = ticket(roles.aggregator)
    files = state_files(secure_world)
    with pytest.raises(errors.NoPolicy):
        provisioned.verify_ticket(tk, ree_time=NOW)
    provisioned.install_policy(policy(roles.signer))
    before, files = provisioned.budget(), state_files(secure_world)
    with pytest.raises(errors.NoModel):
        provisioned.verify_ticket(tk, ree_time=NOW)
    assert provisioned.budget() == before and state_files(secure_world) == files


def test_not_provisioned(ta: TrustedApp, roles: Roles) -> None:
    with pytest.raises(errors.NotProvisioned):
        ta.install_policy(policy(roles.signer))
    with pytest.raises(errors.NotProvisioned):
        ta.verify_ticket(ticket(roles.aggregator), ree_time=NOW)


FIXED_POLICY = dict(sampling=SAMPLING_FIXED, sampling_rate=0.5, max_steps_per_round=3)
TRAIN_REFUSALS = {  # (n, B, E) against q = 0.5, at most 3 steps per round
    "batch-over-q": ((8, 5, 1), errors.PolicyViolation),
    "batch-over-n": ((4, 5, 1), errors.PolicyViolation),
    "steps-over-round-max": ((8, 2, 1), errors.PolicyViolation),
}


@pytest.mark.parametrize("name", sorted(TRAIN_REFUSALS))
def test_fixed_size_round_weaker_than_policy(provisioned: TrustedApp, roles: Roles,
                                            secure_world: Path, name: str) -> None:
    (n, batch, epochs), expected = TRAIN_REFUSALS[name]
    w, b = head(22)
    ready(provisioned, roles, w, b, policy_bytes=policy(roles.signer, **FIXED_POLICY))
    provisioned.verify_ticket(ticket(roles.aggregator, batch_size=batch, epochs=epochs),
                              ree_time=NOW)
    before, files = provisioned.budget(), state_files(secure_world)
    with pytest.raises(expected):
        provisioned.train_and_seal(*data(3, n, 16, 4))
    assert provisioned.budget() == before and state_files(secure_world) == files
    provisioned.verify_ticket(ticket(roles.aggregator, batch_size=4), ree_time=NOW)
    provisioned.train_and_seal(*data(3, 8, 16, 4))  # T = 2, B/n = 0.5
    assert provisioned.budget().steps_spent == 2


def test_bad_training_inputs(provisioned: TrustedApp, roles: Roles) -> None:
    w, b = head(23)
    ready(provisioned, roles, w, b)
    provisioned.verify_ticket(ticket(roles.aggregator, batch_size=2), ree_time=NOW)
    x, y = data(4, 4, 16, 4)
    with pytest.raises(errors.Malformed):
        provisioned.train_and_seal(x[:, :15], y)  # wrong feature width
    provisioned.verify_ticket(ticket(roles.aggregator, batch_size=2), ree_time=NOW)
    y_bad = y.copy()
    y_bad[0] = 4  # label must be < head_out
    with pytest.raises(errors.Malformed):
        provisioned.train_and_seal(x, y_bad)
    assert provisioned.budget().steps_spent == 0


def test_default_ree_time_is_now(provisioned: TrustedApp, roles: Roles) -> None:
    w, b = head(24)
    ready(provisioned, roles, w, b)
    with pytest.raises(errors.Expired):
        provisioned.verify_ticket(ticket(roles.aggregator, issued_at=10, deadline=1000))
    assert provisioned.verify_ticket(ticket(roles.aggregator)).steps_left == 1_000_000


def test_a_ticket_for_another_package_names_both_models(provisioned: TrustedApp,
                                                        roles: Roles) -> None:
    """A second aggregator's "v1" is refused by the TA; the line names both packages."""
    w, b = head(21)
    ready(provisioned, roles, w, b, policy_bytes=policy(roles.signer, **STRICT))
    other = bytes(range(16))
    with pytest.raises(errors.WrongModel) as info:
        provisioned.verify_ticket(ticket(roles.aggregator, **{**GOOD, "package_id": other}),
                                  ree_time=NOW)
    assert str(info.value) == (f"round ticket: for model v1 (package {other.hex()}), loaded is "
                               f"v1 (package {package_id(1).hex()})")
    assert info.value.code == 0xED6E000D
