/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Model packages (docs/formats.md "Model package"): manifest parse and
 * verification, content-key unwrap, head decryption into a pending slot,
 * in-order backbone chunk verification and decryption, and the commit.
 *
 * The functions take everything they depend on as arguments (anchor key,
 * stored version, device keys), so the same code serves the command
 * handlers and the C tests. Any refusal drops the pending load (keys and
 * plaintext wiped) and leaves secure storage untouched.
 */
#ifndef EDGE_PACKAGE_H
#define EDGE_PACKAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

#include "head.h"

/* A parsed manifest; pointers refer to the (TA-owned) manifest copy. */
struct edge_manifest {
	uint64_t version;
	const uint8_t *package_id;	/* 16 */
	uint32_t flags;
	const uint8_t *eph_pub;		/* 32, E */
	uint32_t head_in;		/* I */
	uint32_t head_out;		/* O */
	uint64_t backbone_len;		/* L */
	uint32_t chunk_log2;
	uint32_t chunk_count;		/* N */
	uint32_t metadata_len;		/* M */
	struct edge_infer_policy infer;	/* bytes 92..103 */
	const uint8_t *digests;		/* 32 * N */
	const uint8_t *head_ct;		/* 4 * (I*O + O) + 16 */
	const uint8_t *metadata;	/* M */
};

/* The pending load. Zero-initialise; pkg_abort() returns it to zero. */
struct pkg_load {
	bool active;
	bool encrypted;
	uint64_t version;
	uint8_t package_id[16];
	uint32_t flags;
	uint64_t backbone_len;
	uint32_t chunk_size;		/* C, 0 without backbone */
	uint32_t chunk_count;		/* N */
	uint32_t next_chunk;
	uint8_t *digests;		/* copy of the 32 * N signed digests */
	uint8_t backbone_key[32];	/* BK, encrypted backbone only */
	struct edge_model model;	/* pending head */
	uint8_t *stored_buf;		/* chunk copy, allocated on first chunk */
	uint8_t *plain_buf;		/* decrypted chunk */
	size_t buf_size;
};

/* What LOAD_BEGIN reports. */
struct pkg_info {
	uint32_t chunk_count;
	uint32_t flags;
	uint32_t chunk_size;		/* 0 without backbone */
	uint32_t last_stored_size;	/* bytes of the last stored chunk */
};

/*
 * Parses a manifest body (already covered by a verified signature).
 * TEE_ERROR_BAD_FORMAT for a malformed body, TEE_ERROR_EXCESS_DATA for a
 * count over a documented limit.
 */
TEE_Result pkg_parse_manifest(const uint8_t *body, size_t body_len,
			      struct edge_manifest *m);

/* Bytes of stored chunk i (ciphertext || tag when encrypted). */
uint64_t pkg_stored_chunk_size(uint64_t backbone_len, uint32_t chunk_size,
			       uint32_t chunk_count, bool encrypted,
			       uint32_t i);

/*
 * LOAD_BEGIN over a signed manifest and a signed key wrap, both already
 * copied into TA memory: envelope checks of the manifest against the
 * model-signer anchor signer_pub, manifest parse, anti-rollback against
 * stored_version; envelope checks of the wrap against the same anchor, its
 * device id must be device_id (EDGE_ERR_NOT_FOR_DEVICE), its package id and
 * manifest digest this manifest's (EDGE_ERR_WRONG_PACKAGE); content-key
 * unwrap with the device's X25519 key pair kex_key, head decryption into
 * the pending slot. Replaces any pending load. device_id NULL (no identity
 * yet): EDGE_ERR_NOT_FOR_DEVICE after the manifest checks.
 */
TEE_Result pkg_begin(struct pkg_load *ld, const uint8_t *manifest,
		     size_t len, const uint8_t *wrap, size_t wrap_len,
		     const uint8_t signer_pub[EDGE_PUBKEY_SIZE],
		     uint64_t stored_version, TEE_ObjectHandle kex_key,
		     const uint8_t device_id[EDGE_KEY_ID_SIZE],
		     struct pkg_info *info);

/*
 * LOAD_CHUNK: stored chunk `index` (may be in shared memory; copied into TA
 * memory first) is checked against its signed digest, decrypted if needed,
 * and its plaintext written to out. *out_len is the capacity on entry and
 * the bytes written (or needed, with TEE_ERROR_SHORT_BUFFER, which keeps
 * the load pending) on return.
 */
TEE_Result pkg_chunk(struct pkg_load *ld, uint32_t index,
		     const uint8_t *stored, size_t stored_len, uint8_t *out,
		     size_t *out_len);

/*
 * LOAD_FINISH: after all chunks passed and if the version is still above
 * stored_version, writes the new model with one atomic object write and
 * moves it into *model (which must be empty). The load is dropped either
 * way.
 */
TEE_Result pkg_finish(struct pkg_load *ld, uint64_t stored_version,
		      struct edge_model *model);

/* LOAD_ABORT, and the cleanup of every refusal. */
void pkg_abort(struct pkg_load *ld);

#endif /* EDGE_PACKAGE_H */
