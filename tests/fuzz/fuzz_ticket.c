// SPDX-License-Identifier: BSD-2-Clause
/*
 * Round tickets (ta/ticket.c): ticket_parse_body() on the body directly,
 * then ticket_open() under the aggregator's key of keys.tsv, as is and
 * re-signed, and for every ticket that opens, VERIFY_TICKET's state checks
 * (ticket_check) and TRAIN_AND_SEAL's step count (ticket_steps) against a
 * Poisson and a fixed-size policy.
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "fuzz_common.h"
#include "policy.h"
#include "ticket.h"

static struct edge_train_state states[2];

static void init_states(void)
{
	struct edge_policy *p = NULL;
	size_t i = 0;

	for (i = 0; i < 2; i++) {
		p = &states[i].policy;
		states[i].has_policy = true;
		states[i].last_round = 2;
		states[i].time_floor = 1700000000;
		p->version = 1;
		p->sigma_min = 1.0f;
		p->clip_max = 1.0f;
		p->update_clip_max = 1.0f;
		p->q = i ? 0.25f : 0.05f;
		p->sampling = i ? EDGE_SAMPLING_FIXED : EDGE_SAMPLING_POISSON;
		p->max_steps_per_round = 200;
		p->step_budget = 100000;
		p->target_epsilon = 8;
		p->delta = 1e-5;
		p->accountant = 1;
	}
}

static void check_opened(const struct edge_ticket *t)
{
	static const struct edge_model absent = { .present = false };
	static const struct edge_model loaded = { .present = true, .version = 1 };
	struct ticket_why why = { };
	uint64_t steps = 0;
	size_t i = 0;
	uint32_t n = (uint32_t)(t->round_id ^ t->issued_at);

	FUZZ_ASSERT(t->round_id >= 1 && t->epochs >= 1 && t->batch >= 1);
	FUZZ_ASSERT(t->clip > 0 && t->update_clip > 0 && t->lr > 0 &&
		    t->sigma >= 0);
	for (i = 0; i < 2; i++) {
		(void)ticket_check(t, &states[i], &loaded, t->issued_at, &why);
		(void)ticket_check(t, &states[i], &absent, 0, NULL);
		if (!ticket_steps(t, &states[i].policy, n, &steps, &why))
			FUZZ_ASSERT(steps >= 1 && steps <=
				    states[i].policy.max_steps_per_round);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool ready;
	struct edge_ticket t = { };
	const uint8_t *body = NULL;
	size_t body_len = 0;
	uint8_t *copy = NULL;

	if (!ready) {
		init_states();
		ready = true;
	}
	fuzz_body(data, len, &body, &body_len);
	copy = fuzz_dup(body, body_len);
	if (!ticket_parse_body(copy, body_len, &t))
		check_opened(&t);
	free(copy);

	if (!ticket_open(data, len, fuzz_aggregator.id, fuzz_aggregator.pub,
			 &t))
		check_opened(&t);

	copy = fuzz_dup(data, len);
	if (fuzz_resign(copy, len, &fuzz_aggregator) &&
	    !ticket_open(copy, len, fuzz_aggregator.id, fuzz_aggregator.pub,
			 &t))
		check_opened(&t);
	free(copy);
	return 0;
}
