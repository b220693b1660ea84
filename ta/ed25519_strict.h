/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Strict Ed25519 checks done before GP's verify: RFC 8032 verifiers (OP-TEE's
 * and OpenSSL's) accept public keys and R points of small order, for which
 * signatures can be forged without a private key. Python has the same rules
 * in edge/formats/ed25519_strict.py; tests/vectors/ed25519_points.tsv holds
 * both to the same verdicts.
 */
#ifndef EDGE_TA_ED25519_STRICT_H
#define EDGE_TA_ED25519_STRICT_H

#include <stdint.h>
#include <tee_internal_api.h>

/* Verdicts of ed25519_classify_point, as named in the vector file. */
enum ed25519_point_class {
	ED25519_POINT_OK = 0,		/* canonical, on the curve, large order */
	ED25519_POINT_NON_CANONICAL,	/* y >= p, or x = 0 with the sign set */
	ED25519_POINT_OFF_CURVE,	/* no x for this y */
	ED25519_POINT_SMALL_ORDER,	/* 8 * P is the identity */
};

enum ed25519_point_class ed25519_classify_point(const uint8_t enc[32]);

/* TEE_SUCCESS for a usable public key, EDGE_ERR_WEAK_KEY otherwise. */
TEE_Result ed25519_check_pub(const uint8_t pub[32]);

/*
 * TEE_SUCCESS if S < L and R is a canonical point of large order,
 * TEE_ERROR_SIGNATURE_INVALID otherwise.
 */
TEE_Result ed25519_check_sig(const uint8_t sig[64]);

#endif
