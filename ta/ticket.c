// SPDX-License-Identifier: BSD-2-Clause
/*
 * Round tickets (see ticket.h).
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "dpmath.h"
#include "envelope.h"
#include "ticket.h"

/*
 * The secure-aggregation fields (docs/secagg.md): t > k/2 (Bell et al.: a
 * majority of a neighbourhood), t <= k + 1 holders (the k neighbours and the
 * device itself), k even unless the graph is complete for the cohort, and a
 * scale at which cohort updates of norm U cannot overflow a signed 32-bit
 * sum: cohort * (floor(U * 2^s) + 1) <= 2^31 - 1 (edge/secagg/quantize.py).
 */
static TEE_Result ticket_check_secagg(const struct edge_ticket *x)
{
	double per = 0;

	if (x->sa_k < 1 || x->sa_k > EDGE_SECAGG_MAX_NEIGHBOURS ||
	    x->sa_cohort < 2 || x->sa_cohort > EDGE_SECAGG_MAX_COHORT ||
	    x->sa_scale_log2 > EDGE_TICKET_SECAGG_SCALE_LOG2_MAX)
		return TEE_ERROR_BAD_FORMAT;
	if (2 * (uint32_t)x->sa_t <= x->sa_k || x->sa_t > x->sa_k + 1)
		return TEE_ERROR_BAD_FORMAT;
	if (x->sa_k % 2 && x->sa_k + 1 < x->sa_cohort)
		return TEE_ERROR_BAD_FORMAT;
	per = (double)x->update_clip * (double)(1u << x->sa_scale_log2);
	if (!(per < 2147483647.0))
		return TEE_ERROR_BAD_FORMAT;
	/* floor(per) + 1 <= per + 1, in double exactly for per < 2^31. */
	if ((double)x->sa_cohort * ((double)(int64_t)per + 1.0) >
	    2147483647.0)
		return TEE_ERROR_BAD_FORMAT;
	return TEE_SUCCESS;
}

/* Every rule of a ticket body is a field rule of the contract's table. */
TEE_Result ticket_parse_body(const uint8_t *body, size_t len,
			     struct edge_ticket *t)
{
	struct edge_ticket x = { };
	TEE_Result res = TEE_ERROR_GENERIC;

	if (len != EDGE_TICKET_BODY_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	x.round_id = get_le64(body + EDGE_TICKET_OFF_ROUND_ID);
	x.model_version = get_le64(body + EDGE_TICKET_OFF_MODEL_VERSION);
	TEE_MemMove(x.package_id, body + EDGE_TICKET_OFF_PACKAGE_ID,
		    EDGE_TICKET_LEN_PACKAGE_ID);
	TEE_MemMove(x.cohort_nonce, body + EDGE_TICKET_OFF_NONCE,
		    EDGE_NONCE_SIZE);
	x.issued_at = get_le64(body + EDGE_TICKET_OFF_ISSUED_AT);
	x.deadline = get_le64(body + EDGE_TICKET_OFF_DEADLINE);
	x.clip = get_f32(body + EDGE_TICKET_OFF_EXAMPLE_CLIP);
	x.sigma = get_f32(body + EDGE_TICKET_OFF_NOISE_MULTIPLIER);
	x.update_clip = get_f32(body + EDGE_TICKET_OFF_UPDATE_CLIP);
	x.lr = get_f32(body + EDGE_TICKET_OFF_LEARNING_RATE);
	x.epochs = get_le16(body + EDGE_TICKET_OFF_EPOCHS);
	x.batch = get_le16(body + EDGE_TICKET_OFF_BATCH_SIZE);
	x.mode = body[EDGE_TICKET_OFF_UPDATE_MODE];
	if (!zeros_at(body + EDGE_TICKET_OFF_RESERVED,
		      EDGE_TICKET_LEN_RESERVED) ||
	    !zeros_at(body + EDGE_TICKET_OFF_RESERVED2,
		      EDGE_TICKET_LEN_RESERVED2))
		return TEE_ERROR_BAD_FORMAT;
	TEE_MemMove(x.fleet_id, body + EDGE_TICKET_OFF_FLEET_ID,
		    EDGE_FLEET_ID_SIZE);
	x.sa_t = get_le16(body + EDGE_TICKET_OFF_SECAGG_THRESHOLD);
	x.sa_k = get_le16(body + EDGE_TICKET_OFF_SECAGG_NEIGHBOURS);
	x.sa_cohort = get_le16(body + EDGE_TICKET_OFF_SECAGG_COHORT);
	x.sa_scale_log2 = body[EDGE_TICKET_OFF_SECAGG_SCALE_LOG2];

	if (x.round_id < EDGE_TICKET_ROUND_ID_MIN)
		return TEE_ERROR_BAD_FORMAT;
	if (!flt_finite(x.clip) || !flt_finite(x.sigma) ||
	    !flt_finite(x.update_clip) || !flt_finite(x.lr))
		return TEE_ERROR_BAD_FORMAT;
	if (!(x.clip > EDGE_TICKET_EXAMPLE_CLIP_MIN) ||
	    x.sigma < EDGE_TICKET_NOISE_MULTIPLIER_MIN ||
	    !(x.update_clip > EDGE_TICKET_UPDATE_CLIP_MIN) ||
	    !(x.lr > EDGE_TICKET_LEARNING_RATE_MIN))
		return TEE_ERROR_BAD_FORMAT;
	if (x.epochs < EDGE_TICKET_EPOCHS_MIN ||
	    x.batch < EDGE_TICKET_BATCH_SIZE_MIN)
		return TEE_ERROR_BAD_FORMAT;
	if (x.mode == EDGE_UPDATE_MODE_FLOAT32)
		res = zeros_at(body + EDGE_TICKET_OFF_FLEET_ID,
			       EDGE_TICKET_BODY_SIZE - EDGE_TICKET_OFF_FLEET_ID) ?
		      TEE_SUCCESS : TEE_ERROR_BAD_FORMAT;
	else if (x.mode == EDGE_UPDATE_MODE_SECAGG)
		res = ticket_check_secagg(&x);
	else
		res = TEE_ERROR_BAD_FORMAT;
	if (res)
		return res;
	*t = x;
	return TEE_SUCCESS;
}

TEE_Result ticket_open(const uint8_t *buf, size_t len,
		       const uint8_t agg_id[EDGE_KEY_ID_SIZE],
		       const uint8_t agg_pub[EDGE_PUBKEY_SIZE],
		       struct edge_ticket *t)
{
	struct edge_envelope env = { };
	TEE_Result res = TEE_ERROR_GENERIC;

	res = envelope_open(buf, len, EDGE_KIND_ROUND_TICKET, EDGE_TICKET_SIZE,
			    agg_id, agg_pub, &env);
	if (res)
		return res;
	return ticket_parse_body(env.body, env.body_len, t);
}

/* ceil(1/q) for q in (0, 1], computed as in double; capped above max. */
static uint64_t poisson_steps_per_epoch(float q, uint64_t cap)
{
	double d = 1.0 / (double)q;
	uint64_t c = 0;

	if (d > (double)cap)
		return cap + 1;
	c = (uint64_t)d;
	if ((double)c < d)
		c++;
	return c;
}

/* Records why (when asked) and returns res. */
static TEE_Result refuse(TEE_Result res, struct ticket_why *why,
			 uint16_t field, double value, double bound)
{
	if (why) {
		why->field = field;
		why->value = value;
		why->bound = bound;
	}
	return res;
}

TEE_Result ticket_steps(const struct edge_ticket *t,
			const struct edge_policy *p, uint32_t n, uint64_t *T,
			struct ticket_why *why)
{
	uint64_t per_epoch = 0;
	uint64_t steps = 0;

	*T = 0;
	if (p->sampling == EDGE_SAMPLING_POISSON) {
		per_epoch = poisson_steps_per_epoch(p->q,
						    p->max_steps_per_round);
	} else {
		if (n < 1 || t->batch > n)
			return refuse(EDGE_ERR_POLICY_VIOLATION, why,
				      EDGE_SKIP_FIELD_BATCH_SIZE, t->batch, n);
		/* B / n <= q: the batch may not sample more than the policy
		 * accounted for. */
		if ((double)t->batch / (double)n > (double)p->q)
			return refuse(EDGE_ERR_POLICY_VIOLATION, why,
				      EDGE_SKIP_FIELD_SAMPLING_RATE,
				      (double)t->batch / (double)n, p->q);
		per_epoch = ((uint64_t)n + t->batch - 1) / t->batch;
	}
	/* epochs <= 65535, per_epoch <= 100001 or n: no overflow. */
	steps = (uint64_t)t->epochs * per_epoch;
	if (steps > p->max_steps_per_round)
		return refuse(EDGE_ERR_POLICY_VIOLATION, why,
			      EDGE_SKIP_FIELD_STEPS_PER_ROUND, (double)steps,
			      p->max_steps_per_round);
	*T = steps;
	return TEE_SUCCESS;
}

TEE_Result ticket_check(const struct edge_ticket *t,
			const struct edge_train_state *st,
			const struct edge_model *model, uint64_t ree_time,
			struct ticket_why *why)
{
	const struct edge_policy *p = &st->policy;
	uint64_t now = ree_time > st->time_floor ? ree_time : st->time_floor;
	uint64_t T = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (why)
		why->field = EDGE_SKIP_FIELD_NONE;
	if (!st->has_policy)
		return EDGE_ERR_NO_POLICY;
	if (!model->present)
		return EDGE_ERR_NO_MODEL;
	/* Public values: a plain compare of the package id is fine. */
	if (t->model_version != model->version ||
	    TEE_MemCompare(t->package_id, model->package_id,
			   EDGE_TICKET_LEN_PACKAGE_ID))
		return refuse(EDGE_ERR_WRONG_MODEL, why, EDGE_SKIP_FIELD_MODEL,
			      (double)t->model_version,
			      (double)model->version);
	if (t->round_id <= st->last_round)
		return refuse(EDGE_ERR_REPLAY, why, EDGE_SKIP_FIELD_ROUND,
			      (double)t->round_id, (double)st->last_round);
	if (t->deadline < now)
		return refuse(EDGE_ERR_EXPIRED, why, EDGE_SKIP_FIELD_DEADLINE,
			      (double)t->deadline, (double)now);
	if (t->clip > p->clip_max)
		return refuse(EDGE_ERR_POLICY_VIOLATION, why,
			      EDGE_SKIP_FIELD_EXAMPLE_CLIP, t->clip,
			      p->clip_max);
	if (t->sigma < p->sigma_min)
		return refuse(EDGE_ERR_POLICY_VIOLATION, why,
			      EDGE_SKIP_FIELD_NOISE_MULTIPLIER, t->sigma,
			      p->sigma_min);
	if (t->update_clip > p->update_clip_max)
		return refuse(EDGE_ERR_POLICY_VIOLATION, why,
			      EDGE_SKIP_FIELD_UPDATE_CLIP, t->update_clip,
			      p->update_clip_max);
	if ((p->flags & EDGE_POLICY_F_REQUIRE_SECAGG) &&
	    t->mode != EDGE_UPDATE_MODE_SECAGG)
		return refuse(EDGE_ERR_POLICY_VIOLATION, why,
			      EDGE_SKIP_FIELD_UPDATE_MODE, t->mode,
			      EDGE_UPDATE_MODE_SECAGG);
	/* Only the masked path adds the distributed-DP noise share: any
	 * other release would carry less noise than the policy states. */
	if (p->noise_share_min > 0 && t->mode != EDGE_UPDATE_MODE_SECAGG)
		return refuse(EDGE_ERR_NOISE_SHARE_BELOW_POLICY, why,
			      EDGE_SKIP_FIELD_UPDATE_MODE, t->mode,
			      EDGE_UPDATE_MODE_SECAGG);
	if (p->sampling == EDGE_SAMPLING_POISSON) {
		res = ticket_steps(t, p, 0, &T, why);
		if (res)
			return res;
	}
	return TEE_SUCCESS;
}
