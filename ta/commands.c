// SPDX-License-Identifier: BSD-2-Clause
/*
 * Command handlers of identity, anchors, package loading and inference;
 * the private-training commands are in training.c, the state in state.c.
 */
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "bytes.h"
#include "commands.h"
#include "envelope.h"
#include "state.h"

TEE_Result copy_envelope(const TEE_Param *p, uint16_t kind,
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

void free_wiped(void *p, size_t len)
{
	if (p) {
		TEE_MemFill(p, 0, len);
		TEE_Free(p);
	}
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
	res = state_identity(true);
	if (res)
		return res;
	if (!edge_st.record_valid) {
		res = identity_device_record(edge_st.identity.sign_key,
					     edge_st.identity.sign_pub,
					     edge_st.identity.kex_pub, edge_st.record);
		if (res)
			return res;
		edge_st.record_valid = true;
	}
	TEE_MemMove(params[0].memref.buffer, edge_st.record,
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
	res = state_identity(false);
	if (res && res != TEE_ERROR_ITEM_NOT_FOUND)
		return res;
	res = state_anchors();
	if (res && res != EDGE_ERR_NOT_PROVISIONED)
		return res;
	res = state_model();
	if (res)
		return res;

	put_le32(st + EDGE_STATUS_OFF_ABI_VERSION, EDGE_TA_ABI_VERSION);
	if (edge_st.identity_loaded) {
		flags |= EDGE_STATUS_F_IDENTITY;
		TEE_MemMove(st + EDGE_STATUS_OFF_DEVICE_ID,
			    edge_st.identity.device_id, EDGE_KEY_ID_SIZE);
	}
	if (edge_st.anchors.present) {
		flags |= EDGE_STATUS_F_ANCHORS;
		put_le64(st + EDGE_STATUS_OFF_SIGNER_EPOCH,
			 edge_st.anchors.role[0].epoch);
		put_le64(st + EDGE_STATUS_OFF_AGG_EPOCH,
			 edge_st.anchors.role[1].epoch);
		TEE_MemMove(st + EDGE_STATUS_OFF_SIGNER_KEY_ID,
			    edge_st.anchors.role[0].id, EDGE_KEY_ID_SIZE);
		TEE_MemMove(st + EDGE_STATUS_OFF_AGG_KEY_ID,
			    edge_st.anchors.role[1].id, EDGE_KEY_ID_SIZE);
	}
	if (edge_st.model.present) {
		flags |= EDGE_STATUS_F_MODEL;
		put_le64(st + EDGE_STATUS_OFF_MODEL_VERSION, edge_st.model.version);
		put_le32(st + EDGE_STATUS_OFF_HEAD_IN, edge_st.model.in);
		put_le32(st + EDGE_STATUS_OFF_HEAD_OUT, edge_st.model.out);
		TEE_MemMove(st + EDGE_STATUS_OFF_PACKAGE_ID,
			    edge_st.model.package_id, 16);
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
	res = state_anchors();
	if (!res)
		return EDGE_ERR_ALREADY_PROVISIONED;
	if (res != EDGE_ERR_NOT_PROVISIONED)
		return res;
	res = anchors_install(&edge_st.anchors, keys);
	if (res == EDGE_ERR_ALREADY_PROVISIONED) {
		/* Stored by someone else meanwhile: reload next time. */
		edge_st.anchors_loaded = false;
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
	res = state_anchors();
	if (res)
		return res;
	res = copy_envelope(&params[0], EDGE_KIND_ANCHOR_STATEMENT,
			    EDGE_ANCHOR_STATEMENT_SIZE, &stmt);
	if (!res)
		res = anchors_replace(&edge_st.anchors, stmt, len);
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
	uint8_t *wrap = NULL;
	size_t len = params[0].memref.size;
	size_t wrap_len = params[3].memref.size;
	TEE_Result res = TEE_ERROR_GENERIC;

	/* A new LOAD_BEGIN replaces any pending load, refused or not. */
	state_drop_load();
	res = state_anchors();
	if (res)
		return res;
	/*
	 * Not created here: a refused package must change nothing, and one
	 * that is accepted was addressed to an identity that exists already.
	 */
	res = state_identity(false);
	if (res && res != TEE_ERROR_ITEM_NOT_FOUND)
		return res;
	res = state_model();
	if (res)
		return res;
	res = copy_envelope(&params[0], EDGE_KIND_PACKAGE,
			    EDGE_MAX_MANIFEST_SIZE, &manifest);
	if (!res)
		res = copy_envelope(&params[3], EDGE_KIND_KEY_WRAP,
				    EDGE_KEY_WRAP_SIZE, &wrap);
	if (!res)
		res = pkg_begin(&edge_st.load, manifest, len, wrap, wrap_len,
				edge_st.anchors.role[0].pub, state_model_version(),
				edge_st.identity.kex_key,
				edge_st.identity_loaded ? edge_st.identity.device_id : NULL,
				&info);
	TEE_Free(manifest);
	TEE_Free(wrap);
	if (res) {
		EMSG("package refused at LOAD_BEGIN: 0x%x", (unsigned int)res);
		return res;
	}
	edge_st.load_owner = sess;
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

	if (!edge_st.load.active || edge_st.load_owner != sess)
		return TEE_ERROR_BAD_STATE;
	res = pkg_chunk(&edge_st.load, params[0].value.a, params[1].memref.buffer,
			params[1].memref.size, params[2].memref.buffer,
			&out_len);
	params[2].memref.size = out_len;
	if (!edge_st.load.active)
		edge_st.load_owner = NULL;
	return res;
}

TEE_Result edge_cmd_load_finish(struct edge_session *sess,
				TEE_Param params[TEE_NUM_PARAMS])
{
	struct edge_model fresh = { };
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!edge_st.load.active || edge_st.load_owner != sess)
		return TEE_ERROR_BAD_STATE;
	res = state_model();
	if (res) {
		state_drop_load();
		return res;
	}
	res = pkg_finish(&edge_st.load, state_model_version(), &fresh);
	edge_st.load_owner = NULL;
	if (res) {
		EMSG("package refused at LOAD_FINISH: 0x%x",
		     (unsigned int)res);
		return res;
	}
	model_free(&edge_st.model);
	edge_st.model = fresh;
	params[0].value.a = (uint32_t)edge_st.model.version;
	params[0].value.b = (uint32_t)(edge_st.model.version >> 32);
	return TEE_SUCCESS;
}

TEE_Result edge_cmd_load_abort(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS])
{
	(void)params;
	/* A session drops its own load; another session's is left alone. */
	if (edge_st.load_owner == sess)
		state_drop_load();
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
	res = state_model();
	if (res)
		return res;
	if (!edge_st.model.present)
		return EDGE_ERR_NO_MODEL;
	if (edge_st.model.infer.release == EDGE_INFER_NONE)
		return EDGE_ERR_INFER_DISABLED;
	/* n <= 1024, I <= 4096, O <= 1024: no overflow in 64 bits. */
	in_bytes = (uint64_t)n * edge_st.model.in * 4;
	out_bytes = infer_out_size(&edge_st.model, n);
	if ((uint64_t)params[1].memref.size != in_bytes)
		return TEE_ERROR_BAD_PARAMETERS;
	if ((uint64_t)params[2].memref.size < out_bytes) {
		params[2].memref.size = (size_t)out_bytes;
		return TEE_ERROR_SHORT_BUFFER;
	}
	/* Implausible features are refused before they cost any budget. */
	res = infer_check_features(&edge_st.model, n, params[1].memref.buffer);
	if (!res)
		res = query_budget_charge(&edge_st.queries, &edge_st.model, n);
	if (!res)
		res = head_infer(&edge_st.model, n, params[1].memref.buffer,
				 params[2].memref.buffer);
	params[0].value.a = edge_st.model.infer.release;
	params[0].value.b = query_budget_left(&edge_st.queries, &edge_st.model);
	if (res)
		return res;
	params[2].memref.size = (size_t)out_bytes;
	return TEE_SUCCESS;
}
