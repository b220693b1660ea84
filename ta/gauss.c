// SPDX-License-Identifier: BSD-2-Clause
/*
 * Uniform sampling for DP-SGD (see gauss.h).
 */
#include <tee_internal_api.h>

#include "bytes.h"
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

uint64_t rng_word(void *ctx)
{
	return rng_u64(ctx);
}
