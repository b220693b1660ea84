/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The privacy policy (kind 6, docs/formats.md "Privacy policy") and the
 * training state: one secure-storage object holding the installed policy
 * envelope, the steps spent, the rounds sealed, the last sealed round id and
 * the time floor. It is always written whole, in one atomic
 * TEE_CreatePersistentObject(OVERWRITE), and read fresh by every training
 * command, so two sessions never act on a stale copy.
 */
#ifndef EDGE_POLICY_H
#define EDGE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

struct edge_policy {
	uint64_t version;
	float sigma_min;
	float clip_max;
	float update_clip_max;
	float q;
	uint8_t sampling;		/* EDGE_SAMPLING_* */
	uint8_t flags;			/* EDGE_POLICY_F_* */
	uint32_t max_steps_per_round;
	uint64_t step_budget;
	double target_epsilon;
	double delta;
	uint32_t accountant;
	float noise_share_min;		/* distributed DP: z_s, 0 = none */
	/* The signed steps -> epsilon table (docs/privacy.md). */
	uint32_t table_count;
	uint64_t table_steps[EDGE_POLICY_TABLE_ENTRIES];
	double table_epsilon[EDGE_POLICY_TABLE_ENTRIES];
};

struct edge_train_state {
	bool has_policy;
	struct edge_policy policy;
	uint8_t policy_env[EDGE_POLICY_SIZE];	/* the verified envelope */
	uint64_t steps_spent;
	uint64_t rounds_sealed;
	uint64_t last_round;		/* 0 = none */
	uint64_t time_floor;		/* Unix seconds */
};

/* Parses and checks the policy body (table included); TEE_ERROR_BAD_FORMAT
 * if bad. */
TEE_Result policy_parse_body(const uint8_t *body, size_t len,
			     struct edge_policy *p);

/*
 * Verifies a policy envelope (a TA copy): kind 6, at most EDGE_POLICY_SIZE,
 * signer = the model-signer anchor (id, pub), signature, then the body.
 */
TEE_Result policy_open(const uint8_t *buf, size_t len,
		       const uint8_t signer_id[EDGE_KEY_ID_SIZE],
		       const uint8_t signer_pub[EDGE_PUBKEY_SIZE],
		       struct edge_policy *p);

/* Reads the state; a missing object gives an empty state and success. */
TEE_Result train_state_load(struct edge_train_state *st);
/* Writes the whole state in one atomic object write. */
TEE_Result train_state_store(const struct edge_train_state *st);

/* Budget left: step budget - steps spent, 0 if spent is above it. */
uint64_t train_steps_left(const struct edge_train_state *st);

/*
 * Epsilon after `steps` steps from the policy's table: the entry of the
 * smallest step count >= steps (an upper bound), 0 for no step, +inf past the
 * table or without one (no-DP policy).
 */
double policy_epsilon_at(const struct edge_policy *p, uint64_t steps);

/* Fills the EDGE_BUDGET_SIZE block of BUDGET_STATUS. */
TEE_Result train_budget_block(const struct edge_train_state *st,
			      uint8_t block[EDGE_BUDGET_SIZE]);

#endif /* EDGE_POLICY_H */
