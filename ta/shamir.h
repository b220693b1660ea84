/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Shamir secret sharing over GF(2^8), byte by byte; edge/secagg/shamir.py is
 * its twin (and reconstructs: the TA only ever splits).
 */
#ifndef EDGE_TA_SHAMIR_H
#define EDGE_TA_SHAMIR_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

#define SHAMIR_MAX_SHARES	255
#define SHAMIR_MAX_SECRET	64

/* a * b in GF(2^8) mod x^8 + x^4 + x^3 + x + 1, in constant time. */
uint8_t shamir_gf_mul(uint8_t a, uint8_t b);

/*
 * Splits `secret` (len <= SHAMIR_MAX_SECRET) into n shares at the distinct
 * points xs[0..n-1] (1..255), any t of which reconstruct it: shares[i * len
 * ...] is the share for xs[i]. The t - 1 higher coefficients come from
 * `coeffs` ((t - 1) * len bytes) when given (test vectors), else from
 * TEE_GenerateRandom, and are wiped before returning.
 * TEE_ERROR_BAD_PARAMETERS for t, n, xs or len out of range.
 */
TEE_Result shamir_split(const uint8_t *secret, size_t len, uint32_t t,
			const uint8_t *xs, size_t n, const uint8_t *coeffs,
			uint8_t *shares);

#endif
