// SPDX-License-Identifier: BSD-2-Clause
/*
 * Round tickets (see ticket.h).
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "dpmath.h"
#include "envelope.h"
#include "ticket.h"

TEE_Result ticket_parse_body(const uint8_t *body, size_t len,
			     struct edge_ticket *t)
{
	struct edge_rd r = { };
	struct edge_ticket x = { };
	const uint8_t *nonce = NULL;
	bool reserved_ok = true;

	if (len != EDGE_TICKET_BODY_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	rd_init(&r, body, len);
	x.round_id = rd_u64(&r);
	x.model_version = rd_u64(&r);
	nonce = rd_bytes(&r, sizeof(x.cohort_nonce));
	x.issued_at = rd_u64(&r);
	x.deadline = rd_u64(&r);
	x.clip = rd_f32(&r);
	x.sigma = rd_f32(&r);
	x.update_clip = rd_f32(&r);
	x.lr = rd_f32(&r);
	x.epochs = rd_u16(&r);
	x.batch = rd_u16(&r);
	x.mode = rd_u8(&r);
	reserved_ok &= rd_zeros(&r, 3);
	if (r.err || !nonce || rd_left(&r) || !reserved_ok)
		return TEE_ERROR_BAD_FORMAT;
	TEE_MemMove(x.cohort_nonce, nonce, sizeof(x.cohort_nonce));

	if (x.round_id < 1)
		return TEE_ERROR_BAD_FORMAT;
	if (!flt_finite(x.clip) || !flt_finite(x.sigma) ||
	    !flt_finite(x.update_clip) || !flt_finite(x.lr))
		return TEE_ERROR_BAD_FORMAT;
	if (!(x.clip > 0) || x.sigma < 0 || !(x.update_clip > 0) ||
	    !(x.lr > 0))
		return TEE_ERROR_BAD_FORMAT;
	if (x.epochs < 1 || x.batch < 1 ||
	    x.mode != EDGE_UPDATE_MODE_FLOAT32)
		return TEE_ERROR_BAD_FORMAT;
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

	res = envelope_open(buf, len, EDGE_KIND_TICKET, EDGE_TICKET_SIZE,
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

TEE_Result ticket_steps(const struct edge_ticket *t,
			const struct edge_policy *p, uint32_t n, uint64_t *T)
{
	uint64_t per_epoch = 0;
	uint64_t steps = 0;

	*T = 0;
	if (p->sampling == EDGE_SAMPLING_POISSON) {
		per_epoch = poisson_steps_per_epoch(p->q,
						    p->max_steps_per_round);
	} else {
		if (n < 1 || t->batch > n)
			return EDGE_ERR_POLICY_VIOLATION;
		/* B / n <= q: the batch may not sample more than the policy
		 * accounted for. */
		if ((double)t->batch / (double)n > (double)p->q)
			return EDGE_ERR_POLICY_VIOLATION;
		per_epoch = ((uint64_t)n + t->batch - 1) / t->batch;
	}
	/* epochs <= 65535, per_epoch <= 100001 or n: no overflow. */
	steps = (uint64_t)t->epochs * per_epoch;
	if (steps > p->max_steps_per_round)
		return EDGE_ERR_POLICY_VIOLATION;
	*T = steps;
	return TEE_SUCCESS;
}

TEE_Result ticket_check(const struct edge_ticket *t,
			const struct edge_train_state *st, bool model_present,
			uint64_t model_version, uint64_t ree_time)
{
	const struct edge_policy *p = &st->policy;
	uint64_t now = ree_time > st->time_floor ? ree_time : st->time_floor;
	uint64_t T = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!st->has_policy)
		return EDGE_ERR_NO_POLICY;
	if (!model_present)
		return EDGE_ERR_NO_MODEL;
	if (t->model_version != model_version)
		return EDGE_ERR_WRONG_MODEL;
	if (t->round_id <= st->last_round)
		return EDGE_ERR_REPLAY;
	if (t->deadline < now)
		return EDGE_ERR_EXPIRED;
	if (t->clip > p->clip_max || t->sigma < p->sigma_min ||
	    t->update_clip > p->update_clip_max)
		return EDGE_ERR_POLICY_VIOLATION;
	if (p->sampling == EDGE_SAMPLING_POISSON) {
		res = ticket_steps(t, p, 0, &T);
		if (res)
			return res;
	}
	return TEE_SUCCESS;
}
