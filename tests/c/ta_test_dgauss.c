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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>

#include "dgauss.h"
#include "harness.h"

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
	return harness_summary();
}
