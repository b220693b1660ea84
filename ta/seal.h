/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Sealed updates (kind 5, docs/formats.md "Sealed update"): the delta is
 * clipped to L2 norm U, written as float32 and signed with the device
 * identity key (Ed25519 over SHA-256 of header || body, signer = device id).
 */
#ifndef EDGE_SEAL_H
#define EDGE_SEAL_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

struct seal_info {
	const uint8_t *device_id;	/* 16 */
	uint64_t round_id;
	const uint8_t *cohort_nonce;	/* 16 */
	uint64_t model_version;
	const uint8_t *package_id;	/* 16 */
	uint32_t n;
	uint32_t steps;			/* T of this round */
	uint64_t total_steps;		/* spent after this round */
	uint32_t params;		/* P */
	float update_clip;		/* U */
	float sigma;
	float clip;			/* C */
};

/* 28 + EDGE_UPDATE_HEADER_SIZE + 4P + 64 bytes. */
size_t seal_size(uint32_t params);

/*
 * Writes the signed update into out (seal_size(si->params) bytes, TA
 * memory). delta (P doubles) is scaled by min(1, U/||delta||) and rounded
 * to float32 so that the released vector's norm is at most U.
 */
TEE_Result seal_build(const struct seal_info *si, const double *delta,
		      TEE_ObjectHandle sign_key, uint8_t *out);

/* seal_build's first half: header and clipped float32 delta, unsigned. */
TEE_Result seal_write(const struct seal_info *si, const double *delta,
		      uint8_t *out);

/* seal_build's second half: signs header || body (P params) in place. */
TEE_Result seal_sign(uint8_t *out, uint32_t params, TEE_ObjectHandle sign_key);

/* The L2 norm, in double, of n float32 LE values (tests use it too). */
double seal_norm_f32(const uint8_t *v, size_t n);

#endif /* EDGE_SEAL_H */
