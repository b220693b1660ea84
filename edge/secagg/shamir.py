"""Shamir secret sharing over GF(2^8), byte by byte (the TA's ``ta/shamir.c`` twin).

Each byte of a secret is the constant term of its own random polynomial of
degree t - 1 over GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1; the
share for participant x (1..255) is the polynomials evaluated at x, so a share
is as long as the secret. Any t shares give the secret back by Lagrange
interpolation at 0; fewer give no information about it (Shamir, CACM 1979).
The byte-wise field keeps the arithmetic small and constant-time in C (no
big-number code in the TA) at the cost of at most 255 shares per secret, far
above the neighbourhood sizes SecAgg+ uses.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

import numpy as np

from edge.errors import Malformed

MAX_SHARES = 255
_POLY = 0x11B


def _tables() -> tuple[np.ndarray, np.ndarray]:
    exp = np.zeros(512, np.uint8)
    log = np.zeros(256, np.int32)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        # multiply by the generator 3 = x + 1
        x ^= (x << 1) ^ (_POLY if x & 0x80 else 0)
        x &= 0xFF
    exp[255:510] = exp[:255]
    return exp, log


_EXP, _LOG = _tables()


def gf_mul(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Products in GF(2^8), element-wise."""
    a, b = np.asarray(a, np.uint8), np.asarray(b, np.uint8)
    prod = _EXP[_LOG[a] + _LOG[b]]
    return np.where((a == 0) | (b == 0), np.uint8(0), prod).astype(np.uint8)


def gf_inv(a: int) -> int:
    """The multiplicative inverse of a non-zero field element."""
    if not 1 <= a <= 255:
        raise ValueError("0 has no inverse in GF(2^8)")
    return int(_EXP[(255 - _LOG[a]) % 255])


def _check(t: int, xs: Sequence[int]) -> None:
    if not 1 <= t <= MAX_SHARES:
        raise ValueError(f"threshold {t} outside 1..{MAX_SHARES}")
    if len(set(xs)) != len(xs) or any(not 1 <= x <= MAX_SHARES for x in xs):
        raise ValueError("share indices must be distinct, in 1..255")
    if len(xs) < t:
        raise ValueError(f"{len(xs)} shares cannot reach the threshold {t}")


def split_with(secret: bytes, coefficients: Sequence[bytes], xs: Sequence[int]) -> dict[int, bytes]:
    """Shares of ``secret`` at ``xs`` for given higher coefficients (t - 1 of them).

    Deterministic, for test vectors; ``split`` draws the coefficients.
    """
    _check(len(coefficients) + 1, xs)
    if any(len(c) != len(secret) for c in coefficients):
        raise ValueError("every coefficient must be as long as the secret")
    poly = [np.frombuffer(secret, np.uint8)] + [np.frombuffer(c, np.uint8) for c in coefficients]
    shares = {}
    for x in xs:
        acc = np.zeros(len(secret), np.uint8)
        for coeff in reversed(poly):  # Horner: acc = acc * x + coeff
            acc = gf_mul(acc, x) ^ coeff
        shares[x] = acc.tobytes()
    return shares


def split(secret: bytes, t: int, xs: Sequence[int]) -> dict[int, bytes]:
    """Shares of ``secret`` at ``xs``; any ``t`` of them reconstruct it."""
    _check(t, xs)
    return split_with(secret, [secrets.token_bytes(len(secret)) for _ in range(t - 1)], xs)


def combine(shares: Mapping[int, bytes], t: int) -> bytes:
    """The secret behind at least ``t`` shares; Malformed if they disagree.

    With more than ``t`` shares every extra one is checked to lie on the same
    polynomial, so one corrupted share is found rather than silently giving a
    wrong seed (and a wrong unmasked sum).
    """
    xs = sorted(shares)
    _check(t, xs)
    lengths = {len(s) for s in shares.values()}
    if len(lengths) != 1:
        raise Malformed("shamir: shares of different lengths")
    secret = _evaluate({x: shares[x] for x in xs[:t]}, 0)
    for extra in xs[t:]:
        # The extra share must be what the first t-1 shares plus the secret predict.
        base = {0: secret, **{x: shares[x] for x in xs[:t - 1]}}
        if _evaluate(base, extra) != shares[extra]:
            raise Malformed(f"shamir: share {extra} is not on the polynomial of the others")
    return secret


def _mul1(a: int, b: int) -> int:
    """a * b in GF(2^8) for two Python ints (the scalar Lagrange weights)."""
    return 0 if a == 0 or b == 0 else int(_EXP[int(_LOG[a]) + int(_LOG[b])])


def _evaluate(points: Mapping[int, bytes], at: int) -> bytes:
    """The polynomial through ``points`` evaluated at ``at`` (Lagrange).

    The weights are scalars, computed with Python ints; only the weighted sum of
    the shares is a numpy operation (a round rebuilds hundreds of secrets).
    """
    xs = list(points)
    out = np.zeros(len(points[xs[0]]), np.uint8)
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = _mul1(num, at ^ xj)
                den = _mul1(den, xi ^ xj)
        weight = _mul1(num, gf_inv(den))
        if weight:
            share = np.frombuffer(points[xi], np.uint8)
            log = _LOG[share] + _LOG[weight]
            out ^= np.where(share == 0, np.uint8(0), _EXP[log]).astype(np.uint8)
    return out.tobytes()
