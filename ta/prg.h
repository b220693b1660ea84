/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The secure-aggregation mask generator: a 128-bit seed expanded by
 * AES-128-CTR from a zero counter block into little-endian 32-bit words
 * (edge/secagg/prg.py is its twin).
 */
#ifndef EDGE_TA_PRG_H
#define EDGE_TA_PRG_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

#define PRG_SEED_SIZE	16

/*
 * Adds (sign > 0) or subtracts (sign < 0) PRG(seed) to words[0..n-1], mod
 * 2^32: masks are only ever applied, never kept.
 */
TEE_Result prg_apply(const uint8_t seed[PRG_SEED_SIZE], int sign,
		     uint32_t *words, size_t n);

#endif
