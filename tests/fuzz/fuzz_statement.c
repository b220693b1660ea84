// SPDX-License-Identifier: BSD-2-Clause
/*
 * Anchor statements (ta/anchors.c): anchors_parse_statement_body() on the
 * body directly, then REPLACE_ANCHOR's anchors_check_statement() against
 * the anchors of keys.tsv (model signer, aggregator), as is and re-signed
 * by the key of the role the statement names, at epochs 0 and UINT64_MAX.
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "anchors.h"
#include "crypto.h"
#include "envelope.h"
#include "fuzz_common.h"

static struct edge_anchors cur[2];

static void check(const struct edge_anchors *a, const uint8_t *stmt,
		  size_t len)
{
	struct edge_anchors next = { };
	uint8_t id[EDGE_KEY_ID_SIZE] = { 0 };
	const uint8_t *new_pub = NULL;
	uint8_t role = 0;

	if (anchors_check_statement(a, stmt, len, &next))
		return;
	/* Accepted: exactly one role changed, to the stated key, epoch + 1.
	 * Role 3 (registrar) only where one is installed: not in cur. */
	FUZZ_ASSERT(len == EDGE_ANCHOR_STATEMENT_SIZE);
	role = stmt[EDGE_ENVELOPE_HEADER_SIZE];
	FUZZ_ASSERT(role == EDGE_ROLE_MODEL_SIGNER ||
		    role == EDGE_ROLE_AGGREGATOR ||
		    (role == EDGE_ROLE_REGISTRAR && a->has_registrar));
	new_pub = stmt + EDGE_ENVELOPE_HEADER_SIZE + 16;
	FUZZ_ASSERT(!memcmp(next.role[role - 1].pub, new_pub,
			    EDGE_PUBKEY_SIZE));
	FUZZ_ASSERT(!edge_key_id(new_pub, id) &&
		    !memcmp(next.role[role - 1].id, id, sizeof(id)));
	FUZZ_ASSERT(next.role[role - 1].epoch == a->role[role - 1].epoch + 1);
	for (uint8_t other = 1; other <= 3; other++)
		if (other != role)
			FUZZ_ASSERT(!memcmp(&next.role[other - 1],
					    &a->role[other - 1],
					    sizeof(next.role[0])));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool ready;
	const uint8_t *body = NULL;
	const uint8_t *new_pub = NULL;
	size_t body_len = 0;
	uint64_t epoch = 0;
	uint8_t role = 0;
	uint8_t *copy = NULL;

	if (!ready) {
		FUZZ_ASSERT(!anchors_init(&cur[0], fuzz_signer.pub,
					  fuzz_aggregator.pub));
		cur[1] = cur[0];
		cur[1].role[0].epoch = UINT64_MAX;
		cur[1].role[1].epoch = UINT64_MAX;
		ready = true;
	}
	fuzz_body(data, len, &body, &body_len);
	copy = fuzz_dup(body, body_len);
	if (!anchors_parse_statement_body(copy, body_len, &role, &epoch,
					  &new_pub))
		FUZZ_ASSERT(body_len == 48 && role >= EDGE_ROLE_MODEL_SIGNER &&
			    role <= EDGE_ROLE_REGISTRAR && new_pub == copy + 16);
	free(copy);

	check(&cur[0], data, len);

	copy = fuzz_dup(data, len);
	role = len > EDGE_ENVELOPE_HEADER_SIZE ?
	       data[EDGE_ENVELOPE_HEADER_SIZE] : 0;
	if (fuzz_resign(copy, len, role == 2 ? &fuzz_aggregator :
					       &fuzz_signer)) {
		check(&cur[0], copy, len);
		check(&cur[1], copy, len);
	}
	free(copy);
	return 0;
}
