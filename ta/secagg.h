/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The parsers of the secure-aggregation commands (secagg.c), separate so the
 * vector tests and fuzzers reach them with keys of their own: the
 * aggregator's directives and one roster entry (certificate and advert).
 */
#ifndef EDGE_SECAGG_H
#define EDGE_SECAGG_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "anchors.h"
#include "secagg_round.h"

/* A verified directive: its entries point into the buffer it came in. */
struct secagg_directive {
	uint32_t count;
	const uint8_t *entries;
	uint8_t digest[32];	/* SHA-256 of the whole envelope */
};

/*
 * Verifies a directive (a TA copy) of the given stage: signed by agg; stage
 * (WRONG_KIND); reserved zero; count (EXCESS_DATA) and exact length;
 * binding (WRONG_ROUND); recipient = self for an inbox (NOT_FOR_DEVICE),
 * zero otherwise; device ids strictly increasing (BAD_FORMAT).
 */
TEE_Result secagg_directive_parse(const uint8_t *buf, size_t len, uint8_t stage,
				 const uint8_t binding[SECAGG_BINDING_SIZE],
				 const uint8_t self[EDGE_KEY_ID_SIZE],
				 const struct edge_anchor *agg,
				 struct secagg_directive *d);

/*
 * One roster entry (EDGE_SECAGG_ROSTER_ENTRY_SIZE bytes): the certificate
 * under the registrar reg (NULL: none installed) -> UNKNOWN_ENROLLMENT for
 * its signer, signature, device id (= key id of its key) or fleet; then the
 * advert under the certified key -> FORGED_ADVERT for its signer,
 * signature or device id, WRONG_ROUND for its binding. Fills peer's id and
 * keys.
 */
TEE_Result secagg_roster_entry(const uint8_t *entry,
			       const struct edge_anchor *reg,
			       const uint8_t binding[SECAGG_BINDING_SIZE],
			       struct secagg_peer *peer);

#endif /* EDGE_SECAGG_H */
