"""Describe artefacts for ``firmware-sign inspect``: public fields only, never key material."""

from __future__ import annotations

import json
from typing import Any

from edge.formats.anchors import ROLE_NAMES, AnchorStatement
from edge.formats.device import DeviceRecord
from edge.formats.envelope import Envelope, Kind
from edge.formats.manifest import PackageManifest


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
        "recipients": [r.device_id.hex() for r in m.recipients],
        "metadata": m.metadata_object(),
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
        elif isinstance(value, list) and key == "recipients":
            lines.append(f"{indent}{label} ({len(value)}):")
            lines.extend(f"{indent}  {v}" for v in value)
        elif isinstance(value, list | dict):
            lines.append(f"{indent}{label}: {json.dumps(value, ensure_ascii=False)}")
        else:
            lines.append(f"{indent}{label}: {value}")
    return "\n".join(lines)
