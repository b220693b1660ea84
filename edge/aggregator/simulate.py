"""Simulated fleet pieces for tests and benchmarks: role keys, a config, fake devices.

A FakeDevice holds its identity key in Python and answers a ticket with a sealed update
built by ``edge.formats.update.build_update`` (no TA): it is for testing the aggregator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.formats.device import build_device_record
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.ticket import RoundTicket, parse_ticket
from edge.formats.update import build_update, l2_norm
from edge.keyfiles import write_private_key
from edge.protocol import update_topic


@dataclass
class FakeDevice:
    """A device whose keys live in the test: enroll its record, answer tickets with updates."""

    identity: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    agreement: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    example_count: int = 10
    total_steps: int = 0

    @property
    def device_id(self) -> bytes:
        """key_id of the identity key."""
        return key_id(ed25519_raw_public(self.identity))

    @property
    def record(self) -> bytes:
        """The self-signed device record (DEVICE.pub)."""
        return build_device_record(self.identity, self.agreement)

    def topic(self, fleet: str) -> str:
        """This device's update topic."""
        return update_topic(fleet, self.device_id)

    def update(self, ticket: bytes | RoundTicket, delta: np.ndarray, **override: Any) -> bytes:
        """A sealed update answering ``ticket`` with ``delta`` (fields overridable)."""
        t = ticket if isinstance(ticket, RoundTicket) else parse_ticket(ticket)
        self.total_steps += 1
        fields: dict[str, Any] = {
            "round_id": t.round_id, "nonce": t.nonce, "model_version": t.model_version,
            "package_id": t.package_id, "delta": delta, "example_count": self.example_count,
            "steps": 1,
            "total_steps": self.total_steps, "update_clip": t.update_clip,
            "noise_multiplier": t.noise_multiplier, "example_clip": t.example_clip,
        }
        fields.update(override)
        identity = fields.pop("identity", self.identity)
        return build_update(identity, **fields)


def clip(delta: np.ndarray, bound: float) -> np.ndarray:
    """Scale ``delta`` to ‖Δ‖ ≤ bound (float32)."""
    d = np.asarray(delta, dtype=np.float32)
    norm = l2_norm(d)
    return d if norm <= bound else (d * np.float32(bound / norm * (1 - 1e-6))).astype(np.float32)


def write_fleet_files(folder: Path, *, head_in: int = 8, head_out: int = 3,
                      holdout_rows: int = 0, seed: int = 0) -> dict[str, Path]:
    """Write role keys, an initial head and optionally a held-out set; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = {"aggregator_key": folder / "aggregator.key",
             "model_signer_key": folder / "model-signer.key",
             "initial_head": folder / "head.npz"}
    for name in ("aggregator_key", "model_signer_key"):
        write_private_key(paths[name], Ed25519PrivateKey.generate(), force=True)
    np.savez(paths["initial_head"], W=np.zeros((head_in, head_out), np.float32),
             b=np.zeros(head_out, np.float32))
    if holdout_rows:
        paths["holdout"] = folder / "holdout.npz"
        X = rng.normal(size=(holdout_rows, head_in)).astype(np.float32)
        np.savez(paths["holdout"], X=X, y=rng.integers(0, head_out, holdout_rows))
    return paths


def config_mapping(folder: Path, broker_url: str = "mqtt://127.0.0.1:1883", *,
                   fleet: str = "test", **sections: dict[str, Any]) -> dict[str, Any]:
    """A valid configuration table over ``write_fleet_files`` output; sections override keys."""
    files = {k: str(v) for k, v in write_fleet_files(folder).items()}
    holdout = files.pop("holdout", None)
    table: dict[str, Any] = {
        "aggregator": {"fleet": fleet, "state": str(folder / "state.sqlite"),
                       "metrics": str(folder / "metrics.jsonl"), **files},
        "rounds": {"cohort_size": 3, "quorum": 3, "min_updates": 2, "timeout_s": 30,
                   "rounds": 0, "seed": 7},
        "dp": {"example_clip": 1.0, "noise_multiplier": 1.0, "update_clip": 1.0,
               "learning_rate": 0.1, "local_epochs": 1, "batch_size": 8,
               "central_noise_multiplier": 0.0, "delta": 1e-5},
        "broker": {"url": broker_url},
    }
    if holdout:
        table["eval"] = {"holdout": holdout}
    for name, values in sections.items():
        table.setdefault(name, {}).update(values)
    return table
