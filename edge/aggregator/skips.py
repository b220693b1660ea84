"""Pure verification of one skip report (docs/protocol.md "Skip reports")."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from edge.errors import EdgeError, SignatureInvalid, UnknownSigner
from edge.formats.device import DeviceRecord
from edge.formats.skip import SkipReport, verify_skip
from edge.protocol import device_from_skip_topic

from .store import OpenRound
from .verify import UpdateRefused


def verify_report(fleet: str, topic: str, payload: bytes,
                  devices: Mapping[bytes, DeviceRecord]) -> SkipReport:
    """The report of an enrolled device, signed by its identity key on its own topic; else
    UpdateRefused naming the audit class (as for updates)."""
    try:
        device_id = device_from_skip_topic(fleet, topic)
    except EdgeError as exc:
        raise UpdateRefused("malformed", str(exc)) from None
    record = devices.get(device_id)
    if record is None:
        raise UpdateRefused("unknown-device", f"device {device_id.hex()} is not enrolled",
                            device_id=device_id)
    try:
        report = verify_skip(payload, record.ed25519_pub)
    except UnknownSigner:
        raise UpdateRefused("topic-mismatch", "skip report not signed by the device of the "
                            "topic", device_id=device_id) from None
    except SignatureInvalid:
        raise UpdateRefused("signature", f"skip report signature does not verify under the "
                            f"identity key of device {device_id.hex()}",
                            device_id=device_id) from None
    except EdgeError as exc:
        raise UpdateRefused(exc.refusal, f"skip report: {exc}", device_id=device_id) from None
    return report


def check_round(report: SkipReport, rnd: OpenRound | None, cohort: Mapping[bytes, bytes]
                ) -> None:
    """The report answers a round this device was asked to train (its ticket's nonce)."""
    device_id = report.device_id
    if rnd is None:
        raise UpdateRefused("wrong-round", f"skip report for round {report.round_id}: no such "
                            "round", device_id=device_id)
    if device_id not in cohort:
        raise UpdateRefused("not-in-cohort", f"device {device_id.hex()} is not in the cohort "
                            f"of round {rnd.round_id}", device_id=device_id)
    if not hmac.compare_digest(report.nonce, rnd.nonce):
        raise UpdateRefused("replay", f"skip report: cohort nonce differs from round "
                            f"{rnd.round_id}'s", device_id=device_id)
