// SPDX-License-Identifier: BSD-2-Clause
/*
 * The TA instance's state and the session life cycle. One instance serves
 * every session (TA_FLAG_SINGLE_INSTANCE), so what is cached here is shared:
 * the identity keys and device record, the anchors, the active head and its
 * query budget (each loaded lazily from secure storage), and the one pending
 * package load with the session that owns it.
 */
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "state.h"

struct edge_state edge_st;

void edge_state_reset(void)
{
	identity_close(&edge_st.identity);
	model_free(&edge_st.model);
	pkg_abort(&edge_st.load);
	TEE_MemFill(&edge_st, 0, sizeof(edge_st));
}

TEE_Result edge_session_open(struct edge_session **sess)
{
	struct edge_session *s = TEE_Malloc(sizeof(*s), TEE_MALLOC_FILL_ZERO);

	if (!s)
		return TEE_ERROR_OUT_OF_MEMORY;
	s->id = ++edge_st.next_session_id;
	*sess = s;
	return TEE_SUCCESS;
}

void state_drop_load(void)
{
	pkg_abort(&edge_st.load);
	edge_st.load_owner = NULL;
}

void state_drop_ticket(struct edge_session *sess)
{
	sess->ticket_held = false;
	TEE_MemFill(&sess->ticket, 0, sizeof(sess->ticket));
	sess->ticket_ree_time = 0;
}

void edge_session_close(struct edge_session *sess)
{
	if (sess && edge_st.load_owner == sess)
		state_drop_load();
	if (sess)
		state_drop_ticket(sess);
	TEE_Free(sess);
}

/* ---- Lazily loaded state --------------------------------------------- */

TEE_Result state_identity(bool create)
{
	TEE_Result res = TEE_ERROR_GENERIC;

	if (edge_st.identity_loaded)
		return TEE_SUCCESS;
	if (create)
		res = identity_load_or_create(&edge_st.identity);
	else
		res = identity_load(&edge_st.identity);
	if (res)
		return res;
	edge_st.identity_loaded = true;
	return TEE_SUCCESS;
}

TEE_Result state_anchors(void)
{
	TEE_Result res = TEE_ERROR_GENERIC;

	if (edge_st.anchors_loaded)
		return edge_st.anchors.present ? TEE_SUCCESS :
					   EDGE_ERR_NOT_PROVISIONED;
	res = anchors_load(&edge_st.anchors);
	if (res && res != EDGE_ERR_NOT_PROVISIONED)
		return res;
	edge_st.anchors_loaded = true;
	return res;
}

TEE_Result state_model(void)
{
	TEE_Result res = TEE_ERROR_GENERIC;

	if (edge_st.model_loaded)
		return TEE_SUCCESS;
	res = model_load(&edge_st.model);
	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		res = TEE_SUCCESS;
	if (res)
		return res;
	edge_st.model_loaded = true;
	return TEE_SUCCESS;
}

uint64_t state_model_version(void)
{
	return edge_st.model.present ? edge_st.model.version : 0;
}
