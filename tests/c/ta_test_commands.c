// SPDX-License-Identifier: BSD-2-Clause
/*
 * The edge TA's command handlers, called in-process as the dispatcher would
 * call them (parameter types already checked), over a fresh simulated secure
 * storage: identity and device record, status, anchors (install twice,
 * replace, replay), package loading end to end with packages built here for
 * the TA's own identity, short buffers, refusals that leave state unchanged,
 * INFER math and limits, and a restart (cached state dropped, reloaded from
 * storage).
 *
 * Usage: ta_test_commands [tests/vectors]   (the argument is not needed)
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>
#include <gp_sim.h>
#include <user_ta_header_defines.h>

#include "bytes.h"
#include "commands.h"
#include "crypto.h"
#include "envelope.h"
#include "identity.h"
#include "kdf.h"
#include "package.h"

#define HARNESS_TA
#include "harness.h"
#include "test_package.h"

static TEE_Result get_status(struct edge_session *s, uint8_t st[EDGE_STATUS_SIZE])
{
	TEE_Param p[TEE_NUM_PARAMS];

	p_clear(p);
	p_mem(&p[0], st, EDGE_STATUS_SIZE);
	return edge_cmd_get_status(s, p);
}

static uint64_t status_version(struct edge_session *s)
{
	uint8_t st[EDGE_STATUS_SIZE];

	if (get_status(s, st))
		return UINT64_MAX;
	return get_le64(st + EDGE_STATUS_OFF_MODEL_VERSION);
}

/* ---- Keys held by the test ---------------------------------------------- */

/* ---- A package builder (the formats.md key schedule) ------------------- */

/* ---- Loading through the handlers --------------------------------------- */

static TEE_Result load_begin(struct edge_session *s, const struct built *b,
			     TEE_Param p[TEE_NUM_PARAMS])
{
	p_clear(p);
	p_mem(&p[0], b->manifest, b->manifest_len);
	p_mem(&p[3], b->wrap, EDGE_KEY_WRAP_SIZE);
	return edge_cmd_load_begin(s, p);
}

static TEE_Result load_chunk(struct edge_session *s, uint32_t i,
			     const uint8_t *stored, size_t len, uint8_t *out,
			     size_t *out_len)
{
	TEE_Param p[TEE_NUM_PARAMS];
	TEE_Result res;

	p_clear(p);
	p[0].value.a = i;
	p_mem(&p[1], stored, len);
	p_mem(&p[2], out, *out_len);
	res = edge_cmd_load_chunk(s, p);
	*out_len = p[2].memref.size;
	return res;
}

static TEE_Result load_finish(struct edge_session *s, uint64_t *version)
{
	TEE_Param p[TEE_NUM_PARAMS];
	TEE_Result res;

	p_clear(p);
	res = edge_cmd_load_finish(s, p);
	*version = (uint64_t)p[0].value.b << 32 | p[0].value.a;
	return res;
}

/* Loads a whole package; returns the first error. */
static TEE_Result load_all(struct edge_session *s, const struct built *b,
			   uint8_t *plain)
{
	TEE_Param p[TEE_NUM_PARAMS];
	static uint8_t out[1 << 20];
	size_t off = 0;
	size_t poff = 0;
	size_t out_len = 0;
	uint64_t version = 0;
	uint32_t i = 0;
	TEE_Result res = load_begin(s, b, p);

	if (res)
		return res;
	for (i = 0; i < b->chunk_count; i++) {
		out_len = sizeof(out);
		res = load_chunk(s, i, b->payload + off, b->chunk_stored[i],
				 out, &out_len);
		if (res)
			return res;
		if (plain)
			memcpy(plain + poff, out, out_len);
		poff += out_len;
		off += b->chunk_stored[i];
	}
	return load_finish(s, &version);
}

static TEE_Result infer(struct edge_session *s, uint32_t n, const float *x,
			size_t x_size, float *y, size_t *y_size)
{
	TEE_Param p[TEE_NUM_PARAMS];
	TEE_Result res;

	p_clear(p);
	p[0].value.a = n;
	p_mem(&p[1], x, x_size);
	p_mem(&p[2], y, *y_size);
	res = edge_cmd_infer(s, p);
	*y_size = p[2].memref.size;
	return res;
}

static bool close_to(float got, double want)
{
	return fabs((double)got - want) <= 1e-5 * (1.0 + fabs(want));
}

/* x . W + b in double, for comparison. */
static void reference(const float *head, uint32_t in, uint32_t out,
		      const float *x, uint32_t n, double *y)
{
	uint32_t r, i, j;

	for (r = 0; r < n; r++)
		for (j = 0; j < out; j++) {
			double acc = head[(size_t)in * out + j];

			for (i = 0; i < in; i++)
				acc += (double)x[r * in + i] *
				       head[(size_t)i * out + j];
			y[r * out + j] = acc;
		}
}

/* ---- Tests -------------------------------------------------------------- */

static struct edge_session *s1;
static struct edge_session *s2;
static struct ed_key signer_a, signer_b, aggregator, rogue;
static struct recipient me, other;

static void test_fresh_status(void)
{
	uint8_t st[EDGE_STATUS_SIZE];
	uint8_t zero[16] = { 0 };
	TEE_Param p[TEE_NUM_PARAMS];
	TEE_Result res;

	p_clear(p);
	p_mem(&p[0], st, EDGE_STATUS_SIZE - 1);
	res = edge_cmd_get_status(s1, p);
	CHECK_RES(res, TEE_ERROR_SHORT_BUFFER, "GET_STATUS short");
	CHECK(p[0].memref.size == EDGE_STATUS_SIZE, "status size needed %zu",
	      p[0].memref.size);

	res = get_status(s1, st);
	CHECK_RES(res, TEE_SUCCESS, "GET_STATUS fresh");
	CHECK(get_le32(st + EDGE_STATUS_OFF_ABI_VERSION) ==
	      EDGE_TA_ABI_VERSION, "status ABI version");
	CHECK(get_le32(st + EDGE_STATUS_OFF_FLAGS) == 0,
	      "fresh flags 0x%x", get_le32(st + EDGE_STATUS_OFF_FLAGS));
	CHECK(!memcmp(st + EDGE_STATUS_OFF_DEVICE_ID, zero, 16),
	      "fresh device id zero");
	/* GET_STATUS created nothing. */
	edge_state_reset();
	res = get_status(s1, st);
	CHECK(!res && get_le32(st + EDGE_STATUS_OFF_FLAGS) == 0,
	      "still no identity after GET_STATUS");
}

static void test_identity(void)
{
	uint8_t rec[EDGE_DEVICE_RECORD_SIZE + 8];
	uint8_t rec2[EDGE_DEVICE_RECORD_SIZE];
	uint8_t digest[32];
	uint8_t id[16];
	uint8_t st[EDGE_STATUS_SIZE];
	TEE_Param p[TEE_NUM_PARAMS];
	TEE_ObjectHandle pub = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Attribute a;
	const uint8_t *body = rec + EDGE_ENVELOPE_HEADER_SIZE;
	TEE_Result res;

	p_clear(p);
	p_mem(&p[0], rec, EDGE_DEVICE_RECORD_SIZE - 1);
	res = edge_cmd_get_identity(s1, p);
	CHECK_RES(res, TEE_ERROR_SHORT_BUFFER, "GET_IDENTITY short");
	CHECK(p[0].memref.size == EDGE_DEVICE_RECORD_SIZE,
	      "record size needed %zu", p[0].memref.size);

	memset(rec, 0xee, sizeof(rec));
	p_mem(&p[0], rec, sizeof(rec));
	res = edge_cmd_get_identity(s1, p);
	CHECK_RES(res, TEE_SUCCESS, "GET_IDENTITY");
	CHECK(p[0].memref.size == EDGE_DEVICE_RECORD_SIZE,
	      "record size %zu", p[0].memref.size);

	/* Layout (formats.md "Device record"). */
	CHECK(!memcmp(rec, "EDGE", 4), "record magic");
	CHECK(get_le16(rec + 4) == 1, "record format version");
	CHECK(get_le16(rec + 6) == 3, "record kind");
	CHECK(get_le32(rec + 8) == 72, "record body_len");
	CHECK(get_le32(body + 64) == EDGE_TA_ABI_VERSION, "record ABI");
	CHECK(get_le32(body + 68) == 0, "record reserved");
	edge_sha256(body, 32, digest);
	CHECK(!memcmp(rec + 12, digest, 16), "signer id = key_id(identity)");

	/* The signature verifies, with the GP API directly. */
	edge_sha256(rec, EDGE_ENVELOPE_HEADER_SIZE + 72, digest);
	TEE_InitRefAttribute(&a, TEE_ATTR_ED25519_PUBLIC_VALUE, body, 32);
	res = TEE_AllocateTransientObject(TEE_TYPE_ED25519_PUBLIC_KEY, 256,
					  &pub);
	if (!res)
		res = TEE_PopulateTransientObject(pub, &a, 1);
	if (!res)
		res = TEE_AllocateOperation(&op, TEE_ALG_ED25519,
					    TEE_MODE_VERIFY, 256);
	if (!res)
		res = TEE_SetOperationKey(op, pub);
	if (!res)
		res = TEE_AsymmetricVerifyDigest(op, NULL, 0, digest, 32,
						 rec + EDGE_DEVICE_RECORD_SIZE -
						 64, 64);
	CHECK_RES(res, TEE_SUCCESS, "device record signature");
	if (op)
		TEE_FreeOperation(op);
	if (pub)
		TEE_FreeTransientObject(pub);
	res = identity_device_record_open(rec, EDGE_DEVICE_RECORD_SIZE, NULL,
					  NULL, id, NULL);
	CHECK_RES(res, TEE_SUCCESS, "identity_device_record_open");
	rec[EDGE_DEVICE_RECORD_SIZE - 1] ^= 1;
	res = identity_device_record_open(rec, EDGE_DEVICE_RECORD_SIZE, NULL,
					  NULL, NULL, NULL);
	CHECK_RES(res, TEE_ERROR_SIGNATURE_INVALID, "tampered record");
	rec[EDGE_DEVICE_RECORD_SIZE - 1] ^= 1;

	memcpy(me.kex_pub, body + 32, 32);
	memcpy(me.id, id, 16);

	/* Same record again, and after a restart (persistent keys). */
	p_mem(&p[0], rec2, sizeof(rec2));
	res = edge_cmd_get_identity(s2, p);
	CHECK(!res && !memcmp(rec, rec2, sizeof(rec2)), "record stable");
	edge_state_reset();
	p_mem(&p[0], rec2, sizeof(rec2));
	res = edge_cmd_get_identity(s1, p);
	CHECK(!res && !memcmp(rec, rec2, sizeof(rec2)),
	      "record stable across a restart");

	res = get_status(s1, st);
	CHECK(!res && (get_le32(st + EDGE_STATUS_OFF_FLAGS) &
		       EDGE_STATUS_F_IDENTITY), "status identity flag");
	CHECK(!memcmp(st + EDGE_STATUS_OFF_DEVICE_ID, id, 16),
	      "status device id");
}

static void test_before_anchors(void)
{
	TEE_Param p[TEE_NUM_PARAMS];
	uint8_t junk[64] = { 0 };
	float x[4] = { 0 };
	float y[4];
	size_t y_size = sizeof(y);
	TEE_Result res;

	p_clear(p);
	p_mem(&p[0], junk, sizeof(junk));
	res = edge_cmd_load_begin(s1, p);
	CHECK_RES(res, EDGE_ERR_NOT_PROVISIONED, "LOAD_BEGIN before anchors");
	res = edge_cmd_replace_anchor(s1, p);
	CHECK_RES(res, EDGE_ERR_NOT_PROVISIONED,
		  "REPLACE_ANCHOR before anchors");
	res = infer(s1, 1, x, sizeof(x), y, &y_size);
	CHECK_RES(res, EDGE_ERR_NO_MODEL, "INFER without a model");
}

static void test_install(void)
{
	uint8_t keys[64];
	uint8_t st[EDGE_STATUS_SIZE];
	uint8_t id[16];
	TEE_Param p[TEE_NUM_PARAMS];
	TEE_Result res;

	memcpy(keys, signer_a.pub, 32);
	memcpy(keys + 32, aggregator.pub, 32);
	p_clear(p);
	p_mem(&p[0], keys, 63);
	res = edge_cmd_install_anchors(s1, p);
	CHECK_RES(res, TEE_ERROR_BAD_PARAMETERS, "INSTALL_ANCHORS 63 bytes");
	p_mem(&p[0], keys, 64);
	res = edge_cmd_install_anchors(s1, p);
	CHECK_RES(res, TEE_SUCCESS, "INSTALL_ANCHORS");
	res = edge_cmd_install_anchors(s1, p);
	CHECK_RES(res, EDGE_ERR_ALREADY_PROVISIONED, "INSTALL_ANCHORS twice");
	edge_state_reset();
	res = edge_cmd_install_anchors(s2, p);
	CHECK_RES(res, EDGE_ERR_ALREADY_PROVISIONED,
		  "INSTALL_ANCHORS after a restart");

	res = get_status(s1, st);
	CHECK(!res && (get_le32(st + EDGE_STATUS_OFF_FLAGS) &
		       EDGE_STATUS_F_ANCHORS), "status anchors flag");
	edge_key_id(signer_a.pub, id);
	CHECK(!memcmp(st + EDGE_STATUS_OFF_SIGNER_KEY_ID, id, 16),
	      "status signer key id");
	edge_key_id(aggregator.pub, id);
	CHECK(!memcmp(st + EDGE_STATUS_OFF_AGG_KEY_ID, id, 16),
	      "status aggregator key id");
	CHECK(get_le64(st + EDGE_STATUS_OFF_SIGNER_EPOCH) == 0 &&
	      get_le64(st + EDGE_STATUS_OFF_AGG_EPOCH) == 0, "epochs 0");
}

static void statement(uint8_t out[EDGE_ANCHOR_STATEMENT_SIZE], uint8_t role,
		      uint64_t epoch, const uint8_t new_pub[32],
		      const struct ed_key *by)
{
	uint8_t id[16];

	memset(out, 0, EDGE_ANCHOR_STATEMENT_SIZE);
	edge_key_id(by->pub, id);
	envelope_put_header(out, EDGE_KIND_ANCHOR_STATEMENT, 48, id);
	out[28] = role;
	put_le64(out + 28 + 8, epoch);
	memcpy(out + 28 + 16, new_pub, 32);
	sign_envelope(out, 28 + 48, by->pair);
}

static TEE_Result replace(const uint8_t *stmt, size_t len)
{
	TEE_Param p[TEE_NUM_PARAMS];

	p_clear(p);
	p_mem(&p[0], stmt, len);
	return edge_cmd_replace_anchor(s1, p);
}

static void test_replace(void)
{
	uint8_t a_to_b[EDGE_ANCHOR_STATEMENT_SIZE];
	uint8_t b_to_a[EDGE_ANCHOR_STATEMENT_SIZE];
	uint8_t st_[EDGE_ANCHOR_STATEMENT_SIZE + 4];
	uint8_t status[EDGE_STATUS_SIZE];
	uint8_t id[16];
	TEE_Result res;

	statement(a_to_b, 1, 1, signer_b.pub, &signer_a);
	statement(b_to_a, 1, 2, signer_a.pub, &signer_b);

	/* Refusals first: nothing may change. */
	memcpy(st_, a_to_b, sizeof(a_to_b));
	st_[sizeof(a_to_b) - 1] ^= 0x40;
	CHECK_RES(replace(st_, sizeof(a_to_b)), TEE_ERROR_SIGNATURE_INVALID,
		  "statement with a bad signature");
	CHECK_RES(replace(a_to_b, sizeof(a_to_b) - 1), TEE_ERROR_BAD_FORMAT,
		  "truncated statement");
	memcpy(st_, a_to_b, sizeof(a_to_b));
	st_[sizeof(a_to_b)] = 0;
	CHECK_RES(replace(st_, sizeof(a_to_b) + 1), TEE_ERROR_BAD_FORMAT,
		  "statement with a trailing byte");
	memcpy(st_, a_to_b, sizeof(a_to_b));
	put_le16(st_ + 6, EDGE_KIND_DEVICE_RECORD);
	CHECK_RES(replace(st_, sizeof(a_to_b)), EDGE_ERR_WRONG_KIND,
		  "kind 3 given as a statement");
	memset(st_, 0, sizeof(st_));
	memcpy(st_, a_to_b, 28);
	put_le32(st_ + 8, 52);
	CHECK_RES(replace(st_, 28 + 52 + 64), TEE_ERROR_EXCESS_DATA,
		  "statement over its size");
	statement(st_, 1, 1, signer_b.pub, &rogue);
	CHECK_RES(replace(st_, sizeof(a_to_b)), EDGE_ERR_UNKNOWN_SIGNER,
		  "statement by a rogue key");
	statement(st_, 1, 2, signer_b.pub, &signer_a);
	CHECK_RES(replace(st_, sizeof(a_to_b)), EDGE_ERR_STALE_STATEMENT,
		  "statement skipping an epoch");
	statement(st_, 2, 1, signer_b.pub, &signer_a);
	CHECK_RES(replace(st_, sizeof(a_to_b)), EDGE_ERR_UNKNOWN_SIGNER,
		  "aggregator statement by the model signer");

	/* A -> B, then the replay is refused. */
	CHECK_RES(replace(a_to_b, sizeof(a_to_b)), TEE_SUCCESS, "A -> B");
	CHECK_RES(replace(a_to_b, sizeof(a_to_b)), EDGE_ERR_UNKNOWN_SIGNER,
		  "A -> B replayed (A no longer current)");
	res = get_status(s1, status);
	edge_key_id(signer_b.pub, id);
	CHECK(!res && get_le64(status + EDGE_STATUS_OFF_SIGNER_EPOCH) == 1 &&
	      !memcmp(status + EDGE_STATUS_OFF_SIGNER_KEY_ID, id, 16),
	      "status after A -> B");

	/* B -> A, then A -> B (epoch 1) is stale: A is current at epoch 2. */
	CHECK_RES(replace(b_to_a, sizeof(b_to_a)), TEE_SUCCESS, "B -> A");
	edge_state_reset();
	CHECK_RES(replace(a_to_b, sizeof(a_to_b)), EDGE_ERR_STALE_STATEMENT,
		  "A -> B replayed after A -> B -> A");
	CHECK_RES(replace(b_to_a, sizeof(b_to_a)), EDGE_ERR_UNKNOWN_SIGNER,
		  "B -> A replayed");
	res = get_status(s1, status);
	edge_key_id(signer_a.pub, id);
	CHECK(!res && get_le64(status + EDGE_STATUS_OFF_SIGNER_EPOCH) == 2 &&
	      !memcmp(status + EDGE_STATUS_OFF_SIGNER_KEY_ID, id, 16) &&
	      get_le64(status + EDGE_STATUS_OFF_AGG_EPOCH) == 0,
	      "status after A -> B -> A");
}

/* Head 3 x 2 and a 2-row batch. */
static const float head_v1[] = {
	1.0f, 2.0f,  0.5f, -1.0f,  -2.0f, 0.25f,	/* W */
	0.5f, -0.5f,					/* b */
};
static const float head_v2[] = {
	0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f, 0.7f, 0.8f, -0.9f,
	1.5f, -2.5f, 3.5f, 4.25f, 0.125f, -7.0f,	/* W: 5 x 3 */
	0.01f, 0.02f, -0.03f,				/* b */
};

static void test_load_and_infer(void)
{
	static uint8_t backbone[3 * 4096 + 123];
	static uint8_t plain[sizeof(backbone)];
	static uint8_t out[8192];
	struct recipient both[2] = { other, me };
	struct pkg_spec sp = {
		.version = 1, .encrypt = true, .in = 3, .out = 2,
		.head = head_v1, .backbone = backbone,
		.backbone_len = sizeof(backbone), .chunk_log2 = 12,
		.rcpt = both, .nrcpt = 2, .signer = &signer_a,
	};
	struct built b;
	TEE_Param p[TEE_NUM_PARAMS];
	uint8_t status[EDGE_STATUS_SIZE];
	float x[2 * 3] = { 1, 2, 3, -1, 0, 4 };
	float y[4 + 1];
	double want[4];
	size_t y_size = 0;
	size_t out_len = 0;
	uint64_t version = 0;
	uint32_t i = 0;
	bool ok = true;
	TEE_Result res;

	for (i = 0; i < sizeof(backbone); i++)
		backbone[i] = (uint8_t)(i * 7 + 3);
	pkg_build(&sp, &b);

	/* LOAD_BEGIN reports the chunk table. */
	res = load_begin(s1, &b, p);
	CHECK_RES(res, TEE_SUCCESS, "LOAD_BEGIN");
	CHECK(p[1].value.a == 4 && p[1].value.b == 3 &&
	      p[2].value.a == 4096 && p[2].value.b == 123 + 16,
	      "LOAD_BEGIN values %u %u %u %u", p[1].value.a, p[1].value.b,
	      p[2].value.a, p[2].value.b);

	/* A short output buffer keeps the load pending. */
	out_len = 4095;
	res = load_chunk(s1, 0, b.payload, b.chunk_stored[0], out, &out_len);
	CHECK_RES(res, TEE_ERROR_SHORT_BUFFER, "LOAD_CHUNK short output");
	CHECK(out_len == 4096, "chunk size needed %zu", out_len);
	/* Another session may not feed or finish this load. */
	out_len = sizeof(out);
	res = load_chunk(s2, 0, b.payload, b.chunk_stored[0], out, &out_len);
	CHECK_RES(res, TEE_ERROR_BAD_STATE, "LOAD_CHUNK from another session");
	out_len = sizeof(out);
	res = load_chunk(s1, 0, b.payload, b.chunk_stored[0], out, &out_len);
	CHECK(!res && out_len == 4096 && !memcmp(out, backbone, 4096),
	      "LOAD_CHUNK 0 after the short buffer: 0x%08" PRIx32, res);
	/* FINISH before every chunk: refused and the load is dropped. */
	res = load_finish(s1, &version);
	CHECK_RES(res, TEE_ERROR_BAD_STATE, "LOAD_FINISH early");
	out_len = sizeof(out);
	res = load_chunk(s1, 1, b.payload + b.chunk_stored[0],
			 b.chunk_stored[1], out, &out_len);
	CHECK_RES(res, TEE_ERROR_BAD_STATE, "LOAD_CHUNK after a refusal");

	/* Out of order: refused, dropped. */
	res = load_begin(s1, &b, p);
	out_len = sizeof(out);
	res = load_chunk(s1, 1, b.payload + b.chunk_stored[0],
			 b.chunk_stored[1], out, &out_len);
	CHECK_RES(res, TEE_ERROR_BAD_STATE, "LOAD_CHUNK out of order");
	CHECK(out_len == 0, "no plaintext for a refused chunk");

	/* Tampered chunk 2: digest refusal at that chunk, nothing stored. */
	res = load_begin(s1, &b, p);
	for (i = 0; i < 2 && !res; i++) {
		out_len = sizeof(out);
		res = load_chunk(s1, i, b.payload + i * (4096 + 16),
				 b.chunk_stored[i], out, &out_len);
	}
	b.payload[2 * (4096 + 16) + 5] ^= 1;
	out_len = sizeof(out);
	res = load_chunk(s1, 2, b.payload + 2 * (4096 + 16),
			 b.chunk_stored[2], out, &out_len);
	CHECK_RES(res, EDGE_ERR_CHUNK_DIGEST, "tampered chunk");
	b.payload[2 * (4096 + 16) + 5] ^= 1;
	CHECK(status_version(s1) == 0, "no model after the refusal");

	/* Wrong chunk size. */
	res = load_begin(s1, &b, p);
	out_len = sizeof(out);
	res = load_chunk(s1, 0, b.payload, b.chunk_stored[0] - 1, out,
			 &out_len);
	CHECK_RES(res, TEE_ERROR_BAD_FORMAT, "chunk of the wrong size");

	/* LOAD_ABORT drops the load. */
	res = load_begin(s1, &b, p);
	p_clear(p);
	CHECK_RES(edge_cmd_load_abort(s1, p), TEE_SUCCESS, "LOAD_ABORT");
	out_len = sizeof(out);
	res = load_chunk(s1, 0, b.payload, b.chunk_stored[0], out, &out_len);
	CHECK_RES(res, TEE_ERROR_BAD_STATE, "LOAD_CHUNK after LOAD_ABORT");

	/* Closing the owning session drops its load. */
	{
		struct edge_session *s3 = NULL;

		edge_session_open(&s3);
		res = load_begin(s3, &b, p);
		edge_session_close(s3);
		out_len = sizeof(out);
		res = load_chunk(s1, 0, b.payload, b.chunk_stored[0], out,
				 &out_len);
		CHECK_RES(res, TEE_ERROR_BAD_STATE,
			  "load of a closed session");
	}

	/* The whole package. */
	res = load_all(s1, &b, plain);
	CHECK_RES(res, TEE_SUCCESS, "load version 1");
	CHECK(!memcmp(plain, backbone, sizeof(backbone)), "backbone released");
	res = get_status(s1, status);
	CHECK(!res && get_le64(status + EDGE_STATUS_OFF_MODEL_VERSION) == 1 &&
	      get_le32(status + EDGE_STATUS_OFF_HEAD_IN) == 3 &&
	      get_le32(status + EDGE_STATUS_OFF_HEAD_OUT) == 2 &&
	      (get_le32(status + EDGE_STATUS_OFF_FLAGS) & EDGE_STATUS_F_MODEL) &&
	      !memcmp(status + EDGE_STATUS_OFF_PACKAGE_ID,
		      b.manifest + 28 + 8, 16), "status after the load");

	/* INFER on the known head. */
	reference(head_v1, 3, 2, x, 2, want);
	y_size = 4 * sizeof(float);
	res = infer(s1, 2, x, sizeof(x), y, &y_size);
	CHECK_RES(res, TEE_SUCCESS, "INFER");
	CHECK(y_size == 16, "INFER size %zu", y_size);
	for (i = 0; i < 4; i++)
		ok &= close_to(y[i], want[i]);
	CHECK(ok, "INFER scores %g %g %g %g, expected %g %g %g %g", y[0],
	      y[1], y[2], y[3], want[0], want[1], want[2], want[3]);
	CHECK(y[0] == -3.5f && y[1] == 0.25f && y[2] == -8.5f &&
	      y[3] == -1.5f, "INFER exact values");

	/* INFER limits. */
	y_size = 4 * sizeof(float) - 1;
	res = infer(s1, 2, x, sizeof(x), y, &y_size);
	CHECK_RES(res, TEE_ERROR_SHORT_BUFFER, "INFER short output");
	CHECK(y_size == 16, "INFER size needed %zu", y_size);
	y_size = sizeof(y);
	res = infer(s1, 2, x, sizeof(x) - 4, y, &y_size);
	CHECK_RES(res, TEE_ERROR_BAD_PARAMETERS, "INFER short input");
	y_size = sizeof(y);
	res = infer(s1, 1, x, sizeof(x), y, &y_size);
	CHECK_RES(res, TEE_ERROR_BAD_PARAMETERS, "INFER long input");
	y_size = sizeof(y);
	res = infer(s1, 0, x, 0, y, &y_size);
	CHECK_RES(res, TEE_ERROR_BAD_PARAMETERS, "INFER batch 0");
	y_size = sizeof(y);
	res = infer(s1, EDGE_MAX_INFER_BATCH + 1, x, sizeof(x), y, &y_size);
	CHECK_RES(res, TEE_ERROR_EXCESS_DATA, "INFER batch over the limit");

	/* Full batch of EDGE_MAX_INFER_BATCH rows. */
	{
		float *bx = calloc(EDGE_MAX_INFER_BATCH * 3, sizeof(float));
		float *by = calloc(EDGE_MAX_INFER_BATCH * 2, sizeof(float));
		size_t by_size = EDGE_MAX_INFER_BATCH * 2 * sizeof(float);

		for (i = 0; i < EDGE_MAX_INFER_BATCH * 3; i++)
			bx[i] = (float)(i % 17) - 8.0f;
		res = infer(s1, EDGE_MAX_INFER_BATCH, bx,
			    EDGE_MAX_INFER_BATCH * 3 * sizeof(float), by,
			    &by_size);
		reference(head_v1, 3, 2, bx + 3 * 1023, 1, want);
		CHECK(!res && by_size == EDGE_MAX_INFER_BATCH * 8 &&
		      close_to(by[2 * 1023], want[0]) &&
		      close_to(by[2 * 1023 + 1], want[1]),
		      "INFER full batch: 0x%08" PRIx32, res);
		free(bx);
		free(by);
	}

	/* Rollback: the same package again, nothing changes. */
	res = load_begin(s1, &b, p);
	CHECK_RES(res, EDGE_ERR_ROLLBACK, "same package again");

	/* After a restart the head comes back from secure storage. */
	edge_state_reset();
	y_size = sizeof(y);
	res = infer(s2, 2, x, sizeof(x), y, &y_size);
	CHECK(!res && y[0] == -3.5f && y[3] == -1.5f,
	      "INFER after a restart: 0x%08" PRIx32, res);
	built_free(&b);
}

static void test_second_package(void)
{
	static uint8_t backbone[5000];
	static uint8_t plain[sizeof(backbone)];
	struct recipient only_other[1] = { other };
	struct recipient only_me[1] = { me };
	struct pkg_spec sp = {
		.version = 7, .encrypt = false, .in = 5, .out = 3,
		.head = head_v2, .backbone = backbone,
		.backbone_len = sizeof(backbone), .chunk_log2 = 12,
		.rcpt = only_me, .nrcpt = 1, .signer = &signer_a,
	};
	struct built b;
	TEE_Param p[TEE_NUM_PARAMS];
	float x[5] = { 1, -1, 0.5f, 2, -3 };
	float y[3];
	double want[3];
	size_t y_size = sizeof(y);
	uint32_t i = 0;
	bool ok = true;
	TEE_Result res;

	for (i = 0; i < sizeof(backbone); i++)
		backbone[i] = (uint8_t)(i ^ 0x5a);

	/* Not addressed to this device. */
	sp.rcpt = only_other;
	pkg_build(&sp, &b);
	CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_NOT_FOR_DEVICE,
		  "package for another device");
	built_free(&b);

	/* Key wraps: another package's, a changed byte, re-signed. */
	sp.rcpt = only_me;
	{
		struct built other_pkg;

		pkg_build(&sp, &b);
		pkg_build(&sp, &other_pkg);
		memcpy(b.wrap, other_pkg.wrap, EDGE_KEY_WRAP_SIZE);
		CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_WRONG_PACKAGE,
			  "key wrap of another package");
		built_free(&other_pkg);
		built_free(&b);

		pkg_build(&sp, &b);
		b.wrap[EDGE_ENVELOPE_HEADER_SIZE +
		       EDGE_KEY_WRAP_OFF_WRAPPED_KEY + 3] ^= 1;
		CHECK_RES(load_begin(s1, &b, p), TEE_ERROR_SIGNATURE_INVALID,
			  "key wrap with a changed byte");
		sign_envelope(b.wrap, EDGE_KEY_WRAP_SIZE - 64, signer_a.pair);
		CHECK_RES(load_begin(s1, &b, p), TEE_ERROR_MAC_INVALID,
			  "key wrap with a changed byte, re-signed");
		built_free(&b);

		/* A wrap signed by the aggregator anchor. */
		pkg_build(&sp, &b);
		sign_envelope(b.wrap, EDGE_KEY_WRAP_SIZE - 64, aggregator.pair);
		b.wrap[12] ^= 0xff;	/* its signer id no longer the anchor */
		CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_UNKNOWN_SIGNER,
			  "key wrap naming another signer");
		built_free(&b);

		/* A version-1 package (the retired recipient-list format). */
		pkg_build(&sp, &b);
		put_le16(b.manifest + 4, 1);
		sign_envelope(b.manifest, b.manifest_len - 64, signer_a.pair);
		CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_RETIRED_FORMAT,
			  "version-1 package");
		put_le16(b.manifest + 4, 3);
		CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_UNSUPPORTED_VERSION,
			  "version-3 package");
		built_free(&b);
	}
	CHECK(status_version(s1) == 1, "version kept after wrap refusals");

	/* Signed by the aggregator, not the model signer. */
	sp.signer = &aggregator;
	pkg_build(&sp, &b);
	CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_UNKNOWN_SIGNER,
		  "package signed by the aggregator");
	built_free(&b);

	/* Signed by signer B, no longer the anchor after B -> A. */
	sp.signer = &signer_b;
	pkg_build(&sp, &b);
	CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_UNKNOWN_SIGNER,
		  "package signed by a replaced anchor");
	built_free(&b);

	/* A tampered head ciphertext (re-signed). */
	sp.signer = &signer_a;
	pkg_build(&sp, &b);
	{
		size_t head_off = 28 + EDGE_MANIFEST_FIXED_SIZE +
				  32 * 2 + 7;

		b.manifest[head_off] ^= 1;
		sign_envelope(b.manifest, b.manifest_len - 64,
			      signer_a.pair);
		CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_WRONG_PACKAGE,
			  "re-signed manifest, the wrap of the original");
		pkg_rebind_wrap(&b, &signer_a);
		CHECK_RES(load_begin(s1, &b, p), TEE_ERROR_MAC_INVALID,
			  "tampered head");
		CHECK(status_version(s1) == 1, "version kept after refusal");
		b.manifest[head_off] ^= 1;
		sign_envelope(b.manifest, b.manifest_len - 64,
			      signer_a.pair);
		pkg_rebind_wrap(&b, &signer_a);
	}

	/* Public backbone, version 7: replaces version 1. */
	res = load_all(s1, &b, NULL);
	CHECK_RES(res, TEE_SUCCESS, "load version 7");
	CHECK(status_version(s1) == 7, "version 7 recorded");
	reference(head_v2, 5, 3, x, 1, want);
	res = infer(s1, 1, x, sizeof(x), y, &y_size);
	for (i = 0; i < 3; i++)
		ok &= close_to(y[i], want[i]);
	CHECK(!res && ok, "INFER with head 2: %g %g %g vs %g %g %g", y[0],
	      y[1], y[2], want[0], want[1], want[2]);
	built_free(&b);

	/* An older version is refused at LOAD_BEGIN. */
	sp.version = 6;
	pkg_build(&sp, &b);
	CHECK_RES(load_begin(s1, &b, p), EDGE_ERR_ROLLBACK, "version 6 after 7");
	built_free(&b);

	/* A load from another session commits too. */
	sp.version = 8;
	pkg_build(&sp, &b);
	res = load_all(s2, &b, plain);
	CHECK(!res && !memcmp(plain, backbone, sizeof(backbone)),
	      "load version 8 in session 2: 0x%08" PRIx32, res);
	CHECK(status_version(s1) == 8, "version 8 recorded");
	built_free(&b);
}

/*
 * The largest head (I*O + O = EDGE_MAX_HEAD_PARAMS) with 1 MiB encrypted
 * chunks, loaded twice so an active and a pending head coexist: fits the
 * TA_DATA_SIZE heap the simulator enforces. Oversized inputs are refused
 * before they are copied.
 */
static void test_large(void)
{
	const uint32_t in = 4095, out = 32;
	size_t params = (size_t)in * out + out;
	size_t bb_len = (1 << 20) + 777;
	float *head = malloc(params * sizeof(float));
	uint8_t *backbone = malloc(bb_len);
	uint8_t *plain = malloc(bb_len);
	uint8_t *big = NULL;
	float *x = calloc(in, sizeof(float));
	float y[32];
	size_t y_size = sizeof(y);
	struct recipient only_me[1] = { me };
	struct pkg_spec sp = {
		.version = 100, .encrypt = true, .in = in, .out = out,
		.head = head, .backbone = backbone, .backbone_len = bb_len,
		.chunk_log2 = 20, .rcpt = only_me, .nrcpt = 1,
		.signer = &signer_a,
	};
	struct built b;
	TEE_Param p[TEE_NUM_PARAMS];
	size_t i = 0;
	TEE_Result res;

	for (i = 0; i < params; i++)
		head[i] = (float)((int)(i % 13) - 6) / 8.0f;
	for (i = 0; i < bb_len; i++)
		backbone[i] = (uint8_t)(i * 31 + 1);
	CHECK(params == EDGE_MAX_HEAD_PARAMS, "largest head");
	pkg_build(&sp, &b);
	res = load_all(s1, &b, plain);
	CHECK(!res && !memcmp(plain, backbone, bb_len),
	      "large package v100: 0x%08" PRIx32, res);
	built_free(&b);
	sp.version = 101;
	pkg_build(&sp, &b);
	res = load_all(s1, &b, plain);
	CHECK(!res && !memcmp(plain, backbone, bb_len),
	      "large package v101 over an active large head: 0x%08" PRIx32,
	      res);
	CHECK(status_version(s1) == 101, "version 101 recorded");
	for (i = 0; i < in; i++)
		x[i] = 1.0f;
	res = infer(s1, 1, x, in * sizeof(float), y, &y_size);
	{
		double want[32];

		reference(head, in, out, x, 1, want);
		CHECK(!res && close_to(y[0], want[0]) &&
		      close_to(y[31], want[31]), "INFER on the large head");
	}

	/* A memref longer than the manifest it holds: trailing bytes. */
	big = calloc(1, b.manifest_len + 1);
	memcpy(big, b.manifest, b.manifest_len);
	p_clear(p);
	p_mem(&p[0], big, b.manifest_len + 1);
	CHECK_RES(edge_cmd_load_begin(s1, p), TEE_ERROR_BAD_FORMAT,
		  "manifest with a trailing byte");
	free(big);
	/* A 3 MiB manifest (header consistent): refused, never copied. */
	big = calloc(1, 3 << 20);
	memcpy(big, b.manifest, EDGE_ENVELOPE_HEADER_SIZE);
	put_le32(big + 8, (3 << 20) - EDGE_ENVELOPE_HEADER_SIZE - 64);
	p_mem(&p[0], big, 3 << 20);
	CHECK_RES(edge_cmd_load_begin(s1, p), TEE_ERROR_EXCESS_DATA,
		  "3 MiB manifest");
	CHECK(status_version(s1) == 101, "version kept");
	free(big);
	built_free(&b);
	free(head);
	free(backbone);
	free(plain);
	free(x);
}

int main(int argc, char **argv)
{

	(void)argc;
	(void)argv;
	if (edge_sim_gp_init(harness_tmpdir("ta_test_commands")))
		harness_die("edge_sim_gp_init");
	edge_sim_gp_set_heap_limit(TA_DATA_SIZE);
	ed_generate(&signer_a);
	ed_generate(&signer_b);
	ed_generate(&aggregator);
	ed_generate(&rogue);
	TEE_GenerateRandom(other.kex_pub, 32);
	TEE_GenerateRandom(other.id, 16);
	{
		/* A real X25519 public key for the other device. */
		TEE_ObjectHandle k = TEE_HANDLE_NULL;
		size_t len = 32;

		if (TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR, 256,
						&k) ||
		    TEE_GenerateKey(k, 256, NULL, 0) ||
		    TEE_GetObjectBufferAttribute(k,
						 TEE_ATTR_X25519_PUBLIC_VALUE,
						 other.kex_pub, &len))
			harness_die("X25519 key");
		TEE_FreeTransientObject(k);
	}
	if (edge_session_open(&s1) || edge_session_open(&s2))
		harness_die("edge_session_open");

	test_fresh_status();
	test_identity();
	test_before_anchors();
	test_install();
	test_replace();
	test_load_and_infer();
	test_second_package();
	test_large();

	edge_session_close(s1);
	edge_session_close(s2);
	edge_state_reset();
	TEE_FreeTransientObject(signer_a.pair);
	TEE_FreeTransientObject(signer_b.pair);
	TEE_FreeTransientObject(aggregator.pair);
	TEE_FreeTransientObject(rogue.pair);
	return harness_summary();
}
