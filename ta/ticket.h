/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Round tickets (kind 4, docs/formats.md "Round ticket"): verification
 * against the aggregator anchor, field checks, and the checks against the
 * policy, the loaded model and the replay and time floors, in the order
 * formats.md gives. Nothing here writes storage.
 */
#ifndef EDGE_TICKET_H
#define EDGE_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "head.h"
#include "policy.h"

/*
 * Why a ticket was refused, for a skip report: the field (EDGE_SKIP_FIELD_*)
 * and the two values compared (the ticket's, and the bound it failed).
 */
struct ticket_why {
	uint16_t field;
	double value;
	double bound;
};

struct edge_ticket {
	uint64_t round_id;
	uint64_t model_version;
	uint8_t package_id[16];
	uint8_t cohort_nonce[16];
	uint64_t issued_at;
	uint64_t deadline;
	float clip;			/* C */
	float sigma;			/* noise multiplier */
	float update_clip;		/* U */
	float lr;			/* eta */
	uint16_t epochs;		/* E */
	uint16_t batch;			/* B */
	uint8_t mode;			/* EDGE_UPDATE_MODE_* */
	/* Secure aggregation (mode SECAGG; all zero otherwise). */
	uint8_t fleet_id[EDGE_FLEET_ID_SIZE];
	uint16_t sa_t;			/* Shamir threshold */
	uint16_t sa_k;			/* neighbours per device */
	uint16_t sa_cohort;		/* most devices in the sum */
	uint8_t sa_scale_log2;		/* quantization scale 2^s */
};

/*
 * Parses and checks the ticket body (EDGE_TICKET_BODY_SIZE bytes, already
 * covered by a verified
 * signature); TEE_ERROR_BAD_FORMAT if bad. Separate from ticket_open() so
 * the fuzz harness reaches it without the aggregator's key.
 */
TEE_Result ticket_parse_body(const uint8_t *body, size_t len,
			     struct edge_ticket *t);

/* Envelope (aggregator anchor) and body fields; body refusals BAD_FORMAT. */
TEE_Result ticket_open(const uint8_t *buf, size_t len,
		       const uint8_t agg_id[EDGE_KEY_ID_SIZE],
		       const uint8_t agg_pub[EDGE_PUBKEY_SIZE],
		       struct edge_ticket *t);

/*
 * The state checks after the envelope: no policy -> NO_POLICY; no model ->
 * NO_MODEL; other version or package id -> WRONG_MODEL (a second
 * aggregator's "v1" is not ours); round <= last sealed -> REPLAY;
 * deadline < max(ree_time, floor) -> EXPIRED; C, sigma, U or (Poisson)
 * steps per round weaker than the policy, or a ticket without secure
 * aggregation under a policy that requires it -> POLICY_VIOLATION. why (may
 * be NULL) receives the field and values of a refusal.
 */
TEE_Result ticket_check(const struct edge_ticket *t,
			const struct edge_train_state *st,
			const struct edge_model *model, uint64_t ree_time,
			struct ticket_why *why);

/*
 * Steps T of a round with n examples (formats.md "Training and sealing"):
 * Poisson E * ceil(1/q) (n unused; 0 allowed), fixed-size E * ceil(n/B)
 * with B <= n and B/n <= q. POLICY_VIOLATION if the sampling constraints or
 * the per-round maximum are not met. The budget is not checked here. why as
 * for ticket_check.
 */
TEE_Result ticket_steps(const struct edge_ticket *t,
			const struct edge_policy *p, uint32_t n, uint64_t *T,
			struct ticket_why *why);

#endif /* EDGE_TICKET_H */
