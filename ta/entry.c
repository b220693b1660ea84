// SPDX-License-Identifier: BSD-2-Clause
/*
 * Entry points of the edge trusted application and the table-driven command
 * dispatch: each command has exactly one accepted parameter-type word.
 */
#include <tee_internal_api.h>
#include <tee_internal_api_extensions.h>
#include <edge_ta.h>

#include "commands.h"

#define PT(a, b, c, d) TEE_PARAM_TYPES(TEE_PARAM_TYPE_##a, \
				       TEE_PARAM_TYPE_##b, \
				       TEE_PARAM_TYPE_##c, \
				       TEE_PARAM_TYPE_##d)

struct edge_cmd {
	uint32_t id;
	uint32_t param_types;
	edge_cmd_fn fn;
};

static const struct edge_cmd edge_cmds[] = {
	{ .id = TA_EDGE_CMD_GET_IDENTITY,
	  .param_types = PT(MEMREF_OUTPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_get_identity },
	{ .id = TA_EDGE_CMD_GET_STATUS,
	  .param_types = PT(MEMREF_OUTPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_get_status },
	{ .id = TA_EDGE_CMD_INSTALL_ANCHORS,
	  .param_types = PT(MEMREF_INPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_install_anchors },
	{ .id = TA_EDGE_CMD_REPLACE_ANCHOR,
	  .param_types = PT(MEMREF_INPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_replace_anchor },
	{ .id = TA_EDGE_CMD_LOAD_BEGIN,
	  .param_types = PT(MEMREF_INPUT, VALUE_OUTPUT, VALUE_OUTPUT,
			    MEMREF_INPUT),
	  .fn = edge_cmd_load_begin },
	{ .id = TA_EDGE_CMD_LOAD_CHUNK,
	  .param_types = PT(VALUE_INPUT, MEMREF_INPUT, MEMREF_OUTPUT, NONE),
	  .fn = edge_cmd_load_chunk },
	{ .id = TA_EDGE_CMD_LOAD_FINISH,
	  .param_types = PT(VALUE_OUTPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_load_finish },
	{ .id = TA_EDGE_CMD_LOAD_ABORT,
	  .param_types = PT(NONE, NONE, NONE, NONE),
	  .fn = edge_cmd_load_abort },
	{ .id = TA_EDGE_CMD_INFER,
	  .param_types = PT(VALUE_INOUT, MEMREF_INPUT, MEMREF_OUTPUT, NONE),
	  .fn = edge_cmd_infer },
	{ .id = TA_EDGE_CMD_VERIFY_TICKET,
	  .param_types = PT(MEMREF_INPUT, VALUE_INPUT, VALUE_OUTPUT, NONE),
	  .fn = edge_cmd_verify_ticket },
	{ .id = TA_EDGE_CMD_TRAIN_AND_SEAL,
	  .param_types = PT(VALUE_INPUT, MEMREF_INPUT, MEMREF_INPUT,
			    MEMREF_OUTPUT),
	  .fn = edge_cmd_train_and_seal },
	{ .id = TA_EDGE_CMD_BUDGET_STATUS,
	  .param_types = PT(MEMREF_OUTPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_budget_status },
	{ .id = TA_EDGE_CMD_INSTALL_POLICY,
	  .param_types = PT(MEMREF_INPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_install_policy },
	{ .id = TA_EDGE_CMD_SECAGG_ADVERTISE,
	  .param_types = PT(MEMREF_INPUT, VALUE_INPUT, MEMREF_OUTPUT, NONE),
	  .fn = edge_cmd_secagg_advertise },
	{ .id = TA_EDGE_CMD_SECAGG_SHARE,
	  .param_types = PT(MEMREF_INPUT, MEMREF_OUTPUT, NONE, NONE),
	  .fn = edge_cmd_secagg_share },
	{ .id = TA_EDGE_CMD_SECAGG_RECEIVE,
	  .param_types = PT(MEMREF_INPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_secagg_receive },
	{ .id = TA_EDGE_CMD_SECAGG_UNMASK,
	  .param_types = PT(MEMREF_INPUT, MEMREF_OUTPUT, NONE, NONE),
	  .fn = edge_cmd_secagg_unmask },
	{ .id = TA_EDGE_CMD_INSTALL_REGISTRAR,
	  .param_types = PT(MEMREF_INPUT, NONE, NONE, NONE),
	  .fn = edge_cmd_install_registrar },
	{ .id = TA_EDGE_CMD_SIGN_SKIP,
	  .param_types = PT(MEMREF_INPUT, VALUE_INPUT, MEMREF_OUTPUT,
			    VALUE_INOUT),
	  .fn = edge_cmd_sign_skip },
};

TEE_Result TA_CreateEntryPoint(void)
{
	/* State is loaded lazily from secure storage by the commands. */
	return TEE_SUCCESS;
}

void TA_DestroyEntryPoint(void)
{
	edge_state_reset();
}

TEE_Result TA_OpenSessionEntryPoint(uint32_t param_types,
				    TEE_Param params[TEE_NUM_PARAMS],
				    void **sess_ctx)
{
	struct edge_session *sess = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)params;
	if (param_types != PT(NONE, NONE, NONE, NONE))
		return TEE_ERROR_BAD_PARAMETERS;
	res = edge_session_open(&sess);
	if (res)
		return res;
	*sess_ctx = sess;
	return TEE_SUCCESS;
}

void TA_CloseSessionEntryPoint(void *sess_ctx)
{
	edge_session_close(sess_ctx);
}

TEE_Result TA_InvokeCommandEntryPoint(void *sess_ctx, uint32_t cmd_id,
				      uint32_t param_types,
				      TEE_Param params[TEE_NUM_PARAMS])
{
	const struct edge_cmd *cmd = NULL;
	size_t i = 0;

	for (i = 0; i < sizeof(edge_cmds) / sizeof(edge_cmds[0]); i++) {
		if (edge_cmds[i].id == cmd_id) {
			cmd = &edge_cmds[i];
			break;
		}
	}
	if (!cmd) {
		DMSG("unknown command %u", (unsigned int)cmd_id);
		return TEE_ERROR_NOT_SUPPORTED;
	}
	if (param_types != cmd->param_types) {
		DMSG("command %u: bad parameter types 0x%x",
		     (unsigned int)cmd_id, (unsigned int)param_types);
		return TEE_ERROR_BAD_PARAMETERS;
	}
	return cmd->fn(sess_ctx, params);
}
