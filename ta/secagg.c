// SPDX-License-Identifier: BSD-2-Clause
/*
 * The secure-aggregation commands (SecAgg+, Bonawitz et al. CCS 2017; Bell et
 * al. CCS 2020; docs/secagg.md): advertise this round's keys, share the
 * self-mask seed and the s-key among the neighbours, receive theirs, mask
 * the update (secagg_seal, called by TRAIN_AND_SEAL) and unmask, revealing
 * for each neighbour one share only, ever. Every input is a signed envelope
 * copied into TA memory before it is parsed.
 */
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "bytes.h"
#include "commands.h"
#include "crypto.h"
#include "ed25519_strict.h"
#include "envelope.h"
#include "noise_share.h"
#include "quantize.h"
#include "seal.h"
#include "secagg.h"
#include "secagg_round.h"
#include "shamir.h"
#include "state.h"

#define DIRECTIVE_MAX	(EDGE_ENVELOPE_HEADER_SIZE + EDGE_DIRECTIVE_HEADER_SIZE + \
			 EDGE_SECAGG_MAX_COHORT * EDGE_SECAGG_ROSTER_ENTRY_SIZE + \
			 EDGE_SIG_SIZE)
#define SHARE_AAD_SIZE	(SECAGG_BINDING_SIZE + 2 * EDGE_KEY_ID_SIZE)
#define GCM_ZERO_NONCE	((const uint8_t[EDGE_GCM_NONCE_SIZE]){ 0 })

static const uint8_t *self_id(void)
{
	return edge_st.identity.device_id;
}

/* Writes the device-signed envelope around body (body_len) into out. */
static TEE_Result sign_into(uint16_t kind, const uint8_t *body,
			    size_t body_len, uint8_t *out)
{
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	envelope_put_header(out, kind, (uint32_t)body_len, self_id());
	TEE_MemMove(out + EDGE_ENVELOPE_HEADER_SIZE, body, body_len);
	res = edge_sha256(out, EDGE_ENVELOPE_HEADER_SIZE + body_len, digest);
	if (!res)
		res = edge_ed25519_sign(edge_st.identity.sign_key, digest,
					out + EDGE_ENVELOPE_HEADER_SIZE +
					body_len);
	return res;
}

/* Copies a signed output of len bytes into params[i] (SHORT_BUFFER asks). */
static TEE_Result give(TEE_Param *p, const uint8_t *buf, size_t len)
{
	if (p->memref.size < len) {
		p->memref.size = len;
		return TEE_ERROR_SHORT_BUFFER;
	}
	TEE_MemMove(p->memref.buffer, buf, len);
	p->memref.size = len;
	return TEE_SUCCESS;
}

/* ---- SECAGG_ADVERTISE ------------------------------------------------- */

static void advert_body(const struct secagg_round *r, uint8_t *b)
{
	TEE_MemFill(b, 0, EDGE_ADVERT_BODY_SIZE);
	TEE_MemMove(b + EDGE_ADVERT_OFF_DEVICE_ID, self_id(), EDGE_KEY_ID_SIZE);
	/* The binding's fields are the advert's, in the same order. */
	TEE_MemMove(b + EDGE_ADVERT_OFF_FLEET_ID, r->binding,
		    SECAGG_BINDING_SIZE);
	TEE_MemMove(b + EDGE_ADVERT_OFF_C_PUB, r->c_pub, SECAGG_KEY_SIZE);
	TEE_MemMove(b + EDGE_ADVERT_OFF_S_PUB, r->s_pub, SECAGG_KEY_SIZE);
}

TEE_Result edge_cmd_secagg_advertise(struct edge_session *sess,
				     TEE_Param params[TEE_NUM_PARAMS])
{
	uint8_t body[EDGE_ADVERT_BODY_SIZE] = { 0 };
	uint8_t advert[EDGE_SECAGG_ADVERT_SIZE] = { 0 };
	uint8_t binding[SECAGG_BINDING_SIZE] = { 0 };
	uint64_t ree = (uint64_t)params[1].value.b << 32 | params[1].value.a;
	struct edge_train_state st = { };
	struct edge_ticket t = { };
	struct secagg_round *r = NULL;
	uint64_t per_round = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	if (params[2].memref.size < sizeof(advert)) {
		params[2].memref.size = sizeof(advert);
		return TEE_ERROR_SHORT_BUFFER;
	}
	res = training_verify_ticket(&params[0], ree, &t, &st, &per_round);
	if (!res && t.mode != EDGE_UPDATE_MODE_SECAGG)
		res = TEE_ERROR_BAD_STATE;
	if (!res)
		res = state_identity(true);
	if (res)
		goto out;
	secagg_binding(&t, binding);

	res = secagg_round_load(&r);
	if (!res && r->round_id == t.round_id) {
		/* The same round again: the same keys, unless they were shared
		 * (or the ticket is another one with this round id). */
		if (r->stage != SECAGG_ADVERTISED ||
		    TEE_MemCompare(r->binding, binding, sizeof(binding))) {
			res = TEE_ERROR_BAD_STATE;
			goto out;
		}
	} else if (!res && r->round_id > t.round_id) {
		res = EDGE_ERR_REPLAY;
		goto out;
	} else if (!res || res == TEE_ERROR_ITEM_NOT_FOUND) {
		/* A new round replaces the old one, whose secrets are wiped. */
		secagg_round_free(r);
		r = TEE_Malloc(sizeof(*r), TEE_MALLOC_FILL_ZERO);
		if (!r) {
			res = TEE_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		r->stage = SECAGG_ADVERTISED;
		TEE_MemMove(r->binding, binding, sizeof(binding));
		r->round_id = t.round_id;
		r->t = t.sa_t;
		r->k = t.sa_k;
		r->cohort = t.sa_cohort;
		r->scale_log2 = t.sa_scale_log2;
		res = edge_x25519_generate(r->c_sk, r->c_pub);
		if (!res)
			res = edge_x25519_generate(r->s_sk, r->s_pub);
		if (!res)
			TEE_GenerateRandom(r->b, sizeof(r->b));
		if (!res)
			res = secagg_round_store(r);
	}
	if (res)
		goto out;
	advert_body(r, body);
	res = sign_into(EDGE_KIND_SECAGG_ADVERT, body, sizeof(body), advert);
	if (!res)
		res = give(&params[2], advert, sizeof(advert));
out:
	secagg_round_free(r);
	if (res)
		EMSG("secagg advertise refused: 0x%x", (unsigned int)res);
	return res;
}

/* ---- Directives (aggregator-signed) ------------------------------------ */

static size_t entry_size(uint8_t stage)
{
	switch (stage) {
	case EDGE_SECAGG_STAGE_ROSTER:
		return EDGE_SECAGG_ROSTER_ENTRY_SIZE;
	case EDGE_SECAGG_STAGE_INBOX:
		return EDGE_SECAGG_INBOX_ENTRY_SIZE;
	default:
		return EDGE_KEY_ID_SIZE;
	}
}

TEE_Result secagg_directive_parse(const uint8_t *buf, size_t len, uint8_t stage,
				 const uint8_t binding[SECAGG_BINDING_SIZE],
				 const uint8_t self[EDGE_KEY_ID_SIZE],
				 const struct edge_anchor *agg,
				 struct secagg_directive *d)
{
	struct edge_envelope env = { };
	const uint8_t *h = NULL;
	size_t esz = entry_size(stage);
	uint32_t i = 0;
	TEE_Result res = envelope_open(buf, len, EDGE_KIND_SECAGG_DIRECTIVE,
				       DIRECTIVE_MAX, agg->id, agg->pub, &env);

	if (res)
		return res;
	if (env.body_len < EDGE_DIRECTIVE_HEADER_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	h = env.body;
	if (h[EDGE_DIRECTIVE_OFF_STAGE] != stage)
		return EDGE_ERR_WRONG_KIND;
	if (!zeros_at(h + EDGE_DIRECTIVE_OFF_RESERVED,
		      EDGE_DIRECTIVE_LEN_RESERVED))
		return TEE_ERROR_BAD_FORMAT;
	d->count = get_le32(h + EDGE_DIRECTIVE_OFF_COUNT);
	if (d->count > EDGE_DIRECTIVE_COUNT_MAX)
		return TEE_ERROR_EXCESS_DATA;
	if ((size_t)env.body_len != EDGE_DIRECTIVE_HEADER_SIZE + d->count * esz)
		return TEE_ERROR_BAD_FORMAT;
	if (TEE_MemCompare(h + EDGE_DIRECTIVE_OFF_FLEET_ID, binding,
			   SECAGG_BINDING_SIZE))
		return EDGE_ERR_WRONG_ROUND;
	if (stage == EDGE_SECAGG_STAGE_INBOX) {
		if (TEE_MemCompare(h + EDGE_DIRECTIVE_OFF_RECIPIENT, self,
				   EDGE_KEY_ID_SIZE))
			return EDGE_ERR_NOT_FOR_DEVICE;
	} else if (!zeros_at(h + EDGE_DIRECTIVE_OFF_RECIPIENT,
			     EDGE_DIRECTIVE_LEN_RECIPIENT)) {
		return TEE_ERROR_BAD_FORMAT;
	}
	d->entries = h + EDGE_DIRECTIVE_HEADER_SIZE;
	/* A roster entry starts with its certificate, whose body starts with
	 * the device id. */
	for (i = 1; i < d->count; i++) {
		size_t off = stage == EDGE_SECAGG_STAGE_ROSTER ?
			     EDGE_ENVELOPE_HEADER_SIZE : 0;

		if (TEE_MemCompare(d->entries + (i - 1) * esz + off,
				   d->entries + i * esz + off,
				   EDGE_KEY_ID_SIZE) >= 0)
			return TEE_ERROR_BAD_FORMAT;
	}
	return edge_sha256(buf, len, d->digest);
}

/* Copies the directive in p into TA memory (*copy; the caller frees it)
 * and parses it for the stored round r. */
static TEE_Result directive_open(const TEE_Param *p, uint8_t stage,
				 const struct secagg_round *r, uint8_t **copy,
				 struct secagg_directive *d)
{
	TEE_Result res = copy_envelope(p, EDGE_KIND_SECAGG_DIRECTIVE,
				       DIRECTIVE_MAX, copy);

	if (res)
		return res;
	return secagg_directive_parse(*copy, p->memref.size, stage, r->binding,
				      self_id(), &edge_st.anchors.role[1], d);
}

/* The stored round in the given stage range, bound to the ticket's round. */
static TEE_Result round_at(struct secagg_round **r, uint8_t lo, uint8_t hi)
{
	TEE_Result res = state_anchors();

	if (!res)
		res = state_identity(false);
	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		return TEE_ERROR_BAD_STATE;
	if (!res)
		res = secagg_round_load(r);
	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		return TEE_ERROR_BAD_STATE;
	if (!res && ((*r)->stage < lo || (*r)->stage > hi))
		res = TEE_ERROR_BAD_STATE;
	return res;
}

/* ---- SECAGG_SHARE ----------------------------------------------------- */

TEE_Result secagg_roster_entry(const uint8_t *entry,
			       const struct edge_anchor *reg,
			       const uint8_t binding[SECAGG_BINDING_SIZE],
			       struct secagg_peer *peer)
{
	const uint8_t *adv = entry + EDGE_CERT_SIZE;
	struct edge_envelope env = { };
	uint8_t id[EDGE_KEY_ID_SIZE] = { 0 };
	const uint8_t *pub = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!reg)
		return EDGE_ERR_UNKNOWN_ENROLLMENT;
	res = envelope_open(entry, EDGE_CERT_SIZE, EDGE_KIND_ENROLLMENT_CERT,
			    EDGE_CERT_SIZE, reg->id, reg->pub, &env);
	if (res == EDGE_ERR_UNKNOWN_SIGNER || res == TEE_ERROR_SIGNATURE_INVALID)
		return EDGE_ERR_UNKNOWN_ENROLLMENT;
	if (res)
		return res;
	pub = env.body + EDGE_CERT_OFF_IDENTITY_PUB;
	res = edge_key_id(pub, id);
	if (res)
		return res;
	if (TEE_MemCompare(id, env.body + EDGE_CERT_OFF_DEVICE_ID, sizeof(id)) ||
	    TEE_MemCompare(env.body + EDGE_CERT_OFF_FLEET_ID, binding,
			   EDGE_FLEET_ID_SIZE))
		return EDGE_ERR_UNKNOWN_ENROLLMENT;
	res = ed25519_check_pub(pub);
	if (res)
		return res;

	res = envelope_open(adv, EDGE_SECAGG_ADVERT_SIZE,
			    EDGE_KIND_SECAGG_ADVERT, EDGE_SECAGG_ADVERT_SIZE,
			    id, pub, &env);
	if (res == EDGE_ERR_UNKNOWN_SIGNER || res == TEE_ERROR_SIGNATURE_INVALID)
		return EDGE_ERR_FORGED_ADVERT;
	if (res)
		return res;
	if (TEE_MemCompare(env.body + EDGE_ADVERT_OFF_DEVICE_ID, id, sizeof(id)))
		return EDGE_ERR_FORGED_ADVERT;
	if (TEE_MemCompare(env.body + EDGE_ADVERT_OFF_FLEET_ID, binding,
			   SECAGG_BINDING_SIZE))
		return EDGE_ERR_WRONG_ROUND;
	TEE_MemMove(peer->id, id, sizeof(id));
	TEE_MemMove(peer->c_pub, env.body + EDGE_ADVERT_OFF_C_PUB,
		    SECAGG_KEY_SIZE);
	TEE_MemMove(peer->s_pub, env.body + EDGE_ADVERT_OFF_S_PUB,
		    SECAGG_KEY_SIZE);
	return TEE_SUCCESS;
}

/*
 * The roster index of this device; NOT_FOR_DEVICE if it is not listed. Its
 * own entry must carry the keys it advertised (FORGED_ADVERT otherwise): the
 * others encrypt to and mask with whatever the roster says.
 */
static TEE_Result find_self(const struct secagg_directive *d,
			    const struct secagg_round *r, uint32_t *me)
{
	const uint8_t *e = NULL;
	const uint8_t *adv = NULL;
	uint32_t i = 0;

	for (i = 0; i < d->count; i++) {
		e = d->entries + (size_t)i * EDGE_SECAGG_ROSTER_ENTRY_SIZE;
		if (TEE_MemCompare(e + EDGE_ENVELOPE_HEADER_SIZE, self_id(),
				   EDGE_KEY_ID_SIZE))
			continue;
		adv = e + EDGE_CERT_SIZE + EDGE_ENVELOPE_HEADER_SIZE;
		if (TEE_MemCompare(adv + EDGE_ADVERT_OFF_C_PUB, r->c_pub,
				   SECAGG_KEY_SIZE) ||
		    TEE_MemCompare(adv + EDGE_ADVERT_OFF_S_PUB, r->s_pub,
				   SECAGG_KEY_SIZE))
			return EDGE_ERR_FORGED_ADVERT;
		*me = i;
		return TEE_SUCCESS;
	}
	return EDGE_ERR_NOT_FOR_DEVICE;
}

/* Encrypts this device's share pair for each peer into the bundle body. */
static TEE_Result seal_shares(struct secagg_round *r, const uint8_t *b_shares, const uint8_t *s_shares,
			      uint8_t *body)
{
	uint8_t pt[EDGE_SECAGG_SHARE_PT_SIZE] = { 0 };
	uint8_t aad[SHARE_AAD_SIZE] = { 0 };
	uint8_t key[32] = { 0 };
	uint8_t *e = body + EDGE_SHARES_HEADER_SIZE;
	TEE_Result res = TEE_SUCCESS;
	uint16_t i = 0;

	TEE_MemFill(body, 0, EDGE_SHARES_HEADER_SIZE);
	TEE_MemMove(body + EDGE_SHARES_OFF_DEVICE_ID, self_id(),
		    EDGE_KEY_ID_SIZE);
	TEE_MemMove(body + EDGE_SHARES_OFF_FLEET_ID, r->binding,
		    SECAGG_BINDING_SIZE);
	put_le32(body + EDGE_SHARES_OFF_COUNT, r->npeers);
	for (i = 0; !res && i < r->npeers; i++) {
		const struct secagg_peer *peer = &r->peers[i];
		/* Holder i + 1 of xs: xs[0] is this device's own x. */
		size_t at = (size_t)(i + 1);

		TEE_MemMove(pt, b_shares + at * EDGE_SECAGG_SEED_SIZE,
			    EDGE_SECAGG_SEED_SIZE);
		TEE_MemMove(pt + EDGE_SECAGG_SEED_SIZE,
			    s_shares + at * SECAGG_KEY_SIZE, SECAGG_KEY_SIZE);
		res = secagg_share_key(r, peer->c_pub, self_id(), peer->id, key);
		secagg_share_aad(r->binding, self_id(), peer->id, aad);
		TEE_MemMove(e, peer->id, EDGE_KEY_ID_SIZE);
		if (!res)
			res = edge_gcm_encrypt(key, GCM_ZERO_NONCE, aad,
					       sizeof(aad), pt, sizeof(pt),
					       e + EDGE_KEY_ID_SIZE,
					       e + EDGE_KEY_ID_SIZE + sizeof(pt));
		e += EDGE_SECAGG_SHARES_ENTRY_SIZE;
	}
	TEE_MemFill(pt, 0, sizeof(pt));
	TEE_MemFill(key, 0, sizeof(key));
	return res;
}

/*
 * Shamir-splits b and s_sk among the holders (this device first, then the
 * peers in id order) at the x each holds in this device's sharing, keeps
 * the own b share and writes the bundle body.
 */
static TEE_Result split_and_seal(struct secagg_round *r, uint32_t me,
				 const uint32_t *nb, uint32_t m,
				 uint8_t *body)
{
	uint8_t xs[EDGE_SECAGG_MAX_NEIGHBOURS + 1] = { 0 };
	size_t holders = (size_t)m + 1;
	uint8_t *b_sh = TEE_Malloc(holders * EDGE_SECAGG_SEED_SIZE,
				   TEE_MALLOC_FILL_ZERO);
	uint8_t *s_sh = TEE_Malloc(holders * SECAGG_KEY_SIZE,
				   TEE_MALLOC_FILL_ZERO);
	TEE_Result res = TEE_SUCCESS;
	uint32_t i = 0;

	if (!b_sh || !s_sh) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	xs[0] = secagg_holder_x(me, nb, m, me);
	for (i = 0; i < m; i++)
		xs[i + 1] = secagg_holder_x(me, nb, m, nb[i]);
	res = shamir_split(r->b, EDGE_SECAGG_SEED_SIZE, r->t, xs, holders,
			   NULL, b_sh);
	if (!res)
		res = shamir_split(r->s_sk, SECAGG_KEY_SIZE, r->t, xs, holders,
				   NULL, s_sh);
	if (res)
		goto out;
	r->self_x = xs[0];
	TEE_MemMove(r->self_share, b_sh, EDGE_SECAGG_SEED_SIZE);
	res = seal_shares(r, b_sh, s_sh, body);
out:
	free_wiped(b_sh, holders * EDGE_SECAGG_SEED_SIZE);
	free_wiped(s_sh, holders * SECAGG_KEY_SIZE);
	return res;
}

/*
 * The roster's graph: this device's neighbours (nb, m), each checked, and
 * this device's x in each neighbour's sharing.
 */
static TEE_Result take_roster(struct secagg_round *r,
			      const struct secagg_directive *d, uint32_t me,
			      uint32_t *nb, uint32_t *m)
{
	uint32_t *order = TEE_Malloc(d->count * sizeof(uint32_t), 0);
	uint32_t *inv = TEE_Malloc(d->count * sizeof(uint32_t), 0);
	uint32_t *nb2 = TEE_Malloc(d->count * sizeof(uint32_t), 0);
	uint8_t nonce[EDGE_NONCE_SIZE] = { 0 };
	TEE_Result res = TEE_SUCCESS;
	uint32_t m2 = 0;
	uint32_t i = 0;

	if (!order || !inv || !nb2) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	/* The graph seed is the ticket's nonce, fixed before anyone advertised. */
	TEE_MemMove(nonce, r->binding + 24, sizeof(nonce));
	res = secagg_order(d->count, nonce, order);
	if (res)
		goto out;
	for (i = 0; i < d->count; i++)
		inv[order[i]] = i;
	*m = secagg_neighbours(order, inv, d->count, r->k, me, nb);
	if (*m + 1 < r->t || *m > EDGE_SECAGG_MAX_NEIGHBOURS) {
		res = EDGE_ERR_TOO_FEW_SURVIVORS;
		goto out;
	}
	r->npeers = (uint16_t)*m;
	for (i = 0; !res && i < *m; i++) {
		res = secagg_roster_entry(d->entries + (size_t)nb[i] *
					  EDGE_SECAGG_ROSTER_ENTRY_SIZE,
					  edge_st.anchors.has_registrar ?
					  &edge_st.anchors.role[EDGE_ROLE_REGISTRAR - 1] :
					  NULL, r->binding, &r->peers[i]);
		m2 = secagg_neighbours(order, inv, d->count, r->k, nb[i], nb2);
		r->peers[i].my_x = secagg_holder_x(nb[i], nb2, m2, me);
		if (!res && !r->peers[i].my_x)
			res = TEE_ERROR_BAD_FORMAT;	/* graph not symmetric */
	}
out:
	TEE_Free(order);
	TEE_Free(inv);
	TEE_Free(nb2);
	return res;
}

TEE_Result edge_cmd_secagg_share(struct edge_session *sess,
				 TEE_Param params[TEE_NUM_PARAMS])
{
	struct secagg_round *r = NULL;
	struct secagg_directive d = { };
	uint8_t *copy = NULL;
	uint8_t *out = NULL;
	uint32_t *nb = NULL;
	uint32_t me = 0;
	uint32_t m = 0;
	size_t body_len = 0;
	size_t out_len = 0;
	TEE_Result res = round_at(&r, SECAGG_ADVERTISED, SECAGG_ADVERTISED);

	(void)sess;
	if (!res)
		res = directive_open(&params[0], EDGE_SECAGG_STAGE_ROSTER, r, &copy,
				     &d);
	if (!res && d.count > r->cohort)
		res = TEE_ERROR_EXCESS_DATA;
	if (!res)
		res = find_self(&d, r, &me);
	if (res)
		goto out;
	nb = TEE_Malloc(d.count * sizeof(uint32_t), 0);
	if (!nb) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	res = take_roster(r, &d, me, nb, &m);
	if (res)
		goto out;
	body_len = EDGE_SHARES_HEADER_SIZE +
		   (size_t)m * EDGE_SECAGG_SHARES_ENTRY_SIZE;
	out_len = EDGE_ENVELOPE_HEADER_SIZE + body_len + EDGE_SIG_SIZE;
	if (params[1].memref.size < out_len) {
		/* Nothing is stored: the same roster may come again. */
		params[1].memref.size = out_len;
		res = TEE_ERROR_SHORT_BUFFER;
		goto out;
	}
	out = TEE_Malloc(out_len, TEE_MALLOC_FILL_ZERO);
	if (!out) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	res = split_and_seal(r, me, nb, m, out + EDGE_ENVELOPE_HEADER_SIZE);
	if (res)
		goto out;
	/* Shared once: the shares exist only in this reply from now on. */
	r->stage = SECAGG_SHARED;
	res = secagg_round_store(r);
	if (!res)
		res = sign_into(EDGE_KIND_SECAGG_SHARES,
				out + EDGE_ENVELOPE_HEADER_SIZE, body_len, out);
	if (!res)
		res = give(&params[1], out, out_len);
out:
	TEE_Free(nb);
	TEE_Free(copy);
	free_wiped(out, out_len);
	secagg_round_free(r);
	if (res)
		EMSG("secagg share refused: 0x%x", (unsigned int)res);
	return res;
}

/* ---- SECAGG_RECEIVE --------------------------------------------------- */

static struct secagg_peer *peer_of(struct secagg_round *r, const uint8_t *id)
{
	uint16_t i = 0;

	for (i = 0; i < r->npeers; i++)
		if (!TEE_MemCompare(r->peers[i].id, id, EDGE_KEY_ID_SIZE))
			return &r->peers[i];
	return NULL;
}

TEE_Result edge_cmd_secagg_receive(struct edge_session *sess,
				   TEE_Param params[TEE_NUM_PARAMS])
{
	struct secagg_round *r = NULL;
	struct secagg_peer *peer = NULL;
	struct secagg_directive d = { };
	uint8_t aad[SHARE_AAD_SIZE] = { 0 };
	uint8_t key[32] = { 0 };
	uint8_t *copy = NULL;
	const uint8_t *e = NULL;
	uint32_t i = 0;
	TEE_Result res = round_at(&r, SECAGG_SHARED, SECAGG_UNMASKED);

	(void)sess;
	if (!res)
		res = directive_open(&params[0], EDGE_SECAGG_STAGE_INBOX, r, &copy,
				     &d);
	if (res)
		goto out;
	if (r->stage != SECAGG_SHARED) {
		/* Taken already: the same inbox again is fine, another is not. */
		if (TEE_MemCompare(r->inbox_digest, d.digest, sizeof(d.digest)))
			res = EDGE_ERR_SHARE_CONFLICT;
		goto out;
	}
	if (d.count + 1 < r->t) {
		res = EDGE_ERR_TOO_FEW_SURVIVORS;
		goto out;
	}
	for (i = 0; !res && i < d.count; i++) {
		e = d.entries + (size_t)i * EDGE_SECAGG_INBOX_ENTRY_SIZE;
		peer = peer_of(r, e);
		if (!peer) {
			res = TEE_ERROR_BAD_FORMAT;	/* not a neighbour */
			break;
		}
		res = secagg_share_key(r, peer->c_pub, peer->id, self_id(), key);
		secagg_share_aad(r->binding, peer->id, self_id(), aad);
		if (!res)
			res = edge_gcm_decrypt(key, GCM_ZERO_NONCE, aad,
					       sizeof(aad), e + EDGE_KEY_ID_SIZE,
					       EDGE_SECAGG_SHARE_PT_SIZE,
					       e + EDGE_KEY_ID_SIZE +
					       EDGE_SECAGG_SHARE_PT_SIZE,
					       peer->share);
		if (!res)
			peer->has_share = 1;
	}
	if (res)
		goto out;
	TEE_MemMove(r->inbox_digest, d.digest, sizeof(d.digest));
	r->stage = SECAGG_RECEIVED;
	/* The c-key decrypted the inbox, its only use: it is not stored again. */
	TEE_MemFill(r->c_sk, 0, sizeof(r->c_sk));
	res = secagg_round_store(r);
out:
	TEE_MemFill(key, 0, sizeof(key));
	TEE_Free(copy);
	secagg_round_free(r);
	if (res)
		EMSG("secagg receive refused: 0x%x", (unsigned int)res);
	return res;
}

/* ---- TRAIN_AND_SEAL, mode SECAGG ------------------------------------- */

TEE_Result secagg_seal(const struct edge_ticket *t, uint8_t *out,
		       uint32_t params, float noise_share)
{
	uint8_t binding[SECAGG_BINDING_SIZE] = { 0 };
	uint8_t *vec = out + EDGE_ENVELOPE_HEADER_SIZE + EDGE_UPDATE_HEADER_SIZE;
	struct secagg_round *r = NULL;
	uint32_t *words = NULL;
	double *x = NULL;
	uint32_t i = 0;
	TEE_Result res = secagg_round_load(&r);

	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		return TEE_ERROR_BAD_STATE;
	if (res)
		return res;
	secagg_binding(t, binding);
	if (r->round_id != t->round_id ||
	    TEE_MemCompare(r->binding, binding, sizeof(binding))) {
		res = EDGE_ERR_WRONG_ROUND;
		goto out;
	}
	if (r->stage != SECAGG_RECEIVED) {
		res = TEE_ERROR_BAD_STATE;
		goto out;
	}
	words = TEE_Malloc((size_t)params * 4, 0);
	x = TEE_Malloc((size_t)params * sizeof(double), 0);
	if (!words || !x) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	/* The released float32 values (norm <= U), quantized unbiasedly, with
	 * the policy's distributed-DP noise share if it states one. */
	for (i = 0; i < params; i++)
		x[i] = (double)flt_from_bits(get_le32(vec + 4 * i));
	res = noise_share_words(x, params, (double)t->update_clip,
				r->scale_log2, t->sa_cohort, noise_share, words);
	if (!res)
		res = secagg_mask(r, edge_st.identity.device_id, words, params);
	if (res)
		goto out;
	for (i = 0; i < params; i++)
		put_le32(vec + 4 * i, words[i]);
	out[EDGE_ENVELOPE_HEADER_SIZE + EDGE_UPDATE_HEADER_OFF_UPDATE_MODE] =
		EDGE_UPDATE_MODE_SECAGG;
	res = seal_sign(out, params, edge_st.identity.sign_key);
out:
	free_wiped(words, (size_t)params * 4);
	free_wiped(x, (size_t)params * sizeof(double));
	secagg_round_free(r);
	return res;
}

/* ---- SECAGG_UNMASK ---------------------------------------------------- */

static bool listed(const struct secagg_directive *d, const uint8_t *id)
{
	uint32_t i = 0;

	for (i = 0; i < d->count; i++)
		if (!TEE_MemCompare(d->entries + (size_t)i * EDGE_KEY_ID_SIZE, id,
				    EDGE_KEY_ID_SIZE))
			return true;
	return false;
}

/*
 * The survivor list's rules for this device: it is listed itself; every
 * neighbour listed shared with it (else SHARE_CONFLICT: U3 must lie in U2);
 * at least t of the holders of its shares survive (TOO_FEW_SURVIVORS).
 */
static TEE_Result check_survivors(const struct secagg_round *r,
				  const struct secagg_directive *d)
{
	uint32_t alive = 1;
	uint16_t i = 0;

	if (d->count < r->t)
		return EDGE_ERR_TOO_FEW_SURVIVORS;
	if (!listed(d, self_id()))
		return EDGE_ERR_NOT_FOR_DEVICE;
	for (i = 0; i < r->npeers; i++) {
		if (!listed(d, r->peers[i].id))
			continue;
		if (!r->peers[i].has_share)
			return EDGE_ERR_SHARE_CONFLICT;
		alive++;
	}
	return alive < r->t ? EDGE_ERR_TOO_FEW_SURVIVORS : TEE_SUCCESS;
}

static uint8_t *reveal_entry(uint8_t *e, const uint8_t *owner, uint8_t which,
			     uint8_t x, const uint8_t *share, size_t len)
{
	TEE_MemFill(e, 0, EDGE_SECAGG_REVEAL_ENTRY_SIZE);
	TEE_MemMove(e, owner, EDGE_KEY_ID_SIZE);
	e[EDGE_KEY_ID_SIZE] = which;
	e[EDGE_KEY_ID_SIZE + 1] = x;
	TEE_MemMove(e + EDGE_KEY_ID_SIZE + 8, share, len);
	return e + EDGE_SECAGG_REVEAL_ENTRY_SIZE;
}

/*
 * The reveals body: own seed share, then per neighbour that shared its seed
 * share if it survived, else its s-key share; owners in id order.
 */
static void reveals_body(const struct secagg_round *r,
			 const struct secagg_directive *d, uint8_t *body,
			 uint32_t *count)
{
	uint8_t *e = body + EDGE_REVEALS_HEADER_SIZE;
	bool self_done = false;
	uint16_t i = 0;

	*count = 0;
	TEE_MemFill(body, 0, EDGE_REVEALS_HEADER_SIZE);
	TEE_MemMove(body + EDGE_REVEALS_OFF_DEVICE_ID, self_id(),
		    EDGE_KEY_ID_SIZE);
	TEE_MemMove(body + EDGE_REVEALS_OFF_FLEET_ID, r->binding,
		    SECAGG_BINDING_SIZE);
	TEE_MemMove(body + EDGE_REVEALS_OFF_SURVIVORS_DIGEST, d->digest,
		    EDGE_REVEALS_LEN_SURVIVORS_DIGEST);
	for (i = 0; i <= r->npeers; i++) {
		const struct secagg_peer *p = i < r->npeers ? &r->peers[i] : NULL;

		if (!self_done && (!p || TEE_MemCompare(self_id(), p->id,
							EDGE_KEY_ID_SIZE) < 0)) {
			e = reveal_entry(e, self_id(), EDGE_SECAGG_SHARE_SEED,
					 r->self_x, r->self_share,
					 EDGE_SECAGG_SEED_SIZE);
			(*count)++;
			self_done = true;
		}
		if (!p || !p->has_share)
			continue;
		/* Never both: the survivor list alone decides which one. */
		if (listed(d, p->id))
			e = reveal_entry(e, p->id, EDGE_SECAGG_SHARE_SEED, p->my_x,
					 p->share, EDGE_SECAGG_SEED_SIZE);
		else
			e = reveal_entry(e, p->id, EDGE_SECAGG_SHARE_SKEY, p->my_x,
					 p->share + EDGE_SECAGG_SEED_SIZE,
					 SECAGG_KEY_SIZE);
		(*count)++;
	}
	put_le32(body + EDGE_REVEALS_OFF_COUNT, *count);
}

/*
 * The round is over for this device once it answered a survivor list: its
 * own keys and seed (the masked update is sealed) and, per neighbour, the
 * half of the share pair the list does not reveal are wiped. A later list is
 * refused by its digest (SHARE_CONFLICT) before any of this is looked at.
 */
static void forget_unrevealed(struct secagg_round *r,
			      const struct secagg_directive *d)
{
	uint16_t i = 0;

	TEE_MemFill(r->c_sk, 0, sizeof(r->c_sk));
	TEE_MemFill(r->s_sk, 0, sizeof(r->s_sk));
	TEE_MemFill(r->b, 0, sizeof(r->b));
	for (i = 0; i < r->npeers; i++) {
		struct secagg_peer *p = &r->peers[i];

		if (listed(d, p->id))
			TEE_MemFill(p->share + EDGE_SECAGG_SEED_SIZE, 0,
				    SECAGG_KEY_SIZE);
		else
			TEE_MemFill(p->share, 0, EDGE_SECAGG_SEED_SIZE);
	}
}

TEE_Result edge_cmd_secagg_unmask(struct edge_session *sess,
				  TEE_Param params[TEE_NUM_PARAMS])
{
	struct secagg_round *r = NULL;
	struct secagg_directive d = { };
	uint8_t *copy = NULL;
	uint8_t *out = NULL;
	uint32_t count = 0;
	size_t body_len = 0;
	size_t out_len = 0;
	size_t alloc_len = 0;
	TEE_Result res = round_at(&r, SECAGG_RECEIVED, SECAGG_UNMASKED);

	(void)sess;
	if (!res)
		res = directive_open(&params[0], EDGE_SECAGG_STAGE_SURVIVORS, r,
				     &copy, &d);
	if (!res && r->stage == SECAGG_UNMASKED &&
	    TEE_MemCompare(r->survivors_digest, d.digest, sizeof(d.digest)))
		res = EDGE_ERR_SHARE_CONFLICT;
	if (!res)
		res = check_survivors(r, &d);
	if (res)
		goto out;
	alloc_len = EDGE_ENVELOPE_HEADER_SIZE + EDGE_REVEALS_HEADER_SIZE +
		    ((size_t)r->npeers + 1) * EDGE_SECAGG_REVEAL_ENTRY_SIZE +
		    EDGE_SIG_SIZE;
	out = TEE_Malloc(alloc_len, TEE_MALLOC_FILL_ZERO);
	if (!out) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	reveals_body(r, &d, out + EDGE_ENVELOPE_HEADER_SIZE, &count);
	body_len = EDGE_REVEALS_HEADER_SIZE +
		   (size_t)count * EDGE_SECAGG_REVEAL_ENTRY_SIZE;
	out_len = EDGE_ENVELOPE_HEADER_SIZE + body_len + EDGE_SIG_SIZE;
	if (params[1].memref.size < out_len) {
		params[1].memref.size = out_len;
		res = TEE_ERROR_SHORT_BUFFER;
		goto out;
	}
	/* The decision is stored before anything is revealed, and with it the
	 * round's secrets are gone from storage: only what this list reveals is
	 * kept (to answer the same list again). */
	if (r->stage != SECAGG_UNMASKED) {
		TEE_MemMove(r->survivors_digest, d.digest, sizeof(d.digest));
		r->stage = SECAGG_UNMASKED;
		forget_unrevealed(r, &d);
		res = secagg_round_store(r);
	}
	if (!res)
		res = sign_into(EDGE_KIND_SECAGG_REVEALS,
				out + EDGE_ENVELOPE_HEADER_SIZE, body_len, out);
	if (!res)
		res = give(&params[1], out, out_len);
out:
	free_wiped(out, alloc_len);
	TEE_Free(copy);
	secagg_round_free(r);
	if (res)
		EMSG("secagg unmask refused: 0x%x", (unsigned int)res);
	return res;
}

/* ---- INSTALL_REGISTRAR ------------------------------------------------ */

TEE_Result edge_cmd_install_registrar(struct edge_session *sess,
				      TEE_Param params[TEE_NUM_PARAMS])
{
	uint8_t pub[EDGE_PUBKEY_SIZE] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	(void)sess;
	if (params[0].memref.size != sizeof(pub))
		return TEE_ERROR_BAD_PARAMETERS;
	TEE_MemMove(pub, params[0].memref.buffer, sizeof(pub));
	res = state_anchors();
	if (!res)
		res = anchors_install_registrar(&edge_st.anchors, pub);
	if (res == EDGE_ERR_ALREADY_PROVISIONED)
		edge_st.anchors_loaded = false;
	if (!res)
		IMSG("registrar anchor installed");
	return res;
}
