"""Strict Ed25519: public keys and signatures a forger cannot exploit.

RFC 8032 verification accepts public keys and signature points of small order
(the identity, and the seven other points whose order divides 8): with the
identity as public key, R = identity and S = 0 "verify" for every message. The
OpenSSL and OP-TEE verifiers both take such keys. Every key that enters edge
(trust anchors, device records, enrollment) and every signature it checks goes
through here first, as the TA's ``ta/ed25519_strict.c`` does in the secure
world:

* a public key is refused (:class:`~edge.errors.WeakKey`) unless it is the
  canonical encoding (y < p; x = 0 only with the sign bit clear) of a curve
  point whose order does not divide 8;
* a signature is refused (:class:`~edge.errors.SignatureInvalid`) unless
  S < L and R is not an encoding of a point of small order (a blocklist, as
  R changes with every signature and decoding costs half a millisecond in
  Python; an R off the curve or non-canonical never verifies anyway).

A key's verdict is cached, so an enrolled device's key is decoded once.
Only public data goes through this arithmetic, so it need not run in
constant time. Curve constants: RFC 8032, section 5.1.
"""

from __future__ import annotations

import functools

from edge.errors import SignatureInvalid, WeakKey

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def decode_point(raw: bytes) -> tuple[int, int] | str:
    """The affine point (x, y) of a 32-byte encoding, or why it is not one."""
    if len(raw) != 32:
        return f"{len(raw)} bytes, expected 32"
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= P:
        return "non-canonical encoding (y >= p)"
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    if (v * x * x - u) % P != 0:
        if (v * x * x + u) % P != 0:
            return "not a point of the curve"
        x = (x * SQRT_M1) % P
    if x == 0 and sign:
        return "non-canonical encoding (x = 0 with the sign bit set)"
    if x & 1 != sign:
        x = P - x
    return x, y


def _double(pt: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """2P in extended coordinates (a = -1; Hisil et al. 2008, dbl-2008-hwcd)."""
    x, y, z, _ = pt
    a, b, c = x * x % P, y * y % P, 2 * z * z % P
    h = (a + b) % P
    e = (h - (x + y) ** 2) % P
    g = (a - b) % P
    f = (c + g) % P
    return e * f % P, g * h % P, f * g % P, e * h % P


def has_small_order(x: int, y: int) -> bool:
    """True if 8 * (x, y) is the identity (the point lies in the torsion subgroup)."""
    pt = (x, y, 1, x * y % P)
    for _ in range(3):
        pt = _double(pt)
    return pt[0] % P == 0 and (pt[1] - pt[2]) % P == 0


@functools.lru_cache(maxsize=65536)
def _key_verdict(raw: bytes) -> str | None:
    point = decode_point(raw)
    if isinstance(point, str):
        return point
    if has_small_order(*point):
        return "a point of small order (forgeable)"
    return None


def check_public_key(raw: bytes, what: str = "Ed25519 public key") -> None:
    """Refuse a key that is not a canonical encoding of a large-order curve point."""
    verdict = _key_verdict(bytes(raw))
    if verdict is not None:
        raise WeakKey(f"{what}: {verdict}")


# The eight points whose order divides 8, canonically encoded (found as the
# multiples of a point of order 8; tests/vectors/generate.py does it again).
_SMALL_ORDER_POINTS = (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
)


def _small_order_encodings() -> frozenset[bytes]:
    """Every 32-byte string a lax decoder reads as a point of small order."""
    out = set()
    for text in _SMALL_ORDER_POINTS:
        enc = bytes.fromhex(text)
        y, sign = int.from_bytes(enc, "little") & ((1 << 255) - 1), enc[31] >> 7
        out.add(enc)
        if y in (1, P - 1):  # x = 0: the sign bit is free
            out.add((y | ((sign ^ 1) << 255)).to_bytes(32, "little"))
        if y + P < 1 << 255:  # the same y, not reduced
            out.update((y + P | (s << 255)).to_bytes(32, "little") for s in (0, 1))
    return frozenset(out)


SMALL_ORDER_ENCODINGS = _small_order_encodings()


def check_signature_form(sig: bytes, what: str = "signature") -> None:
    """Refuse a signature whose S is not reduced or whose R is of small order."""
    if len(sig) != 64:
        raise SignatureInvalid(f"{what}: {len(sig)} bytes, expected 64")
    if int.from_bytes(sig[32:], "little") >= L:
        raise SignatureInvalid(f"{what}: S is not reduced modulo L (malleable)")
    if bytes(sig[:32]) in SMALL_ORDER_ENCODINGS:
        raise SignatureInvalid(f"{what}: R is a point of small order")
