"""Privacy policy (kind 6): the DP bounds a device enforces, signed by the model signer."""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import tee_abi
from edge.errors import ConfigError, Malformed
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
TABLE_ENTRIES = tee_abi.POLICY_TABLE_ENTRIES
_ENTRY = struct.Struct("<Qd")
_WHAT = "privacy policy"

EpsilonTable = tuple[tuple[int, float], ...]


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
    table_count: int = 0
    min_noise_share: float = 0.0
    epsilon_table: bytes = bytes(TABLE_ENTRIES * _ENTRY.size)
    signer_key_id: bytes = bytes(16)

    @property
    def table(self) -> EpsilonTable:
        """The (steps, ε) entries in use, steps increasing."""
        return tuple(_ENTRY.unpack_from(self.epsilon_table, i * _ENTRY.size)
                     for i in range(min(self.table_count, TABLE_ENTRIES)))

    def epsilon_at(self, steps: int) -> float:
        """ε after ``steps`` steps from the signed table: the ε of the first entry at or above
        ``steps`` (an upper bound, ε grows with steps); 0 for none, inf without a table (no-DP
        policy) or beyond it. No accountant is needed: boards read it as is."""
        if steps <= 0:
            return 0.0
        for at, eps in self.table:
            if at >= steps:
                return eps
        return math.inf

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
    """The rules the field table cannot state: sigma_min = 0 (or -0) only for a no-DP test
    policy; the steps -> ε table as ta/policy.c checks it."""
    if not p.noise_multiplier_min > 0.0 and not p.no_dp:
        raise Malformed("privacy policy: sigma_min = 0 needs the no-DP test flag")
    if p.table_count == 0 and not p.no_dp:
        raise Malformed("privacy policy: an empty steps -> epsilon table needs the no-DP flag")
    prev_steps, prev_eps = 0, 0.0
    for i, (steps, eps) in enumerate(p.table):
        if steps <= prev_steps:
            raise Malformed(f"privacy policy: table entry {i}: steps {steps} not above "
                            f"{prev_steps}")
        if not (math.isfinite(eps) and eps > 0.0 and eps >= prev_eps):
            raise Malformed(f"privacy policy: table entry {i}: epsilon {eps} is not finite, "
                            f"> 0 and non-decreasing")
        prev_steps, prev_eps = steps, eps
    if p.table and prev_steps != p.step_budget:
        raise Malformed(f"privacy policy: the table ends at {prev_steps} steps, not at the "
                        f"step budget {p.step_budget}")
    if any(p.epsilon_table[p.table_count * _ENTRY.size:]):
        raise Malformed("privacy policy: table entries past the count are not zero")


def encode_table(entries: Sequence[tuple[int, float]]) -> bytes:
    """The 512-byte table field: ``entries`` then zeros."""
    if len(entries) > TABLE_ENTRIES:
        raise ValueError(f"{len(entries)} table entries, at most {TABLE_ENTRIES}")
    raw = b"".join(_ENTRY.pack(int(steps), float(eps)) for steps, eps in entries)
    return raw + bytes(TABLE_ENTRIES * _ENTRY.size - len(raw))


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
    """Return the body (no validation; test vectors and builders)."""
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
    epsilon_table: Sequence[tuple[int, float]] | None = None,
    min_noise_share: float = 0.0,
    check: bool = True,
) -> bytes:
    """Return a privacy policy signed by the model-signer key ``signer``; its steps -> ε
    table is computed (``edge.calibration.epsilon_table``, dp_accounting) unless given or the
    policy is a no-DP test policy (empty table)."""
    table_error: ConfigError | None = None
    if epsilon_table is None:
        if no_dp:
            epsilon_table = ()
        else:
            from edge import calibration  # dp_accounting: the signer's side only

            try:
                epsilon_table = calibration.epsilon_table(
                    _f32(sampling_rate), _f32(noise_multiplier_min), step_budget,
                    float(delta), sampling, accountant)
            except ConfigError as exc:
                # Bad fields: named below by the field checks (or, check=False, a
                # deliberately bad test vector signed with a placeholder table).
                table_error = exc
                epsilon_table = ((max(step_budget, 1), 1.0),)
    p = PrivacyPolicy(
        version, _f32(noise_multiplier_min), _f32(max_example_clip), _f32(max_update_clip),
        _f32(sampling_rate), sampling,
        (PolicyFlag.NO_DP if no_dp else PolicyFlag(0))
        | (PolicyFlag.REQUIRE_SECAGG if require_secagg else PolicyFlag(0)),
        max_steps_per_round,
        step_budget, float(target_epsilon), float(delta), accountant,
        len(epsilon_table), _f32(min_noise_share), encode_table(epsilon_table),
    )
    if check:
        _check_fields(p)
        if not 1 <= version <= MAX_U64 or not 1 <= step_budget <= MAX_U64:
            raise Malformed("privacy policy: version or step budget out of u64 range")
        if table_error is not None:
            raise table_error
    return build_envelope(Kind.PRIVACY_POLICY, encode_policy_body(p), signer)
