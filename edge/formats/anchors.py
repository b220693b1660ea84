"""Anchor statement (kind 2): replaces one trust anchor, signed by its current key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import tee_abi
from edge.errors import Malformed, StaleStatement, UnknownSigner
from edge.formats.envelope import (
    Envelope,
    Kind,
    build_envelope,
    parse_envelope,
    verify_envelope,
)
from edge.formats.keys import PUBKEY_SIZE, ed25519_public_from_raw, key_id
from edge.formats.layouts import ANCHOR_STATEMENT_BODY
from edge.tee_abi import AnchorRole

ANCHOR_BODY_SIZE = ANCHOR_STATEMENT_BODY.size
ANCHOR_STATEMENT_SIZE = tee_abi.ANCHOR_STATEMENT_SIZE
MAX_EPOCH = 2**64 - 1

Role = AnchorRole


ROLE_NAMES = {Role.MODEL_SIGNER: "model-signer", Role.AGGREGATOR: "aggregator",
              Role.REGISTRAR: "registrar"}


@dataclass(frozen=True)
class AnchorStatement:
    """A parsed anchor statement (its signature is checked by ``verify_anchor_statement``)."""

    role: Role
    epoch: int
    new_pub: bytes
    signer_key_id: bytes

    @property
    def new_key_id(self) -> bytes:
        """``key_id`` of the new anchor key."""
        return key_id(self.new_pub)


def _parse(env: Envelope) -> tuple[Role, int, bytes]:
    """Split the body into role, epoch and new key; refuse an unknown role."""
    body = env.body
    if len(body) != ANCHOR_BODY_SIZE:
        raise Malformed(f"anchor statement: body of {len(body)} bytes, expected {ANCHOR_BODY_SIZE}")
    f = ANCHOR_STATEMENT_BODY.read(body)
    role, epoch, new_pub = f["role"], f["epoch"], f["new_pub"]
    if role not in ROLE_NAMES:
        raise Malformed(f"anchor statement: role {role} is not 1 (model signer), 2 (aggregator) "
                        "or 3 (registrar)")
    return Role(role), epoch, new_pub


def _check_body(body: bytes, new_pub: bytes) -> None:
    """Refuse non-zero reserved bytes and an invalid new key."""
    ANCHOR_STATEMENT_BODY.check_reserved(body, "anchor statement")
    ed25519_public_from_raw(new_pub, "anchor statement: new key")


def parse_anchor_statement(data: bytes | bytearray | memoryview) -> AnchorStatement:
    """Parse an anchor statement with every structural check but no signature check."""
    env = parse_envelope(data, kind=Kind.ANCHOR_STATEMENT, max_len=ANCHOR_STATEMENT_SIZE)
    role, epoch, new_pub = _parse(env)
    _check_body(env.body, new_pub)
    return AnchorStatement(role, epoch, new_pub, env.signer_key_id)


def verify_anchor_statement(
    data: bytes | bytearray | memoryview,
    *,
    anchors: Mapping[int, bytes],
    epochs: Mapping[int, int],
) -> AnchorStatement:
    """Check a statement as REPLACE_ANCHOR does, given current anchors and stored epochs by role.

    The role byte is read before the signer check because it selects the anchor.
    """
    env = parse_envelope(data, kind=Kind.ANCHOR_STATEMENT, max_len=ANCHOR_STATEMENT_SIZE)
    role, epoch, new_pub = _parse(env)
    current = anchors.get(role)
    if current is None:
        raise UnknownSigner(f"anchor statement: no current {ROLE_NAMES[role]} anchor")
    verify_envelope(env, current)
    _check_body(env.body, new_pub)
    stored = epochs.get(role, 0)
    if epoch != stored + 1:
        raise StaleStatement(
            f"anchor statement: epoch {epoch} for {ROLE_NAMES[role]}, expected {stored + 1}"
        )
    return AnchorStatement(role, epoch, new_pub, env.signer_key_id)


def build_anchor_statement(
    current: Ed25519PrivateKey, role: int, epoch: int, new_pub: bytes
) -> bytes:
    """Return a statement replacing ``role``'s anchor by ``new_pub``, signed by ``current``."""
    if role not in ROLE_NAMES:
        raise Malformed(f"anchor statement: role {role} is not 1, 2 or 3")
    if not 1 <= epoch <= MAX_EPOCH:
        raise Malformed(f"anchor statement: epoch {epoch} is not in 1..2^64-1")
    if len(new_pub) != PUBKEY_SIZE:
        raise Malformed(f"anchor statement: new key of {len(new_pub)} bytes, expected 32")
    body = ANCHOR_STATEMENT_BODY.pack({"role": role, "epoch": epoch, "new_pub": bytes(new_pub)})
    return build_envelope(Kind.ANCHOR_STATEMENT, body, current)
