/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The exact discrete Gaussian N_Z(0, sigma^2) on the integers, sigma^2 a
 * rational sn / sd, by Canonne, Kamath and Steinke, "The Discrete Gaussian
 * for Differential Privacy" (NeurIPS 2020), Algorithms 1-3: Bernoulli(exp(-g))
 * by the alternating-series trick, the discrete Laplace by rejection, the
 * discrete Gaussian by rejection from the discrete Laplace of scale
 * t = floor(sigma) + 1. Only integer arithmetic: no float ever touches the
 * noise, so the float attacks on DP noise (Mironov, CCS 2012; Jin et al.,
 * IEEE S&P 2022) have nothing to exploit.
 *
 * Every loop is bounded; a sample whose loop would run past its bound fails
 * with TEE_ERROR_GENERIC instead of returning a distorted value (the caller
 * then releases nothing). Per sample the failure probability is below 2^-120
 * (docs/privacy.md "Discrete Gaussian sampler"); expected cost is a few dozen
 * 64-bit random words.
 *
 * edge/discrete_gaussian.py is the twin: from the same stream of random
 * words both return the same integers (tests/c/ta_test_dgauss.c checks it
 * against tests/vectors/dgauss.tsv).
 */
#ifndef EDGE_TA_DGAUSS_H
#define EDGE_TA_DGAUSS_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

#ifndef __SIZEOF_INT128__
#error "the discrete Gaussian needs unsigned __int128 (a 64-bit TA, ta_arm64)"
#endif

/* sigma^2 = sn / sd: 1 <= sd <= 2^8, 1 <= sn <= sd * 2^40 (sigma <= 2^20). */
#define DGAUSS_MAX_SD		256u
#define DGAUSS_MAX_SIGMA2_LOG2	40

/* Where the random words come from: the TEE's CSPRNG, or a test stream. */
struct dgauss_source {
	uint64_t (*next)(void *ctx);
	void *ctx;
};

/*
 * One draw from N_Z(0, sn / sd) into *out. TEE_ERROR_BAD_PARAMETERS for
 * parameters out of range (nothing drawn), TEE_ERROR_GENERIC if a loop bound
 * was hit (probability < 2^-120).
 */
TEE_Result dgauss_sample(const struct dgauss_source *src, uint64_t sn,
			 uint64_t sd, int64_t *out);

/* The rational noise variances here have this denominator. */
#define DGAUSS_SD		256u
/* sqrt(2 ln(1/beta)) for beta = 2^-10, rounded up (KLS21's bound below). */
#define DGAUSS_KLS_FACTOR	3.7232

/*
 * sn with sn / DGAUSS_SD >= sigma^2 * norm2, the least such (rounded up);
 * sigma > 0 a float32 value held in a double. TEE_ERROR_BAD_PARAMETERS if
 * sigma is not such a value or the variance is above the sampler's range.
 */
TEE_Result dgauss_variance(double sigma, uint64_t norm2, uint64_t *sn);

/*
 * Kairouz, Liu, Steinke (ICML 2021): a vector of L2 norm <= r in d
 * coordinates, randomly rounded to integers, has squared norm <= the result
 * except with probability beta = 2^-10:
 * ceil(min(r^2 + d/4 + sqrt(2 ln 1/beta) (r + sqrt(d)/2), (r + sqrt(d))^2)).
 * edge/discrete_noise.py's norm2_bound is the twin.
 */
uint64_t dgauss_norm2_bound(double r, size_t d);

/* floor(sqrt(v)), exactly. */
uint64_t dgauss_isqrt(uint64_t v);

#endif
