"""Secure aggregation building blocks: Shamir over GF(2^8), the AES-CTR mask
generator, 32-bit quantization and the neighbour graph."""

from __future__ import annotations

import itertools
import secrets

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from edge.errors import Malformed
from edge.secagg import graph, prg, shamir
from edge.secagg.quantize import SIGNED_MAX, Quantizer


def slow_mul(a: int, b: int) -> int:
    """GF(2^8) product by shift-and-add, the textbook way (FIPS-197 4.2)."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a = ((a << 1) ^ 0x11B) if a & 0x80 else a << 1
        b >>= 1
    return out


def test_field_multiplication_and_inverse() -> None:
    a, b = np.meshgrid(np.arange(256), np.arange(256))
    table = shamir.gf_mul(a.astype(np.uint8), b.astype(np.uint8))
    for x, y in [(0x57, 0x83), (0x57, 0x13), (0, 7), (1, 0xFF)] + [
            (int(i), int(j)) for i, j in np.random.default_rng(0).integers(0, 256, (200, 2))]:
        assert table[y, x] == slow_mul(x, y)
    assert slow_mul(0x57, 0x83) == 0xC1  # FIPS-197's worked example
    for x in range(1, 256):
        assert slow_mul(x, shamir.gf_inv(x)) == 1
    with pytest.raises(ValueError):
        shamir.gf_inv(0)


def test_any_t_shares_give_the_secret_and_t_minus_1_do_not() -> None:
    secret = secrets.token_bytes(32)
    xs = list(range(1, 8))
    shares = shamir.split(secret, 4, xs)
    for subset in itertools.combinations(xs, 4):
        assert shamir.combine({x: shares[x] for x in subset}, 4) == secret
    assert shamir.combine(shares, 4) == secret  # all 7, the 3 extra ones checked
    with pytest.raises(ValueError, match="cannot reach the threshold"):
        shamir.combine({x: shares[x] for x in xs[:3]}, 4)


def test_t_minus_1_shares_say_nothing_about_the_secret() -> None:
    # For each pair of secrets, the t-1 = 2 shares at fixed points are equally likely:
    # for any share values there is exactly one coefficient choice per secret.
    xs = [3, 9]
    for s in (b"\x00", b"\xa5"):
        seen = set()
        for c1 in range(256):
            for c2 in range(0, 256, 17):
                sh = shamir.split_with(s, [bytes([c1]), bytes([c2])], [*xs, 200])
                seen.add((sh[3], sh[9]))
        assert len(seen) == 256 * 16  # a bijection from coefficients to share pairs


def test_a_corrupted_share_is_found() -> None:
    secret = secrets.token_bytes(16)
    shares = shamir.split(secret, 3, [1, 2, 3, 4, 5])
    bad = dict(shares)
    bad[5] = bytes([shares[5][0] ^ 1]) + shares[5][1:]
    with pytest.raises(Malformed, match="share 5 is not on the polynomial"):
        shamir.combine(bad, 3)


@pytest.mark.parametrize("t, xs, message", [
    (0, [1, 2], "threshold"), (2, [1, 1], "distinct"), (2, [0, 1], "1..255"),
    (2, [1, 256], "1..255"), (3, [1, 2], "threshold")])
def test_bad_parameters(t: int, xs: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shamir.split(b"x", t, xs)


def test_prg_is_aes_ctr_keystream_from_a_zero_counter() -> None:
    seed = bytes(range(16))
    words = prg.expand(seed, 1000)
    enc = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    assert words.tobytes() == enc.update(bytes(4000))
    assert words.dtype == np.uint32 and prg.expand(seed, 0).size == 0
    assert not np.array_equal(prg.expand(bytes(16), 8), prg.expand(b"\x01" + bytes(15), 8))
    with pytest.raises(ValueError):
        prg.expand(bytes(15), 4)
    assert prg.pair_seed(bytes(32), b"round 1") != prg.pair_seed(bytes(32), b"round 2")


def test_masks_cancel_in_the_sum() -> None:
    rng = np.random.default_rng(1)
    d, seeds = 257, [secrets.token_bytes(16) for _ in range(3)]
    updates = [rng.integers(0, 2**32, d, dtype=np.uint64).astype(np.uint32) for _ in range(3)]
    # device 0 adds its masks with 1 and 2, device 1 subtracts 0's and adds 2's, ...
    pair = {(i, j): prg.expand(seeds[i] if i < j else seeds[j], d)
            for i in range(3) for j in range(3) if i != j}
    masked = []
    for i in range(3):
        m = updates[i].copy()
        for j in range(3):
            if j != i:
                m = m + pair[(i, j)] if i < j else m - pair[(i, j)]
        masked.append(m)
    assert np.array_equal(sum(masked, np.zeros(d, np.uint32)),
                          sum(updates, np.zeros(d, np.uint32)))


def test_quantized_sums_cannot_overflow_and_stay_within_the_bound() -> None:
    q = Quantizer.for_cohort(5.0, 1000)
    assert q.worst_sum() <= SIGNED_MAX
    assert Quantizer(5.0, 1000, q.scale_log2 + 1).worst_sum() > SIGNED_MAX  # the finest
    rng = np.random.default_rng(2)
    n, d = 1000, 64
    # the worst case: every device at the clip bound on the same coordinate, both signs
    for sign in (1.0, -1.0):
        ups = np.zeros((n, d))
        ups[:, 0] = sign * 5.0
        words = [q.quantize(u, rng.integers(0, 2**32, d, dtype=np.uint64).astype(np.uint32))
                 for u in ups]
        total = np.zeros(d, np.uint32)
        for w in words:
            total += w
        assert abs(q.dequantize(total)[0] - sign * 5.0 * n) <= q.error_bound(n)
    ups = rng.normal(size=(50, d))
    ups *= 5.0 / np.linalg.norm(ups, axis=1, keepdims=True)
    total = np.zeros(d, np.uint32)
    for u in ups:
        total += q.quantize(u, rng.integers(0, 2**32, d, dtype=np.uint64).astype(np.uint32))
    assert np.max(np.abs(q.dequantize(total) - ups.sum(0))) <= q.error_bound(50)


def test_stochastic_rounding_is_unbiased() -> None:
    q = Quantizer(1.0, 1, 0)  # scale 1: 0.3 rounds to 0 or 1
    rng = np.random.default_rng(3)
    r = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    words = q.quantize(np.full(r.size, 0.3), r)
    assert set(np.unique(words)) == {0, 1}
    assert abs(words.mean() - 0.3) < 0.005
    assert q.quantize(np.array([-0.5]), np.array([0], np.uint32))[0] == 2**32 - 1  # -1


def test_quantizer_refusals() -> None:
    with pytest.raises(ValueError, match="within"):
        Quantizer.for_cohort(1.0, 10).quantize(np.array([1.5]), np.zeros(1, np.uint32))
    with pytest.raises(ValueError, match="finite"):
        Quantizer.for_cohort(1.0, 10).quantize(np.array([np.nan]), np.zeros(1, np.uint32))
    with pytest.raises(ValueError, match="cannot be summed"):
        Quantizer.for_cohort(1e9, 10)
    with pytest.raises(ValueError, match="positive"):
        Quantizer.for_cohort(0.0, 10)


def test_neighbour_graph_is_k_regular_symmetric_and_seeded() -> None:
    devices = [secrets.token_bytes(16) for _ in range(40)]
    g = graph.neighbours(devices, 8, b"nonce-1")
    assert all(len(v) == 8 and d not in v for d, v in g.items())
    assert all(d in g[e] for d, v in g.items() for e in v)
    assert graph.neighbours(list(reversed(devices)), 8, b"nonce-1") == g
    assert graph.neighbours(devices, 8, b"nonce-2") != g
    full = graph.neighbours(devices[:5], 8, b"x")
    assert all(len(v) == 4 for v in full.values())
    with pytest.raises(ValueError, match="even"):
        graph.neighbours(devices, 7, b"x")
