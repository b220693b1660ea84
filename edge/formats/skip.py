"""Skip report (kind 12): why a device did not train a round, signed by its identity key.

The TA writes it (SIGN_SKIP) for an authentic round ticket: its own refusal of the ticket
with the field and both values compared, or the normal world's stated reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import tee_abi
from edge.errors import Malformed
from edge.formats.envelope import (
    Kind,
    build_envelope,
    parse_envelope,
    verify_envelope,
)
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.layouts import SKIP_REPORT_BODY
from edge.tee_abi import SkipField, SkipReason

SKIP_REPORT_SIZE = tee_abi.SKIP_REPORT_SIZE
_WHAT = "skip report"

# The normal world's reasons, by the names the daemon logs them with.
REE_REASONS = {
    SkipReason.NO_SAMPLES: "no-samples",
    SkipReason.BACKBONE_UNUSABLE: "backbone-unusable",
    SkipReason.FEATURE_SHAPE: "feature-shape",
    SkipReason.DATA_SOURCE: "data-source",
}
REASON_BY_NAME = {name: reason for reason, name in REE_REASONS.items()}

# How each field's two values read: the ticket's (or the round's), then the bound it failed.
_FIELD_TEXT = {
    SkipField.ROUND: "round {v} <= last sealed round {b}",
    SkipField.DEADLINE: "deadline {v} < now {b}",
    SkipField.EXAMPLE_CLIP: "example_clip {v} > policy max_example_clip {b}",
    SkipField.NOISE_MULTIPLIER: "noise_multiplier {v} < policy sigma_min {b}",
    SkipField.UPDATE_CLIP: "update_clip {v} > policy max_update_clip {b}",
    SkipField.STEPS_PER_ROUND: "{v} steps per round > policy max_steps_per_round {b}",
    SkipField.BATCH_SIZE: "batch_size {v} > {b} examples",
    SkipField.SAMPLING_RATE: "batch_size / examples {v} > policy sampling_rate {b}",
    SkipField.BUDGET: "{v} steps > {b} steps left in the budget",
}
_FLOAT_FIELDS = {SkipField.EXAMPLE_CLIP, SkipField.NOISE_MULTIPLIER, SkipField.UPDATE_CLIP,
                 SkipField.SAMPLING_RATE}


def _num(x: float, as_float: bool) -> str:
    """A value as people write it: 1.0 and 1.1 for float32 fields, 12 for counts."""
    if not as_float:
        return str(int(x))
    text = f"{x:.6g}"
    return text if any(c in text for c in ".einf") else text + ".0"


@dataclass(frozen=True)
class SkipReport:
    """The fields of a skip report."""

    device_id: bytes
    round_id: int
    nonce: bytes
    ticket_model_version: int
    ticket_package_id: bytes
    model_version: int
    package_id: bytes
    result: int
    ree_reason: SkipReason
    field: SkipField
    value: float
    bound: float
    reported_at: int
    signer_key_id: bytes = bytes(16)

    @property
    def refusal(self) -> str:
        """The refusal class: the TA's (``weaker-than-policy``), else the stated reason."""
        if self.result:
            cls = tee_abi.REFUSALS.get(self.result)
            return cls.refusal if cls is not None else f"0x{self.result:08x}"
        return REE_REASONS.get(self.ree_reason, "unknown")

    def detail(self) -> str:
        """The offending field and values (``noise_multiplier 1.0 < policy sigma_min 1.1``)."""
        if self.field == SkipField.MODEL:
            held = (f"v{self.model_version} (package {self.package_id.hex()})"
                    if self.model_version else "no model")
            return (f"ticket for v{self.ticket_model_version} (package "
                    f"{self.ticket_package_id.hex()}), installed {held}")
        text = _FIELD_TEXT.get(self.field)
        if text is None:
            return ""
        as_float = self.field in _FLOAT_FIELDS
        return text.format(v=_num(self.value, as_float), b=_num(self.bound, as_float))

    def describe(self) -> str:
        """``weaker-than-policy (noise_multiplier 1.0 < policy sigma_min 1.1)``; a stated
        normal-world reason beside a TA refusal follows it."""
        detail = self.detail()
        text = self.refusal + (f" ({detail})" if detail else "")
        if self.result and self.ree_reason != SkipReason.NONE:
            text += f"; the board also reports {REE_REASONS.get(self.ree_reason, 'unknown')}"
        return text


def parse_skip(data: bytes | bytearray | memoryview) -> SkipReport:
    """Parse a skip report with every structural check but no signature check."""
    env = parse_envelope(data, kind=Kind.SKIP_REPORT, max_len=SKIP_REPORT_SIZE)
    fields = SKIP_REPORT_BODY.unpack(env.body, _WHAT)
    if fields["result"] == 0 and fields["ree_reason"] == SkipReason.NONE:
        raise Malformed("skip report: neither a refusal nor a reason")
    return SkipReport(**fields, signer_key_id=env.signer_key_id)


def verify_skip(data: bytes | bytearray | memoryview, identity_pub: bytes) -> SkipReport:
    """Parse and check the signature under a device's identity key (signer = device id)."""
    env = parse_envelope(data, kind=Kind.SKIP_REPORT, max_len=SKIP_REPORT_SIZE)
    verify_envelope(env, identity_pub)
    report = parse_skip(env.raw)
    if report.device_id != report.signer_key_id:
        raise Malformed(f"skip report: body names device {report.device_id.hex()}, signed by "
                        f"{report.signer_key_id.hex()}")
    return report


def build_skip(identity: Ed25519PrivateKey, **fields: object) -> bytes:
    """A skip report as the TA writes it (tests and the aggregator's fixtures)."""
    values: dict[str, object] = dict(
        device_id=key_id(ed25519_raw_public(identity)), model_version=0,
        package_id=bytes(16), result=0, ree_reason=SkipReason.NONE, field=SkipField.NONE,
        value=0.0, bound=0.0, reported_at=0)
    values.update(fields)
    return build_envelope(Kind.SKIP_REPORT, SKIP_REPORT_BODY.pack(values), identity)
