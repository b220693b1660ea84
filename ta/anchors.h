/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Trust anchors: the model-signer and aggregator Ed25519 public keys with
 * their epochs, installed once (INSTALL_ANCHORS) and replaced only under an
 * anchor statement (kind 2) signed by the role's current key, epoch + 1.
 */
#ifndef EDGE_ANCHORS_H
#define EDGE_ANCHORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

struct edge_anchor {
	uint8_t pub[EDGE_PUBKEY_SIZE];
	uint8_t id[EDGE_KEY_ID_SIZE];	/* key_id(pub) */
	uint64_t epoch;
};

struct edge_anchors {
	bool present;			/* model signer and aggregator */
	bool has_registrar;		/* role 3, installed separately */
	struct edge_anchor role[3];	/* [role - 1] */
};

/* Fills a from two public keys with epoch 0 (does not store). */
TEE_Result anchors_init(struct edge_anchors *a,
			const uint8_t signer_pub[EDGE_PUBKEY_SIZE],
			const uint8_t agg_pub[EDGE_PUBKEY_SIZE]);

/* Reads the stored anchors; EDGE_ERR_NOT_PROVISIONED if there are none. */
TEE_Result anchors_load(struct edge_anchors *a);

/* Writes a as the stored anchors in one atomic object write. */
TEE_Result anchors_store(const struct edge_anchors *a, bool overwrite);

/*
 * INSTALL_ANCHORS: keys = model-signer pub || aggregator pub. Refused with
 * EDGE_ERR_ALREADY_PROVISIONED if anchors are stored already. On success
 * *a holds the new anchors.
 */
TEE_Result anchors_install(struct edge_anchors *a,
			   const uint8_t keys[2 * EDGE_PUBKEY_SIZE]);

/*
 * INSTALL_REGISTRAR: the registrar key (role 3) that signs enrollment
 * certificates, in its own storage object so the anchors object keeps its
 * layout. NOT_PROVISIONED without anchors, ALREADY_PROVISIONED if one is
 * stored; on success *a holds it.
 */
TEE_Result anchors_install_registrar(struct edge_anchors *a,
				     const uint8_t pub[EDGE_PUBKEY_SIZE]);

/*
 * Parses a 48-byte anchor statement body (already covered by a verified
 * signature): role (1 or 2), reserved zero, epoch, new key. Only checks the
 * layout; TEE_ERROR_BAD_FORMAT if bad. Outputs point into body.
 */
TEE_Result anchors_parse_statement_body(const uint8_t *body, size_t len,
					uint8_t *role, uint64_t *epoch,
					const uint8_t **new_pub);

/*
 * Checks an anchor statement (a copy in TA memory) against cur and, if it is
 * valid, writes the resulting anchors to *next (cur is not modified).
 */
TEE_Result anchors_check_statement(const struct edge_anchors *cur,
				   const uint8_t *stmt, size_t len,
				   struct edge_anchors *next);

/*
 * REPLACE_ANCHOR: checks stmt against *a (the stored anchors), stores the
 * result atomically and updates *a. On any refusal nothing changes.
 */
TEE_Result anchors_replace(struct edge_anchors *a, const uint8_t *stmt,
			   size_t len);

#endif /* EDGE_ANCHORS_H */
