// SPDX-License-Identifier: BSD-2-Clause
/*
 * Trust anchors and anchor statements (docs/formats.md "Anchor statement").
 */
#include <tee_internal_api.h>

#include "anchors.h"
#include "ed25519_strict.h"
#include "bytes.h"
#include "crypto.h"
#include "envelope.h"
#include "storage.h"

#define ANCHOR_REC_SIZE		(2 * (EDGE_PUBKEY_SIZE + 8))
#define REGISTRAR_REC_SIZE	(EDGE_PUBKEY_SIZE + 8)

static bool role_known(uint8_t r)
{
	return r == EDGE_ROLE_MODEL_SIGNER || r == EDGE_ROLE_AGGREGATOR ||
	       r == EDGE_ROLE_REGISTRAR;
}

/* The registrar object, if any, into a (roles 1 and 2 already loaded). */
static TEE_Result registrar_load(struct edge_anchors *a)
{
	struct edge_anchor *r = &a->role[EDGE_ROLE_REGISTRAR - 1];
	uint8_t *buf = NULL;
	size_t len = 0;
	TEE_Result res = storage_get(EDGE_OBJ_REGISTRAR, EDGE_TAG_REGISTRAR,
				     REGISTRAR_REC_SIZE, REGISTRAR_REC_SIZE,
				     &buf, &len);

	a->has_registrar = false;
	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		return TEE_SUCCESS;
	if (res)
		return res;
	TEE_MemMove(r->pub, buf + EDGE_STORE_HDR_SIZE, EDGE_PUBKEY_SIZE);
	r->epoch = get_le64(buf + EDGE_STORE_HDR_SIZE + EDGE_PUBKEY_SIZE);
	res = edge_key_id(r->pub, r->id);
	if (!res)
		a->has_registrar = true;
	TEE_Free(buf);
	return res;
}

static TEE_Result registrar_store(const struct edge_anchors *a, bool overwrite)
{
	uint8_t buf[EDGE_STORE_HDR_SIZE + REGISTRAR_REC_SIZE] = { 0 };
	const struct edge_anchor *r = &a->role[EDGE_ROLE_REGISTRAR - 1];

	storage_hdr_init(buf, EDGE_TAG_REGISTRAR);
	TEE_MemMove(buf + EDGE_STORE_HDR_SIZE, r->pub, EDGE_PUBKEY_SIZE);
	put_le64(buf + EDGE_STORE_HDR_SIZE + EDGE_PUBKEY_SIZE, r->epoch);
	return storage_put(EDGE_OBJ_REGISTRAR, buf, sizeof(buf), overwrite);
}

TEE_Result anchors_init(struct edge_anchors *a,
			const uint8_t signer_pub[EDGE_PUBKEY_SIZE],
			const uint8_t agg_pub[EDGE_PUBKEY_SIZE])
{
	TEE_Result res = TEE_ERROR_GENERIC;

	TEE_MemFill(a, 0, sizeof(*a));
	TEE_MemMove(a->role[0].pub, signer_pub, EDGE_PUBKEY_SIZE);
	TEE_MemMove(a->role[1].pub, agg_pub, EDGE_PUBKEY_SIZE);
	res = edge_key_id(a->role[0].pub, a->role[0].id);
	if (!res)
		res = edge_key_id(a->role[1].pub, a->role[1].id);
	if (!res)
		a->present = true;
	return res;
}

TEE_Result anchors_load(struct edge_anchors *a)
{
	struct edge_anchors tmp = { };
	uint8_t *buf = NULL;
	size_t len = 0;
	const uint8_t *p = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;

	res = storage_get(EDGE_OBJ_ANCHORS, EDGE_TAG_ANCHORS, ANCHOR_REC_SIZE,
			  ANCHOR_REC_SIZE, &buf, &len);
	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		return EDGE_ERR_NOT_PROVISIONED;
	if (res)
		return res;
	p = buf + EDGE_STORE_HDR_SIZE;
	res = anchors_init(&tmp, p, p + 40);
	if (!res) {
		tmp.role[0].epoch = get_le64(p + 32);
		tmp.role[1].epoch = get_le64(p + 72);
		res = registrar_load(&tmp);
	}
	if (!res)
		*a = tmp;
	TEE_Free(buf);
	return res;
}

TEE_Result anchors_store(const struct edge_anchors *a, bool overwrite)
{
	uint8_t buf[EDGE_STORE_HDR_SIZE + ANCHOR_REC_SIZE] = { 0 };
	uint8_t *p = buf + EDGE_STORE_HDR_SIZE;

	storage_hdr_init(buf, EDGE_TAG_ANCHORS);
	TEE_MemMove(p, a->role[0].pub, EDGE_PUBKEY_SIZE);
	put_le64(p + 32, a->role[0].epoch);
	TEE_MemMove(p + 40, a->role[1].pub, EDGE_PUBKEY_SIZE);
	put_le64(p + 72, a->role[1].epoch);
	return storage_put(EDGE_OBJ_ANCHORS, buf, sizeof(buf), overwrite);
}

TEE_Result anchors_install(struct edge_anchors *a,
			   const uint8_t keys[2 * EDGE_PUBKEY_SIZE])
{
	struct edge_anchors tmp = { };
	TEE_Result res = anchors_load(&tmp);

	if (!res)
		return EDGE_ERR_ALREADY_PROVISIONED;
	if (res != EDGE_ERR_NOT_PROVISIONED)
		return res;
	/* A key of small order or off the curve lets anyone sign, or no one. */
	res = ed25519_check_pub(keys);
	if (!res)
		res = ed25519_check_pub(keys + EDGE_PUBKEY_SIZE);
	if (res)
		return res;
	res = anchors_init(&tmp, keys, keys + EDGE_PUBKEY_SIZE);
	if (res)
		return res;
	/* Exclusive create: a concurrent install cannot be overwritten. */
	res = anchors_store(&tmp, false);
	if (res == TEE_ERROR_ACCESS_CONFLICT)
		return EDGE_ERR_ALREADY_PROVISIONED;
	if (res)
		return res;
	*a = tmp;
	return TEE_SUCCESS;
}

TEE_Result anchors_install_registrar(struct edge_anchors *a,
				     const uint8_t pub[EDGE_PUBKEY_SIZE])
{
	struct edge_anchors tmp = { };
	struct edge_anchor *r = &tmp.role[EDGE_ROLE_REGISTRAR - 1];
	TEE_Result res = anchors_load(&tmp);

	if (res)
		return res;
	if (tmp.has_registrar)
		return EDGE_ERR_ALREADY_PROVISIONED;
	res = ed25519_check_pub(pub);
	if (res)
		return res;
	TEE_MemMove(r->pub, pub, EDGE_PUBKEY_SIZE);
	r->epoch = 0;
	res = edge_key_id(r->pub, r->id);
	if (res)
		return res;
	res = registrar_store(&tmp, false);
	if (res == TEE_ERROR_ACCESS_CONFLICT)
		return EDGE_ERR_ALREADY_PROVISIONED;
	if (res)
		return res;
	tmp.has_registrar = true;
	*a = tmp;
	return TEE_SUCCESS;
}

TEE_Result anchors_parse_statement_body(const uint8_t *body, size_t len,
					uint8_t *role, uint64_t *epoch,
					const uint8_t **new_pub)
{
	uint8_t r = 0;

	if (len != EDGE_ANCHOR_BODY_SIZE ||
	    !zeros_at(body + EDGE_ANCHOR_OFF_RESERVED, EDGE_ANCHOR_LEN_RESERVED))
		return TEE_ERROR_BAD_FORMAT;
	r = body[EDGE_ANCHOR_OFF_ROLE];
	if (!role_known(r))
		return TEE_ERROR_BAD_FORMAT;
	*role = r;
	*epoch = get_le64(body + EDGE_ANCHOR_OFF_EPOCH);
	*new_pub = body + EDGE_ANCHOR_OFF_NEW_PUB;
	return TEE_SUCCESS;
}

TEE_Result anchors_check_statement(const struct edge_anchors *cur,
				   const uint8_t *stmt, size_t len,
				   struct edge_anchors *next)
{
	struct edge_envelope env = { };
	struct edge_anchors tmp = { };
	const struct edge_anchor *anchor = NULL;
	const uint8_t *new_pub = NULL;
	uint64_t epoch = 0;
	uint8_t role = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!cur->present)
		return EDGE_ERR_NOT_PROVISIONED;
	res = envelope_precheck(stmt, len, EDGE_KIND_ANCHOR_STATEMENT,
				EDGE_ANCHOR_STATEMENT_SIZE);
	if (res)
		return res;
	/* The role selects the expected signer, so it is read first. */
	if (get_le32(stmt + EDGE_ENVELOPE_HEADER_OFF_BODY_LEN) !=
	    EDGE_ANCHOR_BODY_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	role = stmt[EDGE_ENVELOPE_HEADER_SIZE + EDGE_ANCHOR_OFF_ROLE];
	if (!role_known(role))
		return TEE_ERROR_BAD_FORMAT;
	if (role == EDGE_ROLE_REGISTRAR && !cur->has_registrar)
		return EDGE_ERR_NOT_PROVISIONED;
	anchor = &cur->role[role - 1];
	res = envelope_open(stmt, len, EDGE_KIND_ANCHOR_STATEMENT,
			    EDGE_ANCHOR_STATEMENT_SIZE, anchor->id,
			    anchor->pub, &env);
	if (res)
		return res;

	res = anchors_parse_statement_body(env.body, env.body_len, &role,
					   &epoch, &new_pub);
	if (res)
		return res;
	if (anchor->epoch == UINT64_MAX || epoch != anchor->epoch + 1)
		return EDGE_ERR_STALE_STATEMENT;

	res = ed25519_check_pub(new_pub);
	if (res)
		return res;

	tmp = *cur;
	TEE_MemMove(tmp.role[role - 1].pub, new_pub, EDGE_PUBKEY_SIZE);
	res = edge_key_id(new_pub, tmp.role[role - 1].id);
	if (res)
		return res;
	tmp.role[role - 1].epoch = epoch;
	*next = tmp;
	return TEE_SUCCESS;
}

TEE_Result anchors_replace(struct edge_anchors *a, const uint8_t *stmt,
			   size_t len)
{
	struct edge_anchors next = { };
	TEE_Result res = anchors_check_statement(a, stmt, len, &next);

	if (res)
		return res;
	if (stmt[EDGE_ENVELOPE_HEADER_SIZE + EDGE_ANCHOR_OFF_ROLE] ==
	    EDGE_ROLE_REGISTRAR)
		res = registrar_store(&next, true);
	else
		res = anchors_store(&next, true);
	if (res)
		return res;
	*a = next;
	IMSG("anchor of role %u replaced, epoch %llu",
	     (unsigned int)stmt[EDGE_ENVELOPE_HEADER_SIZE],
	     (unsigned long long)next.role[stmt[EDGE_ENVELOPE_HEADER_SIZE] - 1].epoch);
	return TEE_SUCCESS;
}
