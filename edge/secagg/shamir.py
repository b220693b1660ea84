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

import functools
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
    rows = np.frombuffer(b"".join(shares[x] for x in xs), np.uint8).reshape(len(xs), -1)
    secret = _combine_rows(_weights(tuple(xs[:t]), (0,)), rows[:t])[0]
    if len(xs) > t:
        # Each extra share must be what the secret and the first t - 1 shares predict.
        base = np.concatenate([secret[None, :], rows[:t - 1]])
        predicted = _combine_rows(_weights((0, *xs[:t - 1]), tuple(xs[t:])), base)
        bad = np.flatnonzero(np.any(predicted != rows[t:], axis=1))
        if bad.size:
            raise Malformed(f"shamir: share {xs[t + int(bad[0])]} is not on the polynomial "
                            "of the others")
    return secret.tobytes()


def _mul1(a: int, b: int) -> int:
    """a * b in GF(2^8) for two Python ints (the scalar Lagrange weights)."""
    return 0 if a == 0 or b == 0 else int(_EXP[int(_LOG[a]) + int(_LOG[b])])


@functools.lru_cache(maxsize=4096)
def _weights(xs: tuple[int, ...], at: tuple[int, ...]) -> np.ndarray:
    """Lagrange weights (len(at) x len(xs)): row r evaluates the polynomial through the
    points at ``xs`` at ``at[r]``.

    They depend on the x coordinates only, and a round rebuilds every secret from
    holders at the same few x sets, so they are computed once per set and cached.
    """
    x = np.array(xs, np.int64)
    num = np.array(at, np.int64)[:, None] ^ x[None, :]  # (at_r - x_j), "-" is XOR
    den = x[:, None] ^ x[None, :]  # (x_i - x_j), zero on the diagonal only
    off = ~np.eye(len(xs), dtype=bool)
    # log of prod_{j != i}: the sum of the logs over j, minus the j = i term.
    log_num = _LOG[num].sum(axis=1)[:, None] - _LOG[num]
    zero = ((num == 0).sum(axis=1)[:, None] - (num == 0)) > 0  # a zero factor, j != i
    log_den = np.where(off, _LOG[den], 0).sum(axis=1)
    out = _EXP[(log_num - log_den[None, :]) % 255].astype(np.uint8)
    out[zero] = 0
    out.flags.writeable = False
    return out


def _combine_rows(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """GF(2^8) matrix product: out[r] = XOR_i weights[r, i] * rows[i], byte-wise."""
    logs = _LOG[weights][:, :, None] + _LOG[rows][None, :, :]
    prod = _EXP[logs]
    prod[(weights == 0)[:, :, None] | (rows == 0)[None, :, :]] = 0
    return np.bitwise_xor.reduce(prod, axis=1)
