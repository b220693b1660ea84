// SPDX-License-Identifier: BSD-2-Clause
/*
 * Signed envelope parsing and verification (docs/formats.md).
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "crypto.h"
#include "envelope.h"

TEE_Result envelope_precheck(const uint8_t *hdr, size_t len, uint16_t kind,
			     size_t max_len)
{
	uint64_t total = 0;

	/* The order of docs/formats.md, shared with edge/formats/envelope.py. */
	if (len < EDGE_ENVELOPE_HEADER_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	total = (uint64_t)EDGE_ENVELOPE_HEADER_SIZE + get_le32(hdr + 8) +
		EDGE_SIG_SIZE;
	if (TEE_MemCompare(hdr, EDGE_MAGIC, 4))
		return TEE_ERROR_BAD_FORMAT;
	/* The version of the kind the header names: then the kind is checked. */
	if (get_le16(hdr + 4) != EDGE_FORMAT_VERSION_OF(get_le16(hdr + 6))) {
		/* Named apart: a v1 package still exists in the field. */
		if (get_le16(hdr + 6) == EDGE_KIND_PACKAGE && get_le16(hdr + 4) == 1)
			return EDGE_ERR_RETIRED_FORMAT;
		return EDGE_ERR_UNSUPPORTED_VERSION;
	}
	if (get_le16(hdr + 6) != kind)
		return EDGE_ERR_WRONG_KIND;
	/* Decided from the header alone: no need to send a huge artefact. */
	if (total > (uint64_t)max_len)
		return TEE_ERROR_EXCESS_DATA;
	if ((uint64_t)len != total)
		return TEE_ERROR_BAD_FORMAT;
	return TEE_SUCCESS;
}

TEE_Result envelope_open(const uint8_t *buf, size_t len, uint16_t kind,
			 size_t max_len, const uint8_t expected_id[16],
			 const uint8_t signer_pub[32],
			 struct edge_envelope *env)
{
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	res = envelope_precheck(buf, len, kind, max_len);
	if (res)
		return res;

	/* len == 28 + body_len + 64 now, and fits in size_t. */
	env->kind = kind;
	env->body_len = get_le32(buf + 8);
	env->signer_id = buf + 12;
	env->body = buf + EDGE_ENVELOPE_HEADER_SIZE;
	env->signed_len = EDGE_ENVELOPE_HEADER_SIZE + (size_t)env->body_len;
	env->sig = buf + env->signed_len;
	env->total_len = len;

	if (ct_memcmp(env->signer_id, expected_id, EDGE_KEY_ID_SIZE))
		return EDGE_ERR_UNKNOWN_SIGNER;
	res = edge_sha256(buf, env->signed_len, digest);
	if (res)
		return res;
	return edge_ed25519_verify(signer_pub, digest, env->sig);
}

void envelope_put_header(uint8_t *hdr, uint16_t kind, uint32_t body_len,
			 const uint8_t signer_id[16])
{
	TEE_MemMove(hdr, EDGE_MAGIC, 4);
	put_le16(hdr + 4, EDGE_FORMAT_VERSION_OF(kind));
	put_le16(hdr + 6, kind);
	put_le32(hdr + 8, body_len);
	TEE_MemMove(hdr + 12, signer_id, EDGE_KEY_ID_SIZE);
}
