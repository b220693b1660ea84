"""Privacy policy (kind 6): the DP bounds a device enforces, signed by the model signer."""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import Malformed
from edge.formats.envelope import (
    HEADER_SIZE,
    SIG_SIZE,
    Envelope,
    Kind,
    build_envelope,
    parse_envelope,
    verify_envelope,
)

POLICY_BODY_SIZE = 64
POLICY_SIZE = HEADER_SIZE + POLICY_BODY_SIZE + SIG_SIZE
POLICY_ID_SIZE = 8
SAMPLING_POISSON = 1
SAMPLING_FIXED = 2
FLAG_NO_DP = 0x1
ACCOUNTANT_RDP = 1
ACCOUNTANT_PLD = 2
MAX_U64 = 2**64 - 1
MAX_U32 = 2**32 - 1
MAX_STEPS_PER_ROUND = 100_000

_BODY = struct.Struct("<QffffBB2sIQddI4s")
assert _BODY.size == POLICY_BODY_SIZE


@dataclass(frozen=True)
class PrivacyPolicy:
    """The fields of a privacy policy (floats as the float32/float64 the envelope holds)."""

    version: int
    noise_multiplier_min: float
    max_example_clip: float
    max_update_clip: float
    sampling_rate: float
    sampling: int
    flags: int
    max_steps_per_round: int
    step_budget: int
    target_epsilon: float
    delta: float
    accountant: int
    signer_key_id: bytes = bytes(16)

    @property
    def no_dp(self) -> bool:
        """True for a test-only policy that allows sigma = 0."""
        return bool(self.flags & FLAG_NO_DP)

    @property
    def sampling_name(self) -> str:
        """``poisson`` or ``fixed``."""
        return {SAMPLING_POISSON: "poisson", SAMPLING_FIXED: "fixed"}[self.sampling]


def policy_id(data: bytes) -> bytes:
    """The id the TA reports for an installed policy: first 8 bytes of SHA-256 of the envelope."""
    return hashlib.sha256(bytes(data)).digest()[:POLICY_ID_SIZE]


def _f32(value: float) -> float:
    """Round to float32 as stored."""
    return float(np.float32(value))


def _check_fields(p: PrivacyPolicy) -> None:
    """Refuse field values the TA refuses (``Malformed``), naming the field."""
    for name in ("noise_multiplier_min", "max_example_clip", "max_update_clip",
                 "sampling_rate", "target_epsilon", "delta"):
        if not math.isfinite(getattr(p, name)):
            raise Malformed(f"privacy policy: {name} is not finite")
    if p.version < 1:
        raise Malformed("privacy policy: version must be ≥ 1")
    if p.noise_multiplier_min < 0.0:
        raise Malformed(f"privacy policy: sigma_min {p.noise_multiplier_min} is negative")
    if p.flags & ~FLAG_NO_DP:
        raise Malformed(f"privacy policy: unknown flag bits 0x{p.flags:02x}")
    if p.noise_multiplier_min == 0.0 and not p.no_dp:
        raise Malformed("privacy policy: sigma_min = 0 needs the no-DP test flag")
    if p.max_example_clip <= 0.0:
        raise Malformed(f"privacy policy: C_max {p.max_example_clip} is not > 0")
    if p.max_update_clip <= 0.0:
        raise Malformed(f"privacy policy: U_max {p.max_update_clip} is not > 0")
    if not 0.0 < p.sampling_rate <= 1.0:
        raise Malformed(f"privacy policy: sampling rate {p.sampling_rate} is not in (0, 1]")
    if p.sampling not in (SAMPLING_POISSON, SAMPLING_FIXED):
        raise Malformed(f"privacy policy: sampling {p.sampling} is not 1 (Poisson) or 2 (fixed)")
    if not 1 <= p.max_steps_per_round <= MAX_STEPS_PER_ROUND:
        raise Malformed(f"privacy policy: max steps per round {p.max_steps_per_round} is not "
                        f"in 1..{MAX_STEPS_PER_ROUND}")
    if p.step_budget < 1:
        raise Malformed("privacy policy: step budget must be ≥ 1")
    if p.accountant not in (ACCOUNTANT_RDP, ACCOUNTANT_PLD):
        raise Malformed(f"privacy policy: accountant {p.accountant} is not 1 (RDP) or 2 (PLD)")


def _parse(env: Envelope) -> PrivacyPolicy:
    """Decode and check a policy body."""
    body = env.body
    if len(body) != POLICY_BODY_SIZE:
        raise Malformed(f"privacy policy: body of {len(body)} bytes, expected {POLICY_BODY_SIZE}")
    (version, sigma, c_max, u_max, q, sampling, flags, res1, max_steps, budget, target, delta,
     accountant, res2) = _BODY.unpack(body)
    if res1 != bytes(2):
        raise Malformed("privacy policy: reserved bytes 26..27 are not zero")
    if res2 != bytes(4):
        raise Malformed("privacy policy: reserved bytes 60..63 are not zero")
    p = PrivacyPolicy(version, sigma, c_max, u_max, q, sampling, flags, max_steps, budget,
                      target, delta, accountant, env.signer_key_id)
    _check_fields(p)
    return p


def parse_policy(data: bytes | bytearray | memoryview) -> PrivacyPolicy:
    """Parse a privacy policy with every structural check but no signature check."""
    return _parse(parse_envelope(data, kind=Kind.PRIVACY_POLICY, max_len=POLICY_SIZE))


def verify_policy(data: bytes | bytearray | memoryview, signer_pub: bytes) -> PrivacyPolicy:
    """Check a policy as INSTALL_POLICY does (envelope, signer, signature, then the body)."""
    env = parse_envelope(data, kind=Kind.PRIVACY_POLICY, max_len=POLICY_SIZE)
    verify_envelope(env, signer_pub)
    return _parse(env)


def encode_policy_body(p: PrivacyPolicy) -> bytes:
    """Return the 64-byte body (no validation; test vectors and builders)."""
    return _BODY.pack(p.version, p.noise_multiplier_min, p.max_example_clip, p.max_update_clip,
                      p.sampling_rate, p.sampling, p.flags, bytes(2), p.max_steps_per_round,
                      p.step_budget, p.target_epsilon, p.delta, p.accountant, bytes(4))


def build_policy(
    signer: Ed25519PrivateKey,
    *,
    version: int,
    noise_multiplier_min: float,
    max_example_clip: float,
    max_update_clip: float,
    sampling_rate: float,
    max_steps_per_round: int,
    step_budget: int,
    target_epsilon: float,
    delta: float,
    sampling: int = SAMPLING_POISSON,
    no_dp: bool = False,
    accountant: int = ACCOUNTANT_RDP,
    check: bool = True,
) -> bytes:
    """Return a privacy policy signed by the model-signer key ``signer``."""
    p = PrivacyPolicy(
        version, _f32(noise_multiplier_min), _f32(max_example_clip), _f32(max_update_clip),
        _f32(sampling_rate), sampling, FLAG_NO_DP if no_dp else 0, max_steps_per_round,
        step_budget, float(target_epsilon), float(delta), accountant,
    )
    if check:
        _check_fields(p)
        if not 1 <= version <= MAX_U64 or not 1 <= step_budget <= MAX_U64:
            raise Malformed("privacy policy: version or step budget out of u64 range")
    return build_envelope(Kind.PRIVACY_POLICY, encode_policy_body(p), signer)
