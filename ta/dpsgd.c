// SPDX-License-Identifier: BSD-2-Clause
/*
 * DP-SGD on the linear head (see dpsgd.h).
 */
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "bytes.h"
#include "dgauss.h"
#include "dpmath.h"
#include "dpsgd.h"

/*
 * The noisy path (sigma > 0) is discretize-then-add-discrete-noise (Kairouz,
 * Liu and Steinke, "The Distributed Discrete Gaussian Mechanism", ICML 2021,
 * conditional randomized rounding; docs/privacy.md "DP-SGD in the TA"):
 * each clipped per-example gradient, L2 norm <= C, is scaled by R / C
 * (R = 2^res_log2) and randomly rounded coordinate by coordinate, again until
 * its integer squared norm is <= norm2_max; the integer sum of a step gets
 * integer noise from N_Z(0, sn / DGAUSS_SD) with sn / DGAUSS_SD >=
 * sigma^2 norm2_max, so the effective noise multiplier on the rounded
 * sensitivity sqrt(norm2_max) is at least the ticket's sigma; then the noisy
 * integer sum is scaled back by C / R. norm2_max is KLS21's bound with
 * beta = 2^-10: min(R^2 + d/4 + sqrt(2 ln(1/beta)) (R + sqrt(d)/2),
 * (R + sqrt(d))^2); a rounding above it is drawn again (probability <= beta
 * each time).
 */
#define RES_LOG2_MAX	16
#define ROUND_TRIES	16	/* fails with probability <= 2^-160 */

struct work {
	const struct dpsgd_cfg *cfg;
	const uint8_t *features;
	const uint32_t *labels;
	float *theta;			/* P */
	double *sum;			/* P: clipped-gradient sum of a step */
	uint8_t *row_raw;		/* I * 4: the copied row */
	float *x;			/* I */
	double *z;			/* O: logits, then e = p - onehot */
	uint32_t *idx;			/* n: permutation for fixed-size */
	/* The noisy path only (sigma > 0): */
	int64_t *isum;			/* P: rounded clipped-gradient sum */
	int32_t *ex;			/* P: one rounded example */
	double to_grid;			/* R / C */
	uint64_t norm2_max;		/* bound on ||rounded example||^2 */
	uint64_t sn;			/* noise variance sn / DGAUSS_SD */
	struct edge_rng *rng;
};

static void *alloc_zero(size_t count, size_t size)
{
	/* count and size come from bounded dimensions: no overflow. */
	return TEE_Malloc(count * size, TEE_MALLOC_FILL_ZERO);
}

static void free_wiped(void *p, size_t len)
{
	if (p) {
		TEE_MemFill(p, 0, len);
		TEE_Free(p);
	}
}

static int64_t round_random(double v, struct edge_rng *rng)
{
	/* floor(v + u), u uniform on [0, 1): v rounded up with probability
	 * equal to its fractional part. |v| <= R + 1 < 2^17. */
	double f = v + rng_uniform(rng);
	int64_t t = (int64_t)f;

	return (double)t > f ? t - 1 : t;
}

/*
 * Adds the clipped gradient (x e^T, e), e = w->z, of one example to w->isum
 * on the grid, conditionally randomly rounded: drawn again until its squared
 * norm, in exact integers, is within norm2_max.
 */
static TEE_Result add_rounded(struct work *w)
{
	const size_t in = w->cfg->in;
	const size_t out = w->cfg->out;
	const size_t params = in * out + out;
	uint64_t norm2 = 0;
	int64_t r = 0;
	size_t p = 0;

	for (int tries = 0; tries < ROUND_TRIES; tries++) {
		norm2 = 0;
		for (size_t i = 0; i < in; i++) {
			double xi = (double)w->x[i] * w->to_grid;

			for (size_t j = 0; j < out; j++) {
				r = round_random(xi * w->z[j], w->rng);
				w->ex[i * out + j] = (int32_t)r;
				norm2 += (uint64_t)(r * r);
			}
		}
		for (size_t j = 0; j < out; j++) {
			r = round_random(w->z[j] * w->to_grid, w->rng);
			w->ex[in * out + j] = (int32_t)r;
			norm2 += (uint64_t)(r * r);
		}
		if (norm2 <= w->norm2_max) {
			for (p = 0; p < params; p++)
				w->isum[p] += w->ex[p];
			return TEE_SUCCESS;
		}
	}
	return TEE_ERROR_GENERIC;
}

/* Adds the clipped gradient of example r to w->sum (or w->isum). */
static TEE_Result add_example(struct work *w, uint32_t r)
{
	const size_t in = w->cfg->in;
	const size_t out = w->cfg->out;
	const float *W = w->theta;
	const float *b = w->theta + in * out;
	double *sum_b = w->sum + in * out;
	double xx = 0;
	double ee = 0;
	double zmax = 0;
	double psum = 0;
	double norm = 0;
	double scale = 1.0;
	double xi = 0;
	size_t i = 0;
	size_t j = 0;
	uint32_t y = w->labels[r];

	/* One fetch of the caller's row into TA memory per use. */
	TEE_MemMove(w->row_raw, w->features + (size_t)r * in * 4, in * 4);
	for (i = 0; i < in; i++) {
		w->x[i] = flt_from_bits(get_le32(w->row_raw + 4 * i));
		if (!flt_finite(w->x[i]))
			return TEE_ERROR_BAD_PARAMETERS;
		xx += (double)w->x[i] * (double)w->x[i];
	}
	/* z = x . W + b with the current theta. */
	for (j = 0; j < out; j++)
		w->z[j] = (double)b[j];
	for (i = 0; i < in; i++) {
		xi = (double)w->x[i];
		for (j = 0; j < out; j++)
			w->z[j] += xi * (double)W[i * out + j];
	}
	/* Softmax with the maximum subtracted, so exp never overflows. */
	zmax = w->z[0];
	for (j = 1; j < out; j++)
		if (w->z[j] > zmax)
			zmax = w->z[j];
	for (j = 0; j < out; j++) {
		w->z[j] = edge_exp(w->z[j] - zmax);
		psum += w->z[j];
	}
	for (j = 0; j < out; j++) {
		w->z[j] /= psum;
		if (j == y)
			w->z[j] -= 1.0;
		ee += w->z[j] * w->z[j];
	}
	/* ||(x e^T, e)||^2 = (||x||^2 + 1) ||e||^2, no P-sized pass. */
	norm = edge_sqrt((xx + 1.0) * ee);
	if (norm > w->cfg->clip)
		scale = w->cfg->clip / norm;
	for (j = 0; j < out; j++)
		w->z[j] *= scale;
	if (w->isum)
		return add_rounded(w);
	for (i = 0; i < in; i++) {
		xi = (double)w->x[i];
		for (j = 0; j < out; j++)
			w->sum[i * out + j] += xi * w->z[j];
	}
	for (j = 0; j < out; j++)
		sum_b[j] += w->z[j];
	return TEE_SUCCESS;
}

/*
 * The finest grid R = 2^k (k <= RES_LOG2_MAX) at which sigma's noise is in
 * the sampler's range, with its norm bound and noise variance.
 */
static TEE_Result noise_grid(struct work *w, size_t params)
{
	double r = 0;

	for (int k = RES_LOG2_MAX; k >= 0; k--) {
		r = (double)(1u << k);
		w->norm2_max = dgauss_norm2_bound(r, params);
		if (!dgauss_variance(w->cfg->sigma, w->norm2_max, &w->sn)) {
			w->to_grid = r / w->cfg->clip;
			return TEE_SUCCESS;
		}
	}
	return TEE_ERROR_BAD_PARAMETERS;
}

static TEE_Result one_step(struct work *w, struct edge_rng *rng,
			   size_t params, double divisor)
{
	const struct dpsgd_cfg *c = w->cfg;
	const struct dgauss_source src = { .next = rng_word, .ctx = rng };
	double from_grid = w->isum ? 1.0 / w->to_grid : 0;
	int64_t z = 0;
	double g = 0;
	uint32_t k = 0;
	uint32_t j = 0;
	uint32_t t = 0;
	size_t p = 0;
	TEE_Result res = TEE_SUCCESS;

	TEE_MemFill(w->sum, 0, params * sizeof(double));
	if (w->isum)
		TEE_MemFill(w->isum, 0, params * sizeof(int64_t));
	if (c->sampling == EDGE_SAMPLING_FIXED) {
		/* Partial Fisher-Yates: the first B slots become a uniform
		 * B-subset whatever permutation idx held before. */
		for (k = 0; k < c->batch && !res; k++) {
			j = k + rng_below(rng, c->n - k);
			t = w->idx[k];
			w->idx[k] = w->idx[j];
			w->idx[j] = t;
			res = add_example(w, w->idx[k]);
		}
	} else {
		for (k = 0; k < c->n && !res; k++)
			if (rng_uniform(rng) < c->q)
				res = add_example(w, k);
	}
	if (res)
		return res;
	for (p = 0; p < params; p++) {
		if (w->isum) {
			/* The DP release is the integer isum + z; what follows
			 * is post-processing. */
			res = dgauss_sample(&src, w->sn, DGAUSS_SD, &z);
			if (res)
				return res;
			g = (double)(w->isum[p] + z) * from_grid;
		} else {
			g = w->sum[p];
		}
		w->theta[p] = (float)((double)w->theta[p] - c->lr * g /
				      divisor);
	}
	return TEE_SUCCESS;
}

TEE_Result dpsgd_run(const struct dpsgd_cfg *cfg, const uint8_t *theta0,
		     const uint8_t *features, const uint32_t *labels,
		     struct edge_rng *rng, double *delta)
{
	const size_t in = cfg->in;
	const size_t out = cfg->out;
	const size_t params = in * out + out;
	struct work w = { .cfg = cfg, .features = features, .labels = labels,
			  .sum = delta };
	double divisor = 0;
	uint64_t s = 0;
	size_t p = 0;
	uint32_t i = 0;
	TEE_Result res = TEE_ERROR_OUT_OF_MEMORY;

	if (cfg->sampling == EDGE_SAMPLING_FIXED) {
		if (cfg->batch < 1 || cfg->batch > cfg->n)
			return TEE_ERROR_BAD_PARAMETERS;
		divisor = (double)cfg->batch;
	} else {
		divisor = cfg->q * (double)cfg->n;
	}
	if (!(divisor > 0) || cfg->n < 1)
		return TEE_ERROR_BAD_PARAMETERS;

	w.rng = rng;
	if (cfg->sigma > 0) {
		if (!(cfg->clip > 0))
			return TEE_ERROR_BAD_PARAMETERS;
		res = noise_grid(&w, params);
		if (res)
			return res;
		res = TEE_ERROR_OUT_OF_MEMORY;
		w.isum = alloc_zero(params, sizeof(int64_t));
		w.ex = alloc_zero(params, sizeof(int32_t));
		if (!w.isum || !w.ex)
			goto out;
	}
	w.theta = alloc_zero(params, sizeof(float));
	w.row_raw = alloc_zero(in, 4);
	w.x = alloc_zero(in, sizeof(float));
	w.z = alloc_zero(out, sizeof(double));
	w.idx = alloc_zero(cfg->n, sizeof(uint32_t));
	if (!w.theta || !w.row_raw || !w.x || !w.z || !w.idx)
		goto out;
	for (p = 0; p < params; p++)
		w.theta[p] = flt_from_bits(get_le32(theta0 + 4 * p));
	for (i = 0; i < cfg->n; i++)
		w.idx[i] = i;

	res = TEE_SUCCESS;
	for (s = 0; s < cfg->steps && !res; s++)
		res = one_step(&w, rng, params, divisor);
	if (res)
		goto out;
	for (p = 0; p < params; p++) {
		if (!flt_finite(w.theta[p])) {
			res = TEE_ERROR_OVERFLOW;
			goto out;
		}
		delta[p] = (double)w.theta[p] -
			   (double)flt_from_bits(get_le32(theta0 + 4 * p));
	}
out:
	if (res)
		TEE_MemFill(delta, 0, params * sizeof(double));
	/* theta, rows and logits derive from private data. */
	free_wiped(w.theta, params * sizeof(float));
	free_wiped(w.row_raw, in * 4);
	free_wiped(w.x, in * sizeof(float));
	free_wiped(w.z, out * sizeof(double));
	free_wiped(w.idx, (size_t)cfg->n * sizeof(uint32_t));
	free_wiped(w.isum, params * sizeof(int64_t));
	free_wiped(w.ex, params * sizeof(int32_t));
	return res;
}
