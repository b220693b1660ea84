// SPDX-License-Identifier: BSD-2-Clause
/*
 * Privacy policies (ta/policy.c): policy_parse_body() on the body
 * directly, then INSTALL_POLICY's policy_open() under the model signer's
 * key of keys.tsv, as is and re-signed; a policy that opens is then used as
 * the TA uses it: budget block, steps left, and the step count of a ticket
 * (where a fuzzed q meets integer conversion).
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "envelope.h"
#include "fuzz_common.h"
#include "policy.h"
#include "ticket.h"

static void use_policy(const uint8_t *env, size_t len,
		       const struct edge_policy *p)
{
	struct edge_train_state st = { };
	struct edge_ticket t = { };
	uint8_t block[EDGE_BUDGET_SIZE] = { 0 };
	uint64_t steps = 0;

	FUZZ_ASSERT(p->version >= 1 && p->q > 0 && p->q <= 1);
	FUZZ_ASSERT(p->max_steps_per_round >= 1 &&
		    p->max_steps_per_round <= EDGE_MAX_STEPS_PER_ROUND);
	st.has_policy = true;
	st.policy = *p;
	st.steps_spent = p->step_budget / 2;
	if (len == EDGE_POLICY_SIZE)
		memcpy(st.policy_env, env, len);
	FUZZ_ASSERT(!train_budget_block(&st, block));
	FUZZ_ASSERT(train_steps_left(&st) <= p->step_budget);

	t.round_id = 1;
	t.clip = 1;
	t.update_clip = 1;
	t.lr = 0.1f;
	t.epochs = (uint16_t)(p->version | 1);
	t.batch = (uint16_t)(p->step_budget | 1);
	if (!ticket_steps(&t, p, (uint32_t)p->step_budget, &steps, NULL))
		FUZZ_ASSERT(steps >= 1 && steps <= p->max_steps_per_round);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct edge_policy p = { };
	const uint8_t *body = NULL;
	size_t body_len = 0;
	uint8_t *copy = NULL;

	fuzz_body(data, len, &body, &body_len);
	copy = fuzz_dup(body, body_len);
	if (!policy_parse_body(copy, body_len, &p))
		use_policy(data, len, &p);
	free(copy);

	if (!policy_open(data, len, fuzz_signer.id, fuzz_signer.pub, &p))
		use_policy(data, len, &p);

	copy = fuzz_dup(data, len);
	if (fuzz_resign(copy, len, &fuzz_signer) &&
	    !policy_open(copy, len, fuzz_signer.id, fuzz_signer.pub, &p))
		use_policy(copy, len, &p);
	free(copy);
	return 0;
}
