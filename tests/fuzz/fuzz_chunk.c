// SPDX-License-Identifier: BSD-2-Clause
/*
 * Backbone chunks (ta/package.c): LOAD_CHUNK's pkg_chunk() on stored
 * chunks after a valid LOAD_BEGIN of tests/vectors' pkg_ok_public_backbone
 * or pkg_ok_encrypted_backbone, then LOAD_FINISH if every chunk passed.
 *
 * Input: one control byte, then records of
 *   index delta (int8) | length (u24 LE) | stored chunk (length bytes)
 * each sent as LOAD_CHUNK(next expected index + delta). Control bits:
 *   0x01  the encrypted package (else the public one)
 *   0x02  rewrite the manifest's digests to those of the records and
 *         re-sign it, so that a mutated chunk passes the digest check and
 *         reaches the size logic and AES-GCM
 *   0x04  an output buffer one byte short of the chunk
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "bytes.h"
#include "crypto.h"
#include "envelope.h"
#include "fuzz_common.h"
#include "head.h"
#include "package.h"

#define CTRL_ENCRYPTED	0x01
#define CTRL_REDIGEST	0x02
#define CTRL_SHORT_OUT	0x04
#define MAX_RECORDS	64

struct package {
	uint8_t *manifest;	/* the manifest envelope */
	size_t len;
	uint8_t *wrap;		/* the device's key wrap of tests/vectors */
	size_t digests_off;	/* offset of the digest list in manifest */
	uint32_t chunk_count;
};

static struct package pkgs[2];

static void load_package(struct package *p, const char *name,
			 const char *wrap_name)
{
	struct edge_manifest m = { };
	size_t file_len = 0;
	size_t wrap_len = 0;
	uint8_t *file = fuzz_read_vector(name, &file_len);

	p->wrap = fuzz_read_vector(wrap_name, &wrap_len);
	FUZZ_ASSERT(wrap_len == EDGE_KEY_WRAP_SIZE);

	FUZZ_ASSERT(file_len > EDGE_ENVELOPE_HEADER_SIZE);
	p->len = EDGE_ENVELOPE_HEADER_SIZE + get_le32(file + 8) +
		 EDGE_SIG_SIZE;
	FUZZ_ASSERT(p->len <= file_len);
	p->manifest = fuzz_dup(file, p->len);
	free(file);
	FUZZ_ASSERT(!pkg_parse_manifest(p->manifest +
					EDGE_ENVELOPE_HEADER_SIZE,
					p->len - EDGE_ENVELOPE_HEADER_SIZE -
					EDGE_SIG_SIZE, &m));
	p->digests_off = (size_t)(m.digests - p->manifest);
	p->chunk_count = m.chunk_count;
	FUZZ_ASSERT(p->chunk_count > 0);
}

struct record {
	uint32_t delta;
	const uint8_t *buf;
	size_t len;
};

/* Splits the input after the control byte; a short tail is one record. */
static size_t split(const uint8_t *data, size_t len, struct record *r)
{
	size_t n = 0;
	size_t off = 0;
	size_t want = 0;

	while (off + 4 <= len && n < MAX_RECORDS) {
		r[n].delta = (uint32_t)(int32_t)(int8_t)data[off];
		want = data[off + 1] | (size_t)data[off + 2] << 8 |
		       (size_t)data[off + 3] << 16;
		off += 4;
		r[n].buf = data + off;
		r[n].len = want < len - off ? want : len - off;
		off += r[n].len;
		n++;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool loaded;
	struct record rec[MAX_RECORDS];
	struct pkg_load ld = { };
	struct pkg_info info = { };
	struct edge_model model = { };
	const struct package *p = NULL;
	uint8_t *manifest = NULL;
	uint8_t wrap[EDGE_KEY_WRAP_SIZE];
	uint8_t *stored = NULL;
	uint8_t *out = NULL;
	size_t out_cap = 0;
	size_t out_len = 0;
	size_t n = 0;
	size_t i = 0;
	uint32_t index = 0;
	uint64_t want = 0;
	uint8_t ctrl = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!loaded) {
		load_package(&pkgs[0], "pkg_ok_public_backbone.bin",
			     "pkg_ok_public_backbone.wrap.bin");
		load_package(&pkgs[1], "pkg_ok_encrypted_backbone.bin",
			     "pkg_ok_encrypted_backbone.wrap.bin");
		loaded = true;
	}
	if (!len)
		return 0;
	ctrl = data[0];
	p = &pkgs[ctrl & CTRL_ENCRYPTED ? 1 : 0];
	n = split(data + 1, len - 1, rec);

	manifest = fuzz_dup(p->manifest, p->len);
	memcpy(wrap, p->wrap, sizeof(wrap));
	if (ctrl & CTRL_REDIGEST) {
		for (i = 0; i < n && i < p->chunk_count; i++)
			FUZZ_ASSERT(!edge_sha256(rec[i].buf, rec[i].len,
						 manifest + p->digests_off +
						 EDGE_SHA256_SIZE * i));
		FUZZ_ASSERT(fuzz_resign(manifest, p->len, &fuzz_signer));
		fuzz_rebind_wrap(wrap, manifest, p->len);
	}
	res = pkg_begin(&ld, manifest, p->len, wrap, sizeof(wrap),
			fuzz_signer.pub, 0, fuzz_device_kex, fuzz_device.id,
			&info);
	FUZZ_ASSERT(!res);

	for (i = 0; i < n && ld.active; i++) {
		index = ld.next_chunk + rec[i].delta;
		want = pkg_stored_chunk_size(ld.backbone_len, ld.chunk_size,
					     ld.chunk_count, ld.encrypted,
					     index);
		/* Where the harness can tell, short by one byte. */
		out_cap = info.chunk_size;
		if ((ctrl & CTRL_SHORT_OUT) && want > EDGE_GCM_TAG_SIZE)
			out_cap = (size_t)want - 1 -
				  (ld.encrypted ? EDGE_GCM_TAG_SIZE : 0);
		stored = fuzz_dup(rec[i].buf, rec[i].len);
		out = malloc(out_cap ? out_cap : 1);
		FUZZ_ASSERT(out);
		out_len = out_cap;
		res = pkg_chunk(&ld, index, stored, rec[i].len, out, &out_len);
		if (!res) {
			FUZZ_ASSERT(rec[i].len == want);
			FUZZ_ASSERT(out_len == rec[i].len -
				    (ld.encrypted ? EDGE_GCM_TAG_SIZE : 0));
			FUZZ_ASSERT(ld.encrypted ||
				    !memcmp(out, stored, out_len));
		} else if (res == TEE_ERROR_SHORT_BUFFER) {
			FUZZ_ASSERT(ld.active && out_len > out_cap);
		} else {
			FUZZ_ASSERT(!ld.active && !out_len);
		}
		free(stored);
		free(out);
	}
	if (ld.active && ld.next_chunk == ld.chunk_count) {
		res = pkg_finish(&ld, 0, &model);
		FUZZ_ASSERT(!res && model.present);
		model_free(&model);
	}
	FUZZ_ASSERT(!ld.active || ld.next_chunk < ld.chunk_count);
	pkg_abort(&ld);
	free(manifest);
	return 0;
}
