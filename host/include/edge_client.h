/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Flat C client of the edge trusted application, over the GlobalPlatform TEE
 * Client API (libteec). One function per TA command, plain integer and
 * pointer arguments, so that it loads with cffi's ABI mode.
 *
 * Every call returns a TEEC_Result (0 = success) and, when `origin` is not
 * NULL, stores the TEEC_ORIGIN_* of that result: TRUSTED_APP for a refusal by
 * the TA (codes in ta/include/edge_ta.h), TEE or COMMS for a failure of the
 * secure world or the transport (TEEC_ERROR_TARGET_DEAD after a TA crash),
 * API for a check this library made itself.
 *
 * The library does not link a libteec: the process loads one first (the real
 * libteec.so.1/.so.2 on a board, libteec_sim.so for the simulated secure
 * world) and the TEEC_* symbols resolve against it.
 *
 * Thread safety: an edge_client is not safe for concurrent use; callers
 * serialise (the Python binding holds a lock per client).
 */
#ifndef EDGE_CLIENT_H
#define EDGE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edge_client edge_client;

/*
 * A result of the client itself (origin TEEC_ORIGIN_API), not of the TA:
 * edge_load_model_file's TA committed the package, but the backbone could not
 * be moved to backbone_path; it is complete and synced at backbone_path
 * followed by ".partial", for the caller to move.
 */
#define EDGE_CLIENT_ERR_BACKBONE_NOT_PUBLISHED 0xED6E1001

/*
 * Opens a context on the TEE named `tee_name` (NULL for the default TEE; for
 * the simulated secure world, its state directory) and a session with the
 * edge TA.
 */
uint32_t edge_client_open(const char *tee_name, edge_client **out,
			  uint32_t *origin);
void edge_client_close(edge_client *c);

uint32_t edge_get_identity(edge_client *c, uint8_t *record, size_t *record_len,
			   uint32_t *origin);
uint32_t edge_get_status(edge_client *c, uint8_t *status, size_t *status_len,
			 uint32_t *origin);
uint32_t edge_install_anchors(edge_client *c, const uint8_t *signer_pub,
			      const uint8_t *aggregator_pub, uint32_t *origin);
uint32_t edge_replace_anchor(edge_client *c, const uint8_t *statement,
			     size_t statement_len, uint32_t *origin);

/*
 * The four steps of a package load, for callers that stream it themselves.
 * `wrap` is this device's signed key wrap for the package (EDGE_KEY_WRAP_SIZE
 * bytes, docs/formats.md "Key wrap").
 */
uint32_t edge_load_begin(edge_client *c, const uint8_t *manifest,
			 size_t manifest_len, const uint8_t *wrap,
			 size_t wrap_len, uint32_t *chunk_count,
			 uint32_t *flags, uint32_t *chunk_size,
			 uint32_t *last_stored_size, uint32_t *origin);
uint32_t edge_load_chunk(edge_client *c, uint32_t index, const uint8_t *stored,
			 size_t stored_len, uint8_t *plain, size_t *plain_len,
			 uint32_t *origin);
uint32_t edge_load_finish(edge_client *c, uint64_t *version, uint32_t *origin);
uint32_t edge_load_abort(edge_client *c, uint32_t *origin);

/*
 * Loads a whole package held in memory. The verified backbone plaintext is
 * written to `backbone` (capacity *backbone_len, which receives the length;
 * TEEC_ERROR_SHORT_BUFFER with the needed length when too small; may be NULL
 * with capacity 0 for a package without backbone).
 */
uint32_t edge_load_model_buffer(edge_client *c, const uint8_t *package,
				size_t package_len, const uint8_t *wrap,
				size_t wrap_len, uint8_t *backbone,
				size_t *backbone_len, uint64_t *version,
				uint32_t *origin);
/*
 * Loads a package from a file, streaming the backbone through the TA chunk by
 * chunk, so its size is not bounded by memory. The verified backbone is
 * written to `backbone_path` (replaced atomically; NULL discards it).
 */
uint32_t edge_load_model_file(edge_client *c, const char *package_path,
			      const uint8_t *wrap, size_t wrap_len,
			      const char *backbone_path, uint64_t *backbone_len,
			      uint64_t *version, uint32_t *origin);

/*
 * What the active package releases of features (n x head_in float32) . W + b:
 * *release (EDGE_INFER_*) says what out holds (scores n x head_out float32,
 * or uint32 labels n x k or n); *rows_left is the query budget left
 * (EDGE_INFER_UNLIMITED without one). Either pointer may be NULL.
 */
uint32_t edge_infer(edge_client *c, const float *features, uint32_t n,
		    size_t features_len, void *out, size_t *out_len,
		    uint32_t *release, uint32_t *rows_left, uint32_t *origin);

/*
 * Private training (docs/formats.md "Privacy policy", "Round ticket",
 * "Training and sealing", "Sealed update").
 *
 * edge_verify_ticket: checks a round ticket and holds it in this client's
 * session for one edge_train_and_seal. ree_time is Unix seconds. On success
 * *steps_left = steps left in the budget (saturated to 2^32-1) and
 * *steps_per_round = steps the ticket takes (Poisson sampling; 0 when it
 * depends on n). Either output may be NULL.
 */
uint32_t edge_verify_ticket(edge_client *c, const uint8_t *ticket,
			    size_t ticket_len, uint64_t ree_time,
			    uint32_t *steps_left, uint32_t *steps_per_round,
			    uint32_t *origin);
/*
 * edge_train_and_seal: DP-SGD with the held ticket on n examples (features
 * n x head_in float32, features_len bytes; labels n uint32, labels_len
 * bytes) and the signed sealed update in `update` (capacity *update_len,
 * which receives its length; TEEC_ERROR_SHORT_BUFFER with the needed
 * length, the ticket staying held).
 */
uint32_t edge_train_and_seal(edge_client *c, const float *features,
			     uint32_t n, size_t features_len,
			     const uint32_t *labels, size_t labels_len,
			     uint8_t *update, size_t *update_len,
			     uint32_t *origin);
/* The EDGE_BUDGET_SIZE budget block (layout in edge_ta.h). */
uint32_t edge_budget_status(edge_client *c, uint8_t *block, size_t *block_len,
			    uint32_t *origin);
/* Installs or replaces the privacy policy (a signed kind 6 envelope). */
uint32_t edge_install_policy(edge_client *c, const uint8_t *policy,
			     size_t policy_len, uint32_t *origin);
/*
 * edge_sign_skip: the signed skip report (EDGE_SKIP_REPORT_SIZE bytes into
 * report, capacity *report_len, which receives its length) for a round
 * ticket this device does not train. reason is the normal world's
 * (EDGE_SKIP_REE_*), n the example count (0: not known). *refusal receives
 * the TA's own refusal of the ticket (0: none), *field what the report's
 * values are (EDGE_SKIP_FIELD_*); either may be NULL.
 */
uint32_t edge_sign_skip(edge_client *c, const uint8_t *ticket,
			size_t ticket_len, uint64_t ree_time, uint32_t reason,
			uint32_t n, uint8_t *report, size_t *report_len,
			uint32_t *refusal, uint32_t *field, uint32_t *origin);

/*
 * Secure aggregation (docs/secagg.md). Each output buffer has capacity
 * *len, which receives the length (also with TEEC_ERROR_SHORT_BUFFER).
 * edge_secagg_advertise: checks a secure-aggregation round ticket (as
 * edge_verify_ticket, ree_time Unix seconds) and returns this round's
 * signed advert. edge_secagg_share: the aggregator-signed roster in, the
 * signed bundle of encrypted shares out. edge_secagg_receive: the
 * aggregator-signed inbox. edge_secagg_unmask: the aggregator-signed
 * survivor list in, the signed reveals out.
 */
uint32_t edge_secagg_advertise(edge_client *c, const uint8_t *ticket,
			       size_t ticket_len, uint64_t ree_time,
			       uint8_t *advert, size_t *advert_len,
			       uint32_t *origin);
uint32_t edge_secagg_share(edge_client *c, const uint8_t *roster,
			   size_t roster_len, uint8_t *bundle,
			   size_t *bundle_len, uint32_t *origin);
uint32_t edge_secagg_receive(edge_client *c, const uint8_t *inbox,
			     size_t inbox_len, uint32_t *origin);
uint32_t edge_secagg_unmask(edge_client *c, const uint8_t *survivors,
			    size_t survivors_len, uint8_t *reveals,
			    size_t *reveals_len, uint32_t *origin);
/* Installs the registrar Ed25519 public key (32 bytes), once. */
uint32_t edge_install_registrar(edge_client *c, const uint8_t *registrar_pub,
				uint32_t *origin);

/* Short, static, human-readable name of a result code (never NULL). */
const char *edge_result_name(uint32_t result);

#ifdef __cplusplus
}
#endif

#endif /* EDGE_CLIENT_H */
