"""Package key schedule: key wrap, head and backbone keys, AEAD framing (formats.md)."""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge.errors import Malformed, Tampered

CONTENT_KEY_SIZE = 32
TAG_SIZE = 16
WRAPPED_KEY_SIZE = CONTENT_KEY_SIZE + TAG_SIZE
ZERO_NONCE = bytes(12)

WRAP_LABEL = b"edge/v1 wrap"
HEAD_LABEL = b"edge/v1 head"
BACKBONE_LABEL = b"edge/v1 backbone"

_U64 = struct.Struct("<Q")


def u64(value: int) -> bytes:
    """Encode an unsigned 64-bit little-endian integer."""
    return _U64.pack(value)


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 with a 32-byte output."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _kek(
    shared: bytes, eph_pub: bytes, agreement_pub: bytes, package_id: bytes, version: int
) -> bytes:
    """Derive the key-encryption key of one recipient."""
    return hkdf(shared, eph_pub + agreement_pub, WRAP_LABEL + package_id + u64(version))


def wrap_content_key(
    content_key: bytes,
    ephemeral: X25519PrivateKey,
    agreement_pub: bytes,
    device_id: bytes,
    package_id: bytes,
    version: int,
) -> bytes:
    """Wrap the content key for one recipient (32-byte ciphertext and 16-byte tag)."""
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(agreement_pub))
    except ValueError as exc:
        raise Malformed(
            f"recipient {device_id.hex()}: key-agreement key is not usable (low-order point)"
        ) from exc
    eph_pub = ephemeral.public_key().public_bytes_raw()
    kek = _kek(shared, eph_pub, agreement_pub, package_id, version)
    return AESGCM(kek).encrypt(ZERO_NONCE, content_key, device_id)


def unwrap_content_key(
    wrapped: bytes,
    agreement: X25519PrivateKey,
    eph_pub: bytes,
    device_id: bytes,
    package_id: bytes,
    version: int,
) -> bytes:
    """Unwrap the content key addressed to this device; ``Tampered`` if the tag fails."""
    try:
        shared = agreement.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError as exc:
        raise Tampered("manifest: ephemeral key is a low-order point; cannot unwrap") from exc
    own_pub = agreement.public_key().public_bytes_raw()
    kek = _kek(shared, eph_pub, own_pub, package_id, version)
    try:
        return AESGCM(kek).decrypt(ZERO_NONCE, wrapped, device_id)
    except InvalidTag as exc:
        raise Tampered(
            f"manifest: wrapped content key for {device_id.hex()} fails its tag"
        ) from exc


def head_key(content_key: bytes, eph_pub: bytes, package_id: bytes) -> bytes:
    """Derive the head key ``HK``."""
    return hkdf(content_key, eph_pub, HEAD_LABEL + package_id)


def backbone_key(content_key: bytes, eph_pub: bytes, package_id: bytes) -> bytes:
    """Derive the backbone key ``BK``."""
    return hkdf(content_key, eph_pub, BACKBONE_LABEL + package_id)


def encrypt_head(hk: bytes, plaintext: bytes, package_id: bytes, version: int) -> bytes:
    """Encrypt the head plaintext (W then b, float32 little-endian)."""
    return AESGCM(hk).encrypt(ZERO_NONCE, plaintext, package_id + u64(version))


def decrypt_head(hk: bytes, ciphertext: bytes, package_id: bytes, version: int) -> bytes:
    """Decrypt the head ciphertext; ``Tampered`` if the tag fails."""
    try:
        return AESGCM(hk).decrypt(ZERO_NONCE, ciphertext, package_id + u64(version))
    except InvalidTag as exc:
        raise Tampered("manifest: head ciphertext fails its tag") from exc


def chunk_nonce(index: int) -> bytes:
    """Return the nonce of backbone chunk ``index``: four zero bytes then ``index`` (u64)."""
    return bytes(4) + u64(index)


def chunk_aad(package_id: bytes, index: int, last: bool) -> bytes:
    """Return the associated data of backbone chunk ``index``."""
    return package_id + u64(index) + (b"\x01" if last else b"\x00")


def encrypt_chunk(
    aead: AESGCM, plaintext: bytes | memoryview, package_id: bytes, index: int, last: bool
) -> bytes:
    """Encrypt one backbone chunk with the backbone key's AEAD."""
    return aead.encrypt(chunk_nonce(index), plaintext, chunk_aad(package_id, index, last))


def decrypt_chunk(
    aead: AESGCM, stored: bytes | memoryview, package_id: bytes, index: int, last: bool
) -> bytes:
    """Decrypt one stored backbone chunk; ``Tampered`` if the tag fails."""
    try:
        return aead.decrypt(chunk_nonce(index), stored, chunk_aad(package_id, index, last))
    except InvalidTag as exc:
        raise Tampered(f"backbone: chunk {index} fails its tag") from exc
