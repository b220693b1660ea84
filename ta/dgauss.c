// SPDX-License-Identifier: BSD-2-Clause
/*
 * Exact discrete Gaussian sampling (see dgauss.h). Sizes: with the bounds of
 * dgauss.h, t <= 2^20 + 1, |Y| < 128 t, so a = |Y| sd t - sn stays below
 * 2^56 in magnitude, a^2 below 2^112 and the denominator 2 sn sd t^2 below
 * 2^98: everything fits in unsigned __int128.
 */
#include "dgauss.h"
#include "dpmath.h"

typedef unsigned __int128 u128;

/* Loop bounds and what hitting each costs (probability per call). */
#define UNIFORM_TRIES	128	/* each try succeeds with p > 1/2: < 2^-128 */
#define SERIES_TERMS	64	/* reaching term k: < 1/(k-1)! < 2^-290 */
#define EXP1_ROUNDS	128	/* 128 Bernoulli(1/e) successes: e^-128 */
#define LAPLACE_TRIES	256	/* accept >= 0.3 per try: < 2^-130 */
#define GAUSS_TRIES	256	/* accept >= 0.5 per try (test): < 2^-250 */

static int bitlen128(u128 v)
{
	int n = 0;

	while (v) {
		n++;
		v >>= 1;
	}
	return n;
}

/* Uniform on {0, ..., n - 1}, n >= 1: masked words, rejection. */
static TEE_Result uniform_below(const struct dgauss_source *s, u128 n,
				u128 *out)
{
	int bits = bitlen128(n - 1);
	u128 v = 0;

	if (n == 1) {
		*out = 0;
		return TEE_SUCCESS;
	}
	for (int i = 0; i < UNIFORM_TRIES; i++) {
		v = s->next(s->ctx);
		if (bits > 64)
			v |= (u128)s->next(s->ctx) << 64;
		if (bits < 128)
			v &= ((u128)1 << bits) - 1;
		if (v < n) {
			*out = v;
			return TEE_SUCCESS;
		}
	}
	return TEE_ERROR_GENERIC;
}

/* Bernoulli(num / den), 0 <= num <= den, den >= 1. */
static TEE_Result bernoulli(const struct dgauss_source *s, u128 num, u128 den,
			    int *out)
{
	u128 v = 0;
	TEE_Result res = uniform_below(s, den, &v);

	*out = v < num;
	return res;
}

/*
 * Bernoulli(exp(-num / den)) for num <= den (Algorithm 1, gamma <= 1):
 * draw A_k ~ Bernoulli(gamma / k) for k = 1, 2, ... until one is 0; the
 * answer is whether that k is odd. Bernoulli(gamma / k) is drawn as
 * Bernoulli(gamma) and Bernoulli(1 / k), so den * k never overflows.
 */
static TEE_Result bernoulli_exp_le1(const struct dgauss_source *s, u128 num,
				    u128 den, int *out)
{
	TEE_Result res = TEE_SUCCESS;
	int a = 0;

	for (uint64_t k = 1; k <= SERIES_TERMS; k++) {
		res = bernoulli(s, num, den, &a);
		if (!res && a)
			res = bernoulli(s, 1, k, &a);
		if (res)
			return res;
		if (!a) {
			*out = (int)(k & 1);
			return TEE_SUCCESS;
		}
	}
	return TEE_ERROR_GENERIC;
}

/* Bernoulli(exp(-num / den)) for any num >= 0: exp(-1) floor(g) times. */
static TEE_Result bernoulli_exp(const struct dgauss_source *s, u128 num,
				u128 den, int *out)
{
	TEE_Result res = TEE_SUCCESS;
	u128 i = 0;
	int b = 0;

	while ((i + 1) * den <= num) {
		if (i == EXP1_ROUNDS)
			return TEE_ERROR_GENERIC;
		res = bernoulli_exp_le1(s, 1, 1, &b);
		if (res)
			return res;
		if (!b) {
			*out = 0;
			return TEE_SUCCESS;
		}
		i++;
	}
	return bernoulli_exp_le1(s, num - i * den, den, out);
}

/* Discrete Laplace of scale t >= 1: P(x) proportional to exp(-|x| / t). */
static TEE_Result discrete_laplace(const struct dgauss_source *s, uint64_t t,
				   int64_t *out)
{
	TEE_Result res = TEE_SUCCESS;
	u128 u = 0;
	uint64_t v = 0;
	uint64_t x = 0;
	int b = 0;

	for (int tries = 0; tries < LAPLACE_TRIES; tries++) {
		res = uniform_below(s, t, &u);
		if (!res)
			res = bernoulli_exp(s, u, t, &b);
		if (res)
			return res;
		if (!b)
			continue;
		for (v = 0;; v++) {
			if (v == EXP1_ROUNDS)
				return TEE_ERROR_GENERIC;
			res = bernoulli_exp(s, 1, 1, &b);
			if (res)
				return res;
			if (!b)
				break;
		}
		x = (uint64_t)u + t * v;
		res = bernoulli(s, 1, 2, &b);
		if (res)
			return res;
		if (b && !x)
			continue;
		*out = b ? -(int64_t)x : (int64_t)x;
		return TEE_SUCCESS;
	}
	return TEE_ERROR_GENERIC;
}

uint64_t dgauss_isqrt(uint64_t v)
{
	uint64_t r = 0;
	uint64_t bit = (uint64_t)1 << 62;

	while (bit > v)
		bit >>= 2;
	while (bit) {
		if (v >= r + bit) {
			v -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
		bit >>= 2;
	}
	return r;
}

TEE_Result dgauss_sample(const struct dgauss_source *src, uint64_t sn,
			 uint64_t sd, int64_t *out)
{
	TEE_Result res = TEE_SUCCESS;
	uint64_t t = 0;
	int64_t y = 0;
	u128 ay = 0;
	u128 a = 0;
	u128 den = 0;
	int c = 0;

	if (!src || !src->next || !out || sd < 1 || sd > DGAUSS_MAX_SD ||
	    sn < 1 || sn > (sd << DGAUSS_MAX_SIGMA2_LOG2))
		return TEE_ERROR_BAD_PARAMETERS;
	/* floor(sqrt(sn / sd)) = isqrt(floor(sn / sd)). */
	t = dgauss_isqrt(sn / sd) + 1;
	den = (u128)2 * sn * sd * t * t;
	for (int tries = 0; tries < GAUSS_TRIES; tries++) {
		res = discrete_laplace(src, t, &y);
		if (res)
			return res;
		/* gamma = (|y| - sigma^2 / t)^2 / (2 sigma^2) = a^2 / den. */
		ay = (u128)(y < 0 ? -(uint64_t)y : (uint64_t)y) * sd * t;
		a = ay >= sn ? ay - sn : sn - ay;
		res = bernoulli_exp(src, a * a, den, &c);
		if (res)
			return res;
		if (c) {
			*out = y;
			return TEE_SUCCESS;
		}
	}
	return TEE_ERROR_GENERIC;
}

/* sigma = m 2^e exactly, m < 2^24 once its trailing zeros are gone. */
TEE_Result dgauss_variance(double sigma, uint64_t norm2, uint64_t *sn)
{
	uint64_t b = dbl_bits(sigma);
	uint64_t m = b & ((1ull << 52) - 1);
	int e = (int)((b >> 52) & 0x7ff);
	unsigned __int128 v = 0;
	int sh = 0;

	if (!(sigma > 0) || !dbl_finite(sigma))
		return TEE_ERROR_BAD_PARAMETERS;
	if (e) {
		m |= 1ull << 52;
		e -= 1075;
	} else {
		e = -1074;
	}
	while (!(m & 1)) {
		m >>= 1;
		e++;
	}
	if (m >= 1ull << 24)
		return TEE_ERROR_BAD_PARAMETERS;
	v = (unsigned __int128)m * m * norm2;	/* < 2^82 */
	sh = 2 * e + 8;				/* DGAUSS_SD = 2^8 */
	if (sh >= 0) {
		if (bitlen128(v) + sh > 8 + DGAUSS_MAX_SIGMA2_LOG2)
			return TEE_ERROR_BAD_PARAMETERS;
		v <<= sh;
	} else if (-sh >= 127) {
		v = 1;
	} else {
		v = (v + ((unsigned __int128)1 << -sh) - 1) >> -sh;
	}
	if (v > (unsigned __int128)DGAUSS_SD << DGAUSS_MAX_SIGMA2_LOG2)
		return TEE_ERROR_BAD_PARAMETERS;
	*sn = (uint64_t)v;
	return TEE_SUCCESS;
}


uint64_t dgauss_norm2_bound(double r, size_t d)
{
	double sd = edge_sqrt((double)d);
	double bound = r * r + (double)d / 4 + DGAUSS_KLS_FACTOR * (r + sd / 2);
	double cap = (r + sd) * (r + sd);

	if (cap < bound)
		bound = cap;
	/* Below 2^53 for r <= 2^20, d <= 2^17: exact, and + 1 rounds up. */
	return (uint64_t)bound + 1;
}
