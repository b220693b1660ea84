// SPDX-License-Identifier: BSD-2-Clause
/*
 * The signed envelope (ta/envelope.c): envelope_precheck() as every command
 * calls it on a header copy, for each kind and its size limit, and
 * envelope_open() under the model signer's key, as is and re-signed. Any
 * input is taken as an envelope of any kind.
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "envelope.h"
#include "fuzz_common.h"

static const struct {
	uint16_t kind;
	size_t max_len;
} limits[] = {
	{ EDGE_KIND_PACKAGE, EDGE_MAX_MANIFEST_SIZE },
	{ EDGE_KIND_ANCHOR_STATEMENT, EDGE_ANCHOR_STATEMENT_SIZE },
	{ EDGE_KIND_DEVICE_RECORD, EDGE_DEVICE_RECORD_SIZE },
	{ EDGE_KIND_ROUND_TICKET, EDGE_TICKET_SIZE },
	{ EDGE_KIND_PRIVACY_POLICY, EDGE_POLICY_SIZE },
};

/* What envelope_open() promises about env on success. */
static void check_env(const uint8_t *buf, size_t len, uint16_t kind,
		      const struct edge_envelope *env)
{
	FUZZ_ASSERT(env->kind == kind);
	FUZZ_ASSERT(env->total_len == len);
	FUZZ_ASSERT(env->signed_len ==
		    EDGE_ENVELOPE_HEADER_SIZE + (size_t)env->body_len);
	FUZZ_ASSERT(env->body == buf + EDGE_ENVELOPE_HEADER_SIZE);
	FUZZ_ASSERT(env->sig == buf + env->signed_len);
	FUZZ_ASSERT(env->signed_len + EDGE_SIG_SIZE == len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t hdr[EDGE_ENVELOPE_HEADER_SIZE] = { 0 };
	struct edge_envelope env = { };
	uint8_t *copy = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;
	size_t i = 0;

	/* As copy_envelope() does: only the header is copied first. */
	memcpy(hdr, data, len < sizeof(hdr) ? len : sizeof(hdr));
	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		res = envelope_precheck(hdr, len, limits[i].kind,
					limits[i].max_len);
		FUZZ_ASSERT(res || len <= limits[i].max_len);
		FUZZ_ASSERT(res || len >= EDGE_ENVELOPE_HEADER_SIZE +
					  EDGE_SIG_SIZE);
	}

	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		res = envelope_open(data, len, limits[i].kind,
				    limits[i].max_len, fuzz_signer.id,
				    fuzz_signer.pub, &env);
		if (!res)
			check_env(data, len, limits[i].kind, &env);
	}

	/* Past the signature: the header as fuzzed, the signature good. */
	copy = fuzz_dup(data, len);
	if (fuzz_resign(copy, len, &fuzz_signer)) {
		for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
			res = envelope_open(copy, len, limits[i].kind,
					    limits[i].max_len, fuzz_signer.id,
					    fuzz_signer.pub, &env);
			if (!res)
				check_env(copy, len, limits[i].kind, &env);
		}
	}
	free(copy);
	return 0;
}
