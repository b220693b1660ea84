// SPDX-License-Identifier: BSD-2-Clause
/*
 * The TA's own elementary functions against the host libm, and the
 * statistics of its samplers (ta/dpmath.c, ta/gauss.c).
 *
 * Accuracy is measured in ulps of the libm result (glibc's log, exp and
 * sqrt are within 1 ulp, sqrt exact): log and exp must stay within 2 ulp
 * plus libm's own error, sqrt within 1 ulp.
 *
 * Statistical checks on 10^5 discrete Gaussian draws N_Z(0, 9/4) from the
 * TA's random source, each with a false failure probability below 10^-6:
 *   |mean| < 4.9 sigma / sqrt(N), |var - 9/4| < 4.9 (9/4) sqrt(2 / N),
 *   chi-square against the exact pmf on 13 bins < 52 (12 df: p = 6e-7);
 * and a chi-square test of rng_below(7) on 7 * 10^4 draws (6 degrees of
 * freedom, threshold 35: p < 4e-6).
 *
 * Usage: ta_test_dpmath [tests/vectors]   (the argument is not needed)
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <gp_sim.h>

#include "dpmath.h"
#include "dgauss.h"
#include "gauss.h"
#include "harness.h"

/* Test-only PRNG for choosing arguments (xorshift64*). */
static uint64_t xs = 0x9e3779b97f4a7c15ull;

static uint64_t next_u64(void)
{
	xs ^= xs >> 12;
	xs ^= xs << 25;
	xs ^= xs >> 27;
	return xs * 0x2545f4914f6cdd1dull;
}

static double unit(void)
{
	return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

/* Error of got in ulps of want (want finite, non-zero). */
static double ulps(double got, double want)
{
	double ulp = nextafter(fabs(want), INFINITY) - fabs(want);

	return fabs(got - want) / ulp;
}

struct worst {
	double ulps;
	double at;
};

static void track(struct worst *w, double got, double want, double x)
{
	double u = ulps(got, want);

	if (u > w->ulps || u != u) {
		w->ulps = u != u ? INFINITY : u;
		w->at = x;
	}
}

static void test_log(void)
{
	struct worst w = { 0, 0 };
	double x = 0;
	int i = 0;

	/* The sampler's domain (0, 1], densely. */
	for (i = 0; i < 1000000; i++) {
		x = 1.0 - unit();	/* (0, 1] */
		if (x == 1.0)
			continue;
		track(&w, edge_log(x), log(x), x);
	}
	/* Near 1 from both sides, where cancellation would show. */
	for (i = 1; i < 20000; i++) {
		x = 1.0 + i * 0x1p-40;
		track(&w, edge_log(x), log(x), x);
		x = 1.0 - i * 0x1p-41;
		track(&w, edge_log(x), log(x), x);
	}
	/* The whole range, log-uniformly, subnormals included. */
	for (i = 0; i < 200000; i++) {
		x = ldexp(1.0 + unit(), (int)(next_u64() % 2098) - 1074);
		if (x == 1.0 || x == 0)
			continue;
		track(&w, edge_log(x), log(x), x);
	}
	CHECK(w.ulps <= 2.0, "log: %.3f ulp at %a", w.ulps, w.at);
	printf("log: worst %.3f ulp\n", w.ulps);
	CHECK(edge_log(1.0) == 0.0, "log(1) = 0");
	CHECK(isinf(edge_log(0.0)) && edge_log(0.0) < 0, "log(0) = -inf");
	CHECK(isnan(edge_log(-1.0)), "log(-1) = NaN");
	CHECK(isinf(edge_log(INFINITY)), "log(inf) = inf");
	CHECK(isnan(edge_log(NAN)), "log(NaN) = NaN");
	CHECK(ulps(edge_log(0x1p-1074), log(0x1p-1074)) <= 2,
	      "log(smallest subnormal)");
	CHECK(ulps(edge_log(1.7976931348623157e308), log(1.7976931348623157e308)) <= 2,
	      "log(DBL_MAX)");
}

static void test_exp(void)
{
	struct worst w = { 0, 0 };
	double x = 0;
	double want = 0;
	int i = 0;

	/* Softmax arguments: z - max <= 0. */
	for (i = 0; i < 1000000; i++) {
		x = -60.0 * unit();
		track(&w, edge_exp(x), exp(x), x);
	}
	/* The normal-result range. */
	for (i = 0; i < 300000; i++) {
		x = -708.0 + 1417.0 * unit();
		track(&w, edge_exp(x), exp(x), x);
	}
	CHECK(w.ulps <= 2.0, "exp: %.3f ulp at %a", w.ulps, w.at);
	printf("exp: worst %.3f ulp\n", w.ulps);
	/* Subnormal results: absolute error within 2 of the smallest ulp. */
	for (i = 0; i < 10000; i++) {
		x = -745.0 + 37.0 * unit();
		want = exp(x);
		if (fabs(edge_exp(x) - want) > 2 * 0x1p-1074) {
			CHECK(false, "exp subnormal at %a", x);
			break;
		}
	}
	CHECK(edge_exp(0.0) == 1.0, "exp(0) = 1");
	CHECK(isinf(edge_exp(710.0)), "exp(710) = inf");
	CHECK(edge_exp(-746.0) == 0.0, "exp(-746) = 0");
	CHECK(isnan(edge_exp(NAN)), "exp(NaN) = NaN");
	CHECK(ulps(edge_exp(709.78), exp(709.78)) <= 2, "exp(709.78)");
}

static void test_sqrt(void)
{
	struct worst w = { 0, 0 };
	double x = 0;
	int i = 0;

	for (i = 0; i < 1000000; i++) {
		x = ldexp(1.0 + unit(), (int)(next_u64() % 2098) - 1074);
		if (x == 0)
			continue;
		track(&w, edge_sqrt(x), sqrt(x), x);
	}
	for (i = 0; i < 200000; i++) {
		x = 4.0 * unit();
		if (x == 0)
			continue;
		track(&w, edge_sqrt(x), sqrt(x), x);
	}
	CHECK(w.ulps <= 1.0, "sqrt: %.3f ulp at %a", w.ulps, w.at);
	printf("sqrt: worst %.3f ulp\n", w.ulps);
	CHECK(edge_sqrt(0.0) == 0.0 && edge_sqrt(4.0) == 2.0 &&
	      edge_sqrt(1.0) == 1.0, "sqrt exact squares");
	CHECK(isnan(edge_sqrt(-1.0)), "sqrt(-1) = NaN");
	CHECK(isinf(edge_sqrt(INFINITY)), "sqrt(inf) = inf");
}

/*
 * The discrete Gaussian fed by the TA's own random source (rng_word over
 * TEE_GenerateRandom): mean, variance and a chi-square against the exact
 * pmf of N_Z(0, 9/4) on 10^5 draws, each failing a correct sampler with
 * probability below 1e-6. Draw-for-draw agreement with Python is
 * ta_test_dgauss's job; this checks the wiring to the real source.
 */
static void test_dgauss(void)
{
	enum { N = 100000, K = 6 };
	static int64_t v[N];
	struct edge_rng rng;
	struct dgauss_source src = { .next = rng_word, .ctx = &rng };
	double mean = 0, var = 0, chi2 = 0, total = 0, w[2 * K + 1];
	long count[2 * K + 1] = { 0 };
	int i = 0, bad = 0;

	rng_init(&rng);
	for (i = 0; i < N; i++) {
		bad |= dgauss_sample(&src, 9, 4, &v[i]) != TEE_SUCCESS;
		mean += (double)v[i];
	}
	CHECK(!bad, "every draw succeeded");
	mean /= N;
	for (i = 0; i < N; i++)
		var += ((double)v[i] - mean) * ((double)v[i] - mean);
	var /= N - 1;
	/* Bins -K..K, the tails folded into the outermost ones. */
	for (i = -40; i <= 40; i++)
		total += exp(-(double)(i * i) / 4.5);
	for (i = 0; i <= 2 * K; i++)
		w[i] = 0;
	for (i = -40; i <= 40; i++) {
		int b = i < -K ? 0 : i > K ? 2 * K : i + K;

		w[b] += exp(-(double)(i * i) / 4.5) / total;
	}
	for (i = 0; i < N; i++)
		count[v[i] < -K ? 0 : v[i] > K ? 2 * K : v[i] + K]++;
	for (i = 0; i <= 2 * K; i++)
		chi2 += ((double)count[i] - N * w[i]) * ((double)count[i] - N * w[i]) /
			(N * w[i]);
	printf("dgauss(9/4): mean %.5f, variance %.5f, chi2 %.2f (12 df)\n",
	       mean, var, chi2);
	/* The exact variance of N_Z(0, 9/4) is 2.25 to 8 digits. */
	CHECK(fabs(mean) < 4.9 * 1.5 / sqrt((double)N), "dgauss mean %g", mean);
	CHECK(fabs(var - 2.25) < 4.9 * 2.25 * sqrt(2.0 / N), "dgauss variance %g", var);
	/* chi-square, 12 degrees of freedom: P(> 52) = 6e-7. */
	CHECK(chi2 < 52.0, "dgauss chi-square %g", chi2);
	rng_wipe(&rng);
	CHECK(rng.pos == EDGE_RNG_BLOCK, "rng wiped");
}

static void test_uniform(void)
{
	enum { K = 7, PER = 10000 };
	struct edge_rng rng;
	unsigned int count[K] = { 0 };
	double chi2 = 0;
	double u = 0;
	double lo = 1;
	double hi = 0;
	bool in_range = true;
	int i = 0;

	rng_init(&rng);
	for (i = 0; i < K * PER; i++) {
		uint32_t r = rng_below(&rng, K);

		if (r >= K) {
			in_range = false;
			break;
		}
		count[r]++;
	}
	CHECK(in_range, "rng_below in range");
	for (i = 0; i < K; i++)
		chi2 += (count[i] - (double)PER) * (count[i] - (double)PER) /
			PER;
	CHECK(chi2 < 35.0, "rng_below(7) chi-square %g", chi2);
	for (i = 0; i < 1000; i++)
		in_range &= rng_below(&rng, 1) == 0;
	CHECK(in_range, "rng_below(1) = 0");
	for (i = 0; i < 100000; i++) {
		u = rng_uniform(&rng);
		lo = fmin(lo, u);
		hi = fmax(hi, u);
	}
	CHECK(lo >= 0 && hi < 1 && lo < 0.001 && hi > 0.999,
	      "uniform range [%g, %g]", lo, hi);
	rng_wipe(&rng);
}

int main(int argc, char **argv)
{

	(void)argc;
	(void)argv;
	if (edge_sim_gp_init(harness_tmpdir("ta_test_dpmath")))
		harness_die("edge_sim_gp_init");
	test_log();
	test_exp();
	test_sqrt();
	test_dgauss();
	test_uniform();
	return harness_summary();
}
