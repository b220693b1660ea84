// SPDX-License-Identifier: BSD-2-Clause
/*
 * Secure-aggregation directives and roster entries (ta/secagg.c): input =
 * stage selector (1 byte) || round binding (48) || directive. The directive
 * goes through secagg_directive_parse() under the aggregator's key of
 * keys.tsv, as is and re-signed; every entry of a roster that parses goes
 * through secagg_roster_entry() with the model signer standing in for the
 * registrar (the seeds' certificates are signed by it, so the body checks
 * are reached).
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "fuzz_common.h"
#include "secagg.h"

#define PREFIX	(1 + SECAGG_BINDING_SIZE)

static void entries(const struct secagg_directive *d, uint8_t stage,
		    const uint8_t *binding, const struct edge_anchor *reg)
{
	struct secagg_peer peer;
	uint32_t i = 0;

	FUZZ_ASSERT(d->count <= EDGE_SECAGG_MAX_COHORT);
	if (stage != EDGE_SECAGG_STAGE_ROSTER)
		return;
	for (i = 0; i < d->count; i++) {
		memset(&peer, 0, sizeof(peer));
		if (!secagg_roster_entry(d->entries + (size_t)i *
					 EDGE_SECAGG_ROSTER_ENTRY_SIZE, reg,
					 binding, &peer))
			/* Accepted: the certificate named this very device. */
			FUZZ_ASSERT(!memcmp(peer.id, d->entries + (size_t)i *
					    EDGE_SECAGG_ROSTER_ENTRY_SIZE +
					    EDGE_ENVELOPE_HEADER_SIZE,
					    EDGE_KEY_ID_SIZE));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct edge_anchor agg = { };
	struct edge_anchor reg = { };
	struct secagg_directive d = { };
	const uint8_t *self = fuzz_device.id;
	uint8_t binding[SECAGG_BINDING_SIZE];
	uint8_t *copy = NULL;
	uint8_t stage = 0;

	if (len < PREFIX)
		return 0;
	stage = (uint8_t)(data[0] % 3 + 1);
	memcpy(binding, data + 1, sizeof(binding));
	memcpy(agg.pub, fuzz_aggregator.pub, EDGE_PUBKEY_SIZE);
	memcpy(agg.id, fuzz_aggregator.id, EDGE_KEY_ID_SIZE);
	memcpy(reg.pub, fuzz_signer.pub, EDGE_PUBKEY_SIZE);
	memcpy(reg.id, fuzz_signer.id, EDGE_KEY_ID_SIZE);
	data += PREFIX;
	len -= PREFIX;

	copy = fuzz_dup(data, len);
	if (!secagg_directive_parse(copy, len, stage, binding, self, &agg, &d))
		entries(&d, stage, binding, &reg);
	free(copy);

	copy = fuzz_dup(data, len);
	if (fuzz_resign(copy, len, &fuzz_aggregator) &&
	    !secagg_directive_parse(copy, len, stage, binding, self, &agg, &d))
		entries(&d, stage, binding, &reg);
	free(copy);
	return 0;
}
