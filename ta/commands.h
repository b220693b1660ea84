/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Command handlers of the edge TA and the TA's global state. entry.c checks
 * the parameter types against the dispatch table before calling a handler,
 * so a handler trusts the types but nothing else: every size and value is
 * checked here, and every input that is verified is copied into TA memory
 * first.
 */
#ifndef EDGE_COMMANDS_H
#define EDGE_COMMANDS_H

#include <tee_internal_api.h>

/* A session: owns the pending load it began. */
struct edge_session {
	uint32_t id;
};

typedef TEE_Result (*edge_cmd_fn)(struct edge_session *sess,
				  TEE_Param params[TEE_NUM_PARAMS]);

TEE_Result edge_cmd_get_identity(struct edge_session *sess,
				 TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_get_status(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_install_anchors(struct edge_session *sess,
				    TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_replace_anchor(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_load_begin(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_load_chunk(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_load_finish(struct edge_session *sess,
				TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_load_abort(struct edge_session *sess,
			       TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_infer(struct edge_session *sess,
			  TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_not_implemented(struct edge_session *sess,
				    TEE_Param params[TEE_NUM_PARAMS]);

/* Session bookkeeping (entry.c). */
TEE_Result edge_session_open(struct edge_session **sess);
void edge_session_close(struct edge_session *sess);

/*
 * Drops every cached key, the active head and any pending load (all wiped);
 * the next command reloads from secure storage. TA_DestroyEntryPoint.
 */
void edge_state_reset(void);

#endif /* EDGE_COMMANDS_H */
