"""Describe artefacts for ``firmware-sign inspect``: public fields only, never key material."""

from __future__ import annotations

import json
import math
from typing import Any

from edge.calibration import pld_epsilon_or_none
from edge.formats.anchors import ROLE_NAMES, AnchorStatement
from edge.formats.device import DeviceRecord
from edge.formats.envelope import Envelope, Kind
from edge.formats.keywrap import KeyWrap
from edge.formats.manifest import PackageManifest
from edge.formats.policy import PrivacyPolicy, policy_id
from edge.formats.ticket import RoundTicket
from edge.formats.update import SealedUpdate
from edge.privacy import epsilon, implied_epsilon


def describe_package(env: Envelope, m: PackageManifest) -> dict[str, Any]:
    """Return the public fields of a package (no wrapped keys, no ciphertext)."""
    flag_names = [n for bit, n in ((1, "backbone"), (2, "backbone-encrypted")) if m.flags & bit]
    return {
        "kind": "package",
        "kind_code": int(Kind.PACKAGE),
        "format_version": env.header.version,
        "manifest_len": env.header.total_len,
        "signer_key_id": env.signer_key_id.hex(),
        "signature": "not checked (use verify --signer)",
        "model_version": m.version,
        "package_id": m.package_id.hex(),
        "flags": m.flags,
        "flag_names": flag_names,
        "ephemeral_pub": m.ephemeral_pub.hex(),
        "head": {"in": m.head_in, "out": m.head_out, "params": m.head_params},
        "backbone": {
            "present": m.has_backbone,
            "encrypted": m.backbone_encrypted,
            "length": m.backbone_len,
            "chunk_size": m.chunk_size,
            "chunks": m.chunk_count,
            "payload_len": m.payload_len,
        },
        "infer": {
            "release": m.infer.name,
            "top_k": m.infer.top_k,
            "query_budget_rows": m.infer.budget or "none",
            "feature_bound": m.infer.feature_bound or "none",
        },
        "metadata": m.metadata_object(),
    }


def describe_key_wrap(env: Envelope, w: KeyWrap) -> dict[str, Any]:
    """Return the public fields of a key wrap (not the wrapped key)."""
    return {
        "kind": "key_wrap",
        "kind_code": int(Kind.KEY_WRAP),
        "signer_key_id": env.signer_key_id.hex(),
        "signature": "not checked (use verify --signer)",
        "device_id": w.device_id.hex(),
        "package_id": w.package_id.hex(),
        "manifest_digest": w.manifest_digest.hex(),
    }


def describe_anchor(st: AnchorStatement) -> dict[str, Any]:
    """Return the fields of an anchor statement."""
    return {
        "kind": "anchor_statement",
        "kind_code": int(Kind.ANCHOR_STATEMENT),
        "signer_key_id": st.signer_key_id.hex(),
        "signature": "not checked (use verify --signer)",
        "role": int(st.role),
        "role_name": ROLE_NAMES[st.role],
        "epoch": st.epoch,
        "new_pub": st.new_pub.hex(),
        "new_key_id": st.new_key_id.hex(),
    }


def describe_device(rec: DeviceRecord) -> dict[str, Any]:
    """Return the fields of a (self-signature verified) device record."""
    return {
        "kind": "device_record",
        "kind_code": int(Kind.DEVICE_RECORD),
        "signer_key_id": rec.device_id.hex(),
        "signature": "self-signature valid",
        "device_id": rec.device_id.hex(),
        "ed25519_pub": rec.ed25519_pub.hex(),
        "x25519_pub": rec.x25519_pub.hex(),
        "abi_version": rec.abi_version,
    }


def render(info: dict[str, Any], indent: str = "") -> str:
    """Render a description as aligned ``field: value`` lines."""
    lines = []
    for key, value in info.items():
        label = key.replace("_", " ")
        if isinstance(value, dict) and key != "metadata":
            lines.append(f"{indent}{label}:")
            lines.append(render(value, indent + "  "))
        elif isinstance(value, list | dict):
            lines.append(f"{indent}{label}: {json.dumps(value, ensure_ascii=False)}")
        else:
            lines.append(f"{indent}{label}: {value}")
    return "\n".join(lines)


def describe_policy(p: PrivacyPolicy, raw: bytes) -> dict[str, Any]:
    """Return the fields of a privacy policy and the (epsilon, delta) its budget implies: as
    its signed table states it (what boards report), and recomputed by the RDP and (Poisson
    sampling) PLD accountants."""
    table = implied_epsilon(p)
    rdp = pld = None
    if not p.no_dp:
        rdp = epsilon(p.sampling_rate, p.noise_multiplier_min, p.step_budget, p.delta,
                      p.sampling)
        pld = pld_epsilon_or_none(p.sampling_rate, p.noise_multiplier_min, p.step_budget,
                                  p.delta, p.sampling)
    tighter = "PLD" if pld is not None and rdp is not None and pld < rdp else "RDP"
    return {
        "kind": "privacy_policy",
        "kind_code": int(Kind.PRIVACY_POLICY),
        "signer_key_id": p.signer_key_id.hex(),
        "signature": "not checked (use verify --signer)",
        "policy_id": policy_id(raw).hex(),
        "policy_version": p.version,
        "no_dp_test_policy": p.no_dp,
        "noise_multiplier_min": p.noise_multiplier_min,
        "max_example_clip": p.max_example_clip,
        "max_update_clip": p.max_update_clip,
        "sampling": p.sampling_name,
        "sampling_rate": p.sampling_rate,
        "max_steps_per_round": p.max_steps_per_round,
        "step_budget": p.step_budget,
        "target_epsilon": p.target_epsilon,
        "delta": p.delta,
        "accountant": {1: "rdp", 2: "pld"}[p.accountant],
        "epsilon_table": [[steps, eps] for steps, eps in p.table],
        "implied_epsilon": None if math.isinf(table) else table,
        "implied_epsilon_rdp": rdp,
        "implied_epsilon_pld": pld,
        "implied": ("no privacy (noise 0)" if math.isinf(table)
                    else f"epsilon={table:.6g} at delta={p.delta:.3g} (its signed table, "
                    f"{p.table_count} entries; recomputed: RDP {rdp:.6g}, PLD "
                    + ("n/a" if pld is None else f"{pld:.6g}") + f"; {tighter} is tighter)"),
    }


def describe_ticket(t: RoundTicket) -> dict[str, Any]:
    """Return the fields of a round ticket."""
    return {
        "kind": "round_ticket",
        "kind_code": int(Kind.ROUND_TICKET),
        "signer_key_id": t.signer_key_id.hex(),
        "signature": "not checked (use verify --signer)",
        "round_id": t.round_id,
        "model_version": t.model_version,
        "package_id": t.package_id.hex(),
        "nonce": t.nonce.hex(),
        "issued_at": t.issued_at,
        "deadline": t.deadline,
        "example_clip": t.example_clip,
        "noise_multiplier": t.noise_multiplier,
        "update_clip": t.update_clip,
        "learning_rate": t.learning_rate,
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "update_mode": t.update_mode,
    }


def describe_update(u: SealedUpdate) -> dict[str, Any]:
    """Return the header fields of a sealed update and its delta's norm (not the delta)."""
    return {
        "kind": "sealed_update",
        "kind_code": int(Kind.SEALED_UPDATE),
        "signer_key_id": u.signer_key_id.hex(),
        "signature": "not checked (use verify --signer DEVICE.pub)",
        "device_id": u.device_id.hex(),
        "round_id": u.round_id,
        "nonce": u.nonce.hex(),
        "model_version": u.model_version,
        "package_id": u.package_id.hex(),
        "example_count": u.example_count,
        "steps": u.steps,
        "total_steps": u.total_steps,
        "update_mode": u.update_mode,
        "param_count": u.param_count,
        "update_clip": u.update_clip,
        "noise_multiplier": u.noise_multiplier,
        "example_clip": u.example_clip,
        "delta_norm": u.norm,
    }
