"""Sealed updates in tests are verified by the aggregator's own verifier, never a copy."""

from __future__ import annotations

import numpy as np
from conftest import package_id

from edge.aggregator.verify import RoundView, verify
from edge.formats.device import DeviceRecord
from edge.formats.update import SealedUpdate
from edge.protocol import update_topic

FLEET = "tests"


def verify_sealed(raw: bytes, device: DeviceRecord, *, round_id: int, nonce: bytes,
                  model_version: int, param_count: int, update_clip: float,
                  noise_multiplier: float = 0.0, example_clip: float = 1.0,
                  pkg_id: bytes | None = None) -> SealedUpdate:
    """Verify ``raw`` as :func:`edge.aggregator.verify.verify` does for an open round whose
    ticket carried these fields (the package id: the tests' one of ``model_version`` unless
    given), ``device`` enrolled and its only cohort member, published on the device's own
    topic; raise its ``UpdateRefused`` otherwise."""
    rnd = RoundView(round_id, bytes(nonce), model_version, param_count, update_clip,
                    frozenset({device.device_id}), float(np.float32(noise_multiplier)),
                    float(np.float32(example_clip)),
                    pkg_id if pkg_id is not None else package_id(model_version))
    return verify(FLEET, update_topic(FLEET, device.device_id), bytes(raw),
                  {device.device_id: device}, rnd, {}).update
