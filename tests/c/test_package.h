/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The C tests' one model-package encoder (docs/formats.md key schedule),
 * shared by ta_test_commands and ta_test_train, at the contract's offsets:
 * the manifest and one signed key wrap per recipient; `wrap` is the last
 * recipient's, the one the tests deliver.
 * Python's encoder (edge/formats/package.py) writes the shared vectors.
 */
#ifndef EDGE_TEST_PACKAGE_H
#define EDGE_TEST_PACKAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "bytes.h"
#include "crypto.h"
#include "envelope.h"
#include "kdf.h"
#include "harness.h"

struct recipient {
	uint8_t kex_pub[32];
	uint8_t id[16];
};

struct pkg_spec {
	uint64_t version;
	bool encrypt;
	uint32_t in, out;
	const float *head;		/* W (I x O) then b (O) */
	const uint8_t *backbone;
	size_t backbone_len;
	uint8_t chunk_log2;
	const struct recipient *rcpt;
	int nrcpt;			/* 1..4 */
	const struct ed_key *signer;
};

struct built {
	uint8_t *manifest;
	size_t manifest_len;
	uint8_t *payload;
	size_t payload_len;
	uint32_t chunk_count;
	size_t chunk_stored[64];	/* stored size of each chunk */
	uint8_t wraps[4][EDGE_KEY_WRAP_SIZE];
	uint8_t *wrap;			/* wraps[nrcpt - 1] */
};

static inline void built_free(struct built *b)
{
	free(b->manifest);
	free(b->payload);
	memset(b, 0, sizeof(*b));
}

static inline void pkg_build(const struct pkg_spec *s, struct built *b)
{
	static const char wrap[] = "edge/v1 wrap";
	static const char headl[] = "edge/v1 head";
	static const char bbl[] = "edge/v1 backbone";
	TEE_ObjectHandle e = TEE_HANDLE_NULL;
	uint8_t E[32], K[32], HK[32], BK[32], Z[32], KEK[32];
	uint8_t pkg_id[16], binding[24], salt[64], nonce[12] = { 0 };
	uint8_t aad[25];
	size_t len = 32;
	size_t C = s->backbone_len ? (size_t)1 << s->chunk_log2 : 0;
	uint32_t N = C ? (uint32_t)((s->backbone_len + C - 1) / C) : 0;
	size_t params = (size_t)s->in * s->out + s->out;
	size_t body_len = EDGE_MANIFEST_FIXED_SIZE +
			  32 * (size_t)N +
			  4 * params + 16 + 2;
	uint8_t *env = NULL;
	uint8_t *body = NULL;
	uint8_t *p = NULL;
	uint8_t *head_pt = NULL;
	size_t off = 0;
	size_t n = 0;
	uint32_t i = 0;
	int r = 0;

	memset(b, 0, sizeof(*b));
	TEE_GenerateRandom(pkg_id, sizeof(pkg_id));
	TEE_GenerateRandom(K, sizeof(K));
	if (TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR, 256, &e) ||
	    TEE_GenerateKey(e, 256, NULL, 0) ||
	    TEE_GetObjectBufferAttribute(e, TEE_ATTR_X25519_PUBLIC_VALUE, E,
					 &len))
		harness_die("ephemeral key");

	b->manifest_len = EDGE_ENVELOPE_HEADER_SIZE + body_len + 64;
	env = calloc(1, b->manifest_len);
	body = env + EDGE_ENVELOPE_HEADER_SIZE;
	{
		uint8_t signer_id[16];

		edge_key_id(s->signer->pub, signer_id);
		envelope_put_header(env, EDGE_KIND_PACKAGE,
				    (uint32_t)body_len, signer_id);
	}
	put_le64(body + EDGE_MANIFEST_OFF_VERSION, s->version);
	memcpy(body + EDGE_MANIFEST_OFF_PACKAGE_ID, pkg_id, 16);
	put_le32(body + EDGE_MANIFEST_OFF_FLAGS,
		 (s->backbone_len ? EDGE_PKG_FLAG_BACKBONE : 0) |
			    (s->encrypt ? EDGE_PKG_FLAG_BACKBONE_ENCRYPTED :
					  0));
	memcpy(body + EDGE_MANIFEST_OFF_EPHEMERAL_PUB, E, 32);
	put_le32(body + EDGE_MANIFEST_OFF_HEAD_IN, s->in);
	put_le32(body + EDGE_MANIFEST_OFF_HEAD_OUT, s->out);
	put_le64(body + EDGE_MANIFEST_OFF_BACKBONE_LEN, s->backbone_len);
	body[EDGE_MANIFEST_OFF_CHUNK_LOG2] = C ? s->chunk_log2 : 0;
	put_le32(body + EDGE_MANIFEST_OFF_CHUNK_COUNT, N);
	put_le32(body + EDGE_MANIFEST_OFF_METADATA_LEN, 2);
	/* The tests read scores back. */
	body[EDGE_MANIFEST_OFF_INFER_RELEASE] = EDGE_INFER_SCORES;
	p = body + EDGE_MANIFEST_FIXED_SIZE;

	memcpy(binding, pkg_id, 16);
	put_le64(binding + 16, s->version);
	if (s->nrcpt < 1 || s->nrcpt > 4)
		harness_die("1..4 recipients");

	/* Backbone chunks and their digests. */
	b->chunk_count = N;
	if (N) {
		b->payload = malloc(s->backbone_len + 16 * (size_t)N);
		edge_hkdf_sha256(K, 32, E, 32, bbl, strlen(bbl), pkg_id, 16,
				 BK, 32);
	}
	for (i = 0; i < N; i++) {
		n = s->backbone_len - (size_t)i * C < C ?
		    s->backbone_len - (size_t)i * C : C;
		if (s->encrypt) {
			memset(nonce, 0, 12);
			put_le64(nonce + 4, i);
			memcpy(aad, pkg_id, 16);
			put_le64(aad + 16, i);
			aad[24] = i == N - 1;
			gcm_encrypt(BK, nonce, aad, 25,
				    s->backbone + (size_t)i * C, n,
				    b->payload + off);
			n += 16;
		} else {
			memcpy(b->payload + off, s->backbone + (size_t)i * C,
			       n);
		}
		edge_sha256(b->payload + off, n, p);
		b->chunk_stored[i] = n;
		p += 32;
		off += n;
	}
	b->payload_len = off;

	/* Head. */
	head_pt = malloc(4 * params);
	for (n = 0; n < params; n++) {
		uint32_t u;

		memcpy(&u, &s->head[n], 4);
		put_le32(head_pt + 4 * n, u);
	}
	edge_hkdf_sha256(K, 32, E, 32, headl, strlen(headl), pkg_id, 16, HK,
			 32);
	memset(nonce, 0, 12);
	gcm_encrypt(HK, nonce, binding, 24, head_pt, 4 * params, p);
	p += 4 * params + 16;
	memcpy(p, "{}", 2);

	sign_envelope(env, EDGE_ENVELOPE_HEADER_SIZE + body_len,
		      s->signer->pair);
	b->manifest = env;

	/* One key wrap per recipient, bound to the signed manifest. */
	for (r = 0; r < s->nrcpt; r++) {
		uint8_t *w = b->wraps[r];
		uint8_t *wb = w + EDGE_ENVELOPE_HEADER_SIZE;
		uint8_t signer_id[16];

		edge_key_id(s->signer->pub, signer_id);
		envelope_put_header(w, EDGE_KIND_KEY_WRAP,
				    EDGE_KEY_WRAP_BODY_SIZE, signer_id);
		memcpy(wb + EDGE_KEY_WRAP_OFF_DEVICE_ID, s->rcpt[r].id, 16);
		memcpy(wb + EDGE_KEY_WRAP_OFF_PACKAGE_ID, pkg_id, 16);
		edge_sha256(env, EDGE_ENVELOPE_HEADER_SIZE + body_len,
			    wb + EDGE_KEY_WRAP_OFF_MANIFEST_DIGEST);
		memcpy(salt, E, 32);
		memcpy(salt + 32, s->rcpt[r].kex_pub, 32);
		if (edge_x25519(e, s->rcpt[r].kex_pub, Z) ||
		    edge_hkdf_sha256(Z, 32, salt, 64, wrap, strlen(wrap),
				     binding, 24, KEK, 32))
			harness_die("key wrap");
		memset(nonce, 0, 12);
		gcm_encrypt(KEK, nonce, s->rcpt[r].id, 16, K, 32,
			    wb + EDGE_KEY_WRAP_OFF_WRAPPED_KEY);
		sign_envelope(w, EDGE_ENVELOPE_HEADER_SIZE +
				 EDGE_KEY_WRAP_BODY_SIZE, s->signer->pair);
	}
	b->wrap = b->wraps[s->nrcpt - 1];
	free(head_pt);
	TEE_FreeTransientObject(e);
}

/* After the manifest was edited and re-signed: bind the wrap to it again. */
static inline void pkg_rebind_wrap(struct built *b, const struct ed_key *signer)
{
	edge_sha256(b->manifest, b->manifest_len - 64,
		    b->wrap + EDGE_ENVELOPE_HEADER_SIZE +
			    EDGE_KEY_WRAP_OFF_MANIFEST_DIGEST);
	sign_envelope(b->wrap, EDGE_KEY_WRAP_SIZE - 64, signer->pair);
}

#endif /* EDGE_TEST_PACKAGE_H */
