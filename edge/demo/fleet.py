"""Provisioning of the demo's fleet on disk: role keys, devices, data, configurations."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.demo.data import CLASSES, FEATURES, DemoBackbone, Split
from edge.demo.settings import DemoPrivacy, make_policy
from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public
from edge.formats.secagg import build_cert, fleet_id
from edge.keyfiles import public_pem, write_private_key
from edge.tee import TrustedApp

FLEET = "demo"  # the fleet name unless one is given (several fleets share a broker)


@dataclass
class Fleet:
    """Everything provisioned: the aggregator's configuration and one per device."""

    root: Path
    aggregator: dict[str, Any]
    devices: list[dict[str, Any]] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)
    policy_epsilon: float = 0.0
    name: str = FLEET


def provision_device(state: Path, signer: Ed25519PrivateKey, aggregator: Ed25519PrivateKey,
                     policy: bytes, backend: str = "sim") -> bytes:
    """Anchors and the privacy policy in a device's secure world; returns its device record."""
    with TrustedApp(backend, state if backend == "sim" else None) as ta:
        if not ta.status().has_anchors:
            ta.install_anchors(ed25519_raw_public(signer), ed25519_raw_public(aggregator))
        ta.install_policy(policy)
        return ta.identity()


def device_config(root: Path, index: int, broker_url: str, backend: str,
                  fleet: str = FLEET) -> dict[str, Any]:
    """The daemon configuration table of device ``index``."""
    home = root / "devices" / f"board-{index:02d}"
    tee: dict[str, Any] = {"backend": backend}
    if backend == "sim":
        tee["state_dir"] = str(home / "secure-world")
    return {
        "device": {"name": f"board-{index:02d}", "fleet": fleet},
        "tee": tee,
        "broker": {"url": broker_url, "keepalive": 10},
        "data": {"source": "directory", "path": str(home / "data"),
                 "store_dir": str(home / "store"), "max_samples": 4096},
        "inference": {"npu_delegate": "none"},
        "paths": {"work_dir": str(home / "work")},
    }


def aggregator_config(root: Path, broker_url: str, dp: DemoPrivacy, devices: int, rounds: int,
                      seed: int, timeout_s: float, fleet: str = FLEET) -> dict[str, Any]:
    """The aggregator configuration table over the files ``write_fleet`` puts in ``root``."""
    agg = root / "aggregator"
    return {
        "aggregator": {"fleet": fleet, "state": str(agg / "state.sqlite"),
                       "metrics": str(agg / "metrics.jsonl"),
                       "aggregator_key": str(root / "keys" / "aggregator.key"),
                       "model_signer_key": str(root / "keys" / "model-signer.key"),
                       "initial_head": str(agg / "head.npz"),
                       "backbone": str(agg / "backbone.tflite"),
                       "backbone_metadata": str(agg / "backbone.json")},
        "rounds": {"cohort_size": devices, "quorum": devices,
                   "min_updates": max(1, devices // 2), "timeout_s": timeout_s,
                   "rounds": rounds, "seed": seed},
        "dp": {"example_clip": dp.example_clip, "noise_multiplier": dp.noise_multiplier,
               "update_clip": dp.update_clip, "learning_rate": dp.learning_rate,
               "local_epochs": dp.local_epochs, "batch_size": 1,
               "central_noise_multiplier": dp.central_noise_multiplier, "delta": dp.delta,
               # the boards' policy: the aggregator checks its tickets against it and
               # reports the devices' epsilon and budget left from their updates' steps
               "device_policy": str(root / "keys" / "policy.bin")},
        "eval": {"holdout": str(agg / "holdout.npz")},
        "broker": {"url": broker_url, "keepalive": 10},
    }


def write_fleet(root: Path, split: Split, backbone: DemoBackbone, dp: DemoPrivacy, *,
                broker_url: str, rounds: int, seed: int, backend: str = "sim",
                timeout_s: float = 30.0, fleet_name: str = FLEET) -> Fleet:
    """Generate role keys, provision every device, write data, head, holdout and configs."""
    for sub in ("keys", "aggregator", "devices"):
        (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    signer, aggregator = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    write_private_key(root / "keys" / "model-signer.key", signer, force=True)
    write_private_key(root / "keys" / "aggregator.key", aggregator, force=True)
    agg = root / "aggregator"
    (agg / "backbone.tflite").write_bytes(backbone.tflite)
    (agg / "backbone.json").write_text(json.dumps(backbone.metadata), encoding="utf-8")
    rng = np.random.default_rng(seed)
    np.savez(agg / "head.npz", W=rng.normal(0, 0.01, (FEATURES, CLASSES)).astype(np.float32),
             b=np.zeros(CLASSES, np.float32))
    np.savez(agg / "holdout.npz", X=backbone.features(split.test_x), y=split.test_y)
    policy, eps = make_policy(signer, dp, rounds)
    (root / "keys" / "policy.bin").write_bytes(policy)
    fleet = Fleet(root, aggregator_config(root, broker_url, dp, len(split.devices), rounds, seed,
                                          timeout_s, fleet_name), policy_epsilon=eps,
                  name=fleet_name)
    for i, (x, y) in enumerate(split.devices, 1):
        cfg = device_config(root, i, broker_url, backend, fleet_name)
        data = Path(cfg["data"]["path"])
        data.mkdir(parents=True, exist_ok=True)
        np.savez(data / "private.npz", X=x.astype(np.float32), y=y.astype(np.int64))
        state = Path(cfg["tee"].get("state_dir", root / "unused"))
        fleet.records.append(provision_device(state, signer, aggregator, policy, backend))
        fleet.devices.append(cfg)
    return fleet


def enable_secagg(fleet: Fleet, *, stage_timeout_s: float | None = None,
                  **secagg: Any) -> None:
    """Secure aggregation for a written fleet: a registrar key, installed in every simulated
    TA; an enrollment certificate per device; ``rounds.secagg = "secagg+"`` and [secagg]."""
    registrar = Ed25519PrivateKey.generate()
    keys, certs = fleet.root / "keys", fleet.root / "aggregator" / "certs"
    certs.mkdir(parents=True, exist_ok=True, mode=0o700)
    (keys / "registrar.pub").write_bytes(public_pem(ed25519_raw_public(registrar)))
    for cfg in fleet.devices:
        if cfg["tee"]["backend"] != "sim":
            raise ValueError("secure aggregation in the demo needs simulated secure worlds")
        with TrustedApp("sim", Path(cfg["tee"]["state_dir"])) as ta:
            ta.install_registrar(ed25519_raw_public(registrar))
            rec = parse_device_record(ta.identity())
        (certs / f"{rec.device_id.hex()}.cert").write_bytes(
            build_cert(registrar, rec.ed25519_pub, fleet_id(fleet.name)))
    fleet.aggregator["rounds"]["secagg"] = "secagg+"
    table: dict[str, Any] = {"registrar": str(keys / "registrar.pub"),
                             "certificates": str(certs), **secagg}
    if stage_timeout_s is not None:
        table["stage_timeout_s"] = stage_timeout_s
    fleet.aggregator["secagg"] = table
