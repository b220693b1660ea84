"""Sealed update (kind 5): a device's clipped, noised delta bound to one round, self-signed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import tee_abi
from edge.errors import Malformed
from edge.formats.envelope import (
    HEADER_SIZE,
    SIG_SIZE,
    Envelope,
    Kind,
    build_envelope,
    parse_envelope,
)
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.layouts import UPDATE_HEADER
from edge.formats.ticket import UPDATE_MODE_FLOAT32

UPDATE_HEADER_SIZE = tee_abi.UPDATE_HEADER_SIZE
MAX_PARAMS = tee_abi.MAX_HEAD_PARAMS
MAX_UPDATE_SIZE = HEADER_SIZE + UPDATE_HEADER_SIZE + 4 * MAX_PARAMS + SIG_SIZE
NORM_SLACK = 1e-5  # relative: float32 rounding of a delta scaled to exactly U

_HEAD = UPDATE_HEADER.struct


def l2_norm(delta: np.ndarray) -> float:
    """‖Δ‖₂ in float64 (einsum: np.linalg.norm's BLAS call is slow on small thread-bound hosts;
    ``dtype`` makes it accumulate in float64 without a float64 copy of the delta)."""
    return float(np.sqrt(np.einsum("i,i->", delta, delta, dtype=np.float64)))


@dataclass(frozen=True)
class SealedUpdate:
    """A parsed sealed update; ``delta`` is a read-only float32 view of the received bytes
    (W row-major, then b) and ``norm`` its ‖Δ‖₂ in float64."""

    device_id: bytes
    round_id: int
    nonce: bytes
    model_version: int
    package_id: bytes
    example_count: int
    steps: int
    total_steps: int
    update_mode: int
    param_count: int
    update_clip: float
    noise_multiplier: float
    example_clip: float
    delta: np.ndarray
    signer_key_id: bytes
    norm: float



def _checked_header(env: Envelope, want_mode: int, mode_text: str) -> tuple[memoryview, tuple]:
    """The body and its unpacked header, with the checks both update modes share."""
    body = memoryview(env.raw)[HEADER_SIZE : env.header.signed_len]
    if len(body) < UPDATE_HEADER_SIZE:
        raise Malformed(f"sealed update: body of {len(body)} bytes, shorter than the header")
    head = _HEAD.unpack_from(body, 0)
    mode, res1, params, u, res2 = head[8], head[9], head[10], head[11], head[14]
    if res1 != bytes(3) or res2 != bytes(4):
        raise Malformed("sealed update: reserved bytes are not zero")
    if mode != want_mode:
        raise Malformed(f"sealed update: update mode {mode} is not {mode_text}")
    if not 1 <= params <= MAX_PARAMS:
        raise Malformed(f"sealed update: parameter count {params} is not in 1..{MAX_PARAMS}")
    if len(body) != UPDATE_HEADER_SIZE + 4 * params:
        raise Malformed(
            f"sealed update: body of {len(body)} bytes, {params} parameters imply "
            f"{UPDATE_HEADER_SIZE + 4 * params}")
    if not (math.isfinite(u) and u > 0.0):
        raise Malformed(f"sealed update: update clip U {u} is not a finite number > 0")
    return body, head

def parse_update_envelope(env: Envelope) -> SealedUpdate:
    """Decode and check the body of a parsed sealed-update envelope (no signature check).

    The delta is viewed in place (no copy, no float conversion): one pass computes its
    norm, which is finite exactly when every coordinate is (a float32 squared cannot
    overflow float64, even summed over MAX_PARAMS).
    """
    body, (device_id, round_id, nonce, version, package_id, n, steps, total, mode, _r1, params,
           u, sigma, c, _r2) = _checked_header(env, UPDATE_MODE_FLOAT32, "1 (float32)")
    delta = np.frombuffer(body, dtype="<f4", offset=UPDATE_HEADER_SIZE)
    norm = l2_norm(delta)
    if not math.isfinite(norm):
        raise Malformed("sealed update: the delta holds a non-finite value")
    return SealedUpdate(device_id, round_id, nonce, version, package_id, n, steps, total, mode,
                        params, u, sigma, c, delta, env.signer_key_id, norm)


def parse_update(data: bytes | bytearray | memoryview) -> SealedUpdate:
    """Parse a sealed update with structural checks but no signature check."""
    return parse_update_envelope(parse_envelope(data, kind=Kind.SEALED_UPDATE,
                                                max_len=MAX_UPDATE_SIZE))


def build_update(
    identity: Ed25519PrivateKey,
    *,
    round_id: int,
    nonce: bytes,
    model_version: int,
    package_id: bytes,
    delta: np.ndarray,
    example_count: int,
    steps: int,
    total_steps: int,
    update_clip: float,
    noise_multiplier: float,
    example_clip: float,
) -> bytes:
    """Return a sealed update as the TA writes it (tests and the aggregator's test fixtures)."""
    flat = np.ascontiguousarray(delta, dtype="<f4").reshape(-1)
    dev = key_id(ed25519_raw_public(identity))
    head = _HEAD.pack(dev, round_id, bytes(nonce), model_version, bytes(package_id),
                      example_count, steps, total_steps, UPDATE_MODE_FLOAT32, bytes(3),
                      flat.size, update_clip, noise_multiplier, example_clip, bytes(4))
    return build_envelope(Kind.SEALED_UPDATE, head + flat.tobytes(), identity)


@dataclass(frozen=True)
class MaskedUpdate:
    """A secure-aggregation sealed update (mode 2): masked 32-bit words, not a delta."""

    device_id: bytes
    round_id: int
    nonce: bytes
    model_version: int
    package_id: bytes
    example_count: int
    param_count: int
    update_clip: float
    noise_multiplier: float
    example_clip: float
    words: np.ndarray  # uint32, read-only view
    signer_key_id: bytes


def parse_masked_update_envelope(env: Envelope) -> MaskedUpdate:
    """Decode and check the body of a mode-2 sealed update (no signature check)."""
    body, (device_id, round_id, nonce, version, package_id, n, _steps, _total, _mode, _r1,
           params, u, sigma, c, _r2) = _checked_header(env, tee_abi.UpdateMode.SECAGG,
                                                       "2 (secure aggregation)")
    words = np.frombuffer(body, dtype="<u4", offset=UPDATE_HEADER_SIZE)
    return MaskedUpdate(device_id, round_id, nonce, version, package_id, n, params, u, sigma, c,
                        words, env.signer_key_id)


def update_mode_of(env: Envelope) -> int:
    """The update mode a sealed-update envelope's body names (1 float32, 2 masked)."""
    body = memoryview(env.raw)[HEADER_SIZE : env.header.signed_len]
    if len(body) < UPDATE_HEADER_SIZE:
        raise Malformed(f"sealed update: body of {len(body)} bytes, shorter than the header")
    return int(body[UPDATE_HEADER.offset("update_mode")])


def parse_any_update(data: bytes | bytearray | memoryview) -> SealedUpdate | MaskedUpdate:
    """A float32 (mode 1) or masked (mode 2) sealed update, structure checked, no signature."""
    env = parse_envelope(data, kind=Kind.SEALED_UPDATE, max_len=MAX_UPDATE_SIZE)
    if update_mode_of(env) == tee_abi.UpdateMode.SECAGG:
        return parse_masked_update_envelope(env)
    return parse_update_envelope(env)
