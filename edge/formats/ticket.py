"""Round ticket (kind 4): one training round's parameters, signed by the aggregator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import tee_abi
from edge.errors import (
    Expired,
    Malformed,
    NoModel,
    NoPolicy,
    PolicyViolation,
    Replay,
    WrongModel,
)
from edge.formats.envelope import (
    Envelope,
    Kind,
    build_envelope,
    parse_envelope,
    verify_envelope,
)
from edge.formats.layouts import TICKET_BODY
from edge.formats.manifest import PACKAGE_ID_SIZE
from edge.formats.policy import PrivacyPolicy
from edge.tee_abi import PolicyFlag, Sampling, UpdateMode

TICKET_BODY_SIZE = TICKET_BODY.size
TICKET_SIZE = tee_abi.TICKET_SIZE
NONCE_SIZE = tee_abi.NONCE_SIZE
UPDATE_MODE_FLOAT32 = UpdateMode.FLOAT32
_WHAT = "round ticket"


@dataclass(frozen=True)
class RoundTicket:
    """The fields of a round ticket."""

    round_id: int
    model_version: int
    package_id: bytes
    nonce: bytes
    issued_at: int
    deadline: int
    example_clip: float
    noise_multiplier: float
    update_clip: float
    learning_rate: float
    epochs: int
    batch_size: int
    update_mode: UpdateMode = UpdateMode.FLOAT32
    fleet_id: bytes = bytes(16)
    secagg_threshold: int = 0
    secagg_neighbours: int = 0
    secagg_cohort: int = 0
    secagg_scale_log2: int = 0
    signer_key_id: bytes = bytes(16)

    @property
    def secagg(self) -> bool:
        """True when the round runs secure aggregation (update mode SECAGG)."""
        return self.update_mode == UpdateMode.SECAGG


def poisson_steps(epochs: int, q: float) -> int:
    """Steps of a Poisson round: ``E · ceil(1/q)``, 1/q in double of the float32 q, as the TA."""
    return epochs * math.ceil(1.0 / float(np.float32(q)))


def fixed_steps(epochs: int, n: int, batch: int) -> int:
    """Steps of a fixed-size round: ``E · ceil(n/B)``."""
    return epochs * -(-n // batch)


def _fields(t: RoundTicket) -> dict[str, object]:
    return {name: getattr(t, name) for name in TICKET_BODY.names}


def _check_fields(t: RoundTicket) -> None:
    """Refuse field values the TA refuses (``Malformed``), naming the field."""
    TICKET_BODY.check(_WHAT, _fields(t))
    _check_secagg(t)


_SECAGG_FIELDS = ("secagg_threshold", "secagg_neighbours", "secagg_cohort", "secagg_scale_log2")


def _check_secagg(t: RoundTicket) -> None:
    """The cross-field rules of the secure-aggregation fields, as ta/ticket.c states them."""
    if t.update_mode != UpdateMode.SECAGG:
        if any(getattr(t, f) for f in _SECAGG_FIELDS) or any(t.fleet_id):
            raise Malformed(f"{_WHAT}: secure-aggregation fields set in a float32 round")
        return
    k, thr, cohort = t.secagg_neighbours, t.secagg_threshold, t.secagg_cohort
    if not 1 <= k <= tee_abi.SECAGG_MAX_NEIGHBOURS:
        raise Malformed(f"{_WHAT}: secagg neighbours k {k} is not in 1..254")
    if not 2 <= cohort <= tee_abi.SECAGG_MAX_COHORT:
        raise Malformed(f"{_WHAT}: secagg cohort {cohort} is not in 2..1024")
    if not (2 * thr > k and thr <= k + 1):
        raise Malformed(f"{_WHAT}: secagg threshold t {thr} is not in (k/2, k + 1] for k {k}")
    if k % 2 and k + 1 < cohort:
        raise Malformed(f"{_WHAT}: odd k {k} needs a complete graph (k >= cohort - 1)")
    per = float(np.float32(t.update_clip)) * 2.0 ** t.secagg_scale_log2
    if not per < 2**31 - 1 or cohort * (math.floor(per) + 1) > 2**31 - 1:
        raise Malformed(f"{_WHAT}: {cohort} updates of norm {t.update_clip} at scale "
                        f"2^{t.secagg_scale_log2} can overflow a 32-bit sum")


def _parse(env: Envelope) -> RoundTicket:
    """Decode and check a ticket body (field rules of the table, then the secagg rules)."""
    t = RoundTicket(**TICKET_BODY.unpack(env.body, _WHAT), signer_key_id=env.signer_key_id)
    _check_secagg(t)
    return t


def parse_ticket(data: bytes | bytearray | memoryview) -> RoundTicket:
    """Parse a ticket with every structural check but no signature check."""
    return _parse(parse_envelope(data, kind=Kind.ROUND_TICKET, max_len=TICKET_SIZE))


def verify_ticket(
    data: bytes | bytearray | memoryview,
    aggregator_pub: bytes,
    *,
    policy: PrivacyPolicy | None,
    model_version: int | None,
    package_id: bytes | None = None,
    last_round: int = 0,
    time_floor: int = 0,
    ree_time: int = 0,
) -> RoundTicket:
    """Check a ticket with VERIFY_TICKET's checks, in its order, against the given device state."""
    env = parse_envelope(data, kind=Kind.ROUND_TICKET, max_len=TICKET_SIZE)
    verify_envelope(env, aggregator_pub)
    t = _parse(env)
    if policy is None:
        raise NoPolicy("round ticket: no privacy policy is installed")
    if not model_version:
        raise NoModel("round ticket: no model is loaded")
    if t.model_version != model_version or (package_id is not None
                                            and t.package_id != package_id):
        raise WrongModel(wrong_model_text(t, model_version, package_id))
    if t.round_id <= last_round:
        raise Replay(f"round ticket: round {t.round_id} is not above last sealed {last_round}")
    now = max(ree_time, time_floor)
    if t.deadline < now:
        raise Expired(f"round ticket: deadline {t.deadline} is before {now}")
    check_against_policy(t, policy)
    return t


def wrong_model_text(t: RoundTicket, model_version: int, package_id: bytes | None) -> str:
    """The refusal of a ticket for another model, naming both versions and package ids."""
    held = f"v{model_version}" + (f" (package {package_id.hex()})" if package_id else "")
    return (f"round ticket: for model v{t.model_version} (package {t.package_id.hex()}), "
            f"loaded is {held}")


def check_against_policy(t: RoundTicket, p: PrivacyPolicy) -> None:
    """Refuse a ticket weaker than the policy (``PolicyViolation``), naming the field."""
    if t.example_clip > p.max_example_clip:
        raise PolicyViolation(
            f"round ticket: clip C {t.example_clip} above the policy's {p.max_example_clip}")
    if t.noise_multiplier < p.noise_multiplier_min:
        raise PolicyViolation(
            f"round ticket: sigma {t.noise_multiplier} below the policy's {p.noise_multiplier_min}")
    if t.update_clip > p.max_update_clip:
        raise PolicyViolation(
            f"round ticket: update clip U {t.update_clip} above the policy's {p.max_update_clip}")
    if p.flags & PolicyFlag.REQUIRE_SECAGG and not t.secagg:
        raise PolicyViolation("round ticket: the policy requires secure aggregation")
    if p.sampling == Sampling.POISSON:
        steps = poisson_steps(t.epochs, p.sampling_rate)
        if steps > p.max_steps_per_round:
            raise PolicyViolation(
                f"round ticket: {steps} steps above the policy's {p.max_steps_per_round} per round")


def encode_ticket_body(t: RoundTicket) -> bytes:
    """Return the ticket body (no validation; test vectors and builders)."""
    return TICKET_BODY.pack(_fields(t))


def build_ticket(
    aggregator: Ed25519PrivateKey,
    *,
    round_id: int,
    model_version: int,
    package_id: bytes,
    nonce: bytes,
    issued_at: int,
    deadline: int,
    example_clip: float,
    noise_multiplier: float,
    update_clip: float,
    learning_rate: float,
    epochs: int = 1,
    batch_size: int = 1,
    update_mode: int = UpdateMode.FLOAT32,
    fleet_id: bytes = bytes(16),
    secagg_threshold: int = 0,
    secagg_neighbours: int = 0,
    secagg_cohort: int = 0,
    secagg_scale_log2: int = 0,
    check: bool = True,
) -> bytes:
    """Return a round ticket signed by the aggregator key (``check=False``: for refusal tests)."""
    if len(nonce) != NONCE_SIZE:
        raise Malformed(f"round ticket: nonce of {len(nonce)} bytes, expected {NONCE_SIZE}")
    if len(package_id) != PACKAGE_ID_SIZE:
        raise Malformed(f"round ticket: package id of {len(package_id)} bytes, expected "
                        f"{PACKAGE_ID_SIZE}")
    t = RoundTicket(round_id, model_version, bytes(package_id), bytes(nonce), issued_at,
                    deadline,
                    float(np.float32(example_clip)), float(np.float32(noise_multiplier)),
                    float(np.float32(update_clip)), float(np.float32(learning_rate)),
                    epochs, batch_size, update_mode, bytes(fleet_id), secagg_threshold,
                    secagg_neighbours, secagg_cohort, secagg_scale_log2)
    if check:
        _check_fields(t)
    return build_envelope(Kind.ROUND_TICKET, encode_ticket_body(t), aggregator)
