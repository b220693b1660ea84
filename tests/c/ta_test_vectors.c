// SPDX-License-Identifier: BSD-2-Clause
/*
 * Runs the TA's modules over the test vectors Python wrote (tests/vectors/):
 * every package, anchor statement and device record must be accepted or
 * refused exactly as index.tsv says, with the TA code it lists, and a
 * refusal must leave the stored state unchanged.
 *
 * Linked in-process with the TA objects (not entry.o) and libgp_sim.a.
 * Usage: ta_test_vectors <tests/vectors>
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include <tee_internal_api.h>
#include <edge_ta.h>
#include <gp_sim.h>
#include <user_ta_header_defines.h>

#include "anchors.h"
#include "bytes.h"
#include "crypto.h"
#include "dpmath.h"
#include "envelope.h"
#include "head.h"
#include "identity.h"
#include "package.h"
#include "policy.h"
#include "seal.h"
#include "secagg.h"
#include "storage.h"
#include "ticket.h"
#include "harness.h"

static const char *current;	/* vector being checked */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL %s: ", current ? current : "-");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	harness_failed++;
}

/* ---- Small helpers ---------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n = 0;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return NULL;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes hex into a new buffer; NULL if not hex. */
static uint8_t *unhex(const char *s, size_t *len)
{
	size_t n = strlen(s);
	uint8_t *out = NULL;
	size_t i = 0;

	if (n % 2)
		return NULL;
	out = malloc(n / 2 + 1);
	if (!out)
		return NULL;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]);
		int lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(out);
			return NULL;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return out;
}

static void tohex(const uint8_t *p, size_t n, char *out)
{
	size_t i = 0;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = 0;
}

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = 0;
}

/* Splits s at tabs in place; returns the number of fields. */
static int split_tabs(char *s, char **fields, int max)
{
	int n = 0;

	fields[n++] = s;
	while (n < max && (s = strchr(s, '\t'))) {
		*s++ = 0;
		fields[n++] = s;
	}
	return n;
}

/* ---- keys.tsv --------------------------------------------------------- */

#define MAX_KEYS 64

static struct {
	char name[64];
	uint8_t *val;
	size_t len;
} keys[MAX_KEYS];
static int nkeys;

static bool load_keys(const char *dir)
{
	char path[4096];
	char line[4096];
	char *f[2];
	FILE *fp = NULL;

	snprintf(path, sizeof(path), "%s/keys.tsv", dir);
	fp = fopen(path, "r");
	if (!fp)
		return false;
	while (fgets(line, sizeof(line), fp)) {
		chomp(line);
		if (!line[0] || line[0] == '#')
			continue;
		if (split_tabs(line, f, 2) != 2 || nkeys == MAX_KEYS)
			continue;
		snprintf(keys[nkeys].name, sizeof(keys[nkeys].name), "%s",
			 f[0]);
		keys[nkeys].val = unhex(f[1], &keys[nkeys].len);
		if (keys[nkeys].val)
			nkeys++;
	}
	fclose(fp);
	return true;
}

static const uint8_t *key(const char *name, size_t want)
{
	int i = 0;

	for (i = 0; i < nkeys; i++)
		if (!strcmp(keys[i].name, name) && keys[i].len == want)
			return keys[i].val;
	return NULL;
}

/* ---- extra=k=v,k=v ---------------------------------------------------- */

static bool extra_get(const char *extra, const char *k, char *out,
		      size_t out_size)
{
	size_t klen = strlen(k);
	const char *p = extra;
	const char *end = NULL;
	size_t n = 0;

	while (p && *p) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		if ((size_t)(end - p) > klen && !strncmp(p, k, klen) &&
		    p[klen] == '=') {
			n = (size_t)(end - p) - klen - 1;
			if (n >= out_size)
				return false;
			memcpy(out, p + klen + 1, n);
			out[n] = 0;
			return true;
		}
		p = *end ? end + 1 : end;
	}
	return false;
}

/* ---- Stored state snapshots -------------------------------------------- */

/* Raw bytes of a stored object (NULL/0 if absent). */
static uint8_t *snapshot(const char *id, uint32_t tag, size_t *len)
{
	uint8_t *buf = NULL;
	uint8_t *copy = NULL;
	TEE_Result res = storage_get(id, tag, 0, 64 * 1024 * 1024, &buf, len);

	if (res) {
		*len = 0;
		return NULL;
	}
	copy = malloc(*len);
	memcpy(copy, buf, *len);
	TEE_Free(buf);
	return copy;
}

static bool same_snapshot(const uint8_t *a, size_t alen, const uint8_t *b,
			  size_t blen)
{
	if (alen != blen)
		return false;
	return !alen || !memcmp(a, b, alen);
}

/* Records stored_version as the device's model state (none if 0). */
static bool set_stored_version(uint64_t version)
{
	struct edge_model m = { };
	uint8_t pkg_id[16];
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!version)
		return storage_delete(EDGE_OBJ_MODEL) == TEE_SUCCESS;
	memset(pkg_id, 0xa5, sizeof(pkg_id));
	res = model_alloc(&m, version, pkg_id, 1, 1,
			  &(struct edge_infer_policy){ .release = EDGE_INFER_LABEL });
	if (!res)
		res = model_commit(&m);
	model_free(&m);
	return res == TEE_SUCCESS;
}

/* ---- Device keys -------------------------------------------------------- */

static TEE_ObjectHandle device_kex;
static const uint8_t *device_id;
static TEE_ObjectHandle device_sign;

static bool setup_device(void)
{
	const uint8_t *xpriv = key("device_x25519_priv", 32);
	const uint8_t *xpub = key("device_x25519_pub", 32);
	const uint8_t *epriv = key("device_ed25519_priv", 32);
	const uint8_t *epub = key("device_ed25519_pub", 32);
	TEE_Attribute a[2];

	device_id = key("device_id", 16);
	if (!xpriv || !xpub || !device_id || !epriv || !epub)
		return false;
	if (TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR, 256,
					&device_kex))
		return false;
	TEE_InitRefAttribute(&a[0], TEE_ATTR_X25519_PRIVATE_VALUE, xpriv, 32);
	TEE_InitRefAttribute(&a[1], TEE_ATTR_X25519_PUBLIC_VALUE, xpub, 32);
	if (TEE_PopulateTransientObject(device_kex, a, 2))
		return false;
	if (TEE_AllocateTransientObject(TEE_TYPE_ED25519_KEYPAIR, 256,
					&device_sign))
		return false;
	TEE_InitRefAttribute(&a[0], TEE_ATTR_ED25519_PRIVATE_VALUE, epriv, 32);
	TEE_InitRefAttribute(&a[1], TEE_ATTR_ED25519_PUBLIC_VALUE, epub, 32);
	return TEE_PopulateTransientObject(device_sign, a, 2) == TEE_SUCCESS;
}

/* ---- One vector per kind ------------------------------------------------ */

struct vec {
	const char *name;
	const char *kind;
	const char *file;
	const char *expect;
	uint32_t code;
	uint64_t stored_version;
	uint64_t stored_epoch;
	const char *extra;
};

static void check_code(const struct vec *v, const char *step, TEE_Result res)
{
	if (res != v->code)
		fail("%s returned 0x%08" PRIx32 ", expected 0x%08" PRIx32
		     " (%s)", step, res, v->code, v->expect);
}

static void check_package(const char *dir, const struct vec *v,
			  const uint8_t *file, size_t len)
{
	char wrap_name[256];
	char wrap_path[4096];
	uint8_t *wrap = NULL;
	size_t wrap_len = 0;
	const uint8_t *signer = key("model_signer_pub", 32);
	struct pkg_load ld = { };
	struct pkg_info info = { };
	struct edge_model model = { };
	struct edge_model stored = { };
	uint8_t *before = NULL;
	size_t before_len = 0;
	uint8_t *after = NULL;
	size_t after_len = 0;
	uint8_t *out = NULL;
	size_t out_cap = 0;
	size_t out_len = 0;
	size_t mlen = len;
	size_t off = 0;
	size_t slice = 0;
	uint64_t want = 0;
	uint32_t i = 0;
	EVP_MD_CTX *bb = EVP_MD_CTX_new();
	unsigned int dlen = 0;
	uint8_t bb_digest[32];
	uint8_t head_digest[32];
	char hex[65];
	char want_hex[80];
	bool released = false;
	const char *step = "LOAD_BEGIN";
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!signer || !bb) {
		fail("keys.tsv has no model_signer_pub");
		EVP_MD_CTX_free(bb);
		return;
	}
	if (!set_stored_version(v->stored_version)) {
		fail("cannot record stored version");
		EVP_MD_CTX_free(bb);
		return;
	}
	/* Every package vector names the key wrap delivered with it. */
	if (!extra_get(v->extra, "wrap", wrap_name, sizeof(wrap_name))) {
		fail("index extra lacks wrap=");
		EVP_MD_CTX_free(bb);
		return;
	}
	snprintf(wrap_path, sizeof(wrap_path), "%s/%s", dir, wrap_name);
	wrap = read_file(wrap_path, &wrap_len);
	if (!wrap) {
		fail("cannot read %s", wrap_path);
		EVP_MD_CTX_free(bb);
		return;
	}
	before = snapshot(EDGE_OBJ_MODEL, EDGE_TAG_MODEL, &before_len);

	/* The manifest is the envelope; the rest is the backbone payload. */
	if (len >= EDGE_ENVELOPE_HEADER_SIZE) {
		uint64_t m = (uint64_t)EDGE_ENVELOPE_HEADER_SIZE +
			     get_le32(file + 8) + EDGE_SIG_SIZE;

		if (m < len)
			mlen = (size_t)m;
	}
	EVP_DigestInit_ex(bb, EVP_sha256(), NULL);
	res = pkg_begin(&ld, file, mlen, wrap, wrap_len, signer,
			v->stored_version, device_kex, device_id, &info);
	if (!res) {
		/* Stream the payload, chunk by chunk, as the daemon does. */
		out_cap = info.chunk_size ? info.chunk_size : 16;
		out = malloc(out_cap);
		off = mlen;
		for (i = 0; !res && (i < info.chunk_count || off < len); i++) {
			want = pkg_stored_chunk_size(ld.backbone_len,
						     ld.chunk_size,
						     ld.chunk_count,
						     ld.encrypted, i);
			if (i >= info.chunk_count)
				want = len - off;	/* surplus payload */
			slice = len - off < want ? len - off : (size_t)want;
			out_len = out_cap;
			res = pkg_chunk(&ld, i, file + off, slice, out,
					&out_len);
			if (!res) {
				EVP_DigestUpdate(bb, out, out_len);
				released = true;
			}
			off += slice;
			step = "LOAD_CHUNK";
		}
		if (!res) {
			step = "LOAD_FINISH";
			res = pkg_finish(&ld, v->stored_version, &model);
		}
	}
	EVP_DigestFinal_ex(bb, bb_digest, &dlen);
	EVP_MD_CTX_free(bb);
	check_code(v, step, res);

	if (ld.active) {
		fail("the load is still pending after %s", step);
		pkg_abort(&ld);
	}
	if (res) {
		after = snapshot(EDGE_OBJ_MODEL, EDGE_TAG_MODEL, &after_len);
		if (!same_snapshot(before, before_len, after, after_len))
			fail("refusal changed the stored model");
		goto out;
	}
	if (strcmp(v->expect, "ok"))
		goto out;

	/* Accepted: check what was committed. */
	if (extra_get(v->extra, "version", hex, sizeof(hex)) &&
	    model.version != strtoull(hex, NULL, 10))
		fail("committed version %" PRIu64 ", index says %s",
		     model.version, hex);
	EVP_Digest(model.head, model.head_len, head_digest, &dlen,
		   EVP_sha256(), NULL);
	tohex(head_digest, 32, hex);
	if (!extra_get(v->extra, "head_sha256", want_hex, sizeof(want_hex)))
		fail("index has no head_sha256");
	else if (strcasecmp(hex, want_hex))
		fail("head sha256 %s, expected %s", hex, want_hex);
	if (!extra_get(v->extra, "backbone_sha256", want_hex,
		       sizeof(want_hex)))
		want_hex[0] = 0;
	if (!want_hex[0]) {
		if (released || info.chunk_count)
			fail("backbone released where the index lists none");
	} else {
		tohex(bb_digest, 32, hex);
		if (strcasecmp(hex, want_hex))
			fail("backbone sha256 %s, expected %s", hex, want_hex);
	}
	res = model_load(&stored);
	if (res)
		fail("stored model unreadable: 0x%08" PRIx32, res);
	else if (stored.version != model.version ||
		 stored.rec_len != model.rec_len ||
		 memcmp(stored.rec, model.rec, model.rec_len))
		fail("stored model differs from the committed one");
	model_free(&stored);
out:
	model_free(&model);
	free(before);
	free(after);
	free(out);
	free(wrap);
}

static void check_anchor_statement(const struct vec *v, const uint8_t *stmt,
				   size_t len)
{
	struct edge_anchors a = { };
	struct edge_anchors b = { };
	char role_s[16];
	char cur_s[64];
	const uint8_t *cur = NULL;
	const uint8_t *signer = key("model_signer_pub", 32);
	const uint8_t *agg = key("aggregator_pub", 32);
	uint8_t *before = NULL;
	size_t before_len = 0;
	uint8_t *after = NULL;
	size_t after_len = 0;
	int role = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!extra_get(v->extra, "role", role_s, sizeof(role_s)) ||
	    !extra_get(v->extra, "current", cur_s, sizeof(cur_s))) {
		fail("index extra lacks role= or current=");
		return;
	}
	/* A statement for an unknown role is checked against role 1 set up. */
	role = atoi(role_s) == 2 ? 2 : 1;
	cur = key(cur_s, 32);
	if (!cur || !signer || !agg) {
		fail("unknown key %s", cur_s);
		return;
	}
	/* Stored anchors: the role's current key at the stored epoch. */
	if (anchors_init(&a, role == 1 ? cur : signer, role == 2 ? cur : agg)) {
		fail("anchors_init");
		return;
	}
	a.role[role - 1].epoch = v->stored_epoch;
	if (anchors_store(&a, true)) {
		fail("anchors_store");
		return;
	}
	before = snapshot(EDGE_OBJ_ANCHORS, EDGE_TAG_ANCHORS, &before_len);
	res = anchors_load(&b);
	if (res) {
		fail("anchors_load: 0x%08" PRIx32, res);
		goto out;
	}
	res = anchors_replace(&b, stmt, len);
	check_code(v, "REPLACE_ANCHOR", res);
	after = snapshot(EDGE_OBJ_ANCHORS, EDGE_TAG_ANCHORS, &after_len);
	if (res) {
		if (!same_snapshot(before, before_len, after, after_len))
			fail("refusal changed the stored anchors");
		goto out;
	}
	/* Accepted: the role has the statement's key at epoch + 1. */
	res = anchors_load(&b);
	if (res || b.role[role - 1].epoch != v->stored_epoch + 1 ||
	    len != EDGE_ANCHOR_STATEMENT_SIZE ||
	    memcmp(b.role[role - 1].pub, stmt + EDGE_ENVELOPE_HEADER_SIZE + 16,
		   32) ||
	    memcmp(&b.role[2 - role], &a.role[2 - role],
		   sizeof(struct edge_anchor)))
		fail("stored anchors after replacement are not as stated");
out:
	free(before);
	free(after);
}

static void check_device_record(const struct vec *v, const uint8_t *rec,
				size_t len)
{
	uint8_t sign_pub[32];
	uint8_t kex_pub[32];
	uint8_t id[16];
	uint8_t mine[EDGE_DEVICE_RECORD_SIZE];
	uint32_t abi = 0;
	const uint8_t *epub = key("device_ed25519_pub", 32);
	const uint8_t *xpub = key("device_x25519_pub", 32);
	TEE_Result res = identity_device_record_open(rec, len, sign_pub,
						     kex_pub, id, &abi);

	check_code(v, "device record check", res);
	if (res || strcmp(v->expect, "ok"))
		return;
	if (abi != EDGE_TA_ABI_VERSION)
		fail("record ABI version %" PRIu32, abi);
	if (!epub || !xpub || memcmp(sign_pub, epub, 32) ||
	    memcmp(kex_pub, xpub, 32))
		return;	/* another device: nothing more to compare */
	if (memcmp(id, device_id, 16))
		fail("record device id differs from keys.tsv device_id");
	/* Ed25519 is deterministic: the TA writes the very same bytes. */
	res = identity_device_record(device_sign, epub, xpub, mine);
	if (res)
		fail("identity_device_record: 0x%08" PRIx32, res);
	else if (len != sizeof(mine) || memcmp(mine, rec, len))
		fail("the TA's record for the same keys differs");
}

/* INSTALL_POLICY's parse: envelope, model-signer anchor, signature, body. */
static void check_policy(const struct vec *v, const uint8_t *buf, size_t len)
{
	const uint8_t *pub = key("model_signer_pub", EDGE_PUBKEY_SIZE);
	uint8_t id[EDGE_KEY_ID_SIZE] = { 0 };
	struct edge_policy p = { };

	if (!pub || edge_key_id(pub, id)) {
		fail("model_signer_pub");
		return;
	}
	check_code(v, "policy_open", policy_open(buf, len, id, pub, &p));
}

/* VERIFY_TICKET's parse: envelope, aggregator anchor, signature, body. */
static void check_ticket(const struct vec *v, const uint8_t *buf, size_t len)
{
	const uint8_t *pub = key("aggregator_pub", EDGE_PUBKEY_SIZE);
	uint8_t id[EDGE_KEY_ID_SIZE] = { 0 };
	struct edge_ticket t = { };

	if (!pub || edge_key_id(pub, id)) {
		fail("aggregator_pub");
		return;
	}
	check_code(v, "ticket_open", ticket_open(buf, len, id, pub, &t));
}

/*
 * Sealed updates: the TA writes them and never parses one, so C checks the
 * envelope (stage=envelope: the refusal must come from there) and, for the
 * ok vector, that seal_build writes the very same bytes from the same
 * fields, delta and device key (Ed25519 is deterministic). Body defects
 * (stage=body) are the aggregator's to refuse; here their envelope passes.
 */
static void check_update(const struct vec *v, const uint8_t *buf, size_t len)
{
	const uint8_t *pub = key("device_ed25519_pub", EDGE_PUBKEY_SIZE);
	const size_t max = seal_size(EDGE_MAX_HEAD_PARAMS);
	struct edge_envelope env = { };
	struct seal_info si = { };
	const uint8_t *h = NULL;
	char stage[16] = { 0 };
	double *delta = NULL;
	uint8_t *mine = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;
	uint32_t i = 0;

	if (!pub) {
		fail("device_ed25519_pub");
		return;
	}
	res = envelope_open(buf, len, EDGE_KIND_SEALED_UPDATE, max, device_id,
			    pub, &env);
	if (!extra_get(v->extra, "stage", stage, sizeof(stage))) {
		fail("no stage");
		return;
	}
	if (!strcmp(stage, "body")) {
		if (res)
			fail("envelope of a body defect refused: 0x%08" PRIx32, res);
		return;
	}
	check_code(v, "envelope_open", res);
	if (res || strcmp(v->expect, "ok"))
		return;
	if (env.body_len < EDGE_UPDATE_HEADER_SIZE) {
		fail("ok update shorter than its header");
		return;
	}
	h = env.body;
	si.device_id = h + EDGE_UPDATE_HEADER_OFF_DEVICE_ID;
	si.round_id = get_le64(h + EDGE_UPDATE_HEADER_OFF_ROUND_ID);
	si.cohort_nonce = h + EDGE_UPDATE_HEADER_OFF_NONCE;
	si.model_version = get_le64(h + EDGE_UPDATE_HEADER_OFF_MODEL_VERSION);
	si.package_id = h + EDGE_UPDATE_HEADER_OFF_PACKAGE_ID;
	si.n = get_le32(h + EDGE_UPDATE_HEADER_OFF_EXAMPLE_COUNT);
	si.steps = get_le32(h + EDGE_UPDATE_HEADER_OFF_STEPS);
	si.total_steps = get_le64(h + EDGE_UPDATE_HEADER_OFF_STEPS_TOTAL);
	si.params = get_le32(h + EDGE_UPDATE_HEADER_OFF_PARAM_COUNT);
	si.update_clip = get_f32(h + EDGE_UPDATE_HEADER_OFF_UPDATE_CLIP);
	si.sigma = get_f32(h + EDGE_UPDATE_HEADER_OFF_NOISE_MULTIPLIER);
	si.clip = get_f32(h + EDGE_UPDATE_HEADER_OFF_EXAMPLE_CLIP);
	if (si.params > EDGE_MAX_HEAD_PARAMS ||
	    env.body_len != EDGE_UPDATE_HEADER_SIZE + 4 * (size_t)si.params ||
	    seal_size(si.params) != len) {
		fail("ok update: parameter count and length disagree");
		return;
	}
	delta = calloc(si.params ? si.params : 1, sizeof(*delta));
	mine = calloc(1, len);
	if (!delta || !mine) {
		fail("out of memory");
		goto out;
	}
	for (i = 0; i < si.params; i++)
		delta[i] = get_f32(h + EDGE_UPDATE_HEADER_SIZE + 4 * (size_t)i);
	res = seal_build(&si, delta, device_sign, mine);
	if (res)
		fail("seal_build: 0x%08" PRIx32, res);
	else if (memcmp(mine, buf, len))
		fail("seal_build writes other bytes than the Python vector");
out:
	free(delta);
	free(mine);
}

/* The round binding and this device's id from extra (hex). */
static bool secagg_extra(const struct vec *v, uint8_t binding[48],
			 uint8_t self[16])
{
	char hex[256] = { 0 };
	uint8_t *b = NULL;
	uint8_t *s = NULL;
	size_t blen = 0;
	size_t slen = 0;
	bool ok = false;

	if (extra_get(v->extra, "binding", hex, sizeof(hex)))
		b = unhex(hex, &blen);
	if (extra_get(v->extra, "self", hex, sizeof(hex)))
		s = unhex(hex, &slen);
	ok = b && s && blen == 48 && slen == 16;
	if (ok) {
		memcpy(binding, b, 48);
		memcpy(self, s, 16);
	} else {
		fail("extra binding/self");
	}
	free(b);
	free(s);
	return ok;
}

static bool anchor_of(const char *name, struct edge_anchor *a)
{
	const uint8_t *pub = key(name, EDGE_PUBKEY_SIZE);

	memset(a, 0, sizeof(*a));
	if (!pub || edge_key_id(pub, a->id)) {
		fail("%s", name);
		return false;
	}
	memcpy(a->pub, pub, EDGE_PUBKEY_SIZE);
	return true;
}

/* A roster entry as SECAGG_SHARE checks a neighbour's. */
static void check_secagg_entry(const struct vec *v, const uint8_t *buf,
			       size_t len)
{
	uint8_t binding[48], self[16];
	struct edge_anchor reg;
	struct secagg_peer peer = { };

	if (!secagg_extra(v, binding, self) || !anchor_of("registrar_pub", &reg))
		return;
	if (len != EDGE_SECAGG_ROSTER_ENTRY_SIZE) {
		fail("entry of %zu bytes", len);
		return;
	}
	check_code(v, "secagg_roster_entry",
		   secagg_roster_entry(buf, &reg, binding, &peer));
	if (!strcmp(v->expect, "ok") && memcmp(peer.id, self, 16))
		fail("the entry's device id");
}

/* A directive as SECAGG_SHARE/RECEIVE/UNMASK parse it. */
static void check_secagg_directive(const struct vec *v, const uint8_t *buf,
				   size_t len)
{
	uint8_t binding[48], self[16];
	struct edge_anchor agg;
	struct secagg_directive d = { };
	char stage[8] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!secagg_extra(v, binding, self) || !anchor_of("aggregator_pub", &agg))
		return;
	if (!extra_get(v->extra, "stage", stage, sizeof(stage))) {
		fail("no stage");
		return;
	}
	/* As the command handlers do: the header decides what is copied. */
	res = envelope_precheck(buf, len, EDGE_KIND_SECAGG_DIRECTIVE,
				EDGE_ENVELOPE_HEADER_SIZE + EDGE_DIRECTIVE_HEADER_SIZE +
				EDGE_SECAGG_MAX_COHORT *
				EDGE_SECAGG_ROSTER_ENTRY_SIZE + EDGE_SIG_SIZE);
	if (!res)
		res = secagg_directive_parse(buf, len, (uint8_t)atoi(stage), binding,
					     self, &agg, &d);
	check_code(v, "secagg_directive_parse", res);
}

/* Shares bundles and reveals: the TA writes them; C checks the envelope. */
static void check_secagg_device_msg(const struct vec *v, const uint8_t *buf,
				    size_t len, uint16_t kind)
{
	const uint8_t *pub = key("device_ed25519_pub", EDGE_PUBKEY_SIZE);
	const uint8_t *id = key("device_id", EDGE_KEY_ID_SIZE);
	struct edge_envelope env = { };
	char stage[16] = { 0 };
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!pub || !id || !extra_get(v->extra, "stage", stage, sizeof(stage))) {
		fail("device key or stage");
		return;
	}
	res = envelope_open(buf, len, kind, 1 << 20, id, pub, &env);
	if (!strcmp(stage, "body")) {
		if (res)
			fail("envelope of a body defect refused: 0x%08" PRIx32, res);
		return;
	}
	check_code(v, "envelope_open", res);
}

static void run_vector(const char *dir, const struct vec *v)
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t len = 0;
	int before = harness_failed;

	current = v->name;
	snprintf(path, sizeof(path), "%s/%s", dir, v->file);
	buf = read_file(path, &len);
	if (!buf) {
		fail("cannot read %s", path);
		return;
	}
	if (!strcmp(v->kind, "package"))
		check_package(dir, v, buf, len);
	else if (!strcmp(v->kind, "anchor_statement"))
		check_anchor_statement(v, buf, len);
	else if (!strcmp(v->kind, "device_record"))
		check_device_record(v, buf, len);
	else if (!strcmp(v->kind, "privacy_policy"))
		check_policy(v, buf, len);
	else if (!strcmp(v->kind, "round_ticket"))
		check_ticket(v, buf, len);
	else if (!strcmp(v->kind, "sealed_update"))
		check_update(v, buf, len);
	else if (!strcmp(v->kind, "secagg_entry"))
		check_secagg_entry(v, buf, len);
	else if (!strcmp(v->kind, "secagg_directive"))
		check_secagg_directive(v, buf, len);
	else if (!strcmp(v->kind, "secagg_shares"))
		check_secagg_device_msg(v, buf, len, EDGE_KIND_SECAGG_SHARES);
	else if (!strcmp(v->kind, "secagg_reveals"))
		check_secagg_device_msg(v, buf, len, EDGE_KIND_SECAGG_REVEALS);
	else
		fail("unknown kind %s", v->kind);
	free(buf);
	if (harness_failed == before)
		harness_passed++;
	current = NULL;
}

int main(int argc, char **argv)
{
	char path[4096];
	char line[8192];
	char *f[8];
	FILE *fp = NULL;
	int lineno = 0;
	struct vec v;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <tests/vectors>\n", argv[0]);
		return 2;
	}
	if (edge_sim_gp_init(harness_tmpdir("ta_test_vectors")))
		harness_die("edge_sim_gp_init");
	edge_sim_gp_set_heap_limit(TA_DATA_SIZE);
	if (!load_keys(argv[1]))
		harness_die("cannot read keys.tsv");
	if (!setup_device())
		harness_die("keys.tsv lacks usable device keys");
	snprintf(path, sizeof(path), "%s/index.tsv", argv[1]);
	fp = fopen(path, "r");
	if (!fp)
		harness_die("cannot read index.tsv");
	while (fgets(line, sizeof(line), fp)) {
		chomp(line);
		if (lineno++ == 0 || !line[0] || line[0] == '#')
			continue;	/* header */
		memset(f, 0, sizeof(f));
		if (split_tabs(line, f, 8) < 7) {
			current = line;
			fail("index.tsv line %d: too few fields", lineno);
			continue;
		}
		v.name = f[0];
		v.kind = f[1];
		v.file = f[2];
		v.expect = f[3];
		v.code = (uint32_t)strtoul(f[4], NULL, 16);
		if (!strcmp(v.expect, "ok"))
			v.code = TEE_SUCCESS;
		v.stored_version = strtoull(f[5], NULL, 10);
		v.stored_epoch = strtoull(f[6], NULL, 10);
		v.extra = f[7] ? f[7] : "";
		run_vector(argv[1], &v);
	}
	fclose(fp);
	TEE_FreeTransientObject(device_kex);
	TEE_FreeTransientObject(device_sign);
	return harness_summary();
}
