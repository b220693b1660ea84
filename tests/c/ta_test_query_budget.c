// SPDX-License-Identifier: BSD-2-Clause
/*
 * INFER's query budget (ta/query_budget.c) against the record it reads
 * back from secure storage: a count of reserved rows above the package's
 * budget is refused as corrupt, not believed (fuzz_storage found that it
 * made the rows left wrap to 2^32 - 2 and, near 2^64, let used + n wrap
 * past the budget check). Regression input:
 * tests/fuzz/corpus/fuzz_storage/regress-infer-reserved-over-budget.
 *
 * Linked in-process with the TA objects (not entry.o) and libgp_sim.a.
 */
#include <stdint.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>
#include <gp_sim.h>
#include <user_ta_header_defines.h>

#include "bytes.h"
#include "head.h"
#include "query_budget.h"
#include "storage.h"
#include "harness.h"

#define BUDGET	4096

static struct edge_model model(uint64_t version)
{
	struct edge_model m;

	memset(&m, 0, sizeof(m));
	m.present = true;
	m.version = version;
	m.infer.release = EDGE_INFER_LABEL;
	m.infer.budget = BUDGET;
	return m;
}

/* Stores the budget record as the TA lays it out. */
static void put_record(uint64_t version, uint64_t reserved)
{
	uint8_t rec[EDGE_STORE_HDR_SIZE + 16];

	storage_hdr_init(rec, EDGE_TAG_INFER);
	put_le64(rec + EDGE_STORE_HDR_SIZE, version);
	put_le64(rec + EDGE_STORE_HDR_SIZE + 8, reserved);
	if (storage_put(EDGE_OBJ_INFER, rec, sizeof(rec), true))
		harness_die("storage_put");
}

static void test_stored_count_within_budget(void)
{
	struct query_budget q = { };
	struct edge_model m = model(5);

	put_record(5, 100);
	CHECK_RES(query_budget_charge(&q, &m, 1), TEE_SUCCESS);
	/* The stored reservation counts as spent after a restart. */
	CHECK_EQ(query_budget_left(&q, &m), BUDGET - 101);

	memset(&q, 0, sizeof(q));
	put_record(5, BUDGET);
	CHECK_RES(query_budget_charge(&q, &m, 1), EDGE_ERR_BUDGET_EXHAUSTED);
	CHECK_EQ(query_budget_left(&q, &m), 0);

	/* Another version's count does not apply. */
	memset(&q, 0, sizeof(q));
	put_record(4, UINT64_MAX);
	CHECK_RES(query_budget_charge(&q, &m, 1), TEE_SUCCESS);
	CHECK_EQ(query_budget_left(&q, &m), BUDGET - 1);
}

static void test_stored_count_over_budget(void)
{
	static const uint64_t counts[] = {
		BUDGET + 1, 0x8000000000000400ull, UINT64_MAX,
	};
	struct query_budget q = { };
	struct edge_model m = model(5);
	size_t i = 0;

	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		memset(&q, 0, sizeof(q));
		put_record(5, counts[i]);
		CHECK_RES(query_budget_charge(&q, &m, 1),
			  TEE_ERROR_CORRUPT_OBJECT, "reserved 0x%llx",
			  (unsigned long long)counts[i]);
		CHECK(!q.loaded);
		/* Never more rows than the package grants. */
		CHECK(query_budget_left(&q, &m) <= BUDGET,
		      "reserved 0x%llx", (unsigned long long)counts[i]);
		CHECK_RES(query_budget_charge(&q, &m, 1),
			  TEE_ERROR_CORRUPT_OBJECT);
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (edge_sim_gp_init(harness_tmpdir("ta_test_query_budget")))
		harness_die("edge_sim_gp_init");
	edge_sim_gp_set_heap_limit(TA_DATA_SIZE);
	test_stored_count_within_budget();
	test_stored_count_over_budget();
	return harness_summary();
}
