// SPDX-License-Identifier: BSD-2-Clause
/*
 * Model package manifests (ta/package.c): pkg_parse_manifest() on the body
 * directly, then LOAD_BEGIN's pkg_begin() on the whole envelope, as is
 * (seeds from tests/vectors pass the signature) and re-signed with the
 * model signer's key of keys.tsv, so that every mutation reaches the parse,
 * the rollback check, the key wrap's binding (the wrap of
 * pkg_ok_head_only, bound again to the input), the key unwrap and the head
 * decryption. The device is keys.tsv's device, the one the vectors address.
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "crypto.h"
#include "envelope.h"
#include "fuzz_common.h"
#include "head.h"
#include "package.h"

/* Everything a parsed manifest points at lies inside the body. */
static void check_manifest(const uint8_t *body, size_t len,
			   const struct edge_manifest *m)
{
	const uint8_t *end = body + len;

	FUZZ_ASSERT(m->version >= 1);
	FUZZ_ASSERT(head_dims_ok(m->head_in, m->head_out));
	FUZZ_ASSERT(m->chunk_count <= EDGE_MAX_CHUNKS);
	FUZZ_ASSERT(m->digests + (size_t)EDGE_SHA256_SIZE * m->chunk_count <=
		    end);
	FUZZ_ASSERT(m->head_ct + head_size(m->head_in, m->head_out) +
		    EDGE_GCM_TAG_SIZE <= end);
	FUZZ_ASSERT(m->metadata + m->metadata_len == end);
	if (m->chunk_count) {
		FUZZ_ASSERT(m->chunk_log2 >= EDGE_MIN_CHUNK_LOG2 &&
			    m->chunk_log2 <= EDGE_MAX_CHUNK_LOG2);
		FUZZ_ASSERT(((uint64_t)m->chunk_count << m->chunk_log2) >=
			    m->backbone_len);
		FUZZ_ASSERT(((uint64_t)(m->chunk_count - 1) <<
			     m->chunk_log2) < m->backbone_len);
	}
}

static void begin(const uint8_t *buf, size_t len, uint64_t stored_version)
{
	static uint8_t *vector_wrap;
	struct pkg_load ld = { };
	struct pkg_info info = { };
	uint8_t wrap[EDGE_KEY_WRAP_SIZE];
	size_t wrap_len = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!vector_wrap) {
		vector_wrap = fuzz_read_vector("pkg_ok_head_only.wrap.bin",
					       &wrap_len);
		FUZZ_ASSERT(wrap_len == EDGE_KEY_WRAP_SIZE);
	}
	memcpy(wrap, vector_wrap, sizeof(wrap));
	fuzz_rebind_wrap(wrap, buf, len);
	res = pkg_begin(&ld, buf, len, wrap, sizeof(wrap), fuzz_signer.pub,
			stored_version, fuzz_device_kex, fuzz_device.id, &info);

	if (res) {
		FUZZ_ASSERT(!ld.active && !ld.digests && !ld.model.rec);
		return;
	}
	FUZZ_ASSERT(ld.active && ld.version > stored_version);
	FUZZ_ASSERT(info.chunk_count == ld.chunk_count);
	FUZZ_ASSERT(!info.chunk_count ||
		    info.last_stored_size ==
		    pkg_stored_chunk_size(ld.backbone_len, ld.chunk_size,
					  ld.chunk_count, ld.encrypted,
					  ld.chunk_count - 1));
	pkg_abort(&ld);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct edge_manifest m = { };
	const uint8_t *body = NULL;
	size_t body_len = 0;
	uint8_t *copy = NULL;

	if (len > EDGE_MAX_MANIFEST_SIZE + 1)
		return 0;
	fuzz_body(data, len, &body, &body_len);
	copy = fuzz_dup(body, body_len);
	if (!pkg_parse_manifest(copy, body_len, &m))
		check_manifest(copy, body_len, &m);
	free(copy);

	begin(data, len, 0);

	/* Stored version 1: the vectors' version-1 packages are a rollback,
	 * a mutated version above it reaches the key wrap. */
	copy = fuzz_dup(data, len);
	if (fuzz_resign(copy, len, &fuzz_signer))
		begin(copy, len, 1);
	free(copy);
	return 0;
}
