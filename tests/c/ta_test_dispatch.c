// SPDX-License-Identifier: BSD-2-Clause
/*
 * The TA's entry points and table-driven dispatch. The TA test programs are
 * linked without entry.o, so this one compiles ta/entry.c into itself.
 *
 * Usage: ta_test_dispatch [tests/vectors]   (the argument is not needed)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gp_sim.h>
#include <user_ta_header_defines.h>

#include "entry.c"
#include "harness.h"

/* One result of command `cmd`, checked where the call was made. */
#define EXPECT(got, want, what, cmd)                                          \
	CHECK_RES(got, want, "%s (command %" PRIu32 ")", what, (uint32_t)(cmd))

int main(int argc, char **argv)
{
	uint8_t buf[256];
	TEE_Param p[TEE_NUM_PARAMS];
	void *sess = NULL;
	void *bad_sess = NULL;
	uint32_t none = PT(NONE, NONE, NONE, NONE);
	uint32_t all_in = PT(MEMREF_INPUT, MEMREF_INPUT, MEMREF_INPUT,
			     MEMREF_INPUT);
	size_t i = 0;
	TEE_Result res;

	(void)argc;
	(void)argv;
	if (edge_sim_gp_init(harness_tmpdir("ta_test_dispatch")))
		harness_die("edge_sim_gp_init");
	edge_sim_gp_set_heap_limit(TA_DATA_SIZE);
	EXPECT(TA_CreateEntryPoint(), TEE_SUCCESS, "create", 0);
	memset(p, 0, sizeof(p));
	res = TA_OpenSessionEntryPoint(PT(VALUE_INPUT, NONE, NONE, NONE), p,
				       &bad_sess);
	EXPECT(res, TEE_ERROR_BAD_PARAMETERS, "open session with params", 0);
	EXPECT(TA_OpenSessionEntryPoint(none, p, &sess), TEE_SUCCESS,
	       "open session", 0);

	/* Every command refuses any parameter types but its own. */
	for (i = 0; i < sizeof(edge_cmds) / sizeof(edge_cmds[0]); i++) {
		const struct edge_cmd *c = &edge_cmds[i];
		uint32_t wrong = c->param_types == none ? all_in : none;

		memset(p, 0, sizeof(p));
		res = TA_InvokeCommandEntryPoint(sess, c->id, wrong, p);
		EXPECT(res, TEE_ERROR_BAD_PARAMETERS, "wrong types", c->id);
		/* Off by one parameter slot. */
		res = TA_InvokeCommandEntryPoint(sess, c->id,
						 c->param_types << 4, p);
		EXPECT(res, c->param_types << 4 == c->param_types ?
		       TEE_SUCCESS : TEE_ERROR_BAD_PARAMETERS,
		       "shifted types", c->id);
	}
	for (i = TA_EDGE_CMD_VERIFY_TICKET; i <= TA_EDGE_CMD_INSTALL_POLICY;
	     i++) {
		int found = 0;
		size_t j = 0;

		for (j = 0; j < sizeof(edge_cmds) / sizeof(edge_cmds[0]); j++)
			found |= edge_cmds[j].id == i;
		EXPECT(found ? TEE_SUCCESS : TEE_ERROR_ITEM_NOT_FOUND,
		       TEE_SUCCESS, "training command in the table",
		       (uint32_t)i);
	}
	/* Ids are allocated per area (contract/spec.py): not contiguous. */
	res = TA_InvokeCommandEntryPoint(sess, 0x100, none, p);
	EXPECT(res, TEE_ERROR_NOT_SUPPORTED, "unknown command", 0x100);
	res = TA_InvokeCommandEntryPoint(sess, 0xFFFFFFFF, none, p);
	EXPECT(res, TEE_ERROR_NOT_SUPPORTED, "unknown command", 0xFFFFFFFF);

	/* The right types reach the handler. */
	memset(p, 0, sizeof(p));
	p[0].memref.buffer = buf;
	p[0].memref.size = EDGE_STATUS_SIZE;
	res = TA_InvokeCommandEntryPoint(sess, TA_EDGE_CMD_GET_STATUS,
					 PT(MEMREF_OUTPUT, NONE, NONE, NONE),
					 p);
	EXPECT(res, TEE_SUCCESS, "GET_STATUS", TA_EDGE_CMD_GET_STATUS);
	EXPECT(p[0].memref.size == EDGE_STATUS_SIZE ? TEE_SUCCESS :
	       TEE_ERROR_GENERIC, TEE_SUCCESS, "status size",
	       TA_EDGE_CMD_GET_STATUS);
	memset(p, 0, sizeof(p));
	res = TA_InvokeCommandEntryPoint(sess, TA_EDGE_CMD_LOAD_ABORT, none,
					 p);
	EXPECT(res, TEE_SUCCESS, "LOAD_ABORT", TA_EDGE_CMD_LOAD_ABORT);
	memset(p, 0, sizeof(p));
	res = TA_InvokeCommandEntryPoint(sess, TA_EDGE_CMD_LOAD_FINISH,
					 PT(VALUE_OUTPUT, NONE, NONE, NONE),
					 p);
	EXPECT(res, TEE_ERROR_BAD_STATE, "LOAD_FINISH without a load",
	       TA_EDGE_CMD_LOAD_FINISH);

	TA_CloseSessionEntryPoint(sess);
	TA_DestroyEntryPoint();
	return harness_summary();
}
