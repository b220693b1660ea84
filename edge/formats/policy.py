"""Privacy policy (kind 6): the DP bounds a device enforces, signed by the model signer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import tee_abi
from edge.errors import Malformed
from edge.formats.envelope import (
    Envelope,
    Kind,
    build_envelope,
    parse_envelope,
    verify_envelope,
)
from edge.formats.layouts import POLICY_BODY
from edge.tee_abi import Accountant, PolicyFlag, Sampling

POLICY_BODY_SIZE = POLICY_BODY.size
POLICY_SIZE = tee_abi.POLICY_SIZE
POLICY_ID_SIZE = tee_abi.POLICY_ID_SIZE
SAMPLING_POISSON = Sampling.POISSON
SAMPLING_FIXED = Sampling.FIXED
FLAG_NO_DP = PolicyFlag.NO_DP
ACCOUNTANT_RDP = Accountant.RDP
ACCOUNTANT_PLD = Accountant.PLD
MAX_U64 = 2**64 - 1
MAX_U32 = 2**32 - 1
MAX_STEPS_PER_ROUND = tee_abi.MAX_STEPS_PER_ROUND
_WHAT = "privacy policy"


@dataclass(frozen=True)
class PrivacyPolicy:
    """The fields of a privacy policy (floats as the float32/float64 the envelope holds)."""

    version: int
    noise_multiplier_min: float
    max_example_clip: float
    max_update_clip: float
    sampling_rate: float
    sampling: Sampling
    flags: PolicyFlag
    max_steps_per_round: int
    step_budget: int
    target_epsilon: float
    delta: float
    accountant: Accountant
    signer_key_id: bytes = bytes(16)

    @property
    def no_dp(self) -> bool:
        """True for a test-only policy that allows sigma = 0."""
        return bool(self.flags & FLAG_NO_DP)

    @property
    def sampling_name(self) -> str:
        """``poisson`` or ``fixed``."""
        return Sampling(self.sampling).name.lower()


def policy_id(data: bytes) -> bytes:
    """The id the TA reports for an installed policy: first 8 bytes of SHA-256 of the envelope."""
    return hashlib.sha256(bytes(data)).digest()[:POLICY_ID_SIZE]


def _f32(value: float) -> float:
    """Round to float32 as stored."""
    return float(np.float32(value))


def _fields(p: PrivacyPolicy) -> dict[str, object]:
    return {name: getattr(p, name) for name in POLICY_BODY.names}


def _check_cross(p: PrivacyPolicy) -> None:
    """The rule the table cannot state: sigma_min = 0 (or -0) only for a no-DP test policy."""
    if not p.noise_multiplier_min > 0.0 and not p.no_dp:
        raise Malformed("privacy policy: sigma_min = 0 needs the no-DP test flag")


def _check_fields(p: PrivacyPolicy) -> None:
    """Refuse field values the TA refuses (``Malformed``), naming the field."""
    POLICY_BODY.check(_WHAT, _fields(p))
    _check_cross(p)


def _parse(env: Envelope) -> PrivacyPolicy:
    """Decode and check a policy body."""
    p = PrivacyPolicy(**POLICY_BODY.unpack(env.body, _WHAT), signer_key_id=env.signer_key_id)
    _check_cross(p)
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
    return POLICY_BODY.pack(_fields(p))


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
    sampling: int = Sampling.POISSON,
    no_dp: bool = False,
    require_secagg: bool = False,
    accountant: int = Accountant.RDP,
    check: bool = True,
) -> bytes:
    """Return a privacy policy signed by the model-signer key ``signer``."""
    p = PrivacyPolicy(
        version, _f32(noise_multiplier_min), _f32(max_example_clip), _f32(max_update_clip),
        _f32(sampling_rate), sampling,
        (PolicyFlag.NO_DP if no_dp else PolicyFlag(0))
        | (PolicyFlag.REQUIRE_SECAGG if require_secagg else PolicyFlag(0)),
        max_steps_per_round,
        step_budget, float(target_epsilon), float(delta), accountant,
    )
    if check:
        _check_fields(p)
        if not 1 <= version <= MAX_U64 or not 1 <= step_budget <= MAX_U64:
            raise Malformed("privacy policy: version or step budget out of u64 range")
    return build_envelope(Kind.PRIVACY_POLICY, encode_policy_body(p), signer)
