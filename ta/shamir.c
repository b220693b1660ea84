// SPDX-License-Identifier: BSD-2-Clause
/*
 * Shamir secret sharing over GF(2^8) for secure aggregation: the TA shares
 * its self-mask seed and its mask key among its neighbours. A byte-wise field
 * keeps the arithmetic small and free of secret-dependent branches and table
 * lookups (a share is evaluated from secret coefficients).
 */
#include <string.h>

#include "shamir.h"

uint8_t shamir_gf_mul(uint8_t a, uint8_t b)
{
	uint8_t out = 0;

	for (int i = 0; i < 8; i++) {
		/* Masks instead of branches: the operands may be secret. */
		out ^= (uint8_t)(-(b & 1) & a);
		a = (uint8_t)((a << 1) ^ (-(a >> 7) & 0x1b));
		b >>= 1;
	}
	return out;
}

static bool points_ok(const uint8_t *xs, size_t n)
{
	bool seen[256] = { false };

	for (size_t i = 0; i < n; i++) {
		if (!xs[i] || seen[xs[i]])
			return false;
		seen[xs[i]] = true;
	}
	return true;
}

TEE_Result shamir_split(const uint8_t *secret, size_t len, uint32_t t,
			const uint8_t *xs, size_t n, const uint8_t *coeffs,
			uint8_t *shares)
{
	uint8_t *poly = NULL;
	size_t higher = 0;

	if (!secret || !xs || !shares || !len || len > SHAMIR_MAX_SECRET ||
	    t < 1 || t > SHAMIR_MAX_SHARES || n < t || n > SHAMIR_MAX_SHARES ||
	    !points_ok(xs, n))
		return TEE_ERROR_BAD_PARAMETERS;
	higher = (size_t)(t - 1) * len;
	/* One byte more so that t = 1 (no higher coefficient) allocates too. */
	poly = TEE_Malloc(higher + 1, TEE_MALLOC_FILL_ZERO);
	if (!poly)
		return TEE_ERROR_OUT_OF_MEMORY;
	if (coeffs)
		memcpy(poly, coeffs, higher);
	else if (higher)
		TEE_GenerateRandom(poly, higher);

	for (size_t i = 0; i < n; i++) {
		for (size_t b = 0; b < len; b++) {
			uint8_t acc = 0;

			/* Horner from the highest coefficient down to the secret. */
			for (size_t c = t - 1; c > 0; c--)
				acc = shamir_gf_mul(acc, xs[i]) ^
				      poly[(c - 1) * len + b];
			shares[i * len + b] = shamir_gf_mul(acc, xs[i]) ^ secret[b];
		}
	}
	TEE_MemFill(poly, 0, higher);
	TEE_Free(poly);
	return TEE_SUCCESS;
}
