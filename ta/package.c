// SPDX-License-Identifier: BSD-2-Clause
/*
 * Model packages: manifest, key unwrap, head, backbone chunks, commit.
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "crypto.h"
#include "dpmath.h"
#include "envelope.h"
#include "kdf.h"
#include "package.h"

static const char label_wrap[] = "edge/v1 wrap";
static const char label_head[] = "edge/v1 head";
static const char label_backbone[] = "edge/v1 backbone";

#define LABEL_LEN(l)	(sizeof(l) - 1)
#define WRAPPED_SIZE	(32 + EDGE_GCM_TAG_SIZE)
#define CHUNK_AAD_SIZE	(16 + 8 + 1)

TEE_Result pkg_parse_manifest(const uint8_t *body, size_t body_len,
			      struct edge_manifest *m)
{
	struct edge_rd rd = { };
	uint64_t expect = 0;
	uint64_t chunk = 0;
	uint64_t n = 0;
	bool backbone = false;

	TEE_MemFill(m, 0, sizeof(*m));
	if (body_len < EDGE_MANIFEST_FIXED_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	m->version = get_le64(body + EDGE_MANIFEST_OFF_VERSION);
	m->package_id = body + EDGE_MANIFEST_OFF_PACKAGE_ID;
	m->flags = get_le32(body + EDGE_MANIFEST_OFF_FLAGS);
	m->eph_pub = body + EDGE_MANIFEST_OFF_EPHEMERAL_PUB;
	m->head_in = get_le32(body + EDGE_MANIFEST_OFF_HEAD_IN);
	m->head_out = get_le32(body + EDGE_MANIFEST_OFF_HEAD_OUT);
	m->backbone_len = get_le64(body + EDGE_MANIFEST_OFF_BACKBONE_LEN);
	m->chunk_log2 = body[EDGE_MANIFEST_OFF_CHUNK_LOG2];
	m->chunk_count = get_le32(body + EDGE_MANIFEST_OFF_CHUNK_COUNT);
	m->metadata_len = get_le32(body + EDGE_MANIFEST_OFF_METADATA_LEN);
	m->infer.release = body[EDGE_MANIFEST_OFF_INFER_RELEASE];
	m->infer.top_k = get_le16(body + EDGE_MANIFEST_OFF_TOPK);
	m->infer.budget = get_le32(body + EDGE_MANIFEST_OFF_QUERY_BUDGET);
	m->infer.bound = get_f32(body + EDGE_MANIFEST_OFF_FEATURE_BOUND);
	if (!zeros_at(body + EDGE_MANIFEST_OFF_RESERVED1, EDGE_MANIFEST_LEN_RESERVED1) ||
	    !zeros_at(body + EDGE_MANIFEST_OFF_RESERVED2, EDGE_MANIFEST_LEN_RESERVED2) ||
	    !zeros_at(body + EDGE_MANIFEST_OFF_RESERVED3, EDGE_MANIFEST_LEN_RESERVED3))
		return TEE_ERROR_BAD_FORMAT;

	if (m->version < EDGE_MANIFEST_VERSION_MIN)
		return TEE_ERROR_BAD_FORMAT;
	if (m->flags & ~(uint32_t)EDGE_PKG_FLAG_ALL)
		return TEE_ERROR_BAD_FORMAT;
	backbone = m->flags & EDGE_PKG_FLAG_BACKBONE;
	if ((m->flags & EDGE_PKG_FLAG_BACKBONE_ENCRYPTED) && !backbone)
		return TEE_ERROR_BAD_FORMAT;
	if (m->head_in < EDGE_MANIFEST_HEAD_IN_MIN ||
	    m->head_out < EDGE_MANIFEST_HEAD_OUT_MIN)
		return TEE_ERROR_BAD_FORMAT;
	if (!head_dims_ok(m->head_in, m->head_out) ||
	    m->metadata_len > EDGE_MANIFEST_METADATA_LEN_MAX)
		return TEE_ERROR_EXCESS_DATA;
	if (!infer_policy_ok(&m->infer, m->head_out))
		return TEE_ERROR_BAD_FORMAT;
	if (backbone) {
		/* Order and classes as check_backbone_layout in Python. */
		if (m->backbone_len < 1 ||
		    m->chunk_log2 < EDGE_MIN_CHUNK_LOG2)
			return TEE_ERROR_BAD_FORMAT;
		if (m->chunk_log2 > EDGE_MAX_CHUNK_LOG2)
			return TEE_ERROR_EXCESS_DATA;
		chunk = (uint64_t)1 << m->chunk_log2;
		/* ceil(L / C) without overflowing L + C - 1. */
		n = (m->backbone_len >> m->chunk_log2) +
		    ((m->backbone_len & (chunk - 1)) != 0);
		if (n > EDGE_MAX_CHUNKS || m->chunk_count > EDGE_MAX_CHUNKS)
			return TEE_ERROR_EXCESS_DATA;
		if (m->chunk_count != n)
			return TEE_ERROR_BAD_FORMAT;
	} else if (m->backbone_len || m->chunk_log2 || m->chunk_count) {
		return TEE_ERROR_BAD_FORMAT;
	}

	/* Every term is bounded by the checks above: no overflow in 64 bits. */
	expect = EDGE_MANIFEST_FIXED_SIZE +
		 (uint64_t)EDGE_SHA256_SIZE * m->chunk_count +
		 head_size(m->head_in, m->head_out) + EDGE_GCM_TAG_SIZE +
		 m->metadata_len;
	if ((uint64_t)body_len != expect)
		return TEE_ERROR_BAD_FORMAT;

	rd_init(&rd, body + EDGE_MANIFEST_FIXED_SIZE,
		body_len - EDGE_MANIFEST_FIXED_SIZE);
	m->digests = rd_bytes(&rd, (size_t)EDGE_SHA256_SIZE * m->chunk_count);
	m->head_ct = rd_bytes(&rd, head_size(m->head_in, m->head_out) +
				   EDGE_GCM_TAG_SIZE);
	m->metadata = rd_bytes(&rd, m->metadata_len);
	if (rd.err || rd_left(&rd))
		return TEE_ERROR_BAD_FORMAT;
	return TEE_SUCCESS;
}

uint64_t pkg_stored_chunk_size(uint64_t backbone_len, uint32_t chunk_size,
			       uint32_t chunk_count, bool encrypted,
			       uint32_t i)
{
	uint64_t size = chunk_size;

	if (!chunk_count || i >= chunk_count)
		return 0;
	if (i == chunk_count - 1)
		size = backbone_len - (uint64_t)(chunk_count - 1) * chunk_size;
	return size + (encrypted ? EDGE_GCM_TAG_SIZE : 0);
}

void pkg_abort(struct pkg_load *ld)
{
	if (ld->digests)
		TEE_Free(ld->digests);
	if (ld->stored_buf) {
		TEE_MemFill(ld->stored_buf, 0, ld->buf_size);
		TEE_Free(ld->stored_buf);
	}
	if (ld->plain_buf) {
		TEE_MemFill(ld->plain_buf, 0, ld->buf_size);
		TEE_Free(ld->plain_buf);
	}
	model_free(&ld->model);
	TEE_MemFill(ld, 0, sizeof(*ld));
}

/* Unwraps the content key K addressed to this device. */
static TEE_Result unwrap_content_key(const struct edge_manifest *m,
				     const uint8_t *wrapped,
				     TEE_ObjectHandle kex_key,
				     const uint8_t device_id[16],
				     uint8_t k[32])
{
	uint8_t kex_pub[EDGE_PUBKEY_SIZE] = { 0 };
	uint8_t salt[2 * EDGE_PUBKEY_SIZE] = { 0 };
	uint8_t binding[16 + 8] = { 0 };
	uint8_t z[32] = { 0 };
	uint8_t kek[32] = { 0 };
	uint8_t nonce[EDGE_GCM_NONCE_SIZE] = { 0 };
	size_t pub_len = sizeof(kex_pub);
	TEE_Result res = TEE_ERROR_GENERIC;

	res = TEE_GetObjectBufferAttribute(kex_key,
					   TEE_ATTR_X25519_PUBLIC_VALUE,
					   kex_pub, &pub_len);
	if (!res && pub_len != sizeof(kex_pub))
		res = TEE_ERROR_BAD_STATE;
	if (res)
		return res;
	res = edge_x25519(kex_key, m->eph_pub, z);
	if (res == TEE_ERROR_SECURITY) {
		/* A low-order E cannot have wrapped a key for us. */
		res = TEE_ERROR_MAC_INVALID;
	}
	if (res)
		goto out;
	TEE_MemMove(salt, m->eph_pub, EDGE_PUBKEY_SIZE);
	TEE_MemMove(salt + EDGE_PUBKEY_SIZE, kex_pub, EDGE_PUBKEY_SIZE);
	TEE_MemMove(binding, m->package_id, 16);
	put_le64(binding + 16, m->version);
	res = edge_hkdf_sha256(z, sizeof(z), salt, sizeof(salt), label_wrap,
			       LABEL_LEN(label_wrap), binding, sizeof(binding),
			       kek, sizeof(kek));
	if (res)
		goto out;
	res = edge_gcm_decrypt(kek, nonce, device_id, EDGE_KEY_ID_SIZE,
			       wrapped, 32, wrapped + 32, k);
out:
	TEE_MemFill(z, 0, sizeof(z));
	TEE_MemFill(kek, 0, sizeof(kek));
	return res;
}

/*
 * The key wrap of this device for manifest env (docs/formats.md "Key wrap"):
 * signed by the model signer, for device_id, bound to the package id and to
 * the digest of the signed manifest. Returns the wrapped key inside wrap.
 */
static TEE_Result open_wrap(const uint8_t *wrap, size_t wrap_len,
			    const uint8_t signer_id[EDGE_KEY_ID_SIZE],
			    const uint8_t signer_pub[EDGE_PUBKEY_SIZE],
			    const uint8_t *manifest, size_t signed_len,
			    const uint8_t *package_id,
			    const uint8_t device_id[EDGE_KEY_ID_SIZE],
			    const uint8_t **wrapped)
{
	struct edge_envelope env = { };
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };
	const uint8_t *body = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;

	res = envelope_open(wrap, wrap_len, EDGE_KIND_KEY_WRAP,
			    EDGE_KEY_WRAP_SIZE, signer_id, signer_pub, &env);
	if (res)
		return res;
	if (env.body_len != EDGE_KEY_WRAP_BODY_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	body = env.body;
	if (ct_memcmp(body + EDGE_KEY_WRAP_OFF_DEVICE_ID, device_id,
		      EDGE_KEY_ID_SIZE))
		return EDGE_ERR_NOT_FOR_DEVICE;
	res = edge_sha256(manifest, signed_len, digest);
	if (res)
		return res;
	if (ct_memcmp(body + EDGE_KEY_WRAP_OFF_PACKAGE_ID, package_id,
		      EDGE_KEY_WRAP_LEN_PACKAGE_ID) ||
	    ct_memcmp(body + EDGE_KEY_WRAP_OFF_MANIFEST_DIGEST, digest,
		      EDGE_KEY_WRAP_LEN_MANIFEST_DIGEST))
		return EDGE_ERR_WRONG_PACKAGE;
	*wrapped = body + EDGE_KEY_WRAP_OFF_WRAPPED_KEY;
	return TEE_SUCCESS;
}

TEE_Result pkg_begin(struct pkg_load *ld, const uint8_t *manifest,
		     size_t len, const uint8_t *wrap, size_t wrap_len,
		     const uint8_t signer_pub[EDGE_PUBKEY_SIZE],
		     uint64_t stored_version, TEE_ObjectHandle kex_key,
		     const uint8_t device_id[EDGE_KEY_ID_SIZE],
		     struct pkg_info *info)
{
	struct edge_envelope env = { };
	struct edge_manifest m = { };
	uint8_t signer_id[EDGE_KEY_ID_SIZE] = { 0 };
	uint8_t k[32] = { 0 };
	uint8_t hk[32] = { 0 };
	uint8_t nonce[EDGE_GCM_NONCE_SIZE] = { 0 };
	uint8_t aad[16 + 8] = { 0 };
	const uint8_t *wrapped = NULL;
	size_t head_len = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	pkg_abort(ld);
	TEE_MemFill(info, 0, sizeof(*info));

	res = edge_key_id(signer_pub, signer_id);
	if (res)
		return res;
	res = envelope_open(manifest, len, EDGE_KIND_PACKAGE,
			    EDGE_MAX_MANIFEST_SIZE, signer_id, signer_pub,
			    &env);
	if (res)
		return res;
	res = pkg_parse_manifest(env.body, env.body_len, &m);
	if (res)
		return res;
	if (m.version <= stored_version)
		return EDGE_ERR_ROLLBACK;

	/* A device without an identity yet is no package's recipient. */
	if (!device_id)
		return EDGE_ERR_NOT_FOR_DEVICE;
	res = open_wrap(wrap, wrap_len, signer_id, signer_pub, manifest,
			env.signed_len, m.package_id, device_id, &wrapped);
	if (res)
		return res;

	res = unwrap_content_key(&m, wrapped, kex_key, device_id, k);
	if (res)
		goto out;

	/* Head: HK = HKDF(K, E, "edge/v1 head" || package id). */
	res = edge_hkdf_sha256(k, sizeof(k), m.eph_pub, EDGE_PUBKEY_SIZE,
			       label_head, LABEL_LEN(label_head),
			       m.package_id, 16, hk, sizeof(hk));
	if (res)
		goto out;
	res = model_alloc(&ld->model, m.version, m.package_id, m.head_in,
			  m.head_out, &m.infer);
	if (res)
		goto out;
	head_len = ld->model.head_len;
	TEE_MemMove(aad, m.package_id, 16);
	put_le64(aad + 16, m.version);
	res = edge_gcm_decrypt(hk, nonce, aad, sizeof(aad), m.head_ct,
			       head_len, m.head_ct + head_len,
			       ld->model.head);
	if (res)
		goto out;

	if (m.flags & EDGE_PKG_FLAG_BACKBONE_ENCRYPTED) {
		res = edge_hkdf_sha256(k, sizeof(k), m.eph_pub,
				       EDGE_PUBKEY_SIZE, label_backbone,
				       LABEL_LEN(label_backbone),
				       m.package_id, 16, ld->backbone_key,
				       sizeof(ld->backbone_key));
		if (res)
			goto out;
		ld->encrypted = true;
	}
	if (m.chunk_count) {
		ld->digests = TEE_Malloc((size_t)EDGE_SHA256_SIZE *
					 m.chunk_count, TEE_MALLOC_FILL_ZERO);
		if (!ld->digests) {
			res = TEE_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		TEE_MemMove(ld->digests, m.digests,
			    (size_t)EDGE_SHA256_SIZE * m.chunk_count);
		ld->chunk_size = (uint32_t)1 << m.chunk_log2;
	}
	ld->version = m.version;
	TEE_MemMove(ld->package_id, m.package_id, 16);
	ld->flags = m.flags;
	ld->backbone_len = m.backbone_len;
	ld->chunk_count = m.chunk_count;
	ld->next_chunk = 0;
	ld->active = true;

	info->chunk_count = m.chunk_count;
	info->flags = m.flags;
	info->chunk_size = ld->chunk_size;
	info->last_stored_size =
		(uint32_t)pkg_stored_chunk_size(m.backbone_len,
						 ld->chunk_size,
						 m.chunk_count, ld->encrypted,
						 m.chunk_count ?
						 m.chunk_count - 1 : 0);
	res = TEE_SUCCESS;
out:
	TEE_MemFill(k, 0, sizeof(k));
	TEE_MemFill(hk, 0, sizeof(hk));
	if (res)
		pkg_abort(ld);
	return res;
}

/* Allocates the chunk buffers for the largest chunk of this load. */
static TEE_Result alloc_chunk_bufs(struct pkg_load *ld)
{
	uint64_t max_plain = ld->chunk_size;

	if (ld->stored_buf)
		return TEE_SUCCESS;
	if (ld->backbone_len < max_plain)
		max_plain = ld->backbone_len;
	ld->buf_size = (size_t)max_plain + EDGE_GCM_TAG_SIZE;
	ld->stored_buf = TEE_Malloc(ld->buf_size, TEE_MALLOC_FILL_ZERO);
	if (!ld->stored_buf)
		return TEE_ERROR_OUT_OF_MEMORY;
	if (ld->encrypted) {
		ld->plain_buf = TEE_Malloc(ld->buf_size, TEE_MALLOC_FILL_ZERO);
		if (!ld->plain_buf)
			return TEE_ERROR_OUT_OF_MEMORY;
	}
	return TEE_SUCCESS;
}

TEE_Result pkg_chunk(struct pkg_load *ld, uint32_t index,
		     const uint8_t *stored, size_t stored_len, uint8_t *out,
		     size_t *out_len)
{
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };
	uint8_t nonce[EDGE_GCM_NONCE_SIZE] = { 0 };
	uint8_t aad[CHUNK_AAD_SIZE] = { 0 };
	uint64_t expect = 0;
	size_t plain_len = 0;
	const uint8_t *plain = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!ld->active)
		return TEE_ERROR_BAD_STATE;
	if (index >= ld->chunk_count) {
		/* More backbone than the signed manifest lists. */
		res = TEE_ERROR_BAD_FORMAT;
		goto refuse;
	}
	if (index != ld->next_chunk) {
		res = TEE_ERROR_BAD_STATE;
		goto refuse;
	}
	expect = pkg_stored_chunk_size(ld->backbone_len, ld->chunk_size,
				       ld->chunk_count, ld->encrypted, index);
	if ((uint64_t)stored_len != expect) {
		res = TEE_ERROR_BAD_FORMAT;
		goto refuse;
	}
	plain_len = stored_len - (ld->encrypted ? EDGE_GCM_TAG_SIZE : 0);
	if (*out_len < plain_len) {
		/* Not a refusal of the package: the load stays pending. */
		*out_len = plain_len;
		return TEE_ERROR_SHORT_BUFFER;
	}
	res = alloc_chunk_bufs(ld);
	if (res)
		goto refuse;

	/* Copy first; verify and decrypt only the copy. */
	TEE_MemMove(ld->stored_buf, stored, stored_len);
	res = edge_sha256(ld->stored_buf, stored_len, digest);
	if (res)
		goto refuse;
	if (ct_memcmp(digest, ld->digests + (size_t)EDGE_SHA256_SIZE * index,
		      EDGE_SHA256_SIZE)) {
		res = EDGE_ERR_CHUNK_DIGEST;
		goto refuse;
	}
	plain = ld->stored_buf;
	if (ld->encrypted) {
		put_le64(nonce + 4, index);
		TEE_MemMove(aad, ld->package_id, 16);
		put_le64(aad + 16, index);
		aad[24] = index == ld->chunk_count - 1;
		res = edge_gcm_decrypt(ld->backbone_key, nonce, aad,
				       sizeof(aad), ld->stored_buf, plain_len,
				       ld->stored_buf + plain_len,
				       ld->plain_buf);
		if (res)
			goto refuse;
		plain = ld->plain_buf;
	}
	TEE_MemMove(out, plain, plain_len);
	if (ld->encrypted)
		TEE_MemFill(ld->plain_buf, 0, plain_len);
	*out_len = plain_len;
	ld->next_chunk++;
	return TEE_SUCCESS;
refuse:
	EMSG("chunk %u refused: 0x%x", (unsigned int)index, (unsigned int)res);
	pkg_abort(ld);
	*out_len = 0;
	return res;
}

TEE_Result pkg_finish(struct pkg_load *ld, uint64_t stored_version,
		      struct edge_model *model)
{
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!ld->active)
		return TEE_ERROR_BAD_STATE;
	if (ld->next_chunk != ld->chunk_count) {
		res = TEE_ERROR_BAD_STATE;
		goto out;
	}
	/* Another load may have committed since LOAD_BEGIN. */
	if (ld->version <= stored_version) {
		res = EDGE_ERR_ROLLBACK;
		goto out;
	}
	res = model_commit(&ld->model);
	if (res)
		goto out;
	*model = ld->model;
	TEE_MemFill(&ld->model, 0, sizeof(ld->model));
	IMSG("model version %llu committed",
	     (unsigned long long)model->version);
out:
	pkg_abort(ld);
	return res;
}
