"""Key wrap (kind 14): a package's content key for one device (docs/formats.md "Key wrap").

A release is one package for the whole fleet plus one 204-byte wrap per
device, so what a device downloads does not grow with the fleet. A wrap is
signed by the model signer and bound to one device and to the digest of one
signed manifest.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from edge import tee_abi
from edge.errors import Malformed, NotForThisDevice, WrongPackage
from edge.formats.envelope import Envelope, build_envelope, parse_envelope, verify_envelope
from edge.formats.layouts import KEY_WRAP_BODY
from edge.tee_abi import Kind

KEY_WRAP_SIZE = tee_abi.KEY_WRAP_SIZE
BODY_SIZE = KEY_WRAP_BODY.size


def manifest_digest(package: bytes | bytearray | memoryview | Envelope) -> bytes:
    """SHA-256 of a package's signed part (envelope header and manifest body)."""
    if isinstance(package, Envelope):
        return package.digest()
    return parse_envelope(package, kind=Kind.PACKAGE, exact=False).digest()


@dataclass(frozen=True)
class KeyWrap:
    """The fields of a key wrap (after ``parse_key_wrap``'s checks)."""

    device_id: bytes
    package_id: bytes
    manifest_digest: bytes
    wrapped_key: bytes

    def check_for(self, device_id: bytes, package_id: bytes, digest: bytes) -> None:
        """Refuse a wrap for another device (``NotForThisDevice``) or package (``WrongPackage``)."""
        if not hmac.compare_digest(self.device_id, bytes(device_id)):
            raise NotForThisDevice(
                f"key wrap: for device {self.device_id.hex()}, not {bytes(device_id).hex()}")
        if not (hmac.compare_digest(self.package_id, bytes(package_id))
                and hmac.compare_digest(self.manifest_digest, bytes(digest))):
            raise WrongPackage(
                f"key wrap: bound to package {self.package_id.hex()} with manifest digest "
                f"{self.manifest_digest.hex()[:16]}..., not package {bytes(package_id).hex()}")


def build_key_wrap(signer: object, wrap: KeyWrap) -> bytes:
    """Sign a key wrap with the model-signer key (an ``Ed25519PrivateKey``)."""
    body = KEY_WRAP_BODY.pack({
        "device_id": wrap.device_id,
        "package_id": wrap.package_id,
        "manifest_digest": wrap.manifest_digest,
        "wrapped_key": wrap.wrapped_key,
    })
    return build_envelope(Kind.KEY_WRAP, body, signer)  # type: ignore[arg-type]


def parse_key_wrap(data: bytes | bytearray | memoryview, *, signer_pub: bytes) -> KeyWrap:
    """Check a wrap's envelope, signer and signature as the TA does; return its fields."""
    env = parse_envelope(data, kind=Kind.KEY_WRAP, max_len=KEY_WRAP_SIZE)
    verify_envelope(env, signer_pub)
    return read_key_wrap(env)


def read_key_wrap(env: Envelope) -> KeyWrap:
    """The fields of a wrap envelope (no signature check: inspection, routing)."""
    body = env.body
    if len(body) != BODY_SIZE:
        raise Malformed(f"key wrap: body of {len(body)} bytes, expected {BODY_SIZE}")
    f = KEY_WRAP_BODY.read(body)
    return KeyWrap(f["device_id"], f["package_id"], f["manifest_digest"], f["wrapped_key"])


def wrap_device_id(data: bytes | bytearray | memoryview) -> bytes:
    """The device id a wrap names (unverified: for routing and file names)."""
    return read_key_wrap(parse_envelope(data, kind=Kind.KEY_WRAP, max_len=KEY_WRAP_SIZE)).device_id
