/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TA instance's state (state.c), shared by the command handlers
 * (commands.c, training.c). Nothing here touches shared memory.
 */
#ifndef EDGE_STATE_H
#define EDGE_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <tee_internal_api.h>

#include "anchors.h"
#include "head.h"
#include "identity.h"
#include "package.h"
#include "query_budget.h"
#include "ticket.h"

/*
 * A session: the round ticket it verified, held for one TRAIN_AND_SEAL (a
 * new VERIFY_TICKET replaces it, any refusal drops it). A pending package
 * load belongs to the session that began it (edge_st.load_owner).
 */
struct edge_session {
	uint32_t id;
	bool ticket_held;
	struct edge_ticket ticket;
	uint64_t ticket_ree_time;	/* the REE time VERIFY_TICKET was given */
};

struct edge_state {
	bool identity_loaded;
	struct edge_identity identity;
	bool record_valid;
	uint8_t record[EDGE_DEVICE_RECORD_SIZE];

	bool anchors_loaded;
	struct edge_anchors anchors;

	bool model_loaded;
	struct edge_model model;
	struct query_budget queries;

	struct pkg_load load;
	struct edge_session *load_owner;

	uint32_t next_session_id;
};

extern struct edge_state edge_st;

TEE_Result edge_session_open(struct edge_session **sess);
/* Drops the session's ticket and, if it owns one, the pending load. */
void edge_session_close(struct edge_session *sess);

/*
 * Drops every cached key, the active head and any pending load (all wiped);
 * the next command reloads from secure storage. TA_DestroyEntryPoint.
 */
void edge_state_reset(void);

void state_drop_load(void);
void state_drop_ticket(struct edge_session *sess);

/* The device identity, created on first use when create is true. */
TEE_Result state_identity(bool create);
/* EDGE_ERR_NOT_PROVISIONED if no anchors are stored. */
TEE_Result state_anchors(void);
/* Success with edge_st.model.present false if no model is stored. */
TEE_Result state_model(void);
/* The active model's version, 0 without one. */
uint64_t state_model_version(void);

#endif /* EDGE_STATE_H */
