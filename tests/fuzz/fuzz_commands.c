// SPDX-License-Identifier: BSD-2-Clause
/*
 * The TA's command interface (ta/entry.c, ta/commands.c, ta/training.c): a
 * sequence of commands through TA_InvokeCommandEntryPoint() in one session,
 * the way the normal world drives the TA, so that the parsers are reached through
 * copy_envelope() and the lazily loaded state, and a sequence can chain
 * LOAD_BEGIN, LOAD_CHUNK and LOAD_FINISH, or INSTALL_POLICY, VERIFY_TICKET
 * and TRAIN_AND_SEAL. Every input starts from the same stored state: the
 * anchors and device of keys.tsv, no model, no policy.
 *
 * Input: up to MAX_CMDS records of
 *   command id (u8) | flags (u8) | length (u16 LE) | payload
 * The payload starts with value.a, value.b (u32 LE each) for a command
 * with a value input; TRAIN_AND_SEAL then takes a u16 LE features length.
 * The rest are the memref inputs (LOAD_BEGIN: the manifest, then its last
 * EDGE_KEY_WRAP_SIZE bytes are the key wrap). Flags: bits 0-1 pick the output buffer
 * size, bit 2 sends wrong parameter types, bit 3 re-signs the first memref
 * input as an envelope with the keys.tsv key its kind calls for (model
 * signer, aggregator, or the key of the role an anchor statement names), so
 * that a mutated policy or ticket is installed and trained with.
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "anchors.h"
#include "commands.h"
#include "envelope.h"
#include "fuzz_common.h"
#include "storage.h"

/* The dispatch table itself, so the parameter types never drift from the
 * TA's: fuzz harnesses link without entry.o (as tests/c/ta_test_dispatch). */
#include "entry.c"

#define MAX_CMDS	8
#define FLAG_WRONG_TYPES 0x04
#define FLAG_RESIGN	0x08

static const size_t out_sizes[4] = { 64 * 1024, 0, 16, 4096 };

static struct edge_anchors baseline;

static void reset_state(void)
{
	TA_DestroyEntryPoint();
	FUZZ_ASSERT(!storage_delete(EDGE_OBJ_MODEL));
	FUZZ_ASSERT(!storage_delete(EDGE_OBJ_TRAIN));
	FUZZ_ASSERT(!anchors_store(&baseline, true));
}

/* The key an envelope of this kind must be signed with. */
static const struct fuzz_ed_key *signer_for(const uint8_t *env, size_t len)
{
	uint16_t kind = 0;

	if (len < EDGE_ENVELOPE_HEADER_SIZE + 1)
		return &fuzz_signer;
	kind = (uint16_t)(env[6] | env[7] << 8);
	if (kind == EDGE_KIND_ROUND_TICKET)
		return &fuzz_aggregator;
	if (kind == EDGE_KIND_ANCHOR_STATEMENT &&
	    env[EDGE_ENVELOPE_HEADER_SIZE] == EDGE_ROLE_AGGREGATOR)
		return &fuzz_aggregator;
	return &fuzz_signer;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static bool is_value_in(uint32_t type)
{
	return type == TEE_PARAM_TYPE_VALUE_INPUT ||
	       type == TEE_PARAM_TYPE_VALUE_INOUT;
}

static void run(void *sess, const struct edge_cmd *cmd, uint8_t flags,
		const uint8_t *p, size_t len)
{
	TEE_Param params[TEE_NUM_PARAMS];
	void *bufs[TEE_NUM_PARAMS] = { NULL };
	size_t caps[TEE_NUM_PARAMS] = { 0 };
	uint32_t pt = cmd->param_types;
	uint32_t type = 0;
	size_t split = len;
	bool value_done = false;
	bool first_in = true;
	TEE_Result res = TEE_ERROR_GENERIC;
	size_t i = 0;

	memset(params, 0, sizeof(params));
	/* The value prefix comes first, whichever parameter it fills. */
	for (i = 0; i < TEE_NUM_PARAMS && !value_done; i++) {
		if (!is_value_in(TEE_PARAM_TYPE_GET(pt, i)))
			continue;
		value_done = true;
		if (len < 8)
			break;
		params[i].value.a = le32(p);
		params[i].value.b = le32(p + 4);
		p += 8;
		len -= 8;
	}
	if (cmd->id == TA_EDGE_CMD_TRAIN_AND_SEAL && len >= 2) {
		split = p[0] | (size_t)p[1] << 8;
		p += 2;
		len -= 2;
	}
	/* LOAD_BEGIN: the manifest, then the key wrap in the last bytes. */
	if (cmd->id == TA_EDGE_CMD_LOAD_BEGIN)
		split = len > EDGE_KEY_WRAP_SIZE ? len - EDGE_KEY_WRAP_SIZE : len;
	for (i = 0; i < TEE_NUM_PARAMS; i++) {
		type = TEE_PARAM_TYPE_GET(pt, i);
		if (type == TEE_PARAM_TYPE_MEMREF_INPUT) {
			/* An exact-size copy: reads past it are caught. */
			caps[i] = first_in && split < len ? split : len;
			bufs[i] = fuzz_dup(p, caps[i]);
			p += caps[i];
			len -= caps[i];
			if (first_in && (flags & FLAG_RESIGN))
				(void)fuzz_resign(bufs[i], caps[i],
						  signer_for(bufs[i], caps[i]));
			first_in = false;
			params[i].memref.buffer = bufs[i];
			params[i].memref.size = caps[i];
		} else if (type == TEE_PARAM_TYPE_MEMREF_OUTPUT) {
			caps[i] = out_sizes[flags & 3];
			bufs[i] = malloc(caps[i] ? caps[i] : 1);
			FUZZ_ASSERT(bufs[i]);
			params[i].memref.buffer = bufs[i];
			params[i].memref.size = caps[i];
		}
	}
	if (flags & FLAG_WRONG_TYPES)
		pt ^= TEE_PARAM_TYPES(0, 0, 0, TEE_PARAM_TYPE_VALUE_INPUT);
	res = TA_InvokeCommandEntryPoint(sess, cmd->id, pt, params);
	for (i = 0; i < TEE_NUM_PARAMS; i++) {
		/* Never more written than the normal world's buffer holds. */
		if (!res && TEE_PARAM_TYPE_GET(pt, i) ==
			    TEE_PARAM_TYPE_MEMREF_OUTPUT)
			FUZZ_ASSERT(params[i].memref.size <= caps[i]);
		free(bufs[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool ready;
	void *sess = NULL;
	TEE_Param none[TEE_NUM_PARAMS];
	size_t off = 0;
	size_t n = 0;
	size_t plen = 0;
	int count = 0;

	if (!ready) {
		FUZZ_ASSERT(!anchors_init(&baseline, fuzz_signer.pub,
					  fuzz_aggregator.pub));
		FUZZ_ASSERT(!storage_create_key(EDGE_OBJ_IDENTITY_KEX,
						fuzz_device_kex));
		FUZZ_ASSERT(!storage_create_key(EDGE_OBJ_IDENTITY_SIGN,
						fuzz_device.pair));
		ready = true;
	}
	reset_state();
	memset(none, 0, sizeof(none));
	FUZZ_ASSERT(!TA_OpenSessionEntryPoint(PT(NONE, NONE, NONE, NONE), none,
					      &sess));
	while (off + 4 <= len && count++ < MAX_CMDS) {
		plen = data[off + 2] | (size_t)data[off + 3] << 8;
		n = plen < len - off - 4 ? plen : len - off - 4;
		run(sess, &edge_cmds[data[off] % (sizeof(edge_cmds) /
						  sizeof(edge_cmds[0]))],
		    data[off + 1], data + off + 4, n);
		off += 4 + n;
	}
	TA_CloseSessionEntryPoint(sess);
	return 0;
}
