// SPDX-License-Identifier: BSD-2-Clause
/*
 * Secure storage records: whatever the TA decodes from TEE_STORAGE_PRIVATE.
 * The first input byte picks the object, the rest becomes its data stream
 * (written through the simulator's GP storage, as the TA writes it), then
 * the TA's own loader reads it back:
 *   0  edge.anchors          anchors_load()        (ta/anchors.c)
 *   1  edge.model            model_load(), then head_infer() on the head
 *   2  edge.train            train_state_load() with its stored policy
 *   3  edge.identity.ed25519 identity_load(); the object keeps the real key
 *   4  edge.identity.x25519  identity_load(); the object keeps the real key
 *   5  edge.identity.ed25519 identity_load() with the X25519 object missing
 *   6  edge.infer            INFER's query budget (ta/query_budget.c) of a
 *                            model of version 5 with a budget of 4096 rows
 * every loader going through storage_get() / storage_open_key()
 * (ta/storage.c). A refusal must be a clean error, never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "anchors.h"
#include "crypto.h"
#include "fuzz_common.h"
#include "head.h"
#include "identity.h"
#include "policy.h"
#include "query_budget.h"
#include "storage.h"

static void put_key(const char *id, TEE_ObjectHandle key, const uint8_t *data,
		    size_t len)
{
	TEE_ObjectHandle obj = TEE_HANDLE_NULL;

	/* The flags of storage_create_key(), with a fuzzed data stream. */
	if (TEE_CreatePersistentObject(TEE_STORAGE_PRIVATE, id, strlen(id),
				       TEE_DATA_FLAG_ACCESS_READ |
				       TEE_DATA_FLAG_ACCESS_WRITE_META |
				       TEE_DATA_FLAG_OVERWRITE, key, data, len,
				       &obj))
		return;
	TEE_CloseObject(obj);
}

static void restore_identity(void)
{
	FUZZ_ASSERT(!storage_create_key(EDGE_OBJ_IDENTITY_KEX,
					fuzz_device_kex));
	FUZZ_ASSERT(!storage_create_key(EDGE_OBJ_IDENTITY_SIGN,
					fuzz_device.pair));
}

static void load_anchors(void)
{
	struct edge_anchors a = { };
	uint8_t id[EDGE_KEY_ID_SIZE] = { 0 };
	size_t i = 0;

	if (anchors_load(&a))
		return;
	FUZZ_ASSERT(a.present);
	for (i = 0; i < 2; i++)
		FUZZ_ASSERT(!edge_key_id(a.role[i].pub, id) &&
			    !memcmp(id, a.role[i].id, sizeof(id)));
}

static void load_model(void)
{
	struct edge_model m = { };
	uint8_t *x = NULL;
	uint8_t *y = NULL;

	if (model_load(&m))
		return;
	FUZZ_ASSERT(m.present && m.version >= 1 && head_dims_ok(m.in, m.out));
	FUZZ_ASSERT(m.rec_len == EDGE_MODEL_HEAD_OFF + head_size(m.in, m.out));
	FUZZ_ASSERT(m.head == m.rec + EDGE_MODEL_HEAD_OFF &&
		    m.head_len == head_size(m.in, m.out));
	/* One row through the stored head: sizes from the record only. */
	x = calloc(m.in, 4);
	y = calloc(infer_out_size(&m, 1) + 1, 1);
	FUZZ_ASSERT(x && y);
	FUZZ_ASSERT(!infer_check_features(&m, 1, x));
	if (m.infer.release != EDGE_INFER_NONE)
		FUZZ_ASSERT(!head_infer(&m, 1, x, y));
	free(x);
	free(y);
	model_free(&m);
}

static void load_train(void)
{
	struct edge_train_state st = { };
	uint8_t block[EDGE_BUDGET_SIZE] = { 0 };

	if (train_state_load(&st))
		return;
	FUZZ_ASSERT(!train_budget_block(&st, block));
	FUZZ_ASSERT(train_steps_left(&st) <=
		    (st.has_policy ? st.policy.step_budget : 0));
}

static void load_query_budget(void)
{
	struct query_budget q = { };
	struct edge_model m = { };
	uint32_t left = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	/* Only the fields the budget reads: version 5, 4096 rows. */
	m.present = true;
	m.version = 5;
	m.infer.release = EDGE_INFER_LABEL;
	m.infer.budget = 4096;
	res = query_budget_charge(&q, &m, 1);
	left = query_budget_left(&q, &m);
	/* Whatever storage held, never more rows than the package grants. */
	FUZZ_ASSERT(left <= m.infer.budget);
	if (!res)
		FUZZ_ASSERT(left < m.infer.budget);
}

static void load_identity(void)
{
	struct edge_identity id = { };
	TEE_Result res = identity_load(&id);

	if (!res) {
		FUZZ_ASSERT(id.present);
		FUZZ_ASSERT(!memcmp(id.sign_pub, fuzz_device.pub,
				    EDGE_PUBKEY_SIZE));
		FUZZ_ASSERT(!memcmp(id.device_id, fuzz_device.id,
				    EDGE_KEY_ID_SIZE));
	} else {
		FUZZ_ASSERT(!id.present && !id.sign_key && !id.kex_key);
	}
	identity_close(&id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool ready;
	const uint8_t *rec = data + 1;
	size_t rec_len = len - 1;

	if (!ready) {
		restore_identity();
		ready = true;
	}
	if (!len)
		return 0;
	switch (data[0] % 7) {
	case 0:
		if (!storage_put(EDGE_OBJ_ANCHORS, rec, rec_len, true))
			load_anchors();
		break;
	case 1:
		if (!storage_put(EDGE_OBJ_MODEL, rec, rec_len, true))
			load_model();
		break;
	case 2:
		if (!storage_put(EDGE_OBJ_TRAIN, rec, rec_len, true))
			load_train();
		break;
	case 3:
		put_key(EDGE_OBJ_IDENTITY_SIGN, fuzz_device.pair, rec, rec_len);
		load_identity();
		restore_identity();
		break;
	case 4:
		put_key(EDGE_OBJ_IDENTITY_KEX, fuzz_device_kex, rec, rec_len);
		load_identity();
		restore_identity();
		break;
	case 6:
		if (!storage_put(EDGE_OBJ_INFER, rec, rec_len, true))
			load_query_budget();
		break;
	case 5:
		FUZZ_ASSERT(!storage_delete(EDGE_OBJ_IDENTITY_KEX));
		put_key(EDGE_OBJ_IDENTITY_SIGN, fuzz_device.pair, rec, rec_len);
		load_identity();
		restore_identity();
		break;
	default:
		break;
	}
	return 0;
}
