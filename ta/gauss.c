// SPDX-License-Identifier: BSD-2-Clause
/*
 * Uniform and Gaussian sampling for DP-SGD (see gauss.h).
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "dpmath.h"
#include "gauss.h"

void rng_init(struct edge_rng *r)
{
	TEE_MemFill(r, 0, sizeof(*r));
	r->pos = EDGE_RNG_BLOCK;
}

void rng_wipe(struct edge_rng *r)
{
	/* Unused noise bytes would let a reader reconstruct future noise. */
	TEE_MemFill(r, 0, sizeof(*r));
	r->pos = EDGE_RNG_BLOCK;
}

uint64_t rng_u64(struct edge_rng *r)
{
	uint64_t v = 0;

	if (r->pos > EDGE_RNG_BLOCK - 8) {
		TEE_GenerateRandom(r->buf, EDGE_RNG_BLOCK);
		r->pos = 0;
	}
	v = get_le64(r->buf + r->pos);
	/* Each random byte is used once. */
	TEE_MemFill(r->buf + r->pos, 0, 8);
	r->pos += 8;
	return v;
}

double rng_uniform(struct edge_rng *r)
{
	return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t rng_below(struct edge_rng *r, uint32_t bound)
{
	/* Largest multiple of bound that fits in 2^32: values above it would
	 * favour small results, so they are drawn again. */
	uint64_t limit = ((uint64_t)1 << 32) -
			 (((uint64_t)1 << 32) % (uint64_t)bound);
	uint64_t v = 0;

	for (;;) {
		v = rng_u64(r) >> 32;
		if (v < limit)
			return (uint32_t)(v % bound);
	}
}

double rng_gauss(struct edge_rng *r)
{
	double u = 0;
	double v = 0;
	double s = 0;
	double m = 0;

	if (r->have_spare) {
		r->have_spare = false;
		u = r->spare;
		r->spare = 0;
		return u;
	}
	/* Uniform point in the unit disc, origin excluded (log 0). */
	do {
		u = 2.0 * rng_uniform(r) - 1.0;
		v = 2.0 * rng_uniform(r) - 1.0;
		s = u * u + v * v;
	} while (!(s < 1.0) || !(s > 0.0));
	m = edge_sqrt(-2.0 * edge_log(s) / s);
	r->spare = v * m;
	r->have_spare = true;
	return u * m;
}
