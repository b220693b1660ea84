"""Anchor statements for the release engineer: replace a role's trust anchor."""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import ConfigError
from edge.formats.anchors import MAX_EPOCH, Role, build_anchor_statement
from edge.formats.keys import ed25519_public_from_raw, ed25519_raw_public

ROLE_BY_NAME = {"model-signer": Role.MODEL_SIGNER, "aggregator": Role.AGGREGATOR,
                "registrar": Role.REGISTRAR}


def role_from_name(name: str) -> Role:
    """Map ``model-signer`` / ``aggregator`` / ``registrar`` to the role code."""
    try:
        return ROLE_BY_NAME[name]
    except KeyError:
        raise ConfigError(f"role {name!r} is not model-signer, aggregator or registrar"
                          ) from None


def replace_anchor(
    current: Ed25519PrivateKey, role: str | Role, epoch: int, new_pub: bytes
) -> bytes:
    """Return a statement, signed by ``current``, that makes ``new_pub`` the anchor of ``role``.

    ``epoch`` must be the device's stored epoch of that role plus one (1 after provisioning).
    """
    code = role_from_name(role) if isinstance(role, str) else Role(role)
    if not 1 <= epoch <= MAX_EPOCH:
        raise ConfigError(f"epoch {epoch} is not in 1..2^64-1 (provisioning is epoch 0)")
    ed25519_public_from_raw(new_pub, "new anchor key")
    if hmac.compare_digest(ed25519_raw_public(current), bytes(new_pub)):
        raise ConfigError("new anchor key is the current key; nothing to replace")
    return build_anchor_statement(current, code, epoch, new_pub)
