/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * INFER's query budget: how many rows the normal world may ask of one model
 * version, as its package says, counted in secure storage so that neither a
 * new session nor a TA restart resets it. Rows are reserved in blocks of
 * EDGE_INFER_RESERVE_ROWS, one storage write per block; after a restart the
 * whole reservation counts as spent, so a crash can only lose rows, never
 * grant more.
 */
#ifndef EDGE_TA_QUERY_BUDGET_H
#define EDGE_TA_QUERY_BUDGET_H

#include <stdbool.h>
#include <stdint.h>
#include <tee_internal_api.h>

#include "head.h"

struct query_budget {
	bool loaded;
	uint64_t version;	/* model version the counts belong to */
	uint64_t used;		/* rows answered (or reserved before a restart) */
	uint64_t reserved;	/* rows recorded as spent in secure storage */
};

/*
 * Charges n rows to m's budget before they are answered:
 * EDGE_ERR_BUDGET_EXHAUSTED (nothing charged) if they do not fit.
 */
TEE_Result query_budget_charge(struct query_budget *q,
			       const struct edge_model *m, uint32_t n);

/* Rows left for m, saturated to 2^32 - 2; EDGE_INFER_UNLIMITED without a budget. */
uint32_t query_budget_left(const struct query_budget *q,
			   const struct edge_model *m);

#endif
