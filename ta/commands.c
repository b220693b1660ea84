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

static struct {
	bool identity_loaded;
	struct edge_identity identity;
	bool record_valid;
	uint8_t record[EDGE_DEVICE_RECORD_SIZE];

	bool anchors_loaded;
	struct edge_anchors anchors;

	bool model_loaded;
	struct edge_model model;

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

void edge_session_close(struct edge_session *sess)
{
	if (sess && g.load_owner == sess)
		drop_load();
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
	*copy = TEE_Malloc(len, TEE_MALLOC_NO_FILL);
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
	res = copy_envelope(&params[0], EDGE_KIND_ANCHOR,
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
	res = ensure_identity(true);
	if (res)
		return res;
	res = ensure_model();
	if (res)
		return res;
	res = copy_envelope(&params[0], EDGE_KIND_MANIFEST,
			    EDGE_MAX_MANIFEST_SIZE, &manifest);
	if (!res)
		res = pkg_begin(&g.load, manifest, len,
				g.anchors.role[0].pub, stored_version(),
				g.identity.kex_key, g.identity.device_id,
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
	/* n <= 1024, I <= 4096, O <= 1024: no overflow in 64 bits. */
	in_bytes = (uint64_t)n * g.model.in * 4;
	out_bytes = (uint64_t)n * g.model.out * 4;
	if ((uint64_t)params[1].memref.size != in_bytes)
		return TEE_ERROR_BAD_PARAMETERS;
	if ((uint64_t)params[2].memref.size < out_bytes) {
		params[2].memref.size = (size_t)out_bytes;
		return TEE_ERROR_SHORT_BUFFER;
	}
	res = head_infer(&g.model, n, params[1].memref.buffer,
			 params[2].memref.buffer);
	if (res)
		return res;
	params[2].memref.size = (size_t)out_bytes;
	return TEE_SUCCESS;
}

TEE_Result edge_cmd_not_implemented(struct edge_session *sess,
				    TEE_Param params[TEE_NUM_PARAMS])
{
	(void)sess;
	(void)params;
	return TEE_ERROR_NOT_IMPLEMENTED;
}
