"""Device record (kind 3): a device's identity and key-agreement keys, self-signed."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge import tee_abi
from edge.errors import Malformed
from edge.formats.envelope import (
    Kind,
    build_envelope,
    parse_envelope,
    verify_envelope,
)
from edge.formats.keys import ed25519_raw_public, key_id, x25519_raw_public
from edge.formats.layouts import DEVICE_RECORD_BODY

TA_ABI_VERSION = tee_abi.ABI_VERSION
DEVICE_BODY_SIZE = DEVICE_RECORD_BODY.size
DEVICE_RECORD_SIZE = tee_abi.DEVICE_RECORD_SIZE



@dataclass(frozen=True)
class DeviceRecord:
    """A verified device record: who the device is and how to wrap keys for it."""

    device_id: bytes
    ed25519_pub: bytes
    x25519_pub: bytes
    abi_version: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> DeviceRecord:
        """Parse and verify a device record (same as ``parse_device_record``)."""
        return parse_device_record(data)

    @staticmethod
    def build(
        identity: Ed25519PrivateKey,
        agreement: X25519PrivateKey,
        abi_version: int = TA_ABI_VERSION,
    ) -> bytes:
        """Return a self-signed record from private keys (same as ``build_device_record``)."""
        return build_device_record(identity, agreement, abi_version)


def parse_device_record(data: bytes | bytearray | memoryview) -> DeviceRecord:
    """Parse a device record and verify its self-signature (proof of possession)."""
    env = parse_envelope(data, kind=Kind.DEVICE_RECORD, max_len=DEVICE_RECORD_SIZE)
    body = env.body
    if len(body) != DEVICE_BODY_SIZE:
        raise Malformed(f"device record: body of {len(body)} bytes, expected {DEVICE_BODY_SIZE}")
    f = DEVICE_RECORD_BODY.read(body)
    ed_pub = f["sign_pub"]
    verify_envelope(env, ed_pub)
    DEVICE_RECORD_BODY.check_reserved(body, "device record")
    return DeviceRecord(key_id(ed_pub), ed_pub, f["kex_pub"], f["abi_version"])


def build_device_record(
    identity: Ed25519PrivateKey,
    agreement: X25519PrivateKey,
    abi_version: int = TA_ABI_VERSION,
) -> bytes:
    """Return a self-signed device record as the TA's GET_IDENTITY writes it (tests, vectors)."""
    body = DEVICE_RECORD_BODY.pack({"sign_pub": ed25519_raw_public(identity),
                                    "kex_pub": x25519_raw_public(agreement),
                                    "abi_version": abi_version})
    return build_envelope(Kind.DEVICE_RECORD, body, identity)
