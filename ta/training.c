// SPDX-License-Identifier: BSD-2-Clause
/*
 * The private-training commands: privacy policy, budget, round ticket, and
 * TRAIN_AND_SEAL with its commit (checks, DP-SGD, the sealed update, the
 * spend recorded before anything is released).
 */
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "bytes.h"
#include "commands.h"
#include "dpsgd.h"
#include "envelope.h"
#include "gauss.h"
#include "policy.h"
#include "seal.h"
#include "state.h"

TEE_Result edge_cmd_install_policy(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS])
{
	struct edge_train_state st = { };
	struct edge_policy pol = { };
	uint8_t *env = NULL;
	size_t len = params[0].memref.size;
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	res = state_anchors();
	if (res)
		return res;
	res = copy_envelope(&params[0], EDGE_KIND_PRIVACY_POLICY, EDGE_POLICY_SIZE,
			    &env);
	if (!res)
		res = policy_open(env, len, edge_st.anchors.role[0].id,
				  edge_st.anchors.role[0].pub, &pol);
	if (!res)
		res = train_state_load(&st);
	if (!res && st.has_policy && pol.version <= st.policy.version)
		res = EDGE_ERR_ROLLBACK;
	if (!res) {
		/* Spent steps, rounds, replay and time floors carry over. */
		st.has_policy = true;
		st.policy = pol;
		TEE_MemMove(st.policy_env, env, EDGE_POLICY_SIZE);
		res = train_state_store(&st);
	}
	TEE_Free(env);
	if (res)
		EMSG("policy refused: 0x%x", (unsigned int)res);
	else
		IMSG("privacy policy installed");
	return res;
}

TEE_Result edge_cmd_budget_status(struct edge_session *sess,
				  TEE_Param params[TEE_NUM_PARAMS])
{
	struct edge_train_state st = { };
	uint8_t block[EDGE_BUDGET_SIZE] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	if (params[0].memref.size < EDGE_BUDGET_SIZE) {
		params[0].memref.size = EDGE_BUDGET_SIZE;
		return TEE_ERROR_SHORT_BUFFER;
	}
	res = train_state_load(&st);
	if (!res)
		res = train_budget_block(&st, block);
	if (res)
		return res;
	TEE_MemMove(params[0].memref.buffer, block, sizeof(block));
	params[0].memref.size = sizeof(block);
	return TEE_SUCCESS;
}

TEE_Result training_verify_ticket(const TEE_Param *p, uint64_t ree,
				  struct edge_ticket *t,
				  struct edge_train_state *st,
				  uint64_t *per_round)
{
	uint8_t *env = NULL;
	size_t len = p->memref.size;
	TEE_Result res = state_anchors();

	*per_round = 0;
	if (res)
		return res;
	res = copy_envelope(p, EDGE_KIND_ROUND_TICKET, EDGE_TICKET_SIZE, &env);
	if (!res)
		res = ticket_open(env, len, edge_st.anchors.role[1].id,
				  edge_st.anchors.role[1].pub, t);
	TEE_Free(env);
	if (!res)
		res = train_state_load(st);
	if (!res)
		res = state_model();
	if (!res)
		res = ticket_check(t, st, &edge_st.model, ree, NULL);
	if (!res && st->policy.sampling == EDGE_SAMPLING_POISSON)
		res = ticket_steps(t, &st->policy, 0, per_round, NULL);
	return res;
}

TEE_Result edge_cmd_verify_ticket(struct edge_session *sess,
				  TEE_Param params[TEE_NUM_PARAMS])
{
	struct edge_train_state st = { };
	struct edge_ticket t = { };
	uint64_t ree = (uint64_t)params[1].value.b << 32 | params[1].value.a;
	uint64_t left = 0;
	uint64_t per_round = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	/* A new VERIFY replaces the held ticket, whatever its outcome. */
	state_drop_ticket(sess);
	res = training_verify_ticket(&params[0], ree, &t, &st, &per_round);
	if (res) {
		EMSG("ticket refused: 0x%x", (unsigned int)res);
		return res;
	}
	left = train_steps_left(&st);
	sess->ticket = t;
	sess->ticket_ree_time = ree;
	sess->ticket_held = true;
	params[2].value.a = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
	params[2].value.b = (uint32_t)per_round;
	return TEE_SUCCESS;
}

/* Copies the labels into TA memory and checks each is < out. */
static TEE_Result copy_labels(const TEE_Param *p, uint32_t n, uint32_t out,
			      uint32_t **labels)
{
	uint8_t *raw = NULL;
	uint32_t *l = NULL;
	uint32_t i = 0;
	TEE_Result res = TEE_SUCCESS;

	*labels = NULL;
	raw = TEE_Malloc((size_t)n * 4, TEE_MALLOC_FILL_ZERO);
	l = TEE_Malloc((size_t)n * sizeof(uint32_t), TEE_MALLOC_FILL_ZERO);
	if (!raw || !l) {
		TEE_Free(raw);
		TEE_Free(l);
		return TEE_ERROR_OUT_OF_MEMORY;
	}
	TEE_MemMove(raw, p->memref.buffer, (size_t)n * 4);
	for (i = 0; i < n; i++) {
		l[i] = get_le32(raw + 4 * i);
		if (l[i] >= out)
			res = TEE_ERROR_BAD_PARAMETERS;
	}
	free_wiped(raw, (size_t)n * 4);
	if (res) {
		free_wiped(l, (size_t)n * sizeof(uint32_t));
		return res;
	}
	*labels = l;
	return TEE_SUCCESS;
}

TEE_Result edge_train_commit(struct edge_session *sess,
			     TEE_Param params[TEE_NUM_PARAMS],
			     uint8_t **update, size_t *update_len)
{
	struct edge_train_state st = { };
	struct edge_ticket t = { };
	struct edge_rng *rng = NULL;
	struct dpsgd_cfg cfg = { };
	struct seal_info si = { };
	uint32_t n = params[0].value.a;
	uint32_t *labels = NULL;
	double *delta = NULL;
	uint8_t *out = NULL;
	uint64_t feat_bytes = 0;
	uint64_t T = 0;
	uint32_t P = 0;
	size_t need = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	*update = NULL;
	*update_len = 0;
	if (!sess->ticket_held)
		return TEE_ERROR_BAD_STATE;
	t = sess->ticket;

	/* Everything VERIFY checked may have moved since (another session
	 * sealed a round, a new model or policy): check it all again. */
	res = state_model();
	if (!res)
		res = train_state_load(&st);
	if (!res)
		res = ticket_check(&t, &st, &edge_st.model,
				   sess->ticket_ree_time, NULL);
	if (res)
		goto out;

	if (n < 1) {
		res = TEE_ERROR_BAD_PARAMETERS;
		goto out;
	}
	/* n <= 4096 and I <= 4096 below: no overflow in 64 bits. */
	feat_bytes = (uint64_t)n * edge_st.model.in * 4;
	if (n > EDGE_MAX_TRAIN_EXAMPLES ||
	    feat_bytes > EDGE_MAX_TRAIN_FEATURE_BYTES) {
		res = TEE_ERROR_EXCESS_DATA;
		goto out;
	}
	if ((uint64_t)params[1].memref.size != feat_bytes ||
	    (uint64_t)params[2].memref.size != (uint64_t)n * 4) {
		res = TEE_ERROR_BAD_PARAMETERS;
		goto out;
	}
	P = edge_st.model.in * edge_st.model.out + edge_st.model.out;
	need = seal_size(P);
	if (params[3].memref.size < need) {
		/* The only refusal that keeps the ticket: just ask again. */
		params[3].memref.size = need;
		return TEE_ERROR_SHORT_BUFFER;
	}
	res = copy_labels(&params[2], n, edge_st.model.out, &labels);
	if (res)
		goto out;

	/* The round's cost, refused before any training. */
	res = ticket_steps(&t, &st.policy, n, &T, NULL);
	if (res)
		goto out;
	if (T > train_steps_left(&st)) {
		res = EDGE_ERR_BUDGET_EXHAUSTED;
		goto out;
	}
	res = state_identity(true);
	if (res)
		goto out;

	cfg.in = edge_st.model.in;
	cfg.out = edge_st.model.out;
	cfg.n = n;
	cfg.steps = T;
	cfg.sampling = st.policy.sampling;
	cfg.q = (double)st.policy.q;
	cfg.batch = t.batch;
	cfg.clip = (double)t.clip;
	cfg.sigma = (double)t.sigma;
	cfg.lr = (double)t.lr;
	delta = TEE_Malloc((size_t)P * sizeof(double), TEE_MALLOC_FILL_ZERO);
	rng = TEE_Malloc(sizeof(*rng), TEE_MALLOC_FILL_ZERO);
	if (!delta || !rng) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	rng_init(rng);
	res = dpsgd_run(&cfg, edge_st.model.head, params[1].memref.buffer, labels,
			rng, delta);
	rng_wipe(rng);
	if (res)
		goto out;

	out = TEE_Malloc(need, TEE_MALLOC_FILL_ZERO);
	if (!out) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	si.device_id = edge_st.identity.device_id;
	si.round_id = t.round_id;
	si.cohort_nonce = t.cohort_nonce;
	si.model_version = t.model_version;
	si.package_id = t.package_id;
	si.n = n;
	si.steps = (uint32_t)T;
	si.total_steps = st.steps_spent + T;
	si.params = P;
	si.update_clip = t.update_clip;
	si.sigma = t.sigma;
	si.clip = t.clip;
	if (t.mode == EDGE_UPDATE_MODE_SECAGG) {
		res = seal_write(&si, delta, out);
		if (!res)
			res = secagg_seal(&t, out, P,
					  st.policy.noise_share_min);
	} else {
		res = seal_build(&si, delta, edge_st.identity.sign_key, out);
	}
	if (res)
		goto out;

	/* Spend before release: one atomic write, then the update may go. */
	st.steps_spent += T;
	st.rounds_sealed++;
	st.last_round = t.round_id;
	if (t.issued_at > st.time_floor)
		st.time_floor = t.issued_at;
	if (sess->ticket_ree_time > st.time_floor)
		st.time_floor = sess->ticket_ree_time;
	res = train_state_store(&st);
	if (res)
		goto out;
	*update = out;
	*update_len = need;
	out = NULL;
out:
	/* The ticket is single-use: sealed or refused, it is gone. */
	state_drop_ticket(sess);
	TEE_MemFill(&t, 0, sizeof(t));
	free_wiped(out, need);
	free_wiped(delta, (size_t)P * sizeof(double));
	free_wiped(rng, sizeof(*rng));
	free_wiped(labels, (size_t)n * sizeof(uint32_t));
	if (res)
		EMSG("training refused: 0x%x", (unsigned int)res);
	return res;
}

TEE_Result edge_cmd_train_and_seal(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS])
{
	uint8_t *update = NULL;
	size_t len = 0;
	TEE_Result res = edge_train_commit(sess, params, &update, &len);

	if (res)
		return res;
	TEE_MemMove(params[3].memref.buffer, update, len);
	params[3].memref.size = len;
	TEE_MemFill(update, 0, len);
	TEE_Free(update);
	IMSG("round sealed");
	return TEE_SUCCESS;
}
