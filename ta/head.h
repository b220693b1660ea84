/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The model state and the head math. A model is the record LOAD_FINISH
 * writes in one atomic object write (storage header || version || package id
 * || I || O || head) and INFER reads; the head is W (I x O float32 LE,
 * row = input feature) then b (O float32 LE), kept as the bytes that were
 * decrypted, so the record is written straight from the pending slot.
 */
#ifndef EDGE_HEAD_H
#define EDGE_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

/* version, package id, I, O, then the inference release (12 bytes) */
#define EDGE_MODEL_FIXED_SIZE	44
#define EDGE_MODEL_HEAD_OFF	(8 + EDGE_MODEL_FIXED_SIZE)

/*
 * What INFER may release of a model (manifest bytes 92..103, signed by the
 * model signer): EDGE_INFER_*, k for top-k, the rows it may answer per
 * model version (0: no budget) and a bound on |feature| (0: none).
 */
struct edge_infer_policy {
	uint8_t release;
	uint16_t top_k;
	uint32_t budget;
	float bound;
};

struct edge_model {
	bool present;
	uint64_t version;
	uint8_t package_id[16];
	uint32_t in;			/* I */
	uint32_t out;			/* O */
	struct edge_infer_policy infer;
	uint8_t *rec;			/* whole stored record */
	size_t rec_len;
	uint8_t *head;			/* rec + EDGE_MODEL_HEAD_OFF */
	size_t head_len;		/* 4 * (I*O + O) */
};

/*
 * Checks 1 <= I <= EDGE_MAX_HEAD_IN, 1 <= O <= EDGE_MAX_HEAD_OUT and
 * I*O + O <= EDGE_MAX_HEAD_PARAMS. Returns false otherwise.
 */
bool head_dims_ok(uint32_t in, uint32_t out);

/* Head size in bytes, 4 * (I*O + O), for dimensions head_dims_ok accepts. */
size_t head_size(uint32_t in, uint32_t out);

/*
 * Allocates an empty model with a zeroed head of the given dimensions; the
 * caller fills m->head (e.g. by decrypting into it).
 */
TEE_Result model_alloc(struct edge_model *m, uint64_t version,
		       const uint8_t package_id[16], uint32_t in,
		       uint32_t out, const struct edge_infer_policy *ip);

/*
 * Checks an inference release as the manifest parser does: a known release,
 * 1 <= k < O for top-k (0 otherwise), a finite bound >= 0.
 */
bool infer_policy_ok(const struct edge_infer_policy *ip, uint32_t out);

/* Wipes and frees the model. */
void model_free(struct edge_model *m);

/* Writes m as the stored model with one atomic object write. */
TEE_Result model_commit(const struct edge_model *m);

/* Reads the stored model; TEE_ERROR_ITEM_NOT_FOUND if there is none. */
TEE_Result model_load(struct edge_model *m);

/* Bytes of INFER's output for n rows under the model's release. */
uint64_t infer_out_size(const struct edge_model *m, uint32_t n);

/*
 * TEE_SUCCESS if every feature of the n rows is finite and within the
 * release's bound, TEE_ERROR_BAD_FORMAT otherwise. Reads x once per value.
 */
TEE_Result infer_check_features(const struct edge_model *m, uint32_t n,
				const uint8_t *x);

/*
 * features . W + b for a batch of n rows, released as the model's policy
 * says (scores, top-k labels or the label). x (n*I*4 bytes) and y
 * (infer_out_size bytes) may be shared memory: each input row is copied
 * into TA memory and checked again there before use (the normal world may
 * change it after infer_check_features), each output row is written once.
 * Sizes must have been checked by the caller.
 */
TEE_Result head_infer(const struct edge_model *m, uint32_t n,
		      const uint8_t *x, uint8_t *y);

#endif /* EDGE_HEAD_H */
