/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Randomness for DP-SGD, all from TEE_GenerateRandom (the TEE's CSPRNG),
 * fetched in blocks: 64-bit words, uniform doubles with 53 random bits (for
 * Poisson sampling and the randomized rounding of gradients, never for
 * noise) and unbiased integers below a bound (rejection sampling). Noise is
 * integer, from the exact discrete Gaussian of dgauss.h fed by rng_word().
 * The state holds unused random bytes: rng_wipe() clears them.
 */
#ifndef EDGE_GAUSS_H
#define EDGE_GAUSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A round's DP-SGD draws a word per gradient coordinate per example (the
 * randomized rounding): about 70,000 for the demo's head. Each refill is a call
 * into the TEE core (a syscall into the secure kernel on OP-TEE, a DRBG call in
 * the simulator): at 512 bytes a refill, the simulator spent about half of its
 * time in a round on 1,000 refills. */
#define EDGE_RNG_BLOCK	4096

struct edge_rng {
	uint8_t buf[EDGE_RNG_BLOCK];
	size_t pos;			/* next unused byte; BLOCK = empty */
};

/* Starts with an empty buffer (nothing drawn yet). */
void rng_init(struct edge_rng *r);
/* Wipes buffered random bytes. */
void rng_wipe(struct edge_rng *r);

uint64_t rng_u64(struct edge_rng *r);
/* Uniform on [0, 1): the top 53 bits of a random u64 times 2^-53. */
double rng_uniform(struct edge_rng *r);
/* Uniform on {0, ..., bound - 1} without modulo bias; bound >= 1. */
uint32_t rng_below(struct edge_rng *r, uint32_t bound);
/* rng_u64 of ctx (a struct edge_rng): the word source of dgauss_sample. */
uint64_t rng_word(void *ctx);

#endif /* EDGE_GAUSS_H */
