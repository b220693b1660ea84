"""Shared builders for the private-training tests: policies, tickets, a trained-ready TA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from conftest import Roles, load, make_package, package_id
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.formats.device import DeviceRecord, parse_device_record
from edge.formats.policy import SAMPLING_FIXED, build_policy
from edge.formats.ticket import build_ticket
from edge.tee import TrustedApp

NOW = 1_900_000_000
BIG = 1e30


def policy(signer: Ed25519PrivateKey, **overrides: Any) -> bytes:
    """A policy with permissive defaults (no-DP test policy, fixed-size sampling, q = 1)."""
    fields: dict[str, Any] = dict(
        version=1, noise_multiplier_min=0.0, max_example_clip=BIG, max_update_clip=BIG,
        sampling_rate=1.0, sampling=SAMPLING_FIXED, max_steps_per_round=100_000,
        step_budget=1_000_000, target_epsilon=1.0, delta=1e-5, no_dp=True,
    )
    fields.update(overrides)
    return build_policy(signer, **fields)


def ticket(aggregator: Ed25519PrivateKey, **overrides: Any) -> bytes:
    """A ticket for round 1 of model version 1 (the tests' package id of its version), valid
    around ``NOW``."""
    fields: dict[str, Any] = dict(
        round_id=1, model_version=1, nonce=bytes(range(16)), issued_at=NOW - 10,
        deadline=NOW + 3600, example_clip=1.0, noise_multiplier=0.0, update_clip=BIG,
        learning_rate=0.1, epochs=1, batch_size=1,
    )
    fields.update(overrides)
    fields.setdefault("package_id", package_id(fields["model_version"]))
    return build_ticket(aggregator, **fields)


@dataclass
class Ready:
    """A provisioned TA with a loaded head and an installed policy."""

    ta: TrustedApp
    roles: Roles
    device: DeviceRecord
    w: np.ndarray
    b: np.ndarray

    @property
    def params(self) -> int:
        """P = I·O + O."""
        return self.w.size + self.b.size


def ready(ta: TrustedApp, roles: Roles, w: np.ndarray, b: np.ndarray, *,
          policy_bytes: bytes | None = None, version: int = 1) -> Ready:
    """Provision (if needed), load (W, b) as ``version`` and install a policy."""
    if not ta.status().has_anchors:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
    dev = parse_device_record(ta.identity())
    load(ta, make_package(roles.signer, [dev], version=version, w=w, b=b))
    ta.install_policy(policy_bytes if policy_bytes is not None else policy(roles.signer))
    return Ready(ta, roles, dev, w, b)


def data(seed: int, n: int, head_in: int, head_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible features (n x I, float32) and labels (n, uint32)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, head_in)).astype(np.float32)
    y = rng.integers(0, head_out, size=n).astype(np.uint32)
    return x, y
