/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Signed envelopes (docs/formats.md "Signed envelope"): header checks in the
 * documented order, signer check and Ed25519 verification over
 * SHA-256(header || body). Parsers only ever see bytes already copied into
 * TA memory; envelope_precheck() decides, from a copy of the header and the
 * size of the caller's buffer alone, whether an input may be copied at all.
 */
#ifndef EDGE_ENVELOPE_H
#define EDGE_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

struct edge_envelope {
	uint16_t kind;
	uint32_t body_len;
	const uint8_t *signer_id;	/* EDGE_KEY_ID_SIZE bytes */
	const uint8_t *body;		/* body_len bytes */
	const uint8_t *sig;		/* EDGE_SIG_SIZE bytes */
	size_t signed_len;		/* header + body */
	size_t total_len;		/* header + body + signature */
};

/*
 * The checks that need only the header and the total length, in the order
 * formats.md gives: short (header or 28 + body_len + 64) -> BAD_FORMAT; bad
 * magic -> BAD_FORMAT; version -> EDGE_ERR_UNSUPPORTED_VERSION (a retired
 * version-1 package: EDGE_ERR_RETIRED_FORMAT); kind ->
 * EDGE_ERR_WRONG_KIND; 28 + body_len + 64 > max_len -> EXCESS_DATA; trailing
 * bytes -> BAD_FORMAT. hdr holds min(len, EDGE_ENVELOPE_HEADER_SIZE) bytes;
 * len is the length of the whole input.
 */
TEE_Result envelope_precheck(const uint8_t *hdr, size_t len, uint16_t kind,
			     size_t max_len);

/*
 * Full envelope check of buf (owned by the TA): envelope_precheck(), then the
 * signer key id must equal expected_id (EDGE_ERR_UNKNOWN_SIGNER), then the
 * signature must verify under signer_pub (TEE_ERROR_SIGNATURE_INVALID). On
 * success env points into buf.
 */
TEE_Result envelope_open(const uint8_t *buf, size_t len, uint16_t kind,
			 size_t max_len, const uint8_t expected_id[16],
			 const uint8_t signer_pub[32],
			 struct edge_envelope *env);

/* Writes the 28-byte header of an envelope. */
void envelope_put_header(uint8_t *hdr, uint16_t kind, uint32_t body_len,
			 const uint8_t signer_id[16]);

#endif /* EDGE_ENVELOPE_H */
