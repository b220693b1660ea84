// SPDX-License-Identifier: BSD-2-Clause
/*
 * Every step is exact in double: the scale is a power of two, r / 2^32 is a
 * dyadic rational below 1, and |x * 2^k| < 2^31; so the one rounding of the
 * addition is IEEE's and C and numpy produce the same words (checked by
 * tests/c/ta_test_secagg.c against Python's vectors).
 */
#include "quantize.h"

static int64_t floor_i64(double v)
{
	int64_t t = (int64_t)v; /* truncates toward zero */

	return (double)t > v ? t - 1 : t;
}

TEE_Result quantize_words(const double *x, const uint32_t *r, size_t n,
			  double clip, uint32_t scale_log2, uint32_t *words)
{
	double scale = 0;

	if ((!x || !r || !words) && n)
		return TEE_ERROR_BAD_PARAMETERS;
	if (scale_log2 > QUANTIZE_MAX_SCALE_LOG2 || !(clip > 0) ||
	    clip * (double)(1u << scale_log2) >= 2147483647.0)
		return TEE_ERROR_BAD_PARAMETERS;
	for (size_t i = 0; i < n; i++)
		/* NaN fails both comparisons. */
		if (!(x[i] >= -clip && x[i] <= clip))
			return TEE_ERROR_BAD_PARAMETERS;
	scale = (double)(1u << scale_log2);
	for (size_t i = 0; i < n; i++)
		words[i] = (uint32_t)floor_i64(x[i] * scale +
					       (double)r[i] / 4294967296.0);
	return TEE_SUCCESS;
}
