// SPDX-License-Identifier: BSD-2-Clause
/*
 * Field arithmetic modulo p = 2^255 - 19 on sixteen 16-bit limbs held in
 * int64_t, enough to decode a point (RFC 8032, 5.1.3) and double it three
 * times. Inputs are public keys and signatures, so nothing here needs to
 * run in constant time; it needs to be easy to check against the Python
 * twin, which uses plain integers.
 */
#include <string.h>
#include <tee_internal_api.h>

#include "ed25519_strict.h"
#include "edge_ta.h"

typedef int64_t fe[16];

/* d = -121665/121666 and sqrt(-1) mod p (RFC 8032, 5.1), low limb first. */
static const fe fe_d = {
	0x78a3, 0x1359, 0x4dca, 0x75eb, 0xd8ab, 0x4141, 0x0a4d, 0x0070,
	0xe898, 0x7779, 0x4079, 0x8cc7, 0xfe73, 0x2b6f, 0x6cee, 0x5203,
};
static const fe fe_sqrtm1 = {
	0xa0b0, 0x4a0e, 0x1b27, 0xc4ee, 0xe478, 0xad2f, 0x1806, 0x2f43,
	0xd7a7, 0x3dfb, 0x0099, 0x2b4d, 0xdf0b, 0x4fc1, 0x2480, 0x2b83,
};
/* The group order L = 2^252 + 27742317777372353535851937790883648493. */
static const uint8_t group_order[32] = {
	0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
	0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
};

static void fe_copy(fe o, const fe a)
{
	memcpy(o, a, sizeof(fe));
}

static void fe_set(fe o, int64_t v)
{
	memset(o, 0, sizeof(fe));
	o[0] = v;
}

/* Bring every limb to [0, 2^16); 2^256 = 38 (mod p) folds the top carry. */
static void fe_carry(fe o)
{
	int64_t c = 0;
	int i = 0;

	for (i = 0; i < 16; i++) {
		c = o[i] >> 16;		/* floor: gcc shifts signed values arithmetically */
		o[i] -= c * 65536;
		if (i < 15)
			o[i + 1] += c;
		else
			o[0] += 38 * c;
	}
}

static void fe_add(fe o, const fe a, const fe b)
{
	for (int i = 0; i < 16; i++)
		o[i] = a[i] + b[i];
}

static void fe_sub(fe o, const fe a, const fe b)
{
	for (int i = 0; i < 16; i++)
		o[i] = a[i] - b[i];
}

/* o = t (31 product limbs) mod p: 2^256 = 38 folds the top half down. */
static void fe_reduce(fe o, int64_t t[31])
{
	int i = 0;

	for (i = 0; i < 15; i++)
		t[i] += 38 * t[i + 16];
	for (i = 0; i < 16; i++)
		o[i] = t[i];
	fe_carry(o);
	fe_carry(o);
}

static void fe_mul(fe o, const fe a, const fe b)
{
	int64_t t[31] = { 0 };
	int i = 0, j = 0;

	for (i = 0; i < 16; i++)
		for (j = 0; j < 16; j++)
			t[i + j] += a[i] * b[j];
	fe_reduce(o, t);
}

/* a^2: fe_mul(o, a, a) with each cross product taken once, doubled (136
 * products instead of 256; decoding a point is mostly squarings). */
static void fe_sq(fe o, const fe a)
{
	int64_t t[31] = { 0 };
	int i = 0, j = 0;

	for (i = 0; i < 16; i++) {
		t[2 * i] += a[i] * a[i];
		for (j = i + 1; j < 16; j++)
			t[i + j] += 2 * a[i] * a[j];
	}
	fe_reduce(o, t);
}

/* o = a^(2^n): n squarings. */
static void fe_sq_n(fe o, const fe a, int n)
{
	fe_sq(o, a);
	while (--n > 0)
		fe_sq(o, o);
}

/* The canonical 32-byte little-endian encoding of a (fully reduced). */
static void fe_pack(uint8_t out[32], const fe a)
{
	fe t, m;
	int64_t borrow = 0;
	int i = 0, pass = 0;

	fe_copy(t, a);
	fe_carry(t);
	fe_carry(t);
	fe_carry(t);
	/* Now 0 <= t < 2^256 limb-wise; subtract p while it fits (twice at most). */
	for (pass = 0; pass < 2; pass++) {
		m[0] = t[0] - 0xffed;
		for (i = 1; i < 15; i++) {
			borrow = (m[i - 1] >> 16) & 1;
			m[i - 1] &= 0xffff;
			m[i] = t[i] - 0xffff - borrow;
		}
		borrow = (m[14] >> 16) & 1;
		m[14] &= 0xffff;
		m[15] = t[15] - 0x7fff - borrow;
		borrow = (m[15] >> 16) & 1;
		m[15] &= 0xffff;
		if (!borrow)
			fe_copy(t, m);
	}
	for (i = 0; i < 16; i++) {
		out[2 * i] = (uint8_t)(t[i] & 0xff);
		out[2 * i + 1] = (uint8_t)((t[i] >> 8) & 0xff);
	}
}

static bool fe_equal(const fe a, const fe b)
{
	uint8_t x[32], y[32];

	fe_pack(x, a);
	fe_pack(y, b);
	return !memcmp(x, y, 32);
}

static bool fe_is_zero(const fe a)
{
	static const uint8_t zero[32];
	uint8_t x[32];

	fe_pack(x, a);
	return !memcmp(x, zero, 32);
}

/*
 * a^(2^252 - 3) by the addition chain of ref10's fe_pow22523 (Bernstein et
 * al., "High-speed high-security signatures", 2011): 250 squarings and 11
 * multiplications instead of square-and-multiply's 251 + 250. The exponent is
 * public, so the chain's shape leaks nothing.
 */
static void fe_pow_p58(fe o, const fe a)
{
	fe t0, t1, t2;

	fe_sq(t0, a);			/* a^2 */
	fe_sq_n(t1, t0, 2);		/* a^8 */
	fe_mul(t1, a, t1);		/* a^9 */
	fe_mul(t0, t0, t1);		/* a^11 */
	fe_sq(t0, t0);			/* a^22 */
	fe_mul(t0, t1, t0);		/* a^(2^5 - 1) */
	fe_sq_n(t1, t0, 5);
	fe_mul(t0, t1, t0);		/* a^(2^10 - 1) */
	fe_sq_n(t1, t0, 10);
	fe_mul(t1, t1, t0);		/* a^(2^20 - 1) */
	fe_sq_n(t2, t1, 20);
	fe_mul(t1, t2, t1);		/* a^(2^40 - 1) */
	fe_sq_n(t1, t1, 10);
	fe_mul(t0, t1, t0);		/* a^(2^50 - 1) */
	fe_sq_n(t1, t0, 50);
	fe_mul(t1, t1, t0);		/* a^(2^100 - 1) */
	fe_sq_n(t2, t1, 100);
	fe_mul(t1, t2, t1);		/* a^(2^200 - 1) */
	fe_sq_n(t1, t1, 50);
	fe_mul(t0, t1, t0);		/* a^(2^250 - 1) */
	fe_sq_n(t0, t0, 2);		/* a^(2^252 - 4) */
	fe_mul(o, t0, a);		/* a^(2^252 - 3) */
}

/* Decode per RFC 8032, 5.1.3, refusing what it refuses and x = 0, sign 1. */
static enum ed25519_point_class decode(fe x, fe y, const uint8_t enc[32])
{
	fe u, v, v3, t, vxx, one;
	uint8_t xb[32];
	int sign = enc[31] >> 7;
	int i = 0;

	/* y >= p is the 19 encodings 2^255 - 19 .. 2^255 - 1. */
	if ((enc[31] & 0x7f) == 0x7f && enc[0] >= 0xed) {
		for (i = 1; i < 31 && enc[i] == 0xff; i++)
			;
		if (i == 31)
			return ED25519_POINT_NON_CANONICAL;
	}
	for (i = 0; i < 16; i++)
		y[i] = (int64_t)enc[2 * i] | (int64_t)enc[2 * i + 1] << 8;
	y[15] &= 0x7fff;

	fe_set(one, 1);
	fe_sq(u, y);
	fe_mul(v, u, fe_d);
	fe_sub(u, u, one);		/* u = y^2 - 1 */
	fe_add(v, v, one);		/* v = d y^2 + 1 */
	/* x = u v^3 (u v^7)^((p - 5) / 8) */
	fe_sq(v3, v);
	fe_mul(v3, v3, v);
	fe_sq(t, v3);
	fe_mul(t, t, v);
	fe_mul(t, t, u);
	fe_pow_p58(t, t);
	fe_mul(t, t, v3);
	fe_mul(x, t, u);

	fe_sq(vxx, x);
	fe_mul(vxx, vxx, v);
	if (!fe_equal(vxx, u)) {
		fe_add(t, vxx, u);
		if (!fe_is_zero(t))
			return ED25519_POINT_OFF_CURVE;
		fe_mul(x, x, fe_sqrtm1);
	}
	fe_pack(xb, x);
	if (fe_is_zero(x) && sign)
		return ED25519_POINT_NON_CANONICAL;
	if ((xb[0] & 1) != sign) {
		fe_set(t, 0);
		fe_sub(x, t, x);
	}
	return ED25519_POINT_OK;
}

/* 2P in extended coordinates, a = -1 (Hisil et al. 2008, dbl-2008-hwcd). */
static void point_double(fe px, fe py, fe pz, fe pt)
{
	fe a, b, c, e, f, g, h;

	fe_sq(a, px);
	fe_sq(b, py);
	fe_sq(c, pz);
	fe_add(c, c, c);
	fe_add(h, a, b);
	fe_add(e, px, py);
	fe_sq(e, e);
	fe_sub(e, h, e);
	fe_sub(g, a, b);
	fe_add(f, c, g);
	fe_mul(px, e, f);
	fe_mul(py, g, h);
	fe_mul(pz, f, g);
	fe_mul(pt, e, h);
}

enum ed25519_point_class ed25519_classify_point(const uint8_t enc[32])
{
	fe x, y, z, t;
	enum ed25519_point_class c = decode(x, y, enc);

	if (c != ED25519_POINT_OK)
		return c;
	fe_set(z, 1);
	fe_mul(t, x, y);
	for (int i = 0; i < 3; i++)
		point_double(x, y, z, t);
	if (fe_is_zero(x) && fe_equal(y, z))
		return ED25519_POINT_SMALL_ORDER;
	return ED25519_POINT_OK;
}

/*
 * Keys found good lately. The verdict is a function of the 32 bytes alone,
 * so remembering it is safe; it saves decoding the same anchor and
 * identity keys again (a SECAGG_SHARE checks the registrar's key and each
 * neighbour's twice). Only good keys are kept: a bad one is decoded again.
 */
#define GOOD_KEYS	32
static uint8_t good_keys[GOOD_KEYS][32];
static unsigned int good_count;
static unsigned int good_next;

TEE_Result ed25519_check_pub(const uint8_t pub[32])
{
	unsigned int i = 0;

	for (i = 0; i < good_count; i++)
		if (!memcmp(good_keys[i], pub, 32))
			return TEE_SUCCESS;
	if (ed25519_classify_point(pub) != ED25519_POINT_OK)
		return EDGE_ERR_WEAK_KEY;
	memcpy(good_keys[good_next], pub, 32);
	good_next = (good_next + 1) % GOOD_KEYS;
	if (good_count < GOOD_KEYS)
		good_count++;
	return TEE_SUCCESS;
}

TEE_Result ed25519_check_sig(const uint8_t sig[64])
{
	int i = 0;

	/* S < L, compared from the most significant byte down. */
	for (i = 31; i >= 0 && sig[32 + i] == group_order[i]; i--)
		;
	if (i < 0 || sig[32 + i] > group_order[i])
		return TEE_ERROR_SIGNATURE_INVALID;
	if (ed25519_classify_point(sig) != ED25519_POINT_OK)
		return TEE_ERROR_SIGNATURE_INVALID;
	return TEE_SUCCESS;
}
