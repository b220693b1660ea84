// SPDX-License-Identifier: BSD-2-Clause
/*
 * The TA's exact discrete Gaussian (ta/dgauss.c) against
 * tests/vectors/dgauss.tsv, which edge/discrete_gaussian.py wrote from the
 * same SplitMix64 word streams: the same integers, draw for draw. Then the
 * refusals, a stream that runs out of luck (all-ones words make every
 * uniform draw reject) and the integer square root.
 *
 * Usage: ta_test_dgauss <tests/vectors>
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>

#include "dgauss.h"
#include "harness.h"
#include "noise_share.h"
#include <edge_ta.h>

#define MAX_LINE	(1 << 16)

static uint64_t splitmix64(void *ctx)
{
	uint64_t *state = ctx;
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t all_ones(void *ctx)
{
	(void)ctx;
	return UINT64_MAX;
}

static void check_row(char **f, int row)
{
	uint64_t sn = strtoull(f[1], NULL, 10);
	uint64_t sd = strtoull(f[2], NULL, 10);
	uint64_t state = strtoull(f[3], NULL, 10);
	struct dgauss_source src = { .next = splitmix64, .ctx = &state };
	char *p = f[4];
	int count = 0;

	while (*p) {
		char *end = NULL;
		long long want = strtoll(p, &end, 10);
		int64_t got = 0;

		CHECK_RES(dgauss_sample(&src, sn, sd, &got), TEE_SUCCESS,
			  "row %d draw %d", row, count);
		if (got != want) {
			CHECK(false, "row %d (sigma^2 = %" PRIu64 "/%" PRIu64
			      ") draw %d: %" PRId64 ", want %lld", row, sn, sd,
			      count, got, want);
			return;
		}
		count++;
		p = *end == ',' ? end + 1 : end;
	}
	CHECK(count >= 50, "row %d: %d draws", row, count);
}

/* The distributed-DP share on secagg words (ta/noise_share.c). */
static void check_noise_share(void)
{
	enum { N = 4096 };
	static double x[N];
	static uint32_t w[N];
	double sum = 0, sum2 = 0, var = 0;
	uint64_t norm2 = 0, sn = 0;
	size_t i = 0;

	for (i = 0; i < N; i++)
		x[i] = (i % 2 ? 1.0 : -1.0) / 128.0;	/* norm 0.5 */
	/* U = 1, s = 8: r = 256; z = 2 gives sigma^2 = 4 norm2_max. */
	CHECK_RES(noise_share_words(x, N, 1.0, 8, 5, 2.0f, w), TEE_SUCCESS, "share");
	norm2 = dgauss_norm2_bound(256.0, N);
	CHECK_RES(dgauss_variance(2.0, norm2, &sn), TEE_SUCCESS, "variance");
	for (i = 0; i < N; i++) {
		double e = (double)(int32_t)w[i] - x[i] * 256.0;

		sum += e;
		sum2 += e * e;
	}
	var = sum2 / N - (sum / N) * (sum / N);
	/* Noise variance sn/256 plus rounding (< 1/4): 5 standard errors. */
	CHECK(fabs(var / ((double)sn / DGAUSS_SD) - 1.0) < 5.0 * sqrt(2.0 / N),
	      "share variance %g, want %g", var, (double)sn / DGAUSS_SD);
	/* z = 0: plain stochastic rounding, within one unit. */
	CHECK_RES(noise_share_words(x, N, 1.0, 8, 5, 0.0f, w), TEE_SUCCESS, "no share");
	for (i = 0; i < N; i++)
		if (fabs((double)(int32_t)w[i] - x[i] * 256.0) >= 1.0) {
			CHECK(false, "word %zu off by a unit or more", i);
			break;
		}
	/* 1000 devices at the finest scale leave no 32-bit headroom for noise. */
	memset(w, 0xAA, sizeof(w));
	CHECK_RES(noise_share_words(x, N, 1.0, 21, 1000, 0.5f, w),
		  EDGE_ERR_NOISE_SHARE_UNFIT, "no headroom");
	/* A share above the sampler's range. */
	CHECK_RES(noise_share_words(x, N, 1.0, 8, 5, 1e6f, w),
		  EDGE_ERR_NOISE_SHARE_UNFIT, "out of range");
	CHECK(w[0] == 0xAAAAAAAAu, "nothing written on a refusal");
	CHECK_RES(noise_share_words(x, N, 1.0, 8, 5, -1.0f, w),
		  TEE_ERROR_BAD_PARAMETERS, "negative share");
}

int main(int argc, char **argv)
{
	static char line[MAX_LINE];
	char path[4096];
	uint64_t state = 1;
	struct dgauss_source src = { .next = splitmix64, .ctx = &state };
	struct dgauss_source dry = { .next = all_ones, .ctx = NULL };
	int64_t out = 77;
	int rows = 0, n = 0;
	FILE *fp = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <tests/vectors>\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/dgauss.tsv", argv[1]);
	fp = fopen(path, "r");
	if (!fp)
		harness_die("cannot read dgauss.tsv");
	while (fgets(line, sizeof(line), fp)) {
		char *f[5] = { NULL };
		int nf = 0;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		for (char *tok = strtok(line, "\t\n"); tok && nf < 5;
		     tok = strtok(NULL, "\t\n"))
			f[nf++] = tok;
		n++;
		if (nf == 5 && !strcmp(f[0], "dgauss")) {
			rows++;
			check_row(f, n);
		} else {
			CHECK(false, "row %d: unknown or short (%d fields)", n, nf);
		}
	}
	fclose(fp);
	CHECK(rows >= 8, "%d dgauss rows", rows);

	/* Out of range: refused before any word is drawn. */
	CHECK_RES(dgauss_sample(&src, 0, 1, &out), TEE_ERROR_BAD_PARAMETERS, "sigma 0");
	CHECK_RES(dgauss_sample(&src, 1, 0, &out), TEE_ERROR_BAD_PARAMETERS, "sd 0");
	CHECK_RES(dgauss_sample(&src, 1, DGAUSS_MAX_SD + 1, &out),
		  TEE_ERROR_BAD_PARAMETERS, "sd above 2^8");
	CHECK_RES(dgauss_sample(&src, ((uint64_t)1 << DGAUSS_MAX_SIGMA2_LOG2) + 1, 1,
				&out),
		  TEE_ERROR_BAD_PARAMETERS, "sigma^2 above 2^40");
	CHECK_RES(dgauss_sample(NULL, 1, 1, &out), TEE_ERROR_BAD_PARAMETERS, "no source");
	CHECK(out == 77, "nothing written on a refusal");
	/* A source that makes every draw reject hits a bound: an error, no value. */
	CHECK_RES(dgauss_sample(&dry, 9, 4, &out), TEE_ERROR_GENERIC, "bounded loops");
	CHECK(out == 77, "nothing written on a failure");

	for (uint64_t v = 0; v < 100000; v++) {
		uint64_t r = dgauss_isqrt(v);

		if (r * r > v || (r + 1) * (r + 1) <= v) {
			CHECK(false, "isqrt(%" PRIu64 ") = %" PRIu64, v, r);
			break;
		}
	}
	CHECK_EQ(dgauss_isqrt(UINT64_MAX), 0xFFFFFFFFull, "isqrt(2^64 - 1)");
	CHECK_EQ(dgauss_isqrt((uint64_t)1 << 62), (uint64_t)1 << 31, "isqrt(2^62)");
	check_noise_share();
	return harness_summary();
}
