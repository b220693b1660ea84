"""Raw 32-byte key helpers shared by the formats (RFC 8032 / RFC 7748 encodings)."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge import tee_abi
from edge.errors import Malformed
from edge.formats.ed25519_strict import check_public_key

PUBKEY_SIZE = tee_abi.PUBKEY_SIZE
KEY_ID_SIZE = tee_abi.KEY_ID_SIZE

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()


def key_id(pub: bytes) -> bytes:
    """Return ``key_id(pub)``: the first 16 bytes of SHA-256 of a raw public key."""
    if len(pub) != PUBKEY_SIZE:
        raise Malformed(f"public key: {len(pub)} bytes, expected {PUBKEY_SIZE}")
    return hashlib.sha256(bytes(pub)).digest()[:KEY_ID_SIZE]


def ed25519_raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Return the raw 32-byte Ed25519 public key of a private or public key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(_RAW, _RAW_PUB)


def x25519_raw_public(key: X25519PrivateKey | X25519PublicKey) -> bytes:
    """Return the raw 32-byte X25519 public key of a private or public key."""
    pub = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return pub.public_bytes(_RAW, _RAW_PUB)


def ed25519_public_from_raw(raw: bytes, what: str = "Ed25519 public key") -> Ed25519PublicKey:
    """Load a raw Ed25519 public key: ``Malformed`` for a wrong length, ``WeakKey`` for a
    key that is off the curve, non-canonical or of small order."""
    if len(raw) != PUBKEY_SIZE:
        raise Malformed(f"{what}: {len(raw)} bytes, expected {PUBKEY_SIZE}")
    check_public_key(bytes(raw), what)
    try:
        return Ed25519PublicKey.from_public_bytes(bytes(raw))
    except ValueError as exc:
        raise Malformed(f"{what}: not a valid Ed25519 public key") from exc


def ed25519_private_seed(key: Ed25519PrivateKey) -> bytes:
    """Return the 32-byte RFC 8032 seed of an Ed25519 private key (test vectors only)."""
    return key.private_bytes(_RAW, _RAW_PRIV, _NO_ENC)


def x25519_private_raw(key: X25519PrivateKey) -> bytes:
    """Return the 32-byte raw X25519 private scalar (test vectors only)."""
    return key.private_bytes(_RAW, _RAW_PRIV, _NO_ENC)
