// SPDX-License-Identifier: BSD-2-Clause
/*
 * Command handlers and the single instance's state: cached identity keys
 * and device record, cached anchors, the active head (loaded lazily from
 * secure storage) and the pending load.
 */
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "anchors.h"
#include "bytes.h"
#include "commands.h"
#include "envelope.h"
#include "head.h"
#include "identity.h"
#include "package.h"
#include "query_budget.h"
#include "dpsgd.h"
#include "gauss.h"
#include "policy.h"
#include "seal.h"
#include "ticket.h"

static struct {
	bool identity_loaded;
	struct edge_identity identity;
	bool record_valid;
	uint8_t record[EDGE_DEVICE_RECORD_SIZE];

	bool anchors_loaded;
	struct edge_anchors anchors;

	bool model_loaded;
	struct edge_model model;
	struct query_budget queries;

	struct pkg_load load;
	struct edge_session *load_owner;

	uint32_t next_session_id;
} g;

void edge_state_reset(void)
{
	identity_close(&g.identity);
	model_free(&g.model);
	pkg_abort(&g.load);
	TEE_MemFill(&g, 0, sizeof(g));
}

TEE_Result edge_session_open(struct edge_session **sess)
{
	struct edge_session *s = TEE_Malloc(sizeof(*s), TEE_MALLOC_FILL_ZERO);

	if (!s)
		return TEE_ERROR_OUT_OF_MEMORY;
	s->id = ++g.next_session_id;
	*sess = s;
	return TEE_SUCCESS;
}

static void drop_load(void)
{
	pkg_abort(&g.load);
	g.load_owner = NULL;
}

static void drop_ticket(struct edge_session *sess)
{
	sess->ticket_held = false;
	TEE_MemFill(&sess->ticket, 0, sizeof(sess->ticket));
	sess->ticket_ree_time = 0;
}

void edge_session_close(struct edge_session *sess)
{
	if (sess && g.load_owner == sess)
		drop_load();
	if (sess)
		drop_ticket(sess);
	TEE_Free(sess);
}

/* ---- Lazily loaded state --------------------------------------------- */

static TEE_Result ensure_identity(bool create)
{
	TEE_Result res = TEE_ERROR_GENERIC;

	if (g.identity_loaded)
		return TEE_SUCCESS;
	if (create)
		res = identity_load_or_create(&g.identity);
	else
		res = identity_load(&g.identity);
	if (res)
		return res;
	g.identity_loaded = true;
	return TEE_SUCCESS;
}

/* EDGE_ERR_NOT_PROVISIONED if no anchors are stored. */
static TEE_Result ensure_anchors(void)
{
	TEE_Result res = TEE_ERROR_GENERIC;

	if (g.anchors_loaded)
		return g.anchors.present ? TEE_SUCCESS :
					   EDGE_ERR_NOT_PROVISIONED;
	res = anchors_load(&g.anchors);
	if (res && res != EDGE_ERR_NOT_PROVISIONED)
		return res;
	g.anchors_loaded = true;
	return res;
}

/* Success with g.model.present false if no model is stored. */
static TEE_Result ensure_model(void)
{
	TEE_Result res = TEE_ERROR_GENERIC;

	if (g.model_loaded)
		return TEE_SUCCESS;
	res = model_load(&g.model);
	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		res = TEE_SUCCESS;
	if (res)
		return res;
	g.model_loaded = true;
	return TEE_SUCCESS;
}

static uint64_t stored_version(void)
{
	return g.model.present ? g.model.version : 0;
}

/*
 * Copies an envelope from (possibly shared) memory into a new TA buffer
 * after the checks that need only its header and length (so an oversized
 * input is refused without being copied). The caller parses only the copy.
 */
static TEE_Result copy_envelope(const TEE_Param *p, uint16_t kind,
				size_t max_len, uint8_t **copy)
{
	uint8_t hdr[EDGE_ENVELOPE_HEADER_SIZE] = { 0 };
	size_t len = p->memref.size;
	TEE_Result res = TEE_ERROR_GENERIC;

	*copy = NULL;
	TEE_MemMove(hdr, p->memref.buffer,
		    len < sizeof(hdr) ? len : sizeof(hdr));
	res = envelope_precheck(hdr, len, kind, max_len);
	if (res)
		return res;
	*copy = TEE_Malloc(len, TEE_MALLOC_FILL_ZERO);
	if (!*copy)
		return TEE_ERROR_OUT_OF_MEMORY;
	TEE_MemMove(*copy, p->memref.buffer, len);
	return TEE_SUCCESS;
}

/* ---- Commands --------------------------------------------------------- */

TEE_Result edge_cmd_get_identity(struct edge_session *sess,
				 TEE_Param params[TEE_NUM_PARAMS])
{
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	if (params[0].memref.size < EDGE_DEVICE_RECORD_SIZE) {
		params[0].memref.size = EDGE_DEVICE_RECORD_SIZE;
		return TEE_ERROR_SHORT_BUFFER;
	}
	res = ensure_identity(true);
	if (res)
		return res;
	if (!g.record_valid) {
		res = identity_device_record(g.identity.sign_key,
					     g.identity.sign_pub,
					     g.identity.kex_pub, g.record);
		if (res)
			return res;
		g.record_valid = true;
	}
	TEE_MemMove(params[0].memref.buffer, g.record,
		    EDGE_DEVICE_RECORD_SIZE);
	params[0].memref.size = EDGE_DEVICE_RECORD_SIZE;
	return TEE_SUCCESS;
}

TEE_Result edge_cmd_get_status(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS])
{
	uint8_t st[EDGE_STATUS_SIZE] = { 0 };
	uint32_t flags = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	if (params[0].memref.size < EDGE_STATUS_SIZE) {
		params[0].memref.size = EDGE_STATUS_SIZE;
		return TEE_ERROR_SHORT_BUFFER;
	}
	res = ensure_identity(false);
	if (res && res != TEE_ERROR_ITEM_NOT_FOUND)
		return res;
	res = ensure_anchors();
	if (res && res != EDGE_ERR_NOT_PROVISIONED)
		return res;
	res = ensure_model();
	if (res)
		return res;

	put_le32(st + EDGE_STATUS_OFF_ABI_VERSION, EDGE_TA_ABI_VERSION);
	if (g.identity_loaded) {
		flags |= EDGE_STATUS_F_IDENTITY;
		TEE_MemMove(st + EDGE_STATUS_OFF_DEVICE_ID,
			    g.identity.device_id, EDGE_KEY_ID_SIZE);
	}
	if (g.anchors.present) {
		flags |= EDGE_STATUS_F_ANCHORS;
		put_le64(st + EDGE_STATUS_OFF_SIGNER_EPOCH,
			 g.anchors.role[0].epoch);
		put_le64(st + EDGE_STATUS_OFF_AGG_EPOCH,
			 g.anchors.role[1].epoch);
		TEE_MemMove(st + EDGE_STATUS_OFF_SIGNER_KEY_ID,
			    g.anchors.role[0].id, EDGE_KEY_ID_SIZE);
		TEE_MemMove(st + EDGE_STATUS_OFF_AGG_KEY_ID,
			    g.anchors.role[1].id, EDGE_KEY_ID_SIZE);
	}
	if (g.model.present) {
		flags |= EDGE_STATUS_F_MODEL;
		put_le64(st + EDGE_STATUS_OFF_MODEL_VERSION, g.model.version);
		put_le32(st + EDGE_STATUS_OFF_HEAD_IN, g.model.in);
		put_le32(st + EDGE_STATUS_OFF_HEAD_OUT, g.model.out);
		TEE_MemMove(st + EDGE_STATUS_OFF_PACKAGE_ID,
			    g.model.package_id, 16);
	}
	put_le32(st + EDGE_STATUS_OFF_FLAGS, flags);
	TEE_MemMove(params[0].memref.buffer, st, sizeof(st));
	params[0].memref.size = sizeof(st);
	return TEE_SUCCESS;
}

TEE_Result edge_cmd_install_anchors(struct edge_session *sess,
				    TEE_Param params[TEE_NUM_PARAMS])
{
	uint8_t keys[2 * EDGE_PUBKEY_SIZE] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	if (params[0].memref.size != sizeof(keys))
		return TEE_ERROR_BAD_PARAMETERS;
	TEE_MemMove(keys, params[0].memref.buffer, sizeof(keys));
	res = ensure_anchors();
	if (!res)
		return EDGE_ERR_ALREADY_PROVISIONED;
	if (res != EDGE_ERR_NOT_PROVISIONED)
		return res;
	res = anchors_install(&g.anchors, keys);
	if (res == EDGE_ERR_ALREADY_PROVISIONED) {
		/* Stored by someone else meanwhile: reload next time. */
		g.anchors_loaded = false;
	}
	if (!res)
		IMSG("trust anchors installed");
	return res;
}

TEE_Result edge_cmd_replace_anchor(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS])
{
	uint8_t *stmt = NULL;
	size_t len = params[0].memref.size;
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	res = ensure_anchors();
	if (res)
		return res;
	res = copy_envelope(&params[0], EDGE_KIND_ANCHOR_STATEMENT,
			    EDGE_ANCHOR_STATEMENT_SIZE, &stmt);
	if (!res)
		res = anchors_replace(&g.anchors, stmt, len);
	if (res)
		EMSG("anchor statement refused: 0x%x", (unsigned int)res);
	TEE_Free(stmt);
	return res;
}

TEE_Result edge_cmd_load_begin(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS])
{
	struct pkg_info info = { };
	uint8_t *manifest = NULL;
	size_t len = params[0].memref.size;
	TEE_Result res = TEE_ERROR_GENERIC;

	/* A new LOAD_BEGIN replaces any pending load, refused or not. */
	drop_load();
	res = ensure_anchors();
	if (res)
		return res;
	/*
	 * Not created here: a refused package must change nothing, and one
	 * that is accepted was addressed to an identity that exists already.
	 */
	res = ensure_identity(false);
	if (res && res != TEE_ERROR_ITEM_NOT_FOUND)
		return res;
	res = ensure_model();
	if (res)
		return res;
	res = copy_envelope(&params[0], EDGE_KIND_PACKAGE,
			    EDGE_MAX_MANIFEST_SIZE, &manifest);
	if (!res)
		res = pkg_begin(&g.load, manifest, len,
				g.anchors.role[0].pub, stored_version(),
				g.identity.kex_key,
				g.identity_loaded ? g.identity.device_id : NULL,
				&info);
	TEE_Free(manifest);
	if (res) {
		EMSG("package refused at LOAD_BEGIN: 0x%x", (unsigned int)res);
		return res;
	}
	g.load_owner = sess;
	params[1].value.a = info.chunk_count;
	params[1].value.b = info.flags;
	params[2].value.a = info.chunk_size;
	params[2].value.b = info.last_stored_size;
	return TEE_SUCCESS;
}

TEE_Result edge_cmd_load_chunk(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS])
{
	size_t out_len = params[2].memref.size;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!g.load.active || g.load_owner != sess)
		return TEE_ERROR_BAD_STATE;
	res = pkg_chunk(&g.load, params[0].value.a, params[1].memref.buffer,
			params[1].memref.size, params[2].memref.buffer,
			&out_len);
	params[2].memref.size = out_len;
	if (!g.load.active)
		g.load_owner = NULL;
	return res;
}

TEE_Result edge_cmd_load_finish(struct edge_session *sess,
				TEE_Param params[TEE_NUM_PARAMS])
{
	struct edge_model fresh = { };
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!g.load.active || g.load_owner != sess)
		return TEE_ERROR_BAD_STATE;
	res = ensure_model();
	if (res) {
		drop_load();
		return res;
	}
	res = pkg_finish(&g.load, stored_version(), &fresh);
	g.load_owner = NULL;
	if (res) {
		EMSG("package refused at LOAD_FINISH: 0x%x",
		     (unsigned int)res);
		return res;
	}
	model_free(&g.model);
	g.model = fresh;
	params[0].value.a = (uint32_t)g.model.version;
	params[0].value.b = (uint32_t)(g.model.version >> 32);
	return TEE_SUCCESS;
}

TEE_Result edge_cmd_load_abort(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS])
{
	(void)params;
	/* A session drops its own load; another session's is left alone. */
	if (g.load_owner == sess)
		drop_load();
	return TEE_SUCCESS;
}

TEE_Result edge_cmd_infer(struct edge_session *sess,
			  TEE_Param params[TEE_NUM_PARAMS])
{
	uint32_t n = params[0].value.a;
	uint64_t in_bytes = 0;
	uint64_t out_bytes = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	if (n < 1)
		return TEE_ERROR_BAD_PARAMETERS;
	if (n > EDGE_MAX_INFER_BATCH)
		return TEE_ERROR_EXCESS_DATA;
	res = ensure_model();
	if (res)
		return res;
	if (!g.model.present)
		return EDGE_ERR_NO_MODEL;
	if (g.model.infer.release == EDGE_INFER_NONE)
		return EDGE_ERR_INFER_DISABLED;
	/* n <= 1024, I <= 4096, O <= 1024: no overflow in 64 bits. */
	in_bytes = (uint64_t)n * g.model.in * 4;
	out_bytes = infer_out_size(&g.model, n);
	if ((uint64_t)params[1].memref.size != in_bytes)
		return TEE_ERROR_BAD_PARAMETERS;
	if ((uint64_t)params[2].memref.size < out_bytes) {
		params[2].memref.size = (size_t)out_bytes;
		return TEE_ERROR_SHORT_BUFFER;
	}
	/* Implausible features are refused before they cost any budget. */
	res = infer_check_features(&g.model, n, params[1].memref.buffer);
	if (!res)
		res = query_budget_charge(&g.queries, &g.model, n);
	if (!res)
		res = head_infer(&g.model, n, params[1].memref.buffer,
				 params[2].memref.buffer);
	params[0].value.a = g.model.infer.release;
	params[0].value.b = query_budget_left(&g.queries, &g.model);
	if (res)
		return res;
	params[2].memref.size = (size_t)out_bytes;
	return TEE_SUCCESS;
}

/* ---- Private training ------------------------------------------------- */

TEE_Result edge_cmd_install_policy(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS])
{
	struct edge_train_state st = { };
	struct edge_policy pol = { };
	uint8_t *env = NULL;
	size_t len = params[0].memref.size;
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	res = ensure_anchors();
	if (res)
		return res;
	res = copy_envelope(&params[0], EDGE_KIND_PRIVACY_POLICY, EDGE_POLICY_SIZE,
			    &env);
	if (!res)
		res = policy_open(env, len, g.anchors.role[0].id,
				  g.anchors.role[0].pub, &pol);
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

TEE_Result edge_cmd_verify_ticket(struct edge_session *sess,
				  TEE_Param params[TEE_NUM_PARAMS])
{
	struct edge_train_state st = { };
	struct edge_ticket t = { };
	uint8_t *env = NULL;
	size_t len = params[0].memref.size;
	uint64_t ree = (uint64_t)params[1].value.b << 32 | params[1].value.a;
	uint64_t left = 0;
	uint64_t per_round = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	/* A new VERIFY replaces the held ticket, whatever its outcome. */
	drop_ticket(sess);
	res = ensure_anchors();
	if (res)
		return res;
	res = copy_envelope(&params[0], EDGE_KIND_ROUND_TICKET, EDGE_TICKET_SIZE,
			    &env);
	if (!res)
		res = ticket_open(env, len, g.anchors.role[1].id,
				  g.anchors.role[1].pub, &t);
	TEE_Free(env);
	if (!res)
		res = train_state_load(&st);
	if (!res)
		res = ensure_model();
	if (!res)
		res = ticket_check(&t, &st, g.model.present,
				   stored_version(), ree);
	if (!res && st.policy.sampling == EDGE_SAMPLING_POISSON)
		res = ticket_steps(&t, &st.policy, 0, &per_round);
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

static void free_wiped(void *p, size_t len)
{
	if (p) {
		TEE_MemFill(p, 0, len);
		TEE_Free(p);
	}
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
	res = ensure_model();
	if (!res)
		res = train_state_load(&st);
	if (!res)
		res = ticket_check(&t, &st, g.model.present,
				   stored_version(), sess->ticket_ree_time);
	if (res)
		goto out;

	if (n < 1) {
		res = TEE_ERROR_BAD_PARAMETERS;
		goto out;
	}
	/* n <= 4096 and I <= 4096 below: no overflow in 64 bits. */
	feat_bytes = (uint64_t)n * g.model.in * 4;
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
	P = g.model.in * g.model.out + g.model.out;
	need = seal_size(P);
	if (params[3].memref.size < need) {
		/* The only refusal that keeps the ticket: just ask again. */
		params[3].memref.size = need;
		return TEE_ERROR_SHORT_BUFFER;
	}
	res = copy_labels(&params[2], n, g.model.out, &labels);
	if (res)
		goto out;

	/* The round's cost, refused before any training. */
	res = ticket_steps(&t, &st.policy, n, &T);
	if (res)
		goto out;
	if (T > train_steps_left(&st)) {
		res = EDGE_ERR_BUDGET_EXHAUSTED;
		goto out;
	}
	res = ensure_identity(true);
	if (res)
		goto out;

	cfg.in = g.model.in;
	cfg.out = g.model.out;
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
	res = dpsgd_run(&cfg, g.model.head, params[1].memref.buffer, labels,
			rng, delta);
	rng_wipe(rng);
	if (res)
		goto out;

	out = TEE_Malloc(need, TEE_MALLOC_FILL_ZERO);
	if (!out) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	si.device_id = g.identity.device_id;
	si.round_id = t.round_id;
	si.cohort_nonce = t.cohort_nonce;
	si.model_version = t.model_version;
	si.n = n;
	si.steps = (uint32_t)T;
	si.total_steps = st.steps_spent + T;
	si.params = P;
	si.update_clip = t.update_clip;
	si.sigma = t.sigma;
	si.clip = t.clip;
	res = seal_build(&si, delta, g.identity.sign_key, out);
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
	drop_ticket(sess);
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
