// SPDX-License-Identifier: BSD-2-Clause
/*
 * Privacy policy parsing and the training-state object (see policy.h).
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "crypto.h"
#include "dpmath.h"
#include "envelope.h"
#include "policy.h"
#include "storage.h"

/* flags u32, reserved u32, spent, rounds, last round, floor, envelope. */
#define STATE_FIXED		40
#define STATE_PAYLOAD		(STATE_FIXED + EDGE_POLICY_SIZE)
#define STATE_F_POLICY		0x1

/*
 * The steps -> epsilon table: count entries (1..32; 0 only for a no-DP
 * policy), steps strictly increasing from >= 1 and ending at the step
 * budget, epsilon finite, > 0 and non-decreasing, every byte past the count
 * zero. Read with explicit offsets inside the fixed-size body.
 */
static TEE_Result parse_table(const uint8_t *body, struct edge_policy *t)
{
	const uint8_t *tab = body + EDGE_POLICY_OFF_EPSILON_TABLE;
	uint64_t prev_steps = 0;
	double prev_eps = 0;
	uint32_t i = 0;

	t->table_count = get_le32(body + EDGE_POLICY_OFF_TABLE_COUNT);
	if (t->table_count > EDGE_POLICY_TABLE_ENTRIES)
		return TEE_ERROR_BAD_FORMAT;
	if (!t->table_count && !(t->flags & EDGE_POLICY_F_NO_DP))
		return TEE_ERROR_BAD_FORMAT;
	for (i = 0; i < t->table_count; i++) {
		const uint8_t *e = tab + (size_t)i * EDGE_POLICY_TABLE_ENTRY_SIZE;

		t->table_steps[i] = get_le64(e);
		t->table_epsilon[i] = get_f64(e + 8);
		if (t->table_steps[i] <= prev_steps ||
		    !dbl_finite(t->table_epsilon[i]) ||
		    !(t->table_epsilon[i] > 0) ||
		    t->table_epsilon[i] < prev_eps)
			return TEE_ERROR_BAD_FORMAT;
		prev_steps = t->table_steps[i];
		prev_eps = t->table_epsilon[i];
	}
	if (t->table_count && prev_steps != t->step_budget)
		return TEE_ERROR_BAD_FORMAT;
	if (!zeros_at(tab + (size_t)t->table_count * EDGE_POLICY_TABLE_ENTRY_SIZE,
		      (size_t)(EDGE_POLICY_TABLE_ENTRIES - t->table_count) *
		      EDGE_POLICY_TABLE_ENTRY_SIZE))
		return TEE_ERROR_BAD_FORMAT;
	return TEE_SUCCESS;
}

/*
 * Field offsets, sizes and ranges come from the contract (edge_ta.h); the
 * rules written here are the cross-field ones: sigma_min = 0 (or -0) only
 * for a no-DP test policy, and the table's.
 */
TEE_Result policy_parse_body(const uint8_t *body, size_t len,
			     struct edge_policy *p)
{
	struct edge_policy t = { };

	if (len != EDGE_POLICY_BODY_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	t.version = get_le64(body + EDGE_POLICY_OFF_VERSION);
	t.sigma_min = get_f32(body + EDGE_POLICY_OFF_NOISE_MULTIPLIER_MIN);
	t.clip_max = get_f32(body + EDGE_POLICY_OFF_MAX_EXAMPLE_CLIP);
	t.update_clip_max = get_f32(body + EDGE_POLICY_OFF_MAX_UPDATE_CLIP);
	t.q = get_f32(body + EDGE_POLICY_OFF_SAMPLING_RATE);
	t.sampling = body[EDGE_POLICY_OFF_SAMPLING];
	t.flags = body[EDGE_POLICY_OFF_FLAGS];
	t.max_steps_per_round =
		get_le32(body + EDGE_POLICY_OFF_MAX_STEPS_PER_ROUND);
	t.step_budget = get_le64(body + EDGE_POLICY_OFF_STEP_BUDGET);
	t.target_epsilon = get_f64(body + EDGE_POLICY_OFF_TARGET_EPSILON);
	t.delta = get_f64(body + EDGE_POLICY_OFF_DELTA);
	t.accountant = get_le32(body + EDGE_POLICY_OFF_ACCOUNTANT);
	t.noise_share_min = get_f32(body + EDGE_POLICY_OFF_MIN_NOISE_SHARE);
	if (!zeros_at(body + EDGE_POLICY_OFF_RESERVED1,
		      EDGE_POLICY_LEN_RESERVED1) ||
	    !zeros_at(body + EDGE_POLICY_OFF_RESERVED2,
		      EDGE_POLICY_LEN_RESERVED2))
		return TEE_ERROR_BAD_FORMAT;

	if (t.version < EDGE_POLICY_VERSION_MIN)
		return TEE_ERROR_BAD_FORMAT;
	if (!flt_finite(t.sigma_min) || !flt_finite(t.clip_max) ||
	    !flt_finite(t.update_clip_max) || !flt_finite(t.q) ||
	    !dbl_finite(t.target_epsilon) || !dbl_finite(t.delta) ||
	    !flt_finite(t.noise_share_min))
		return TEE_ERROR_BAD_FORMAT;
	if (t.flags & ~(uint8_t)EDGE_POLICY_F_ALL)
		return TEE_ERROR_BAD_FORMAT;
	if (t.sigma_min < EDGE_POLICY_NOISE_MULTIPLIER_MIN_MIN ||
	    t.noise_share_min < EDGE_POLICY_MIN_NOISE_SHARE_MIN)
		return TEE_ERROR_BAD_FORMAT;
	if (!(t.sigma_min > 0) && !(t.flags & EDGE_POLICY_F_NO_DP))
		return TEE_ERROR_BAD_FORMAT;
	if (!(t.clip_max > EDGE_POLICY_MAX_EXAMPLE_CLIP_MIN) ||
	    !(t.update_clip_max > EDGE_POLICY_MAX_UPDATE_CLIP_MIN))
		return TEE_ERROR_BAD_FORMAT;
	if (!(t.q > EDGE_POLICY_SAMPLING_RATE_MIN) ||
	    t.q > EDGE_POLICY_SAMPLING_RATE_MAX)
		return TEE_ERROR_BAD_FORMAT;
	if (t.sampling != EDGE_SAMPLING_POISSON &&
	    t.sampling != EDGE_SAMPLING_FIXED)
		return TEE_ERROR_BAD_FORMAT;
	if (t.max_steps_per_round < EDGE_POLICY_MAX_STEPS_PER_ROUND_MIN ||
	    t.max_steps_per_round > EDGE_POLICY_MAX_STEPS_PER_ROUND_MAX)
		return TEE_ERROR_BAD_FORMAT;
	if (t.step_budget < EDGE_POLICY_STEP_BUDGET_MIN)
		return TEE_ERROR_BAD_FORMAT;
	/* Informational for the TA, but an unknown value is not a policy. */
	if (t.accountant != EDGE_ACCOUNTANT_RDP &&
	    t.accountant != EDGE_ACCOUNTANT_PLD)
		return TEE_ERROR_BAD_FORMAT;
	if (parse_table(body, &t))
		return TEE_ERROR_BAD_FORMAT;
	*p = t;
	return TEE_SUCCESS;
}

TEE_Result policy_open(const uint8_t *buf, size_t len,
		       const uint8_t signer_id[EDGE_KEY_ID_SIZE],
		       const uint8_t signer_pub[EDGE_PUBKEY_SIZE],
		       struct edge_policy *p)
{
	struct edge_envelope env = { };
	TEE_Result res = TEE_ERROR_GENERIC;

	res = envelope_open(buf, len, EDGE_KIND_PRIVACY_POLICY, EDGE_POLICY_SIZE,
			    signer_id, signer_pub, &env);
	if (res)
		return res;
	return policy_parse_body(env.body, env.body_len, p);
}

TEE_Result train_state_load(struct edge_train_state *st)
{
	struct edge_train_state t = { };
	uint8_t *buf = NULL;
	size_t len = 0;
	const uint8_t *p = NULL;
	uint32_t flags = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	TEE_MemFill(st, 0, sizeof(*st));
	res = storage_get(EDGE_OBJ_TRAIN, EDGE_TAG_TRAIN, STATE_PAYLOAD,
			  STATE_PAYLOAD, &buf, &len);
	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		return TEE_SUCCESS;
	if (res)
		return res;
	p = buf + EDGE_STORE_HDR_SIZE;
	flags = get_le32(p);
	t.steps_spent = get_le64(p + 8);
	t.rounds_sealed = get_le64(p + 16);
	t.last_round = get_le64(p + 24);
	t.time_floor = get_le64(p + 32);
	TEE_MemMove(t.policy_env, p + STATE_FIXED, EDGE_POLICY_SIZE);
	if (flags & ~(uint32_t)STATE_F_POLICY || get_le32(p + 4)) {
		res = TEE_ERROR_CORRUPT_OBJECT;
	} else if (flags & STATE_F_POLICY) {
		/* Verified at install; the stored copy is trusted storage. */
		t.has_policy = true;
		if (envelope_precheck(t.policy_env, EDGE_POLICY_SIZE,
				      EDGE_KIND_PRIVACY_POLICY, EDGE_POLICY_SIZE) ||
		    policy_parse_body(t.policy_env + EDGE_ENVELOPE_HEADER_SIZE,
				      EDGE_POLICY_BODY_SIZE, &t.policy))
			res = TEE_ERROR_CORRUPT_OBJECT;
	}
	TEE_MemFill(buf, 0, len);
	TEE_Free(buf);
	if (res) {
		EMSG("stored training state is inconsistent");
		return res;
	}
	*st = t;
	return TEE_SUCCESS;
}

TEE_Result train_state_store(const struct edge_train_state *st)
{
	uint8_t buf[EDGE_STORE_HDR_SIZE + STATE_PAYLOAD] = { 0 };
	uint8_t *p = buf + EDGE_STORE_HDR_SIZE;

	storage_hdr_init(buf, EDGE_TAG_TRAIN);
	put_le32(p, st->has_policy ? STATE_F_POLICY : 0);
	put_le64(p + 8, st->steps_spent);
	put_le64(p + 16, st->rounds_sealed);
	put_le64(p + 24, st->last_round);
	put_le64(p + 32, st->time_floor);
	if (st->has_policy)
		TEE_MemMove(p + STATE_FIXED, st->policy_env, EDGE_POLICY_SIZE);
	return storage_put(EDGE_OBJ_TRAIN, buf, sizeof(buf), true);
}

uint64_t train_steps_left(const struct edge_train_state *st)
{
	if (!st->has_policy || st->steps_spent >= st->policy.step_budget)
		return 0;
	return st->policy.step_budget - st->steps_spent;
}

double policy_epsilon_at(const struct edge_policy *p, uint64_t steps)
{
	uint32_t i = 0;

	if (!steps)
		return 0;
	for (i = 0; i < p->table_count; i++)
		if (p->table_steps[i] >= steps)
			return p->table_epsilon[i];
	return dbl_from_bits(0x7ff0000000000000ull);	/* +inf */
}

TEE_Result train_budget_block(const struct edge_train_state *st,
			      uint8_t block[EDGE_BUDGET_SIZE])
{
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	TEE_MemFill(block, 0, EDGE_BUDGET_SIZE);
	put_le64(block + EDGE_BUDGET_OFF_STEPS_SPENT, st->steps_spent);
	put_le64(block + EDGE_BUDGET_OFF_ROUNDS_SEALED, st->rounds_sealed);
	put_le64(block + EDGE_BUDGET_OFF_LAST_ROUND, st->last_round);
	put_le64(block + EDGE_BUDGET_OFF_TIME_FLOOR, st->time_floor);
	if (!st->has_policy)
		return TEE_SUCCESS;
	put_le32(block + EDGE_BUDGET_OFF_FLAGS, EDGE_BUDGET_F_POLICY);
	put_le64(block + EDGE_BUDGET_OFF_STEP_BUDGET, st->policy.step_budget);
	put_le64(block + EDGE_BUDGET_OFF_POLICY_VERSION, st->policy.version);
	put_le64(block + EDGE_BUDGET_OFF_EPSILON_SPENT,
		 dbl_bits(policy_epsilon_at(&st->policy, st->steps_spent)));
	put_le64(block + EDGE_BUDGET_OFF_EPSILON_BUDGET,
		 dbl_bits(policy_epsilon_at(&st->policy, st->policy.step_budget)));
	put_le64(block + EDGE_BUDGET_OFF_DELTA, dbl_bits(st->policy.delta));
	res = edge_sha256(st->policy_env, EDGE_POLICY_SIZE, digest);
	if (res)
		return res;
	TEE_MemMove(block + EDGE_BUDGET_OFF_POLICY_ID, digest, EDGE_POLICY_ID_SIZE);
	return TEE_SUCCESS;
}
