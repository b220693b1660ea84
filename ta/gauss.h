/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Randomness for DP-SGD, all from TEE_GenerateRandom (the TEE's CSPRNG),
 * fetched in blocks: uniform doubles with 53 random bits, unbiased integers
 * below a bound (rejection sampling), and standard normal deviates by
 * Marsaglia's polar method with the TA's own log and sqrt. The state holds
 * unused random bytes and possibly one cached deviate: rng_wipe() clears it.
 */
#ifndef EDGE_GAUSS_H
#define EDGE_GAUSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDGE_RNG_BLOCK	512

struct edge_rng {
	uint8_t buf[EDGE_RNG_BLOCK];
	size_t pos;			/* next unused byte; BLOCK = empty */
	bool have_spare;		/* the polar method yields pairs */
	double spare;
};

/* Starts with an empty buffer (nothing drawn yet). */
void rng_init(struct edge_rng *r);
/* Wipes buffered random bytes and the cached deviate. */
void rng_wipe(struct edge_rng *r);

uint64_t rng_u64(struct edge_rng *r);
/* Uniform on [0, 1): the top 53 bits of a random u64 times 2^-53. */
double rng_uniform(struct edge_rng *r);
/* Uniform on {0, ..., bound - 1} without modulo bias; bound >= 1. */
uint32_t rng_below(struct edge_rng *r, uint32_t bound);
/* A standard normal deviate N(0, 1). */
double rng_gauss(struct edge_rng *r);

#endif /* EDGE_GAUSS_H */
