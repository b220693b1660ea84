// SPDX-License-Identifier: BSD-2-Clause
/*
 * log, exp and sqrt in double precision without libm (see dpmath.h for the
 * accuracy). Written from the textbook reductions; no third-party code.
 */
#include "dpmath.h"

/* ln 2 split so that k * LN2_HI is exact for |k| < 2^11. */
#define LN2_HI	6.93147180369123816490e-01	/* 0x3fe62e42fee00000 */
#define LN2_LO	1.90821492927058770002e-10
#define INV_LN2	1.44269504088896338700e+00
#define SQRT_HALF 0.70710678118654752440

#define EXP_MASK	0x7ff0000000000000ull
#define FRAC_MASK	0x000fffffffffffffull

/* NaN: all-ones exponent and a non-zero fraction. */
static bool is_nan(uint64_t u)
{
	return (u & EXP_MASK) == EXP_MASK && (u & FRAC_MASK);
}

/* 2^k for -1022 <= k <= 1023, built from the exponent field. */
static double pow2i(int k)
{
	return dbl_from_bits((uint64_t)(k + 1023) << 52);
}

double edge_log(double x)
{
	uint64_t u = dbl_bits(x);
	int k = 0;
	double m = 0;
	double f = 0;
	double s = 0;
	double z = 0;
	double poly = 0;

	if (is_nan(u))
		return x;
	if (!(x > 0)) {
		if (x < 0)
			return dbl_from_bits(0x7ff8000000000000ull);
		return -dbl_from_bits(0x7ff0000000000000ull);	/* log 0 */
	}
	if ((u & EXP_MASK) == EXP_MASK)
		return x;	/* +inf */
	if (!(u & EXP_MASK)) {
		/* Subnormal: scale into the normal range first. */
		x *= 18014398509481984.0;	/* 2^54 */
		u = dbl_bits(x);
		k = -54;
	}
	/* x = m * 2^k with m in [1, 2), then moved to [sqrt(1/2), sqrt(2)). */
	k += (int)((u >> 52) & 0x7ff) - 1023;
	m = dbl_from_bits((u & FRAC_MASK) | 0x3ff0000000000000ull);
	if (m > 2 * SQRT_HALF) {
		m *= 0.5;
		k++;
	}
	/*
	 * log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716: the odd
	 * series 2 (s + s^3/3 + ... + s^23/23) truncates below 2^-60.
	 */
	f = m - 1.0;
	s = f / (2.0 + f);
	z = s * s;
	poly = 1.0 / 23;
	poly = poly * z + 1.0 / 21;
	poly = poly * z + 1.0 / 19;
	poly = poly * z + 1.0 / 17;
	poly = poly * z + 1.0 / 15;
	poly = poly * z + 1.0 / 13;
	poly = poly * z + 1.0 / 11;
	poly = poly * z + 1.0 / 9;
	poly = poly * z + 1.0 / 7;
	poly = poly * z + 1.0 / 5;
	poly = poly * z + 1.0 / 3;
	/*
	 * 2s = f - f*s exactly in real arithmetic; writing it that way keeps
	 * the leading term exact (f is exact by Sterbenz) and the rounding of
	 * s only in a small correction.
	 */
	return (double)k * LN2_HI +
	       (f - (f * s - 2.0 * s * z * poly - (double)k * LN2_LO));
}

double edge_exp(double x)
{
	double kd = 0;
	double r = 0;
	double p = 0;
	int k = 0;

	if (is_nan(dbl_bits(x)))
		return x;
	if (x > 709.782712893383973096)
		return dbl_from_bits(0x7ff0000000000000ull);
	if (x < -745.1332191019412076235)
		return 0.0;
	/* x = k ln2 + r, |r| <= ln2 / 2 + tiny. */
	kd = x * INV_LN2;
	kd = kd < 0 ? kd - 0.5 : kd + 0.5;
	k = (int)kd;	/* truncation after the half offset: round to nearest */
	r = (x - (double)k * LN2_HI) - (double)k * LN2_LO;
	/* Taylor to r^13 / 13!: remainder below 2^-60 for |r| <= 0.35. */
	p = 1.0 / 6227020800.0;
	p = p * r + 1.0 / 479001600.0;
	p = p * r + 1.0 / 39916800.0;
	p = p * r + 1.0 / 3628800.0;
	p = p * r + 1.0 / 362880.0;
	p = p * r + 1.0 / 40320.0;
	p = p * r + 1.0 / 5040.0;
	p = p * r + 1.0 / 720.0;
	p = p * r + 1.0 / 120.0;
	p = p * r + 1.0 / 24.0;
	p = p * r + 1.0 / 6.0;
	p = p * r + 0.5;
	p = 1.0 + (r + r * r * p);
	/* Scale by 2^k in two steps so neither factor leaves the range. */
	if (k > 1023)
		return p * pow2i(1023) * pow2i(k - 1023);
	if (k < -1021)
		return p * pow2i(k + 1000) * pow2i(-1000);
	return p * pow2i(k);
}

double edge_sqrt(double x)
{
	uint64_t u = dbl_bits(x);
	int e = 0;
	int half = 0;
	double m = 0;
	double y = 0;
	int i = 0;

	if (is_nan(u))
		return x;
	if (x < 0)
		return dbl_from_bits(0x7ff8000000000000ull);
	if (!(x > 0))
		return x;	/* +0 and -0 */
	if ((u & EXP_MASK) == EXP_MASK)
		return x;	/* +inf */
	if (!(u & EXP_MASK)) {
		x *= 18014398509481984.0;	/* 2^54 */
		u = dbl_bits(x);
		e = -54;
	}
	/* x = m * 2^e with m in [1, 4) and e even. */
	e += (int)((u >> 52) & 0x7ff) - 1023;
	m = dbl_from_bits((u & FRAC_MASK) | 0x3ff0000000000000ull);
	if (e & 1) {
		m *= 2.0;
		e--;
	}
	half = e / 2;
	/* Linear seed on [1, 4), within 17 %; Newton doubles the digits. */
	y = 0.5 + m / 3.0;
	for (i = 0; i < 6; i++)
		y = 0.5 * (y + m / y);
	/* One step of correction rounds to within 1 ulp. */
	y = y + (m - y * y) / (2.0 * y);
	/* -538 <= half <= 511: one exact scaling. */
	return y * pow2i(half);
}
