// SPDX-License-Identifier: BSD-2-Clause
#include <tee_internal_api.h>

#include "bytes.h"
#include "query_budget.h"
#include "storage.h"

#define RECORD_PAYLOAD	16	/* model version u64, rows reserved u64 */

/* The counts for m's version: stored ones, or zero for a new version. */
static TEE_Result load(struct query_budget *q, const struct edge_model *m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (q->loaded && q->version == m->version)
		return TEE_SUCCESS;
	TEE_MemFill(q, 0, sizeof(*q));
	res = storage_get(EDGE_OBJ_INFER, EDGE_TAG_INFER, RECORD_PAYLOAD,
			  RECORD_PAYLOAD, &buf, &len);
	if (res && res != TEE_ERROR_ITEM_NOT_FOUND)
		return res;
	if (!res && get_le64(buf + EDGE_STORE_HDR_SIZE) == m->version)
		q->reserved = get_le64(buf + EDGE_STORE_HDR_SIZE + 8);
	TEE_Free(buf);
	/*
	 * The TA never reserves past the budget. A count above it would make
	 * the rows left wrap (2^32 - 2 reported) and, near 2^64, used + n
	 * wrap past the budget check: unlimited rows. Refuse, as the other
	 * inconsistent records are.
	 */
	if (q->reserved > m->infer.budget) {
		EMSG("stored query budget is inconsistent");
		TEE_MemFill(q, 0, sizeof(*q));
		return TEE_ERROR_CORRUPT_OBJECT;
	}
	q->version = m->version;
	q->used = q->reserved;
	q->loaded = true;
	return TEE_SUCCESS;
}

TEE_Result query_budget_charge(struct query_budget *q,
			       const struct edge_model *m, uint32_t n)
{
	uint8_t rec[EDGE_STORE_HDR_SIZE + RECORD_PAYLOAD] = { 0 };
	uint64_t want = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!m->infer.budget)
		return TEE_SUCCESS;
	res = load(q, m);
	if (res)
		return res;
	if (q->used + n > m->infer.budget)
		return EDGE_ERR_BUDGET_EXHAUSTED;
	if (q->used + n > q->reserved) {
		want = q->used + n + EDGE_INFER_RESERVE_ROWS;
		if (want > m->infer.budget)
			want = m->infer.budget;
		storage_hdr_init(rec, EDGE_TAG_INFER);
		put_le64(rec + EDGE_STORE_HDR_SIZE, m->version);
		put_le64(rec + EDGE_STORE_HDR_SIZE + 8, want);
		/* Spent in storage before any row is answered. */
		res = storage_put(EDGE_OBJ_INFER, rec, sizeof(rec), true);
		if (res)
			return res;
		q->reserved = want;
	}
	q->used += n;
	return TEE_SUCCESS;
}

uint32_t query_budget_left(const struct query_budget *q,
			   const struct edge_model *m)
{
	uint64_t left = 0;

	if (!m->infer.budget)
		return EDGE_INFER_UNLIMITED;
	if (!q->loaded || q->version != m->version)
		return m->infer.budget;
	left = m->infer.budget - q->used;
	return left >= EDGE_INFER_UNLIMITED ? EDGE_INFER_UNLIMITED - 1 :
	       (uint32_t)left;
}
