// SPDX-License-Identifier: BSD-2-Clause
/*
 * Sealed updates (see seal.h).
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "crypto.h"
#include "dpmath.h"
#include "envelope.h"
#include "seal.h"

size_t seal_size(uint32_t params)
{
	return EDGE_ENVELOPE_HEADER_SIZE + EDGE_UPDATE_HEADER_SIZE +
	       4 * (size_t)params + EDGE_SIG_SIZE;
}

double seal_norm_f32(const uint8_t *v, size_t n)
{
	double acc = 0;
	double d = 0;
	size_t i = 0;

	for (i = 0; i < n; i++) {
		d = (double)flt_from_bits(get_le32(v + 4 * i));
		acc += d * d;
	}
	return edge_sqrt(acc);
}

static void write_scaled(uint8_t *dst, const double *delta, size_t n,
			 double scale)
{
	size_t i = 0;

	for (i = 0; i < n; i++)
		put_le32(dst + 4 * i, flt_bits((float)(delta[i] * scale)));
}

TEE_Result seal_build(const struct seal_info *si, const double *delta,
		      TEE_ObjectHandle sign_key, uint8_t *out)
{
	TEE_Result res = seal_write(si, delta, out);

	if (res)
		return res;
	return seal_sign(out, si->params, sign_key);
}

TEE_Result seal_sign(uint8_t *out, uint32_t params, TEE_ObjectHandle sign_key)
{
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };
	const size_t body_len = EDGE_UPDATE_HEADER_SIZE + 4 * (size_t)params;

	if (edge_sha256(out, EDGE_ENVELOPE_HEADER_SIZE + body_len, digest))
		return TEE_ERROR_GENERIC;
	return edge_ed25519_sign(sign_key, digest,
				 out + EDGE_ENVELOPE_HEADER_SIZE + body_len);
}

TEE_Result seal_write(const struct seal_info *si, const double *delta,
		      uint8_t *out)
{
	const size_t body_len = EDGE_UPDATE_HEADER_SIZE + 4 * (size_t)si->params;
	uint8_t *body = out + EDGE_ENVELOPE_HEADER_SIZE;
	uint8_t *vec = body + EDGE_UPDATE_HEADER_SIZE;
	double limit = (double)si->update_clip;
	double norm = 0;
	double scale = 1.0;
	size_t i = 0;
	int tries = 0;

	for (i = 0; i < si->params; i++)
		norm += delta[i] * delta[i];
	norm = edge_sqrt(norm);
	if (!dbl_finite(norm) || !(limit > 0))
		return TEE_ERROR_OVERFLOW;
	if (norm > limit)
		scale = limit / norm;
	write_scaled(vec, delta, si->params, scale);
	/*
	 * Rounding to float32 can push the norm a few ulps above U: shrink
	 * until the bound holds for the bytes that are actually released.
	 */
	while (seal_norm_f32(vec, si->params) > limit) {
		if (++tries > 64)
			return TEE_ERROR_OVERFLOW;
		scale *= 1.0 - 1.0 / 1048576.0;
		write_scaled(vec, delta, si->params, scale);
	}

	TEE_MemFill(out, 0, EDGE_ENVELOPE_HEADER_SIZE + EDGE_UPDATE_HEADER_SIZE);
	envelope_put_header(out, EDGE_KIND_SEALED_UPDATE, (uint32_t)body_len,
			    si->device_id);
	TEE_MemMove(body + EDGE_UPDATE_HEADER_OFF_DEVICE_ID, si->device_id, EDGE_KEY_ID_SIZE);
	put_le64(body + EDGE_UPDATE_HEADER_OFF_ROUND_ID, si->round_id);
	TEE_MemMove(body + EDGE_UPDATE_HEADER_OFF_NONCE, si->cohort_nonce, EDGE_NONCE_SIZE);
	put_le64(body + EDGE_UPDATE_HEADER_OFF_MODEL_VERSION, si->model_version);
	TEE_MemMove(body + EDGE_UPDATE_HEADER_OFF_PACKAGE_ID, si->package_id,
		    EDGE_UPDATE_HEADER_LEN_PACKAGE_ID);
	put_le32(body + EDGE_UPDATE_HEADER_OFF_EXAMPLE_COUNT, si->n);
	put_le32(body + EDGE_UPDATE_HEADER_OFF_STEPS, si->steps);
	put_le64(body + EDGE_UPDATE_HEADER_OFF_STEPS_TOTAL, si->total_steps);
	body[EDGE_UPDATE_HEADER_OFF_UPDATE_MODE] = EDGE_UPDATE_MODE_FLOAT32;
	put_le32(body + EDGE_UPDATE_HEADER_OFF_PARAM_COUNT, si->params);
	put_le32(body + EDGE_UPDATE_HEADER_OFF_UPDATE_CLIP, flt_bits(si->update_clip));
	put_le32(body + EDGE_UPDATE_HEADER_OFF_NOISE_MULTIPLIER, flt_bits(si->sigma));
	put_le32(body + EDGE_UPDATE_HEADER_OFF_EXAMPLE_CLIP, flt_bits(si->clip));
	/* Reserved fields: zero from the fill above. */
	return TEE_SUCCESS;
}
