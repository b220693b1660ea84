/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Command handlers of the edge TA (commands.c; the training commands in
 * training.c). entry.c checks the parameter types against the dispatch table
 * before calling a handler, so a handler trusts the types but nothing else:
 * every size and value is checked by the handler, and every input that is
 * verified is copied into TA memory first.
 */
#ifndef EDGE_COMMANDS_H
#define EDGE_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

#include "state.h"

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
TEE_Result edge_cmd_verify_ticket(struct edge_session *sess,
				  TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_train_and_seal(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_budget_status(struct edge_session *sess,
				  TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_install_policy(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_secagg_advertise(struct edge_session *sess,
				     TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_secagg_share(struct edge_session *sess,
				 TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_secagg_receive(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_secagg_unmask(struct edge_session *sess,
				  TEE_Param params[TEE_NUM_PARAMS]);
TEE_Result edge_cmd_install_registrar(struct edge_session *sess,
				      TEE_Param params[TEE_NUM_PARAMS]);

/*
 * VERIFY_TICKET's checks of the ticket in p (a TA copy is made): anchor,
 * fields, policy, model, replay and time floors. Fills *t, *st and, under
 * Poisson sampling, the steps per round.
 */
TEE_Result training_verify_ticket(const TEE_Param *p, uint64_t ree,
				  struct edge_ticket *t,
				  struct edge_train_state *st,
				  uint64_t *per_round);

/*
 * The masked words of a secure-aggregation round (secagg.c): out holds a
 * sealed update written by seal_write (clipped float32 delta, unsigned);
 * this quantizes it, adds the masks of the stored round, sets update mode
 * SECAGG and signs. WRONG_ROUND if the stored round is not the ticket's,
 * BAD_STATE before SECAGG_RECEIVE. noise_share > 0 (the policy's minimum,
 * docs/privacy.md "Distributed DP") adds that discrete Gaussian share to the
 * words before masking (noise_share.h).
 */
TEE_Result secagg_seal(const struct edge_ticket *t, uint8_t *out,
		       uint32_t params, float noise_share);

/* skip.c */
TEE_Result edge_cmd_sign_skip(struct edge_session *sess,
			      TEE_Param params[TEE_NUM_PARAMS]);
/*
 * TRAIN_AND_SEAL up to and including the spend: checks, DP-SGD, the signed
 * update in a new TA buffer (*update, *update_len; the caller wipes and
 * frees it) and the atomic storage write that records the spend. The
 * handler then only copies the update out, so a crash or a lost reply
 * after this returns loses the update, never the spend. Separate so the
 * tests can stop right there. params as for the command.
 */
TEE_Result edge_train_commit(struct edge_session *sess,
			     TEE_Param params[TEE_NUM_PARAMS],
			     uint8_t **update, size_t *update_len);

/*
 * Copies an envelope from (possibly shared) memory into a new TA buffer
 * after the checks that need only its header and length (so an oversized
 * input is refused without being copied). The caller parses only the copy.
 */
TEE_Result copy_envelope(const TEE_Param *p, uint16_t kind, size_t max_len,
			 uint8_t **copy);

/* Wipes and frees a TA buffer (NULL is fine). */
void free_wiped(void *p, size_t len);

#endif /* EDGE_COMMANDS_H */
