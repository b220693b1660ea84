// SPDX-License-Identifier: BSD-2-Clause
/*
 * SIGN_SKIP: a skip report (kind 12, docs/formats.md "Skip report"), signed
 * by the identity key, naming why this device does not train the round of
 * an authentic ticket. The TA computes its own refusal (field and both
 * values) from the ticket and its stored state, so the aggregator can trust
 * "weaker-than-policy: noise_multiplier 1 < sigma_min 1.1" as far as it
 * trusts the TA; the normal world's reason is carried as stated.
 */
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "bytes.h"
#include "commands.h"
#include "crypto.h"
#include "envelope.h"
#include "policy.h"
#include "state.h"
#include "ticket.h"

/* The refusal VERIFY_TICKET, then TRAIN_AND_SEAL's step and budget checks
 * (with n > 0) would return; why names the field and values. */
static TEE_Result skip_refusal(const struct edge_ticket *t,
			       const struct edge_train_state *st,
			       uint64_t ree, uint32_t n,
			       struct ticket_why *why)
{
	uint64_t steps = 0;
	uint64_t left = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	res = ticket_check(t, st, &edge_st.model, ree, why);
	if (res || !n)
		return res;
	res = ticket_steps(t, &st->policy, n, &steps, why);
	if (res)
		return res;
	left = train_steps_left(st);
	if (steps > left) {
		why->field = EDGE_SKIP_FIELD_BUDGET;
		why->value = (double)steps;
		why->bound = (double)left;
		return EDGE_ERR_BUDGET_EXHAUSTED;
	}
	return TEE_SUCCESS;
}

static void put_f64(uint8_t *p, double v)
{
	put_le64(p, dbl_bits(v));
}

static void skip_body(uint8_t *b, const struct edge_ticket *t,
		      TEE_Result refusal, uint16_t reason,
		      const struct ticket_why *why, uint64_t ree)
{
	TEE_MemMove(b + EDGE_SKIP_OFF_DEVICE_ID, edge_st.identity.device_id,
		    EDGE_SKIP_LEN_DEVICE_ID);
	put_le64(b + EDGE_SKIP_OFF_ROUND_ID, t->round_id);
	TEE_MemMove(b + EDGE_SKIP_OFF_NONCE, t->cohort_nonce,
		    EDGE_SKIP_LEN_NONCE);
	put_le64(b + EDGE_SKIP_OFF_TICKET_MODEL_VERSION, t->model_version);
	TEE_MemMove(b + EDGE_SKIP_OFF_TICKET_PACKAGE_ID, t->package_id,
		    EDGE_SKIP_LEN_TICKET_PACKAGE_ID);
	if (edge_st.model.present) {
		put_le64(b + EDGE_SKIP_OFF_MODEL_VERSION,
			 edge_st.model.version);
		TEE_MemMove(b + EDGE_SKIP_OFF_PACKAGE_ID,
			    edge_st.model.package_id,
			    EDGE_SKIP_LEN_PACKAGE_ID);
	}
	put_le32(b + EDGE_SKIP_OFF_RESULT, refusal);
	put_le16(b + EDGE_SKIP_OFF_REE_REASON, reason);
	put_le16(b + EDGE_SKIP_OFF_FIELD, why->field);
	put_f64(b + EDGE_SKIP_OFF_VALUE, why->value);
	put_f64(b + EDGE_SKIP_OFF_BOUND, why->bound);
	put_le64(b + EDGE_SKIP_OFF_REPORTED_AT, ree);
}

TEE_Result edge_cmd_sign_skip(struct edge_session *sess,
			      TEE_Param params[TEE_NUM_PARAMS])
{
	struct edge_train_state st = { };
	struct edge_ticket t = { };
	struct ticket_why why = { };
	uint8_t out[EDGE_SKIP_REPORT_SIZE] = { 0 };
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };
	uint8_t *env = NULL;
	size_t len = params[0].memref.size;
	uint64_t ree = (uint64_t)params[1].value.b << 32 | params[1].value.a;
	uint32_t reason = params[3].value.a;
	uint32_t n = params[3].value.b;
	TEE_Result refusal = TEE_ERROR_GENERIC;
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	if (reason > EDGE_SKIP_REE_DATA_SOURCE || n > EDGE_MAX_TRAIN_EXAMPLES)
		return TEE_ERROR_BAD_PARAMETERS;
	if (params[2].memref.size < EDGE_SKIP_REPORT_SIZE) {
		params[2].memref.size = EDGE_SKIP_REPORT_SIZE;
		return TEE_ERROR_SHORT_BUFFER;
	}
	/* Only an authentic ticket names a round worth reporting on. */
	res = state_anchors();
	if (!res)
		res = copy_envelope(&params[0], EDGE_KIND_ROUND_TICKET,
				    EDGE_TICKET_SIZE, &env);
	if (!res)
		res = ticket_open(env, len, edge_st.anchors.role[1].id,
				  edge_st.anchors.role[1].pub, &t);
	TEE_Free(env);
	if (!res)
		res = train_state_load(&st);
	if (!res)
		res = state_model();
	if (!res)
		res = state_identity(true);
	if (res)
		return res;

	refusal = skip_refusal(&t, &st, ree, n, &why);
	if (!refusal && reason == EDGE_SKIP_REE_NONE)
		return EDGE_ERR_NOTHING_TO_REPORT;

	envelope_put_header(out, EDGE_KIND_SKIP_REPORT, EDGE_SKIP_BODY_SIZE,
			    edge_st.identity.device_id);
	skip_body(out + EDGE_ENVELOPE_HEADER_SIZE, &t, refusal,
		  (uint16_t)reason, &why, ree);
	res = edge_sha256(out, EDGE_ENVELOPE_HEADER_SIZE + EDGE_SKIP_BODY_SIZE,
			  digest);
	if (!res)
		res = edge_ed25519_sign(edge_st.identity.sign_key, digest,
					out + EDGE_ENVELOPE_HEADER_SIZE +
					EDGE_SKIP_BODY_SIZE);
	if (res)
		return res;
	TEE_MemMove(params[2].memref.buffer, out, sizeof(out));
	params[2].memref.size = sizeof(out);
	params[3].value.a = refusal;
	params[3].value.b = why.field;
	return TEE_SUCCESS;
}
