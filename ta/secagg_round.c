// SPDX-License-Identifier: BSD-2-Clause
/*
 * The secure-aggregation round state, graph and key schedule (see
 * secagg_round.h).
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "crypto.h"
#include "kdf.h"
#include "prg.h"
#include "secagg_round.h"
#include "storage.h"

#define PEER_REC_SIZE	(EDGE_KEY_ID_SIZE + 2 * SECAGG_KEY_SIZE + 2 + \
			 EDGE_SECAGG_SHARE_PT_SIZE)
#define ROUND_FIXED	(1 + SECAGG_BINDING_SIZE + 8 + 2 + 2 + 2 + 1 + \
			 4 * SECAGG_KEY_SIZE + EDGE_SECAGG_SEED_SIZE + 1 + \
			 EDGE_SECAGG_SEED_SIZE + 32 + 32 + 2)
#define ROUND_MAX	(ROUND_FIXED + EDGE_SECAGG_MAX_NEIGHBOURS * PEER_REC_SIZE)

/* Labels shared with edge/secagg (graph.py, prg.py, server.py). */
static const char order_label[] = "edge/v1 secagg order";
static const char pair_label[] = "edge/v1 secagg pairwise seed";
static const char share_salt_label[] = "edge/v1 secagg share";
static const char share_info_label[] = "edge/v1 secagg share key";

void secagg_binding(const struct edge_ticket *t,
		    uint8_t out[SECAGG_BINDING_SIZE])
{
	TEE_MemMove(out, t->fleet_id, EDGE_FLEET_ID_SIZE);
	put_le64(out + 16, t->round_id);
	TEE_MemMove(out + 24, t->cohort_nonce, EDGE_NONCE_SIZE);
	put_le64(out + 40, t->model_version);
}

/* A cursor writer: the layout is the field order of struct secagg_round. */
static uint8_t *put(uint8_t *p, const void *src, size_t n)
{
	TEE_MemMove(p, src, n);
	return p + n;
}

TEE_Result secagg_round_store(const struct secagg_round *r)
{
	size_t len = EDGE_STORE_HDR_SIZE + ROUND_FIXED +
		     (size_t)r->npeers * PEER_REC_SIZE;
	uint8_t *buf = NULL;
	uint8_t *p = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;
	uint16_t i = 0;

	if (r->npeers > EDGE_SECAGG_MAX_NEIGHBOURS)
		return TEE_ERROR_BAD_PARAMETERS;
	buf = TEE_Malloc(len, TEE_MALLOC_FILL_ZERO);
	if (!buf)
		return TEE_ERROR_OUT_OF_MEMORY;
	storage_hdr_init(buf, EDGE_TAG_SECAGG);
	p = buf + EDGE_STORE_HDR_SIZE;
	*p++ = r->stage;
	p = put(p, r->binding, SECAGG_BINDING_SIZE);
	put_le64(p, r->round_id);
	p += 8;
	put_le16(p, r->t);
	put_le16(p + 2, r->k);
	put_le16(p + 4, r->cohort);
	p += 6;
	*p++ = r->scale_log2;
	p = put(p, r->c_sk, SECAGG_KEY_SIZE);
	p = put(p, r->c_pub, SECAGG_KEY_SIZE);
	p = put(p, r->s_sk, SECAGG_KEY_SIZE);
	p = put(p, r->s_pub, SECAGG_KEY_SIZE);
	p = put(p, r->b, EDGE_SECAGG_SEED_SIZE);
	*p++ = r->self_x;
	p = put(p, r->self_share, EDGE_SECAGG_SEED_SIZE);
	p = put(p, r->inbox_digest, 32);
	p = put(p, r->survivors_digest, 32);
	put_le16(p, r->npeers);
	p += 2;
	for (i = 0; i < r->npeers; i++) {
		const struct secagg_peer *e = &r->peers[i];

		p = put(p, e->id, EDGE_KEY_ID_SIZE);
		p = put(p, e->c_pub, SECAGG_KEY_SIZE);
		p = put(p, e->s_pub, SECAGG_KEY_SIZE);
		*p++ = e->my_x;
		*p++ = e->has_share;
		p = put(p, e->share, EDGE_SECAGG_SHARE_PT_SIZE);
	}
	res = storage_put(EDGE_OBJ_SECAGG, buf, len, true);
	TEE_MemFill(buf, 0, len);
	TEE_Free(buf);
	return res;
}

TEE_Result secagg_round_load(struct secagg_round **out)
{
	struct secagg_round *r = NULL;
	struct edge_rd rd = { };
	uint8_t *buf = NULL;
	size_t len = 0;
	TEE_Result res = TEE_ERROR_GENERIC;
	uint16_t i = 0;

	*out = NULL;
	res = storage_get(EDGE_OBJ_SECAGG, EDGE_TAG_SECAGG, ROUND_FIXED,
			  ROUND_MAX, &buf, &len);
	if (res)
		return res;
	r = TEE_Malloc(sizeof(*r), TEE_MALLOC_FILL_ZERO);
	if (!r) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	rd_init(&rd, buf + EDGE_STORE_HDR_SIZE, len - EDGE_STORE_HDR_SIZE);
#define GET(field, n) do { const uint8_t *q_ = rd_bytes(&rd, n); \
		if (q_) TEE_MemMove(field, q_, n); } while (0)
	r->stage = rd_u8(&rd);
	GET(r->binding, SECAGG_BINDING_SIZE);
	r->round_id = rd_u64(&rd);
	r->t = rd_u16(&rd);
	r->k = rd_u16(&rd);
	r->cohort = rd_u16(&rd);
	r->scale_log2 = rd_u8(&rd);
	GET(r->c_sk, SECAGG_KEY_SIZE);
	GET(r->c_pub, SECAGG_KEY_SIZE);
	GET(r->s_sk, SECAGG_KEY_SIZE);
	GET(r->s_pub, SECAGG_KEY_SIZE);
	GET(r->b, EDGE_SECAGG_SEED_SIZE);
	r->self_x = rd_u8(&rd);
	GET(r->self_share, EDGE_SECAGG_SEED_SIZE);
	GET(r->inbox_digest, 32);
	GET(r->survivors_digest, 32);
	r->npeers = rd_u16(&rd);
	if (rd.err || r->npeers > EDGE_SECAGG_MAX_NEIGHBOURS ||
	    rd_left(&rd) != (size_t)r->npeers * PEER_REC_SIZE ||
	    r->stage < SECAGG_ADVERTISED || r->stage > SECAGG_UNMASKED) {
		res = TEE_ERROR_CORRUPT_OBJECT;
		goto out;
	}
	for (i = 0; i < r->npeers; i++) {
		struct secagg_peer *e = &r->peers[i];

		GET(e->id, EDGE_KEY_ID_SIZE);
		GET(e->c_pub, SECAGG_KEY_SIZE);
		GET(e->s_pub, SECAGG_KEY_SIZE);
		e->my_x = rd_u8(&rd);
		e->has_share = rd_u8(&rd);
		GET(e->share, EDGE_SECAGG_SHARE_PT_SIZE);
	}
#undef GET
	if (rd.err) {
		res = TEE_ERROR_CORRUPT_OBJECT;
		goto out;
	}
	*out = r;
	r = NULL;
	res = TEE_SUCCESS;
out:
	secagg_round_free(r);
	TEE_MemFill(buf, 0, len);
	TEE_Free(buf);
	return res;
}

void secagg_round_free(struct secagg_round *r)
{
	if (r) {
		TEE_MemFill(r, 0, sizeof(*r));
		TEE_Free(r);
	}
}

/* A uniform draw below n (n >= 1) from the running SHA-256 stream. */
static TEE_Result draw_below(uint32_t n, const uint8_t *seed,
			     uint64_t *counter, uint32_t *out)
{
	uint8_t msg[sizeof(order_label) + EDGE_NONCE_SIZE + 8] = { 0 };
	uint8_t h[EDGE_SHA256_SIZE] = { 0 };
	uint64_t rem = (UINT64_MAX % n + 1) % n;	/* 2^64 mod n */
	uint64_t v = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	/* The label's NUL terminator is part of it, as in graph.py. */
	TEE_MemMove(msg, order_label, sizeof(order_label));
	TEE_MemMove(msg + sizeof(order_label), seed, EDGE_NONCE_SIZE);
	for (;;) {
		put_le64(msg + sizeof(order_label) + EDGE_NONCE_SIZE, *counter);
		(*counter)++;
		res = edge_sha256(msg, sizeof(msg), h);
		if (res)
			return res;
		v = get_le64(h);
		/* Reject the top 2^64 mod n values: the rest is unbiased. */
		if (!rem || v <= UINT64_MAX - rem) {
			*out = (uint32_t)(v % n);
			return TEE_SUCCESS;
		}
	}
}

TEE_Result secagg_order(uint32_t n, const uint8_t seed[EDGE_NONCE_SIZE],
			uint32_t *order)
{
	uint64_t counter = 0;
	uint32_t i = 0;
	uint32_t j = 0;
	uint32_t tmp = 0;
	TEE_Result res = TEE_SUCCESS;

	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n; i-- > 1;) {
		res = draw_below(i + 1, seed, &counter, &j);
		if (res)
			return res;
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
	return TEE_SUCCESS;
}

static void sort_u32(uint32_t *v, uint32_t m)
{
	uint32_t i = 0;
	uint32_t j = 0;
	uint32_t x = 0;

	for (i = 1; i < m; i++) {
		x = v[i];
		for (j = i; j > 0 && v[j - 1] > x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

uint32_t secagg_neighbours(const uint32_t *order, const uint32_t *inv,
			   uint32_t n, uint32_t k, uint32_t r, uint32_t *out)
{
	uint32_t m = 0;
	uint32_t i = 0;
	uint32_t half = k / 2;
	uint32_t p = inv[r];

	if (k + 1 >= n) {
		for (i = 0; i < n; i++)
			if (i != r)
				out[m++] = i;
		return m;
	}
	for (i = 1; i <= half; i++) {
		out[m++] = order[(p + i) % n];
		out[m++] = order[(p + n - i) % n];
	}
	sort_u32(out, m);
	return m;
}

uint8_t secagg_holder_x(uint32_t r, const uint32_t *nb, uint32_t m,
			uint32_t h)
{
	uint32_t rank = 0;
	uint32_t i = 0;
	bool found = h == r;

	if (r < h)
		rank++;
	for (i = 0; i < m; i++) {
		if (nb[i] == h)
			found = true;
		else if (nb[i] < h)
			rank++;
	}
	return found && rank < 255 ? (uint8_t)(rank + 1) : 0;
}

TEE_Result secagg_pair_seed(const uint8_t binding[SECAGG_BINDING_SIZE],
			    const uint8_t z[32],
			    uint8_t seed[EDGE_SECAGG_SEED_SIZE])
{
	uint8_t msg[sizeof(pair_label) + SECAGG_BINDING_SIZE + 32] = { 0 };
	uint8_t h[EDGE_SHA256_SIZE] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	TEE_MemMove(msg, pair_label, sizeof(pair_label));
	TEE_MemMove(msg + sizeof(pair_label), binding, SECAGG_BINDING_SIZE);
	TEE_MemMove(msg + sizeof(pair_label) + SECAGG_BINDING_SIZE, z, 32);
	res = edge_sha256(msg, sizeof(msg), h);
	if (!res)
		TEE_MemMove(seed, h, EDGE_SECAGG_SEED_SIZE);
	TEE_MemFill(msg, 0, sizeof(msg));
	TEE_MemFill(h, 0, sizeof(h));
	return res;
}

void secagg_share_aad(const uint8_t binding[SECAGG_BINDING_SIZE],
		      const uint8_t sender[EDGE_KEY_ID_SIZE],
		      const uint8_t recipient[EDGE_KEY_ID_SIZE],
		      uint8_t aad[SECAGG_BINDING_SIZE + 2 * EDGE_KEY_ID_SIZE])
{
	TEE_MemMove(aad, binding, SECAGG_BINDING_SIZE);
	TEE_MemMove(aad + SECAGG_BINDING_SIZE, sender, EDGE_KEY_ID_SIZE);
	TEE_MemMove(aad + SECAGG_BINDING_SIZE + EDGE_KEY_ID_SIZE, recipient,
		    EDGE_KEY_ID_SIZE);
}

TEE_Result secagg_share_key(const struct secagg_round *r,
			    const uint8_t peer_c_pub[SECAGG_KEY_SIZE],
			    const uint8_t sender[EDGE_KEY_ID_SIZE],
			    const uint8_t recipient[EDGE_KEY_ID_SIZE],
			    uint8_t key[32])
{
	uint8_t info[SECAGG_BINDING_SIZE + 2 * EDGE_KEY_ID_SIZE] = { 0 };
	uint8_t salt[EDGE_SHA256_SIZE] = { 0 };
	uint8_t z[32] = { 0 };
	TEE_Result res = edge_x25519_raw(r->c_sk, r->c_pub, peer_c_pub, z);

	if (res == TEE_ERROR_SECURITY)
		res = EDGE_ERR_WEAK_KEY;
	if (!res)
		res = edge_sha256(share_salt_label, sizeof(share_salt_label) - 1,
				  salt);
	secagg_share_aad(r->binding, sender, recipient, info);
	if (!res)
		res = edge_hkdf_sha256(z, sizeof(z), salt, sizeof(salt),
				       share_info_label,
				       sizeof(share_info_label) - 1, info,
				       sizeof(info), key, 32);
	TEE_MemFill(z, 0, sizeof(z));
	return res;
}

TEE_Result secagg_mask(const struct secagg_round *r,
		       const uint8_t self_id[EDGE_KEY_ID_SIZE],
		       uint32_t *words, size_t n)
{
	uint8_t seed[EDGE_SECAGG_SEED_SIZE] = { 0 };
	uint8_t z[32] = { 0 };
	TEE_Result res = prg_apply(r->b, 1, words, n);
	uint16_t i = 0;

	for (i = 0; !res && i < r->npeers; i++) {
		const struct secagg_peer *e = &r->peers[i];

		if (!e->has_share)
			continue;
		res = edge_x25519_raw(r->s_sk, r->s_pub, e->s_pub, z);
		if (res == TEE_ERROR_SECURITY)
			res = EDGE_ERR_WEAK_KEY;
		if (!res)
			res = secagg_pair_seed(r->binding, z, seed);
		if (!res)
			res = prg_apply(seed,
					TEE_MemCompare(self_id, e->id,
						       EDGE_KEY_ID_SIZE) < 0 ?
					1 : -1, words, n);
	}
	TEE_MemFill(seed, 0, sizeof(seed));
	TEE_MemFill(z, 0, sizeof(z));
	return res;
}
