// SPDX-License-Identifier: BSD-2-Clause
/*
 * Private training in the edge TA, through its command handlers in-process
 * (parameter types as the dispatcher checks them), over a fresh simulated
 * secure storage: privacy policy install/replace/rollback and every
 * malformed field; round ticket refusal classes in formats.md order (bad
 * signature, unknown signer, malformed fields, no policy, no model, wrong
 * model, replay, expired by REE time and by the stored floor, each
 * weaker-than-policy field); DP-SGD against a double-precision reference
 * with noise off (no-DP test policy, full batches); the sealed update's
 * layout, signature and norm bound; exact budget accounting across rounds
 * and budget exhaustion; the spend recorded before the release; the held
 * ticket (short buffer keeps it, refusals drop it, two sessions); and that
 * no refusal changes the budget, replay or time state.
 *
 * Usage: ta_test_train [tests/vectors]   (the argument is not needed)
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>
#include <gp_sim.h>
#include <user_ta_header_defines.h>

#include "bytes.h"
#include "commands.h"
#include "crypto.h"
#include "envelope.h"
#include "kdf.h"
#include "seal.h"
#include "state.h"

#define HARNESS_TA
#include "harness.h"
#include "test_package.h"

static uint32_t f2u(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

/* Where a sealed update's delta starts. */
#define UPDATE_DELTA_OFF (EDGE_ENVELOPE_HEADER_SIZE + EDGE_UPDATE_HEADER_SIZE)

/* ---- Keys and signing --------------------------------------------------- */

/* ---- Model packages without backbone (formats.md key schedule) -------- */

struct device {
	uint8_t sign_pub[32];
	uint8_t kex_pub[32];
	uint8_t id[16];
};

/*
 * A head-only package manifest and its key wrap for one recipient; the
 * caller frees *res.
 */
static void build_package(uint64_t version, uint32_t in, uint32_t out,
			  const float *head, const struct device *dev,
			  const struct ed_key *signer, uint8_t **res,
			  size_t *res_len, uint8_t wrap[EDGE_KEY_WRAP_SIZE])
{
	struct recipient r = { };
	struct pkg_spec sp = {
		.version = version, .in = in, .out = out, .head = head,
		.rcpt = &r, .nrcpt = 1, .signer = signer,
	};
	struct built b = { };

	memcpy(r.kex_pub, dev->kex_pub, sizeof(r.kex_pub));
	memcpy(r.id, dev->id, sizeof(r.id));
	pkg_build(&sp, &b);
	*res = b.manifest;
	*res_len = b.manifest_len;
	memcpy(wrap, b.wrap, EDGE_KEY_WRAP_SIZE);
	b.manifest = NULL;
	built_free(&b);
}

/* ---- Policies and tickets ----------------------------------------------- */

struct pol {
	uint64_t version;
	float sigma_min, clip_max, uclip_max, q;
	uint8_t sampling, flags;
	uint16_t reserved1;
	uint32_t max_steps;
	uint64_t budget;
	double eps, delta;
	uint32_t accountant, reserved2;
	uint32_t table_count;		/* 0: one entry (budget, eps) unless no-DP */
	uint64_t table_steps[2];	/* both written: [1] is junk if count 1 */
	double table_eps[2];
	bool no_table;			/* count 0 even without no-DP */
};

static void build_policy(const struct pol *s, const struct ed_key *by,
			 uint8_t out[EDGE_POLICY_SIZE])
{
	uint8_t *b = out + EDGE_ENVELOPE_HEADER_SIZE;
	uint64_t u;

	memset(out, 0, EDGE_POLICY_SIZE);
	envelope_put_header(out, EDGE_KIND_PRIVACY_POLICY, EDGE_POLICY_BODY_SIZE,
			    by->id);
	put_le64(b + EDGE_POLICY_OFF_VERSION, s->version);
	put_le32(b + EDGE_POLICY_OFF_NOISE_MULTIPLIER_MIN, f2u(s->sigma_min));
	put_le32(b + EDGE_POLICY_OFF_MAX_EXAMPLE_CLIP, f2u(s->clip_max));
	put_le32(b + EDGE_POLICY_OFF_MAX_UPDATE_CLIP, f2u(s->uclip_max));
	put_le32(b + EDGE_POLICY_OFF_SAMPLING_RATE, f2u(s->q));
	b[EDGE_POLICY_OFF_SAMPLING] = s->sampling;
	b[EDGE_POLICY_OFF_FLAGS] = s->flags;
	put_le16(b + EDGE_POLICY_OFF_RESERVED1, s->reserved1);
	put_le32(b + EDGE_POLICY_OFF_MAX_STEPS_PER_ROUND, s->max_steps);
	put_le64(b + EDGE_POLICY_OFF_STEP_BUDGET, s->budget);
	memcpy(&u, &s->eps, 8);
	put_le64(b + EDGE_POLICY_OFF_TARGET_EPSILON, u);
	memcpy(&u, &s->delta, 8);
	put_le64(b + EDGE_POLICY_OFF_DELTA, u);
	put_le32(b + EDGE_POLICY_OFF_ACCOUNTANT, s->accountant);
	put_le32(b + EDGE_POLICY_OFF_RESERVED2, s->reserved2);
	if (s->table_count) {
		put_le32(b + EDGE_POLICY_OFF_TABLE_COUNT, s->table_count);
		for (uint32_t i = 0; i < 2; i++) {
			uint8_t *e = b + EDGE_POLICY_OFF_EPSILON_TABLE +
				     i * EDGE_POLICY_TABLE_ENTRY_SIZE;

			put_le64(e, s->table_steps[i]);
			memcpy(&u, &s->table_eps[i], 8);
			put_le64(e + 8, u);
		}
	} else if (!(s->flags & EDGE_POLICY_F_NO_DP) && !s->no_table) {
		/* One entry: the whole budget at the target epsilon. */
		put_le32(b + EDGE_POLICY_OFF_TABLE_COUNT, 1);
		put_le64(b + EDGE_POLICY_OFF_EPSILON_TABLE, s->budget);
		memcpy(&u, &s->eps, 8);
		put_le64(b + EDGE_POLICY_OFF_EPSILON_TABLE + 8, u);
	}
	sign_envelope(out, EDGE_ENVELOPE_HEADER_SIZE + EDGE_POLICY_BODY_SIZE,
		      by->pair);
}

struct tk {
	uint64_t round, model_version;
	bool other_package;	/* another package id than the loaded one */
	uint8_t nonce[16];
	uint64_t issued, deadline;
	float clip, sigma, uclip, lr;
	uint16_t epochs, batch;
	uint8_t mode;
	uint8_t reserved[3];
};

static void build_ticket(const struct tk *s, const struct ed_key *by,
			 uint8_t out[EDGE_TICKET_SIZE])
{
	uint8_t *b = out + EDGE_ENVELOPE_HEADER_SIZE;

	memset(out, 0, EDGE_TICKET_SIZE);
	envelope_put_header(out, EDGE_KIND_ROUND_TICKET, EDGE_TICKET_BODY_SIZE,
			    by->id);
	put_le64(b + EDGE_TICKET_OFF_ROUND_ID, s->round);
	put_le64(b + EDGE_TICKET_OFF_MODEL_VERSION, s->model_version);
	/* The package id of the loaded model, as the aggregator names it. */
	memcpy(b + EDGE_TICKET_OFF_PACKAGE_ID, edge_st.model.package_id,
	       EDGE_TICKET_LEN_PACKAGE_ID);
	if (s->other_package)
		b[EDGE_TICKET_OFF_PACKAGE_ID] ^= 1;
	memcpy(b + EDGE_TICKET_OFF_NONCE, s->nonce, EDGE_NONCE_SIZE);
	put_le64(b + EDGE_TICKET_OFF_ISSUED_AT, s->issued);
	put_le64(b + EDGE_TICKET_OFF_DEADLINE, s->deadline);
	put_le32(b + EDGE_TICKET_OFF_EXAMPLE_CLIP, f2u(s->clip));
	put_le32(b + EDGE_TICKET_OFF_NOISE_MULTIPLIER, f2u(s->sigma));
	put_le32(b + EDGE_TICKET_OFF_UPDATE_CLIP, f2u(s->uclip));
	put_le32(b + EDGE_TICKET_OFF_LEARNING_RATE, f2u(s->lr));
	put_le16(b + EDGE_TICKET_OFF_EPOCHS, s->epochs);
	put_le16(b + EDGE_TICKET_OFF_BATCH_SIZE, s->batch);
	b[EDGE_TICKET_OFF_UPDATE_MODE] = s->mode;
	memcpy(b + EDGE_TICKET_OFF_RESERVED, s->reserved, EDGE_TICKET_LEN_RESERVED);
	sign_envelope(out, EDGE_ENVELOPE_HEADER_SIZE + EDGE_TICKET_BODY_SIZE,
		      by->pair);
}

/* ---- Command wrappers ------------------------------------------------- */

static struct edge_session *s1;
static struct edge_session *s2;

static TEE_Result install_policy(const uint8_t *buf, size_t len)
{
	TEE_Param p[TEE_NUM_PARAMS];

	p_clear(p);
	p_mem(&p[0], buf, len);
	return edge_cmd_install_policy(s1, p);
}

static TEE_Result budget(uint8_t b[EDGE_BUDGET_SIZE])
{
	TEE_Param p[TEE_NUM_PARAMS];

	p_clear(p);
	p_mem(&p[0], b, EDGE_BUDGET_SIZE);
	return edge_cmd_budget_status(s1, p);
}

static TEE_Result verify(struct edge_session *s, const uint8_t *t, size_t len,
			 uint64_t ree, uint32_t *left, uint32_t *per_round)
{
	TEE_Param p[TEE_NUM_PARAMS];
	TEE_Result res;

	p_clear(p);
	p_mem(&p[0], t, len);
	p[1].value.a = (uint32_t)ree;
	p[1].value.b = (uint32_t)(ree >> 32);
	p[2].value.a = 0xdeadbeef;
	res = edge_cmd_verify_ticket(s, p);
	if (left)
		*left = p[2].value.a;
	if (per_round)
		*per_round = p[2].value.b;
	return res;
}

static TEE_Result train(struct edge_session *s, uint32_t n, const float *x,
			size_t x_len, const uint32_t *y, size_t y_len,
			uint8_t *out, size_t *out_len)
{
	TEE_Param p[TEE_NUM_PARAMS];
	TEE_Result res;

	p_clear(p);
	p[0].value.a = n;
	p_mem(&p[1], x, x_len);
	p_mem(&p[2], y, y_len);
	p_mem(&p[3], out, *out_len);
	res = edge_cmd_train_and_seal(s, p);
	*out_len = p[3].memref.size;
	return res;
}

/* ---- Fixtures ------------------------------------------------------- */

static struct ed_key signer, aggregator, rogue;
static struct device dev;
static uint8_t cur_budget[EDGE_BUDGET_SIZE];

/* Head 3 x 2 (I = 3, O = 2): W row-major then b. */
static const float head3x2[] = {
	0.5f, -0.25f,  1.0f, 0.75f,  -0.5f, 0.125f,
	0.1f, -0.2f,
};
#define IN 3
#define OUT 2
#define P3 (IN * OUT + OUT)
static const float xs8[8 * IN] = {
	1.0f, 0.5f, -1.0f,   0.2f, -0.3f, 2.0f,   -1.5f, 1.0f, 0.0f,
	3.0f, 0.1f, 0.4f,    0.0f, 0.0f, 0.0f,    -0.7f, -0.2f, 1.1f,
	2.5f, -2.0f, 0.3f,   0.9f, 0.9f, -0.9f,
};
static const uint32_t ys8[8] = { 0, 1, 1, 0, 1, 0, 0, 1 };

static const struct pol nodp_policy = {
	.version = 1, .sigma_min = 0.0f, .clip_max = 10.0f, .uclip_max = 100.0f,
	.q = 1.0f, .sampling = EDGE_SAMPLING_FIXED, .flags = EDGE_POLICY_F_NO_DP,
	.max_steps = 50, .budget = 40, .eps = 8.0, .delta = 1e-5,
	.accountant = 1,
};

static struct tk base_ticket(uint64_t round)
{
	struct tk t;

	memset(&t, 0, sizeof(t));
	t.round = round;
	t.model_version = 1;
	memset(t.nonce, (int)round, 16);
	t.issued = 1000 + round;
	t.deadline = 100000;
	t.clip = 1.0f;
	t.sigma = 0.0f;
	t.uclip = 50.0f;
	t.lr = 0.5f;
	t.epochs = 2;
	t.batch = 8;
	t.mode = EDGE_UPDATE_MODE_FLOAT32;
	return t;
}

static void snapshot(void)
{
	if (budget(cur_budget))
		harness_die("budget snapshot");
}

/* The budget block did not change since the last snapshot. */
static bool unchanged(void)
{
	uint8_t b[EDGE_BUDGET_SIZE];

	return !budget(b) && !memcmp(b, cur_budget, sizeof(b));
}

/* The session holds no ticket (TRAIN answers BAD_STATE). */
static bool no_ticket(struct edge_session *s)
{
	uint8_t out[8];
	size_t out_len = sizeof(out);

	return train(s, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
		     &out_len) == TEE_ERROR_BAD_STATE;
}

/* ---- Reference DP-SGD without noise, full batches ---------------------- */

static void reference_delta(const float *head, uint32_t in, uint32_t out,
			    const float *x, const uint32_t *y, uint32_t n,
			    uint32_t steps, double clip, double lr,
			    double divisor, double *delta)
{
	size_t P = (size_t)in * out + out;
	float *th = malloc(P * sizeof(float));
	double *sum = malloc(P * sizeof(double));
	double *z = malloc(out * sizeof(double));
	uint32_t s, r, i, j;

	memcpy(th, head, P * sizeof(float));
	for (s = 0; s < steps; s++) {
		memset(sum, 0, P * sizeof(double));
		for (r = 0; r < n; r++) {
			const float *xr = x + (size_t)r * in;
			double xx = 0, ee = 0, mx, ps = 0, norm, sc = 1;

			for (j = 0; j < out; j++) {
				z[j] = th[in * out + j];
				for (i = 0; i < in; i++)
					z[j] += (double)xr[i] * th[i * out + j];
			}
			mx = z[0];
			for (j = 1; j < out; j++)
				mx = fmax(mx, z[j]);
			for (j = 0; j < out; j++)
				ps += z[j] = exp(z[j] - mx);
			for (j = 0; j < out; j++) {
				z[j] = z[j] / ps - (j == y[r]);
				ee += z[j] * z[j];
			}
			for (i = 0; i < in; i++)
				xx += (double)xr[i] * xr[i];
			norm = sqrt((xx + 1) * ee);
			if (norm > clip)
				sc = clip / norm;
			for (i = 0; i < in; i++)
				for (j = 0; j < out; j++)
					sum[i * out + j] += sc * xr[i] * z[j];
			for (j = 0; j < out; j++)
				sum[in * out + j] += sc * z[j];
		}
		for (i = 0; i < P; i++)
			th[i] = (float)(th[i] - lr * sum[i] / divisor);
	}
	for (i = 0; i < P; i++)
		delta[i] = (double)th[i] - head[i];
	free(th);
	free(sum);
	free(z);
}

/* Checks a sealed update's layout and signature; returns its delta. */
static void check_update(const uint8_t *u, size_t len, const struct tk *t,
			 uint32_t n, uint32_t steps, uint64_t total,
			 uint32_t P, float *delta)
{
	const size_t body_len = EDGE_UPDATE_HEADER_SIZE + 4 * (size_t)P;
	const size_t signed_len = EDGE_ENVELOPE_HEADER_SIZE + body_len;
	const uint8_t *b = u + EDGE_ENVELOPE_HEADER_SIZE;
	const uint8_t *d = b + EDGE_UPDATE_HEADER_SIZE;
	uint8_t digest[32];
	uint8_t zero[4] = { 0 };
	size_t i;

	CHECK(len == signed_len + EDGE_SIG_SIZE, "update size %zu", len);
	if (len != signed_len + EDGE_SIG_SIZE)
		return;
	CHECK(!memcmp(u, EDGE_MAGIC, 4) &&
	      get_le16(u + EDGE_ENVELOPE_HEADER_OFF_VERSION) ==
	      EDGE_FORMAT_VERSION_SEALED_UPDATE &&
	      get_le16(u + EDGE_ENVELOPE_HEADER_OFF_KIND) ==
	      EDGE_KIND_SEALED_UPDATE &&
	      get_le32(u + EDGE_ENVELOPE_HEADER_OFF_BODY_LEN) == body_len,
	      "update header");
	CHECK(!memcmp(u + EDGE_ENVELOPE_HEADER_OFF_SIGNER_KEY_ID, dev.id, 16),
	      "update signer = device id");
	CHECK(!memcmp(b + EDGE_UPDATE_HEADER_OFF_DEVICE_ID, dev.id, 16),
	      "update device id");
	CHECK(get_le64(b + EDGE_UPDATE_HEADER_OFF_ROUND_ID) == t->round,
	      "update round id");
	CHECK(!memcmp(b + EDGE_UPDATE_HEADER_OFF_NONCE, t->nonce,
		      EDGE_NONCE_SIZE), "update cohort nonce");
	CHECK(get_le64(b + EDGE_UPDATE_HEADER_OFF_MODEL_VERSION) ==
	      t->model_version, "update model version");
	CHECK(!memcmp(b + EDGE_UPDATE_HEADER_OFF_PACKAGE_ID,
		      edge_st.model.package_id, EDGE_UPDATE_HEADER_LEN_PACKAGE_ID),
	      "update package id");
	CHECK(get_le32(b + EDGE_UPDATE_HEADER_OFF_EXAMPLE_COUNT) == n,
	      "update n %u", get_le32(b + EDGE_UPDATE_HEADER_OFF_EXAMPLE_COUNT));
	CHECK(get_le32(b + EDGE_UPDATE_HEADER_OFF_STEPS) == steps,
	      "update steps %u want %u",
	      get_le32(b + EDGE_UPDATE_HEADER_OFF_STEPS), steps);
	CHECK(get_le64(b + EDGE_UPDATE_HEADER_OFF_STEPS_TOTAL) == total,
	      "update total %" PRIu64 " want %" PRIu64,
	      get_le64(b + EDGE_UPDATE_HEADER_OFF_STEPS_TOTAL), total);
	CHECK(b[EDGE_UPDATE_HEADER_OFF_UPDATE_MODE] == EDGE_UPDATE_MODE_FLOAT32 &&
	      !memcmp(b + EDGE_UPDATE_HEADER_OFF_RESERVED1, zero,
		      EDGE_UPDATE_HEADER_LEN_RESERVED1) &&
	      !memcmp(b + EDGE_UPDATE_HEADER_OFF_RESERVED2, zero,
		      EDGE_UPDATE_HEADER_LEN_RESERVED2),
	      "update mode and reserved");
	CHECK(get_le32(b + EDGE_UPDATE_HEADER_OFF_PARAM_COUNT) == P,
	      "update P");
	CHECK(get_le32(b + EDGE_UPDATE_HEADER_OFF_UPDATE_CLIP) ==
	      f2u(t->uclip) &&
	      get_le32(b + EDGE_UPDATE_HEADER_OFF_NOISE_MULTIPLIER) ==
	      f2u(t->sigma) &&
	      get_le32(b + EDGE_UPDATE_HEADER_OFF_EXAMPLE_CLIP) ==
	      f2u(t->clip), "update U, sigma, C");
	CHECK(seal_norm_f32(d, P) <= (double)t->uclip,
	      "||delta|| %.9g <= U %.9g", seal_norm_f32(d, P),
	      (double)t->uclip);
	edge_sha256(u, signed_len, digest);
	CHECK_RES(edge_ed25519_verify(dev.sign_pub, digest, u + signed_len),
		  TEE_SUCCESS, "update signature");
	if (delta)
		for (i = 0; i < P; i++)
			delta[i] = u2f(get_le32(d + 4 * i));
}

/* ---- Tests ------------------------------------------------------------ */

static TEE_Result load_model(uint64_t version, uint32_t in, uint32_t out,
			     const float *head)
{
	TEE_Param p[TEE_NUM_PARAMS];
	uint8_t wrap[EDGE_KEY_WRAP_SIZE];
	uint8_t *m = NULL;
	size_t len = 0;
	TEE_Result res;

	build_package(version, in, out, head, &dev, &signer, &m, &len, wrap);
	p_clear(p);
	p_mem(&p[0], m, len);
	p_mem(&p[3], wrap, sizeof(wrap));
	res = edge_cmd_load_begin(s1, p);
	if (!res) {
		p_clear(p);
		res = edge_cmd_load_finish(s1, p);
	}
	free(m);
	return res;
}

static void test_fresh(void)
{
	uint8_t b[EDGE_BUDGET_SIZE + 4];
	uint8_t zero[EDGE_BUDGET_SIZE] = { 0 };
	uint8_t pol[EDGE_POLICY_SIZE];
	uint8_t t[EDGE_TICKET_SIZE];
	struct tk tk = base_ticket(1);
	TEE_Param p[TEE_NUM_PARAMS];

	p_clear(p);
	p_mem(&p[0], b, EDGE_BUDGET_SIZE - 1);
	CHECK_RES(edge_cmd_budget_status(s1, p), TEE_ERROR_SHORT_BUFFER,
		  "BUDGET_STATUS short");
	CHECK(p[0].memref.size == EDGE_BUDGET_SIZE, "budget size needed");
	memset(b, 0xee, sizeof(b));
	p_mem(&p[0], b, sizeof(b));
	CHECK_RES(edge_cmd_budget_status(s1, p), TEE_SUCCESS, "BUDGET_STATUS");
	CHECK(p[0].memref.size == EDGE_BUDGET_SIZE &&
	      !memcmp(b, zero, EDGE_BUDGET_SIZE), "fresh budget block zero");

	build_policy(&nodp_policy, &signer, pol);
	CHECK_RES(install_policy(pol, sizeof(pol)), EDGE_ERR_NOT_PROVISIONED,
		  "INSTALL_POLICY before anchors");
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL),
		  EDGE_ERR_NOT_PROVISIONED, "VERIFY_TICKET before anchors");
	CHECK(no_ticket(s1), "TRAIN without a ticket: bad state");
}

static void setup_device(void)
{
	uint8_t keys[64];
	uint8_t rec[EDGE_DEVICE_RECORD_SIZE];
	TEE_Param p[TEE_NUM_PARAMS];

	memcpy(keys, signer.pub, 32);
	memcpy(keys + 32, aggregator.pub, 32);
	p_clear(p);
	p_mem(&p[0], keys, 64);
	if (edge_cmd_install_anchors(s1, p))
		harness_die("anchors");
	p_mem(&p[0], rec, sizeof(rec));
	if (edge_cmd_get_identity(s1, p))
		harness_die("identity");
	memcpy(dev.sign_pub, rec + EDGE_ENVELOPE_HEADER_SIZE + EDGE_DEVICE_OFF_SIGN_PUB,
	       EDGE_PUBKEY_SIZE);
	memcpy(dev.kex_pub, rec + EDGE_ENVELOPE_HEADER_SIZE + EDGE_DEVICE_OFF_KEX_PUB,
	       EDGE_PUBKEY_SIZE);
	memcpy(dev.id, rec + 12, 16);
}

static void test_no_policy(void)
{
	uint8_t t[EDGE_TICKET_SIZE];
	struct tk tk = base_ticket(1);

	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), EDGE_ERR_NO_POLICY,
		  "ticket without a policy (and no model)");
}

static void edit_policy(struct pol *x, int k)
{
	switch (k) {
	case 0: x->version = 0; break;
	case 1: x->sigma_min = NAN; break;
	case 2: x->sigma_min = 0; x->flags = 0; break;
	case 3: x->sigma_min = -1.0f; break;
	case 4: x->clip_max = INFINITY; break;
	case 5: x->clip_max = 0; break;
	case 6: x->uclip_max = NAN; break;
	case 7: x->uclip_max = -1; break;
	case 8: x->q = 0; break;
	case 9: x->q = 1.5f; break;
	case 10: x->q = NAN; break;
	case 11: x->sampling = 0; break;
	case 12: x->sampling = 3; break;
	case 13: x->flags |= 0x80; break;
	case 14: x->reserved1 = 1; break;
	case 15: x->max_steps = 0; break;
	case 16: x->max_steps = EDGE_MAX_STEPS_PER_ROUND + 1; break;
	case 17: x->budget = 0; break;
	case 18: x->eps = NAN; break;
	case 19: x->delta = INFINITY; break;
	case 20: x->accountant = 3; break;
	case 21: x->reserved2 = 1; break;
	case 22: x->table_count = EDGE_POLICY_TABLE_ENTRIES + 1; break;
	case 23:
		x->table_count = 2;
		x->table_steps[0] = x->table_steps[1] = x->budget;
		x->table_eps[0] = x->table_eps[1] = 1.0;
		break;
	case 24:
		x->table_count = 2;
		x->table_steps[0] = 1;
		x->table_steps[1] = x->budget;
		x->table_eps[0] = 2.0;
		x->table_eps[1] = 1.0;
		break;
	case 25:
		x->table_count = 1;
		x->table_steps[0] = x->budget;
		x->table_eps[0] = NAN;
		break;
	case 26:
		x->table_count = 1;
		x->table_steps[0] = x->budget - 1;
		x->table_eps[0] = 1.0;
		break;
	case 27:
		x->table_count = 1;
		x->table_steps[0] = x->budget;
		x->table_eps[0] = 0.0;
		break;
	case 28:
		x->sigma_min = 1.0f;
		x->flags = 0;
		x->no_table = true;
		break;
	case 29:
		x->table_count = 1;
		x->table_steps[0] = x->budget;
		x->table_eps[0] = 1.0;
		x->table_steps[1] = x->budget + 1;	/* past the count */
		break;
	case 30:
		x->table_count = 1;
		x->table_steps[0] = 0;
		x->table_eps[0] = 1.0;
		x->budget = 0;
		break;
	default: break;
	}
}

static const char *const policy_cases[] = {
	"version 0",
	"sigma_min NaN",
	"sigma_min 0 without no-DP",
	"sigma_min negative",
	"C_max inf",
	"C_max 0",
	"U_max NaN",
	"U_max negative",
	"q 0",
	"q above 1",
	"q NaN",
	"sampling 0",
	"sampling 3",
	"unknown flag",
	"reserved 26",
	"max steps 0",
	"max steps above the limit",
	"budget 0",
	"epsilon NaN",
	"delta inf",
	"accountant 3",
	"reserved 60",
	"table of 33 entries",
	"table steps not increasing",
	"table epsilon decreasing",
	"table epsilon NaN",
	"table not ending at the budget",
	"table epsilon 0",
	"no table without no-DP",
	"table bytes past the count",
	"table entry at 0 steps",
};

/* Every malformed policy field is refused and nothing is stored. */
static void test_policy_malformed(void)
{
	uint8_t pol[EDGE_POLICY_SIZE + 8];
	struct pol s;
	size_t i;

	snapshot();
	for (i = 0; i < sizeof(policy_cases) / sizeof(policy_cases[0]); i++) {
		s = nodp_policy;
		edit_policy(&s, (int)i);
		build_policy(&s, &signer, pol);
		CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE),
			  TEE_ERROR_BAD_FORMAT, "%s", policy_cases[i]);
	}
	/* Envelope refusals. */
	build_policy(&nodp_policy, &aggregator, pol);
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE), EDGE_ERR_UNKNOWN_SIGNER,
		  "policy signed by the aggregator");
	build_policy(&nodp_policy, &rogue, pol);
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE), EDGE_ERR_UNKNOWN_SIGNER,
		  "policy signed by a rogue key");
	build_policy(&nodp_policy, &signer, pol);
	pol[40] ^= 1;
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE),
		  TEE_ERROR_SIGNATURE_INVALID, "policy with a bad signature");
	build_policy(&nodp_policy, &signer, pol);
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE - 1),
		  TEE_ERROR_BAD_FORMAT, "truncated policy");
	pol[EDGE_POLICY_SIZE] = 0;
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE + 1),
		  TEE_ERROR_BAD_FORMAT, "policy with a trailing byte");
	/* A ticket header (kind and its format version) where a policy goes. */
	put_le16(pol + EDGE_ENVELOPE_HEADER_OFF_KIND, EDGE_KIND_ROUND_TICKET);
	put_le16(pol + EDGE_ENVELOPE_HEADER_OFF_VERSION,
		 EDGE_FORMAT_VERSION_OF(EDGE_KIND_ROUND_TICKET));
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE), EDGE_ERR_WRONG_KIND,
		  "ticket kind given as a policy");
	put_le16(pol + EDGE_ENVELOPE_HEADER_OFF_KIND, EDGE_KIND_PRIVACY_POLICY);
	/* Format 1, the layout without the epsilon table, is refused by name. */
	put_le16(pol + EDGE_ENVELOPE_HEADER_OFF_VERSION, 1);
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE),
		  EDGE_ERR_UNSUPPORTED_VERSION, "policy format version 1");
	put_le16(pol + EDGE_ENVELOPE_HEADER_OFF_VERSION, 3);
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE),
		  EDGE_ERR_UNSUPPORTED_VERSION, "policy format version 3");
	put_le16(pol + EDGE_ENVELOPE_HEADER_OFF_VERSION,
		 EDGE_FORMAT_VERSION_PRIVACY_POLICY);
	put_le32(pol + EDGE_ENVELOPE_HEADER_OFF_BODY_LEN, EDGE_POLICY_BODY_SIZE + 4);
	CHECK_RES(install_policy(pol, EDGE_POLICY_SIZE + 4),
		  TEE_ERROR_EXCESS_DATA,
		  "policy over its size");
	/* A 60-byte body, correctly signed: malformed. */
	memset(pol, 0, sizeof(pol));
	envelope_put_header(pol, EDGE_KIND_PRIVACY_POLICY, 60, signer.id);
	sign_envelope(pol, EDGE_ENVELOPE_HEADER_SIZE + 60, signer.pair);
	CHECK_RES(install_policy(pol, EDGE_ENVELOPE_HEADER_SIZE + 60 + EDGE_SIG_SIZE),
		  TEE_ERROR_BAD_FORMAT,
		  "policy body of 60 bytes");
	CHECK(unchanged(), "no policy after the refusals");
}

static void test_policy_install(void)
{
	uint8_t pol[EDGE_POLICY_SIZE];
	uint8_t b[EDGE_BUDGET_SIZE];
	uint8_t digest[32];

	build_policy(&nodp_policy, &signer, pol);
	CHECK_RES(install_policy(pol, sizeof(pol)), TEE_SUCCESS,
		  "INSTALL_POLICY v1");
	edge_sha256(pol, sizeof(pol), digest);
	CHECK(!budget(b) && get_le32(b + EDGE_BUDGET_OFF_FLAGS) == 1 &&
	      get_le32(b + EDGE_BUDGET_OFF_RESERVED) == 0 &&
	      get_le64(b + EDGE_BUDGET_OFF_STEPS_SPENT) == 0 &&
	      get_le64(b + EDGE_BUDGET_OFF_STEP_BUDGET) == 40 &&
	      get_le64(b + EDGE_BUDGET_OFF_POLICY_VERSION) == 1 &&
	      get_le64(b + EDGE_BUDGET_OFF_ROUNDS_SEALED) == 0 &&
	      get_le64(b + EDGE_BUDGET_OFF_LAST_ROUND) == 0 &&
	      get_le64(b + EDGE_BUDGET_OFF_TIME_FLOOR) == 0 &&
	      !memcmp(b + EDGE_BUDGET_OFF_POLICY_ID, digest, 8),
	      "budget block after the install");
	snapshot();
	CHECK_RES(install_policy(pol, sizeof(pol)), EDGE_ERR_ROLLBACK,
		  "same policy again");
	CHECK(unchanged(), "unchanged after the rollback");
}

static void test_no_model(void)
{
	uint8_t t[EDGE_TICKET_SIZE];
	struct tk tk = base_ticket(1);

	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), EDGE_ERR_NO_MODEL,
		  "ticket without a model");
	CHECK(no_ticket(s1), "no ticket held after NO_MODEL");
}

static void edit_ticket(struct tk *x, int k)
{
	switch (k) {
	case 0: x->round = 0; break;
	case 1: x->clip = 0; break;
	case 2: x->clip = NAN; break;
	case 3: x->sigma = -0.5f; break;
	case 4: x->sigma = INFINITY; break;
	case 5: x->uclip = 0; break;
	case 6: x->lr = 0; break;
	case 7: x->lr = NAN; break;
	case 8: x->epochs = 0; break;
	case 9: x->batch = 0; break;
	case 10: x->mode = 2; break;
	case 11: x->reserved[2] = 1; break;
	case 12: x->model_version = 2; break;
	case 13: x->model_version = 0; break;
	case 14: x->deadline = 4999; break;
	case 15: x->clip = 10.5f; break;
	case 16: x->uclip = 100.5f; break;
	case 17: x->model_version = 5; x->clip = 99; break;
	case 18: x->deadline = 1; x->clip = 99; break;
	case 19: x->other_package = true; break;
	default: break;
	}
}

static const struct {
	const char *what;
	TEE_Result want;
} ticket_cases[] = {
	{ "round 0", TEE_ERROR_BAD_FORMAT },
	{ "C 0", TEE_ERROR_BAD_FORMAT },
	{ "C NaN", TEE_ERROR_BAD_FORMAT },
	{ "sigma negative", TEE_ERROR_BAD_FORMAT },
	{ "sigma inf", TEE_ERROR_BAD_FORMAT },
	{ "U 0", TEE_ERROR_BAD_FORMAT },
	{ "lr 0", TEE_ERROR_BAD_FORMAT },
	{ "lr NaN", TEE_ERROR_BAD_FORMAT },
	{ "epochs 0", TEE_ERROR_BAD_FORMAT },
	{ "batch 0", TEE_ERROR_BAD_FORMAT },
	{ "mode 2", TEE_ERROR_BAD_FORMAT },
	{ "reserved", TEE_ERROR_BAD_FORMAT },
	{ "model version 2", EDGE_ERR_WRONG_MODEL },
	{ "model version 0", EDGE_ERR_WRONG_MODEL },
	{ "deadline before REE time", EDGE_ERR_EXPIRED },
	{ "C above C_max", EDGE_ERR_POLICY_VIOLATION },
	{ "U above U_max", EDGE_ERR_POLICY_VIOLATION },
	{ "wrong model and weaker", EDGE_ERR_WRONG_MODEL },
	{ "expired and weaker", EDGE_ERR_EXPIRED },
	{ "another package of the same version", EDGE_ERR_WRONG_MODEL },
};

/* Every ticket refusal class before any round; nothing changes. */
static void test_ticket_refusals(void)
{
	uint8_t t[EDGE_TICKET_SIZE + 4];
	struct tk tk;
	size_t i;

	snapshot();
	for (i = 0; i < sizeof(ticket_cases) / sizeof(ticket_cases[0]); i++) {
		tk = base_ticket(1);
		edit_ticket(&tk, (int)i);
		build_ticket(&tk, &aggregator, t);
		CHECK_RES(verify(s1, t, EDGE_TICKET_SIZE, 5000, NULL, NULL),
			  ticket_cases[i].want, "%s", ticket_cases[i].what);
	}
	tk = base_ticket(1);
	build_ticket(&tk, &signer, t);
	CHECK_RES(verify(s1, t, EDGE_TICKET_SIZE, 0, NULL, NULL),
		  EDGE_ERR_UNKNOWN_SIGNER, "ticket signed by the model signer");
	build_ticket(&tk, &aggregator, t);
	t[EDGE_TICKET_SIZE - 3] ^= 4;
	CHECK_RES(verify(s1, t, EDGE_TICKET_SIZE, 0, NULL, NULL),
		  TEE_ERROR_SIGNATURE_INVALID, "ticket with a bad signature");
	build_ticket(&tk, &aggregator, t);
	/* lr changed after signing */
	t[EDGE_ENVELOPE_HEADER_SIZE + EDGE_TICKET_OFF_LEARNING_RATE] ^= 1;
	CHECK_RES(verify(s1, t, EDGE_TICKET_SIZE, 0, NULL, NULL),
		  TEE_ERROR_SIGNATURE_INVALID, "ticket altered after signing");
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, EDGE_TICKET_SIZE - 1, 0, NULL, NULL),
		  TEE_ERROR_BAD_FORMAT, "truncated ticket");
	CHECK_RES(verify(s1, t, 10, 0, NULL, NULL), TEE_ERROR_BAD_FORMAT,
		  "ticket shorter than a header");
	put_le16(t + EDGE_ENVELOPE_HEADER_OFF_KIND, EDGE_KIND_PRIVACY_POLICY);
	put_le16(t + EDGE_ENVELOPE_HEADER_OFF_VERSION,
		 EDGE_FORMAT_VERSION_OF(EDGE_KIND_PRIVACY_POLICY));
	CHECK_RES(verify(s1, t, EDGE_TICKET_SIZE, 0, NULL, NULL),
		  EDGE_ERR_WRONG_KIND, "policy kind given as a ticket");
	CHECK(unchanged(), "budget unchanged after ticket refusals");

	/* A refusal drops a held ticket. */
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, EDGE_TICKET_SIZE, 0, NULL, NULL), TEE_SUCCESS,
		  "good ticket");
	t[EDGE_TICKET_SIZE - 1] ^= 1;
	CHECK_RES(verify(s1, t, EDGE_TICKET_SIZE, 0, NULL, NULL),
		  TEE_ERROR_SIGNATURE_INVALID, "bad ticket after a good one");
	CHECK(no_ticket(s1), "refusal dropped the held ticket");
	CHECK(unchanged(), "VERIFY changed nothing");
}

static void expect_budget(uint64_t spent, uint64_t rounds, uint64_t last,
			  uint64_t floor, int line)
{
	uint8_t b[EDGE_BUDGET_SIZE];
	TEE_Result res = budget(b);

	harness_check(!res &&
		      get_le64(b + EDGE_BUDGET_OFF_STEPS_SPENT) == spent &&
		      get_le64(b + EDGE_BUDGET_OFF_ROUNDS_SEALED) == rounds &&
		      get_le64(b + EDGE_BUDGET_OFF_LAST_ROUND) == last &&
		      get_le64(b + EDGE_BUDGET_OFF_TIME_FLOOR) == floor,
		      __FILE__, line, "budget",
		      " budget: spent %" PRIu64 " rounds %" PRIu64
		      " last %" PRIu64 " floor %" PRIu64 ", expected %" PRIu64
		      " %" PRIu64 " %" PRIu64 " %" PRIu64,
		      get_le64(b + EDGE_BUDGET_OFF_STEPS_SPENT),
		      get_le64(b + EDGE_BUDGET_OFF_ROUNDS_SEALED),
		      get_le64(b + EDGE_BUDGET_OFF_LAST_ROUND),
		      get_le64(b + EDGE_BUDGET_OFF_TIME_FLOOR), spent, rounds,
		      last, floor);
}

static TEE_Result infer1(const float *x, float *y)
{
	TEE_Param p[TEE_NUM_PARAMS];

	p_clear(p);
	p[0].value.a = 1;
	p_mem(&p[1], x, IN * 4);
	p_mem(&p[2], y, OUT * 4);
	return edge_cmd_infer(s1, p);
}

/* Noise off, full batches: the update equals the reference. */
static void test_deterministic(void)
{
	static uint8_t out[4096];
	uint8_t t[EDGE_TICKET_SIZE];
	struct tk tk = base_ticket(1);
	double want[P3];
	float got[P3];
	float y0[OUT], y1[OUT];
	size_t out_len = sizeof(out);
	double err = 0, scale = 0, nw = 0;
	uint32_t left = 0, per = 0;
	int i;

	CHECK_RES(infer1(xs8, y0), TEE_SUCCESS, "INFER before training");
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 500, &left, &per), TEE_SUCCESS,
		  "VERIFY round 1");
	CHECK(left == 40 && per == 0, "steps left %u, per round %u", left, per);
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), TEE_SUCCESS, "TRAIN round 1");
	/* T = E * ceil(n / B) = 2. */
	check_update(out, out_len, &tk, 8, 2, 2, P3, got);
	reference_delta(head3x2, IN, OUT, xs8, ys8, 8, 2, 1.0, 0.5, 8.0, want);
	for (i = 0; i < P3; i++) {
		err = fmax(err, fabs(got[i] - want[i]));
		scale = fmax(scale, fabs(want[i]));
	}
	CHECK(scale > 0.01 && err <= 1e-6 * (1 + scale),
	      "delta vs reference: max error %g (scale %g)", err, scale);
	expect_budget(2, 1, 1, 1001, __LINE__);
	CHECK(no_ticket(s1), "ticket used up");
	CHECK_RES(infer1(xs8, y1), TEE_SUCCESS, "INFER after training");
	CHECK(!memcmp(y0, y1, sizeof(y0)), "the active head is not modified");
	CHECK_RES(verify(s1, t, sizeof(t), 500, NULL, NULL), EDGE_ERR_REPLAY,
		  "round 1 replayed");

	/* Round 2: a tight update clip scales the same delta down to U. */
	tk = base_ticket(2);
	tk.uclip = 0.01f;
	build_ticket(&tk, &aggregator, t);
	out_len = sizeof(out);
	CHECK_RES(verify(s1, t, sizeof(t), 2000, NULL, NULL), TEE_SUCCESS,
		  "VERIFY round 2");
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), TEE_SUCCESS, "TRAIN round 2");
	check_update(out, out_len, &tk, 8, 2, 4, P3, got);
	for (i = 0; i < P3; i++)
		nw += want[i] * want[i];
	nw = sqrt(nw);
	err = 0;
	for (i = 0; i < P3; i++)
		err = fmax(err, fabs(got[i] - want[i] * 0.01 / nw));
	CHECK(err < 1e-6 && seal_norm_f32(out + UPDATE_DELTA_OFF, P3) > 0.0099,
	      "clipped delta = reference scaled to U (error %g)", err);
	/* Floor = max(floor, issued 1002, REE 2000). */
	expect_budget(4, 2, 2, 2000, __LINE__);
}

static void test_short_buffer_and_commit(void)
{
	static uint8_t out[4096];
	uint8_t t[EDGE_TICKET_SIZE];
	struct tk tk = base_ticket(3);
	size_t need = seal_size(P3);
	size_t out_len = need - 1;
	TEE_Param p[TEE_NUM_PARAMS];
	uint8_t *upd = NULL;
	size_t upd_len = 0;

	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "VERIFY round 3");
	snapshot();
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), TEE_ERROR_SHORT_BUFFER, "TRAIN short output");
	CHECK(out_len == need, "needed %zu, want %zu", out_len, need);
	CHECK(unchanged(), "short buffer spent nothing");
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), TEE_SUCCESS,
		  "TRAIN after the short buffer (ticket kept)");
	check_update(out, out_len, &tk, 8, 2, 6, P3, NULL);
	expect_budget(6, 3, 3, 2000, __LINE__);

	/* Spend before release: stop right after the storage write. */
	tk = base_ticket(4);
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "VERIFY round 4");
	p_clear(p);
	p[0].value.a = 8;
	p_mem(&p[1], xs8, sizeof(xs8));
	p_mem(&p[2], ys8, sizeof(ys8));
	p_mem(&p[3], out, sizeof(out));
	memset(out, 0, sizeof(out));
	CHECK_RES(edge_train_commit(s1, p, &upd, &upd_len), TEE_SUCCESS,
		  "commit of round 4");
	CHECK(upd && upd_len == need, "update made");
	/* The "crash": the update never reaches the output. */
	TEE_MemFill(upd, 0, upd_len);
	TEE_Free(upd);
	edge_state_reset();
	expect_budget(8, 4, 4, 2000, __LINE__);
	CHECK(out[0] == 0, "nothing written to the output by the commit");
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), EDGE_ERR_REPLAY,
		  "round 4 cannot be retried");
}

static void test_train_refusals(void)
{
	static uint8_t out[4096];
	static float x[8 * IN];
	uint8_t t[EDGE_TICKET_SIZE];
	uint32_t y[8];
	struct tk tk;
	size_t out_len;
	TEE_Result res;
	int i;

	snapshot();
#define TRY(edit_ticket, n, xl, yl, want, what) do { \
		tk = base_ticket(5); \
		edit_ticket; \
		build_ticket(&tk, &aggregator, t); \
		res = verify(s1, t, sizeof(t), 0, NULL, NULL); \
		CHECK_RES(res, TEE_SUCCESS, "VERIFY for " what); \
		out_len = sizeof(out); \
		CHECK_RES(train(s1, n, x, xl, y, yl, out, &out_len), want, \
			  what); \
		CHECK(no_ticket(s1), "ticket dropped: " what); \
		CHECK(unchanged(), "nothing spent: " what); \
	} while (0)

	memcpy(x, xs8, sizeof(x));
	memcpy(y, ys8, sizeof(y));
	TRY((void)0, 0, 0, 0, TEE_ERROR_BAD_PARAMETERS, "n = 0");
	TRY((void)0, EDGE_MAX_TRAIN_EXAMPLES + 1, sizeof(x), sizeof(y),
	    TEE_ERROR_EXCESS_DATA, "n above the limit");
	TRY((void)0, 8, sizeof(x) - 4, sizeof(y), TEE_ERROR_BAD_PARAMETERS,
	    "features short");
	TRY((void)0, 7, sizeof(x), 28, TEE_ERROR_BAD_PARAMETERS,
	    "features long");
	TRY((void)0, 8, sizeof(x), sizeof(y) - 4, TEE_ERROR_BAD_PARAMETERS,
	    "labels short");
	y[3] = OUT;
	TRY((void)0, 8, sizeof(x), sizeof(y), TEE_ERROR_BAD_PARAMETERS,
	    "label out of range");
	y[3] = ys8[3];
	x[7] = NAN;
	TRY((void)0, 8, sizeof(x), sizeof(y), TEE_ERROR_BAD_PARAMETERS,
	    "NaN feature");
	x[7] = INFINITY;
	TRY((void)0, 8, sizeof(x), sizeof(y), TEE_ERROR_BAD_PARAMETERS,
	    "infinite feature");
	x[7] = xs8[7];
	TRY(tk.batch = 9, 8, sizeof(x), sizeof(y), EDGE_ERR_POLICY_VIOLATION,
	    "B > n");
	/* T = 51 * 1 above the policy's 50 per round. */
	TRY(tk.epochs = 51, 8, sizeof(x), sizeof(y),
	    EDGE_ERR_POLICY_VIOLATION, "steps above the per-round maximum");
	/* Left: 40 - 8 = 32; T = 33 with B = 8, n = 8. */
	TRY(tk.epochs = 33, 8, sizeof(x), sizeof(y), EDGE_ERR_BUDGET_EXHAUSTED,
	    "steps above the budget left");
	/* T = 2 * ceil(8 / 1) = 16 fits. Then budget left: 16. */
	tk = base_ticket(5);
	tk.batch = 1;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "VERIFY round 5");
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, x, sizeof(x), y, sizeof(y), out, &out_len),
		  TEE_SUCCESS, "round 5 with B = 1");
	check_update(out, out_len, &tk, 8, 16, 24, P3, NULL);
	expect_budget(24, 5, 5, 2000, __LINE__);
	snapshot();
	/* Exactly the budget left: T = 16 (E = 2, n = 8, B = 1). */
	tk = base_ticket(6);
	tk.batch = 1;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "VERIFY round 6");
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, x, sizeof(x), y, sizeof(y), out, &out_len),
		  TEE_SUCCESS, "round 6 spends the last 16 steps");
	expect_budget(40, 6, 6, 2000, __LINE__);
	snapshot();
	/* Nothing left: the smallest round is refused. */
	tk = base_ticket(7);
	tk.epochs = 1;
	build_ticket(&tk, &aggregator, t);
	{
		uint32_t left = 99;

		CHECK_RES(verify(s1, t, sizeof(t), 0, &left, NULL), TEE_SUCCESS,
			  "VERIFY with no budget left");
		CHECK(left == 0, "steps left %u", left);
	}
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, x, sizeof(x), y, sizeof(y), out, &out_len),
		  EDGE_ERR_BUDGET_EXHAUSTED, "budget exhausted");
	CHECK(unchanged(), "nothing spent when exhausted");

	/* Expired by the stored floor (2000), REE time 0. */
	tk = base_ticket(8);
	tk.deadline = 1999;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), EDGE_ERR_EXPIRED,
		  "expired by the stored time floor");
	tk.deadline = 2000;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "deadline = floor is not expired");
	for (i = 0; i < 6; i++) {
		tk = base_ticket((uint64_t)i);
		build_ticket(&tk, &aggregator, t);
		res = verify(s1, t, sizeof(t), 0, NULL, NULL);
		CHECK_RES(res, i ? EDGE_ERR_REPLAY : TEE_ERROR_BAD_FORMAT,
			  "old round id");
	}
	CHECK(unchanged(), "nothing changed");
#undef TRY
}

static void test_replace_policy(void)
{
	static uint8_t out[4096];
	uint8_t pol[EDGE_POLICY_SIZE];
	uint8_t t[EDGE_TICKET_SIZE];
	uint8_t t2[EDGE_TICKET_SIZE];
	struct pol s = nodp_policy;
	struct tk tk;
	uint32_t left = 0, per = 0;
	size_t out_len;

	/* v3: DP, Poisson q = 0.5, sigma_min 0.5, budget 100. */
	s.version = 3;
	s.flags = 0;
	s.sigma_min = 0.5f;
	s.sampling = EDGE_SAMPLING_POISSON;
	s.q = 0.5f;
	s.budget = 100;
	build_policy(&s, &signer, pol);
	CHECK_RES(install_policy(pol, sizeof(pol)), TEE_SUCCESS,
		  "INSTALL_POLICY v3");
	expect_budget(40, 6, 6, 2000, __LINE__);
	snapshot();
	s.version = 2;
	build_policy(&s, &signer, pol);
	CHECK_RES(install_policy(pol, sizeof(pol)), EDGE_ERR_ROLLBACK,
		  "policy v2 after v3");
	CHECK(unchanged(), "unchanged after the rollback");

	tk = base_ticket(9);
	tk.sigma = 0.4f;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL),
		  EDGE_ERR_POLICY_VIOLATION, "sigma below sigma_min");
	tk.sigma = 1.0f;
	tk.epochs = 26;		/* 26 * ceil(1 / 0.5) = 52 > 50 */
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL),
		  EDGE_ERR_POLICY_VIOLATION, "Poisson steps above the maximum");
	CHECK(unchanged(), "unchanged after weaker tickets");

	/* A Poisson round with noise. */
	tk.epochs = 3;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, &left, &per), TEE_SUCCESS,
		  "VERIFY Poisson round");
	CHECK(left == 60 && per == 6, "left %u per round %u", left, per);
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), TEE_SUCCESS, "Poisson round with noise");
	check_update(out, out_len, &tk, 8, 6, 46, P3, NULL);
	expect_budget(46, 7, 9, 2000, __LINE__);

	/* Two sessions: round 11 seals first, round 10 is then a replay. */
	tk = base_ticket(10);
	tk.sigma = 1.0f;
	tk.epochs = 1;
	build_ticket(&tk, &aggregator, t);
	tk.round = 11;
	build_ticket(&tk, &aggregator, t2);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "session 1 holds round 10");
	CHECK_RES(verify(s2, t2, sizeof(t2), 0, NULL, NULL), TEE_SUCCESS,
		  "session 2 holds round 11");
	out_len = sizeof(out);
	CHECK_RES(train(s2, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), TEE_SUCCESS, "session 2 seals round 11");
	expect_budget(48, 8, 11, 2000, __LINE__);
	snapshot();
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), EDGE_ERR_REPLAY,
		  "session 1's round 10 after round 11");
	CHECK(unchanged(), "nothing spent by the replay");

	/* A policy change between VERIFY and TRAIN is seen by TRAIN. */
	tk = base_ticket(12);
	tk.sigma = 0.6f;
	tk.epochs = 1;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "VERIFY round 12 under v3");
	s.version = 4;
	s.sigma_min = 0.8f;
	build_policy(&s, &signer, pol);
	CHECK_RES(install_policy(pol, sizeof(pol)), TEE_SUCCESS,
		  "INSTALL_POLICY v4");
	snapshot();
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), EDGE_ERR_POLICY_VIOLATION,
		  "round 12 is weaker than v4");
	CHECK(unchanged(), "nothing spent");

	/* Fixed-size sampling with q = 0.5: B / n must not exceed q. */
	s.version = 5;
	s.sampling = EDGE_SAMPLING_FIXED;
	build_policy(&s, &signer, pol);
	CHECK_RES(install_policy(pol, sizeof(pol)), TEE_SUCCESS,
		  "INSTALL_POLICY v5");
	snapshot();
	tk = base_ticket(13);
	tk.sigma = 1.0f;
	tk.epochs = 1;
	tk.batch = 5;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, &left, &per), TEE_SUCCESS,
		  "VERIFY fixed-size round");
	CHECK(per == 0, "fixed-size: per round depends on n (%u)", per);
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), EDGE_ERR_POLICY_VIOLATION, "B / n = 5/8 > q");
	CHECK(unchanged(), "nothing spent");
	tk.batch = 4;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "VERIFY B = 4");
	out_len = sizeof(out);
	CHECK_RES(train(s1, 8, xs8, sizeof(xs8), ys8, sizeof(ys8), out,
			&out_len), TEE_SUCCESS, "B / n = q");
	check_update(out, out_len, &tk, 8, 2, 50, P3, NULL);
	expect_budget(50, 9, 13, 2000, __LINE__);

	/* After a restart everything comes back from storage. */
	snapshot();
	edge_state_reset();
	CHECK(unchanged(), "budget block after a restart");
}

/* The largest head, with noise, inside the TA heap limit. */
static void test_large(void)
{
	const uint32_t in = 4095, out = 32;
	const uint32_t P = in * out + out;
	const uint32_t n = 16;
	float *head = malloc((size_t)P * sizeof(float));
	float *x = malloc((size_t)n * in * sizeof(float));
	uint32_t y[16];
	size_t upd_len = seal_size(P);
	uint8_t *upd = malloc(upd_len);
	uint8_t t[EDGE_TICKET_SIZE];
	struct tk tk = base_ticket(20);
	uint32_t i;

	for (i = 0; i < P; i++)
		head[i] = (float)((int)(i % 13) - 6) / 64.0f;
	for (i = 0; i < n * in; i++)
		x[i] = (float)((int)(i % 7) - 3) / 8.0f;
	for (i = 0; i < n; i++)
		y[i] = (i * 5) % out;
	CHECK_RES(load_model(2, in, out, head), TEE_SUCCESS,
		  "load the largest head");
	tk.model_version = 2;
	tk.sigma = 1.0f;
	tk.epochs = 1;
	tk.batch = 8;
	tk.uclip = 2.0f;
	build_ticket(&tk, &aggregator, t);
	CHECK_RES(verify(s1, t, sizeof(t), 0, NULL, NULL), TEE_SUCCESS,
		  "VERIFY on the largest head");
	CHECK_RES(train(s1, n, x, (size_t)n * in * 4, y, sizeof(y), upd,
			&upd_len), TEE_SUCCESS, "TRAIN on the largest head");
	/* T = 1 * ceil(16 / 8) = 2. */
	check_update(upd, upd_len, &tk, n, 2, 52, P, NULL);
	/* With sigma C = 1 of noise on 131072 coordinates, U binds. */
	CHECK(seal_norm_f32(upd + UPDATE_DELTA_OFF, P) > 1.99, "noisy update at U");
	expect_budget(52, 10, 20, 2000, __LINE__);
	free(head);
	free(x);
	free(upd);
}

int main(int argc, char **argv)
{

	(void)argc;
	(void)argv;
	if (edge_sim_gp_init(harness_tmpdir("ta_test_train")))
		harness_die("edge_sim_gp_init");
	edge_sim_gp_set_heap_limit(TA_DATA_SIZE);
	ed_generate(&signer);
	ed_generate(&aggregator);
	ed_generate(&rogue);
	if (edge_session_open(&s1) || edge_session_open(&s2))
		harness_die("edge_session_open");

	test_fresh();
	setup_device();
	test_no_policy();
	test_policy_malformed();
	test_policy_install();
	test_no_model();
	if (load_model(1, IN, OUT, head3x2))
		harness_die("model v1");
	test_ticket_refusals();
	test_deterministic();
	test_short_buffer_and_commit();
	test_train_refusals();
	test_replace_policy();
	test_large();

	edge_session_close(s1);
	edge_session_close(s2);
	edge_state_reset();
	TEE_FreeTransientObject(signer.pair);
	TEE_FreeTransientObject(aggregator.pair);
	TEE_FreeTransientObject(rogue.pair);
	return harness_summary();
}
