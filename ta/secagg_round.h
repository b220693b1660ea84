/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The device's state of one secure-aggregation round (docs/secagg.md): the
 * round binding and parameters from the ticket, this round's X25519 c- and
 * s-key pairs and self-mask seed b, the neighbours with their keys and the
 * share pairs they sent, and the survivor list the TA answered. One secure
 * storage object, written whole and atomically at every stage, so a restart
 * neither loses a round nor lets a second survivor list be answered.
 * Also the neighbour graph (edge/secagg/graph.py is its twin).
 */
#ifndef EDGE_SECAGG_ROUND_H
#define EDGE_SECAGG_ROUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "ticket.h"

#define SECAGG_BINDING_SIZE	48	/* fleet || round || nonce || version */
#define SECAGG_KEY_SIZE		32

enum secagg_stage {
	SECAGG_ADVERTISED = 1,
	SECAGG_SHARED = 2,
	SECAGG_RECEIVED = 3,
	SECAGG_UNMASKED = 4,
};

struct secagg_peer {
	uint8_t id[EDGE_KEY_ID_SIZE];
	uint8_t c_pub[SECAGG_KEY_SIZE];
	uint8_t s_pub[SECAGG_KEY_SIZE];
	uint8_t my_x;		/* this device's x in the peer's sharing */
	uint8_t has_share;	/* the peer shared (U2) and its pair arrived */
	uint8_t share[EDGE_SECAGG_SHARE_PT_SIZE];	/* seed || s-key share */
};

struct secagg_round {
	uint8_t stage;
	uint8_t binding[SECAGG_BINDING_SIZE];
	uint64_t round_id;
	uint16_t t;
	uint16_t k;
	uint16_t cohort;
	uint8_t scale_log2;
	uint8_t c_sk[SECAGG_KEY_SIZE];
	uint8_t c_pub[SECAGG_KEY_SIZE];
	uint8_t s_sk[SECAGG_KEY_SIZE];
	uint8_t s_pub[SECAGG_KEY_SIZE];
	uint8_t b[EDGE_SECAGG_SEED_SIZE];
	uint8_t self_x;
	uint8_t self_share[EDGE_SECAGG_SEED_SIZE];	/* own share of b */
	uint8_t inbox_digest[32];
	uint8_t survivors_digest[32];
	uint16_t npeers;
	struct secagg_peer peers[EDGE_SECAGG_MAX_NEIGHBOURS];
};

/* The 48-byte round binding of a secure-aggregation ticket. */
void secagg_binding(const struct edge_ticket *t,
		    uint8_t out[SECAGG_BINDING_SIZE]);

/*
 * Reads the stored round into a new TA buffer (*r; the caller frees it with
 * secagg_round_free). TEE_ERROR_ITEM_NOT_FOUND if there is none.
 */
TEE_Result secagg_round_load(struct secagg_round **r);
/* Writes the whole round in one atomic object write. */
TEE_Result secagg_round_store(const struct secagg_round *r);
/* Wipes (keys, seeds, shares) and frees. NULL is fine. */
void secagg_round_free(struct secagg_round *r);

/*
 * The random order of the n roster devices (0..n-1, devices sorted by id)
 * drawn from seed: Fisher-Yates with draws from SHA-256(label || seed ||
 * counter), by rejection so each draw is unbiased.
 */
TEE_Result secagg_order(uint32_t n, const uint8_t seed[EDGE_NONCE_SIZE],
			uint32_t *order);

/*
 * The neighbours of device r (roster indices, ascending) in the Harary graph
 * over order (inv: position of each index in order), or every other device
 * when k >= n - 1. Returns their count.
 */
uint32_t secagg_neighbours(const uint32_t *order, const uint32_t *inv,
			   uint32_t n, uint32_t k, uint32_t r, uint32_t *out);

/*
 * x of holder h in the sharing of device r: 1 + the rank of h in the sorted
 * set {r} + neighbours(r) (nb ascending, count m). 0 if h holds none.
 */
uint8_t secagg_holder_x(uint32_t r, const uint32_t *nb, uint32_t m,
			uint32_t h);

/* The pairwise mask seed: SHA-256(label || binding || z)[0..16). */
TEE_Result secagg_pair_seed(const uint8_t binding[SECAGG_BINDING_SIZE],
			    const uint8_t z[32],
			    uint8_t seed[EDGE_SECAGG_SEED_SIZE]);

/*
 * The share-pair key from sender to recipient: HKDF-SHA256 of
 * X25519(own c key, peer c_pub) (docs/formats.md "Shares bundle").
 */
TEE_Result secagg_share_key(const struct secagg_round *r,
			    const uint8_t peer_c_pub[SECAGG_KEY_SIZE],
			    const uint8_t sender[EDGE_KEY_ID_SIZE],
			    const uint8_t recipient[EDGE_KEY_ID_SIZE],
			    uint8_t key[32]);

/* The AAD of a share pair: binding || sender || recipient (80 bytes). */
void secagg_share_aad(const uint8_t binding[SECAGG_BINDING_SIZE],
		      const uint8_t sender[EDGE_KEY_ID_SIZE],
		      const uint8_t recipient[EDGE_KEY_ID_SIZE],
		      uint8_t aad[SECAGG_BINDING_SIZE + 2 * EDGE_KEY_ID_SIZE]);

/*
 * Masks a quantized update in place: + PRG(b), and for every peer that
 * shared, + PRG(pair seed) if this device's id sorts below the peer's, else
 * minus it, so each pair cancels in the sum.
 */
TEE_Result secagg_mask(const struct secagg_round *r,
		       const uint8_t self_id[EDGE_KEY_ID_SIZE],
		       uint32_t *words, size_t n);

#endif /* EDGE_SECAGG_ROUND_H */
