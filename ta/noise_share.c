// SPDX-License-Identifier: BSD-2-Clause
/*
 * The noise share of a masked update (see noise_share.h).
 */
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "dgauss.h"
#include "dpmath.h"
#include "gauss.h"
#include "noise_share.h"
#include "quantize.h"

#define ROUND_TRIES	16	/* each redraw has probability <= 2^-10 */

static void free_wiped(void *p, size_t len)
{
	if (p) {
		TEE_MemFill(p, 0, len);
		TEE_Free(p);
	}
}

/* Is the worst cohort sum, plus the noise tail, inside a signed word? */
static bool fits(double r, uint32_t cohort, uint64_t sn)
{
	double per = (double)(int64_t)r + 1.0;	/* |word| <= floor(r) + 1 */
	double tail = NOISE_SHARE_TAIL_SIGMAS *
		      edge_sqrt((double)cohort * (double)sn / DGAUSS_SD);

	return (double)cohort * per + tail <= 2147483647.0;
}

static TEE_Result round_within(const double *x, size_t n, double clip,
			       uint32_t scale_log2, uint64_t norm2_max,
			       uint32_t *rnd, uint32_t *words)
{
	TEE_Result res = TEE_SUCCESS;
	uint64_t norm2 = 0;
	int64_t v = 0;

	for (int tries = 0; tries < ROUND_TRIES; tries++) {
		TEE_GenerateRandom(rnd, n * 4);
		res = quantize_words(x, rnd, n, clip, scale_log2, words);
		if (res)
			return res;
		norm2 = 0;
		for (size_t i = 0; i < n; i++) {
			v = (int32_t)words[i];
			norm2 += (uint64_t)(v * v);
		}
		if (norm2 <= norm2_max)
			return TEE_SUCCESS;
	}
	return TEE_ERROR_GENERIC;
}

TEE_Result noise_share_words(const double *x, size_t n, double clip,
			     uint32_t scale_log2, uint32_t cohort, float z,
			     uint32_t *words)
{
	struct edge_rng *rng = NULL;
	struct dgauss_source src = { .next = rng_word };
	uint32_t *rnd = NULL;
	uint32_t *out = NULL;
	uint64_t norm2_max = 0;
	uint64_t sn = 0;
	int64_t e = 0;
	double r = 0;
	TEE_Result res = TEE_ERROR_OUT_OF_MEMORY;

	if (!(z >= 0) || !flt_finite(z) || scale_log2 > QUANTIZE_MAX_SCALE_LOG2 ||
	    cohort < 1 || !(clip > 0))
		return TEE_ERROR_BAD_PARAMETERS;
	rnd = TEE_Malloc(n * 4 + 4, 0);
	out = TEE_Malloc(n * 4 + 4, 0);
	if (!rnd || !out)
		goto done;
	if (!(z > 0)) {
		TEE_GenerateRandom(rnd, n * 4);
		res = quantize_words(x, rnd, n, clip, scale_log2, out);
		goto done;
	}
	r = clip * (double)(1u << scale_log2);
	norm2_max = dgauss_norm2_bound(r, n);
	if (dgauss_variance((double)z, norm2_max, &sn) ||
	    !fits(r, cohort, sn)) {
		res = EDGE_ERR_NOISE_SHARE_UNFIT;
		goto done;
	}
	res = round_within(x, n, clip, scale_log2, norm2_max, rnd, out);
	if (res)
		goto done;
	rng = TEE_Malloc(sizeof(*rng), TEE_MALLOC_FILL_ZERO);
	if (!rng) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto done;
	}
	rng_init(rng);
	src.ctx = rng;
	for (size_t i = 0; i < n && !res; i++) {
		res = dgauss_sample(&src, sn, DGAUSS_SD, &e);
		/* Two's complement: the share adds mod 2^32, as the masks do. */
		out[i] += (uint32_t)e;
	}
	rng_wipe(rng);
done:
	if (!res)
		TEE_MemMove(words, out, n * 4);
	free_wiped(rng, rng ? sizeof(*rng) : 0);
	free_wiped(rnd, n * 4 + 4);
	free_wiped(out, n * 4 + 4);
	return res;
}
