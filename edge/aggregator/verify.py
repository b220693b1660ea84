"""Pure verification of one sealed update against the open round (docs/protocol.md, step 3)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.errors import EdgeError, SignatureInvalid
from edge.formats.device import DeviceRecord
from edge.formats.ed25519_strict import check_signature_form
from edge.formats.envelope import Kind, parse_envelope
from edge.formats.keys import ed25519_public_from_raw
from edge.formats.update import (
    MAX_UPDATE_SIZE,
    NORM_SLACK,
    MaskedUpdate,
    SealedUpdate,
    parse_masked_update_envelope,
    parse_update_envelope,
    update_mode_of,
)
from edge.protocol import device_from_update_topic
from edge.tee_abi import MAX_TRAIN_EXAMPLES, UpdateMode

# Refusal classes the aggregator writes to its audit log.
REFUSALS = ("malformed", "unsupported-version", "wrong-kind", "oversized", "topic-mismatch",
            "unknown-device", "signature", "wrong-round", "replay", "wrong-model",
            "not-in-cohort", "duplicate", "norm", "ticket-mismatch", "wrong-mode")


class UpdateRefused(EdgeError):
    """A sealed update the aggregator does not accept; ``refusal`` is its audit class."""

    def __init__(self, refusal: str, message: str, *, device_id: bytes | None = None):
        super().__init__(message)
        self.refusal = refusal
        self.device_id = device_id


@dataclass(frozen=True)
class RoundView:
    """What verification needs to know about the open round."""

    round_id: int
    nonce: bytes
    model_version: int
    param_count: int
    update_clip: float
    cohort: Collection[bytes]
    noise_multiplier: float  # the ticket's sigma and C, as float32 values
    example_clip: float
    package_id: bytes  # of the model the round trains (its tickets name it)
    secagg: bool = False  # a secure-aggregation round: masked (mode 2) updates only


@dataclass(frozen=True)
class Accepted:
    """A verified update: who sent it, its id (SHA-256 of the payload) and its delta."""

    device_id: bytes
    update_id: bytes
    example_count: int
    delta: np.ndarray
    update: SealedUpdate


@dataclass(frozen=True)
class AcceptedMasked:
    """A verified masked update (secure aggregation): who sent it, its id, its words.

    Only its binding is checked here; ``SecAggRound.add_masked`` adds it mod 2^32."""

    device_id: bytes
    update_id: bytes
    update: MaskedUpdate


@functools.lru_cache(maxsize=1 << 16)
def _identity_key(raw: bytes) -> Ed25519PublicKey:
    """An enrolled device's Ed25519 key object, loaded once per key (not per update)."""
    return ed25519_public_from_raw(raw)


def update_id(payload: bytes) -> bytes:
    """The id of a sealed update: its signed digest, SHA-256 of header and body."""
    return parse_envelope(payload, kind=Kind.SEALED_UPDATE, max_len=MAX_UPDATE_SIZE).digest()


def verify(
    fleet: str,
    topic: str,
    payload: bytes,
    devices: Mapping[bytes, DeviceRecord],
    rnd: RoundView | None,
    accepted: Mapping[bytes, bytes],
) -> Accepted | AcceptedMasked:
    """Return the accepted update, or raise UpdateRefused naming the refusal class.

    A masked update (mode 2) is accepted only in a secure-aggregation round, and a
    float32 one only outside it (``wrong-mode``).

    ``devices`` maps enrolled device ids to records; ``accepted`` maps device ids to the
    update ids already accepted for the open round (duplicate check).
    """
    try:
        device_id = device_from_update_topic(fleet, topic)
    except EdgeError as exc:
        raise UpdateRefused("malformed", str(exc)) from None
    try:
        env = parse_envelope(payload, kind=Kind.SEALED_UPDATE, max_len=MAX_UPDATE_SIZE)
    except EdgeError as exc:
        raise UpdateRefused(exc.refusal, str(exc), device_id=device_id) from None
    if not hmac.compare_digest(env.signer_key_id, device_id):
        raise UpdateRefused("topic-mismatch", f"signer key id {env.signer_key_id.hex()} is not "
                            f"the device {device_id.hex()} of the topic", device_id=device_id)
    record = devices.get(device_id)
    if record is None:
        raise UpdateRefused("unknown-device", f"device {device_id.hex()} is not enrolled",
                            device_id=device_id)
    digest = env.digest()  # the signed message; also the update's id
    try:
        check_signature_form(env.signature)
        _identity_key(record.ed25519_pub).verify(env.signature, digest)
    except (InvalidSignature, SignatureInvalid):
        raise UpdateRefused("signature", f"signature does not verify under the identity key "
                            f"of device {device_id.hex()}", device_id=device_id) from None
    try:
        masked = update_mode_of(env) == UpdateMode.SECAGG
        secagg_round = rnd is not None and rnd.secagg
        if masked != secagg_round and rnd is not None:
            raise UpdateRefused("wrong-mode", (
                "a masked (secure-aggregation) update outside a secure-aggregation round"
                if masked else "a float32 update in a secure-aggregation round")
                + f" (round {rnd.round_id})", device_id=device_id)
        if masked:
            m = parse_masked_update_envelope(env)
            return _verify_masked(m, rnd, device_id, digest, accepted)
        upd = parse_update_envelope(env)
    except EdgeError as exc:
        if isinstance(exc, UpdateRefused):
            raise
        raise UpdateRefused(exc.refusal, str(exc), device_id=device_id) from None
    if not hmac.compare_digest(upd.device_id, device_id):
        raise UpdateRefused("topic-mismatch", f"body names device {upd.device_id.hex()}, "
                            f"topic and signer {device_id.hex()}", device_id=device_id)
    _check_round(upd, rnd, device_id)
    assert rnd is not None
    uid = digest
    previous = accepted.get(device_id)
    if previous is not None:
        same = hmac.compare_digest(previous, uid)
        raise UpdateRefused("duplicate", (
            "the same update was accepted already (redelivery or replay)" if same else
            "another update of this device was accepted for this round"
        ) + f" in round {rnd.round_id}", device_id=device_id)
    return Accepted(device_id, uid, upd.example_count, upd.delta, upd)


def _verify_masked(m: MaskedUpdate, rnd: RoundView | None, device_id: bytes, digest: bytes,
                   accepted: Mapping[bytes, bytes]) -> AcceptedMasked:
    """The binding of a masked update; its words are checked by the mod-2^32 sum alone."""
    if not hmac.compare_digest(m.device_id, device_id):
        raise UpdateRefused("topic-mismatch", f"body names device {m.device_id.hex()}, "
                            f"topic and signer {device_id.hex()}", device_id=device_id)
    _check_binding(m, rnd, device_id)
    assert rnd is not None
    if m.example_count == 0 or m.example_count > MAX_TRAIN_EXAMPLES:
        raise UpdateRefused("malformed", f"example count {m.example_count} is not in "
                            f"1..{MAX_TRAIN_EXAMPLES}", device_id=device_id)
    for name, got, want in (("noise_multiplier", m.noise_multiplier, rnd.noise_multiplier),
                            ("example_clip", m.example_clip, rnd.example_clip),
                            ("update_clip", m.update_clip, float(np.float32(rnd.update_clip)))):
        if got != want:
            raise UpdateRefused("ticket-mismatch", f"{name} {got:.6g}, the ticket set "
                                f"{want:.6g}", device_id=device_id)
    previous = accepted.get(device_id)
    if previous is not None:
        raise UpdateRefused("duplicate", "a masked update of this device was accepted already "
                            f"in round {rnd.round_id}", device_id=device_id)
    return AcceptedMasked(device_id, digest, m)


def _check_binding(upd: SealedUpdate | MaskedUpdate, rnd: RoundView | None,
                   device_id: bytes) -> None:
    """Round, cohort, nonce, model version and parameter count of the open round."""
    if rnd is None:
        raise UpdateRefused("wrong-round", f"update for round {upd.round_id}: no round is open",
                            device_id=device_id)
    if upd.round_id != rnd.round_id:
        raise UpdateRefused("wrong-round", f"update for round {upd.round_id}, open round is "
                            f"{rnd.round_id}", device_id=device_id)
    if device_id not in rnd.cohort:
        raise UpdateRefused("not-in-cohort", f"device {device_id.hex()} is not in the cohort of "
                            f"round {rnd.round_id}", device_id=device_id)
    if not hmac.compare_digest(upd.nonce, rnd.nonce):
        raise UpdateRefused("replay", f"cohort nonce differs from round {rnd.round_id}'s",
                            device_id=device_id)
    if upd.model_version != rnd.model_version \
            or not hmac.compare_digest(upd.package_id, rnd.package_id):
        raise UpdateRefused("wrong-model", f"update for model v{upd.model_version} (package "
                            f"{upd.package_id.hex()}), round {rnd.round_id} trains "
                            f"v{rnd.model_version} (package {rnd.package_id.hex()})",
                            device_id=device_id)
    if upd.param_count != rnd.param_count:
        raise UpdateRefused("malformed", f"{upd.param_count} parameters, the head has "
                            f"{rnd.param_count}", device_id=device_id)


def _check_training(upd: SealedUpdate, rnd: RoundView, device_id: bytes) -> None:
    """The training the update claims: what the ticket asked, and what a TA can do.

    The example count is the update's FedAvg weight, so it is bounded by what
    TRAIN_AND_SEAL accepts; sigma and C must be the ticket's exactly (the TA
    seals the values it trained with).
    """
    if upd.example_count == 0:
        raise UpdateRefused("malformed", "example count 0: an update trains on at least one "
                            "example", device_id=device_id)
    if upd.example_count > MAX_TRAIN_EXAMPLES:
        raise UpdateRefused("oversized", f"{upd.example_count} examples exceed the "
                            f"{MAX_TRAIN_EXAMPLES} a TA trains on per round", device_id=device_id)
    if upd.steps == 0:
        raise UpdateRefused("malformed", "steps 0: the TA seals only after training",
                            device_id=device_id)
    for name, got, want in (("noise_multiplier", upd.noise_multiplier, rnd.noise_multiplier),
                            ("example_clip", upd.example_clip, rnd.example_clip)):
        if got != want:
            raise UpdateRefused("ticket-mismatch", f"{name} {got:.6g}, the ticket set "
                                f"{want:.6g}", device_id=device_id)


def _check_round(upd: SealedUpdate, rnd: RoundView | None, device_id: bytes) -> None:
    """Binding to the open round, cohort membership, parameter count and norm bound."""
    _check_binding(upd, rnd, device_id)
    assert rnd is not None
    _check_training(upd, rnd, device_id)
    bound = float(np.float32(rnd.update_clip))
    if upd.update_clip != bound:
        raise UpdateRefused("norm", f"update clip {upd.update_clip:.6g}, the ticket set "
                            f"{bound:.6g}", device_id=device_id)
    norm = upd.norm
    if norm > bound * (1.0 + NORM_SLACK):
        raise UpdateRefused("norm", f"‖Δ‖ = {norm:.6g} exceeds U = {bound:.6g}",
                            device_id=device_id)
