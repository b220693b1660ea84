// SPDX-License-Identifier: BSD-2-Clause
/*
 * Model record and head math (float32).
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "dpmath.h"
#include "head.h"
#include "storage.h"

bool head_dims_ok(uint32_t in, uint32_t out)
{
	if (in < 1 || in > EDGE_MAX_HEAD_IN || out < 1 ||
	    out > EDGE_MAX_HEAD_OUT)
		return false;
	/* Both factors are bounded above, so this product cannot overflow. */
	return (uint64_t)in * out + out <= EDGE_MAX_HEAD_PARAMS;
}

size_t head_size(uint32_t in, uint32_t out)
{
	return 4 * ((size_t)in * out + out);
}

void model_free(struct edge_model *m)
{
	if (m->rec) {
		TEE_MemFill(m->rec, 0, m->rec_len);
		TEE_Free(m->rec);
	}
	TEE_MemFill(m, 0, sizeof(*m));
}

bool infer_policy_ok(const struct edge_infer_policy *ip, uint32_t out)
{
	if (ip->release > EDGE_INFER_SCORES)
		return false;
	if (ip->release == EDGE_INFER_TOPK ?
	    ip->top_k < 1 || ip->top_k >= out : ip->top_k != 0)
		return false;
	/* By bits: finite and not negative (a NaN has no sign to trust). */
	return flt_finite(ip->bound) && !(flt_bits(ip->bound) >> 31);
}

static void infer_policy_get(struct edge_infer_policy *ip, const uint8_t *p)
{
	ip->release = p[0];
	ip->top_k = get_le16(p + 2);
	ip->budget = get_le32(p + 4);
	ip->bound = flt_from_bits(get_le32(p + 8));
}

static void model_set_fields(struct edge_model *m, uint64_t version,
			     const uint8_t package_id[16], uint32_t in,
			     uint32_t out)
{
	m->present = true;
	m->version = version;
	TEE_MemMove(m->package_id, package_id, 16);
	m->in = in;
	m->out = out;
	m->head = m->rec + EDGE_MODEL_HEAD_OFF;
	m->head_len = head_size(in, out);
}

TEE_Result model_alloc(struct edge_model *m, uint64_t version,
		       const uint8_t package_id[16], uint32_t in,
		       uint32_t out, const struct edge_infer_policy *ip)
{
	uint8_t *p = NULL;
	size_t len = 0;

	TEE_MemFill(m, 0, sizeof(*m));
	if (!head_dims_ok(in, out) || !infer_policy_ok(ip, out))
		return TEE_ERROR_BAD_PARAMETERS;
	len = EDGE_MODEL_HEAD_OFF + head_size(in, out);
	m->rec = TEE_Malloc(len, TEE_MALLOC_FILL_ZERO);
	if (!m->rec)
		return TEE_ERROR_OUT_OF_MEMORY;
	m->rec_len = len;
	storage_hdr_init(m->rec, EDGE_TAG_MODEL);
	p = m->rec + EDGE_STORE_HDR_SIZE;
	put_le64(p, version);
	TEE_MemMove(p + 8, package_id, 16);
	put_le32(p + 24, in);
	put_le32(p + 28, out);
	p[32] = ip->release;
	put_le16(p + 34, ip->top_k);
	put_le32(p + 36, ip->budget);
	put_le32(p + 40, flt_bits(ip->bound));
	model_set_fields(m, version, package_id, in, out);
	m->infer = *ip;
	return TEE_SUCCESS;
}

TEE_Result model_commit(const struct edge_model *m)
{
	if (!m->present || !m->rec)
		return TEE_ERROR_BAD_STATE;
	return storage_put(EDGE_OBJ_MODEL, m->rec, m->rec_len, true);
}

TEE_Result model_load(struct edge_model *m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	const uint8_t *p = NULL;
	uint64_t version = 0;
	uint32_t in = 0;
	uint32_t out = 0;
	TEE_Result res = TEE_ERROR_GENERIC;

	TEE_MemFill(m, 0, sizeof(*m));
	res = storage_get(EDGE_OBJ_MODEL, EDGE_TAG_MODEL,
			  EDGE_MODEL_FIXED_SIZE + 8,
			  EDGE_MODEL_FIXED_SIZE + 4 * EDGE_MAX_HEAD_PARAMS,
			  &buf, &len);
	if (res)
		return res;
	p = buf + EDGE_STORE_HDR_SIZE;
	version = get_le64(p);
	in = get_le32(p + 24);
	out = get_le32(p + 28);
	infer_policy_get(&m->infer, p + 32);
	if (!version || !head_dims_ok(in, out) ||
	    !infer_policy_ok(&m->infer, out) || p[33] ||
	    len != EDGE_MODEL_HEAD_OFF + head_size(in, out)) {
		EMSG("stored model record is inconsistent");
		TEE_MemFill(buf, 0, len);
		TEE_Free(buf);
		return TEE_ERROR_CORRUPT_OBJECT;
	}
	m->rec = buf;
	m->rec_len = len;
	model_set_fields(m, version, p + 8, in, out);
	return TEE_SUCCESS;
}

static float f32_get(const uint8_t *p)
{
	return flt_from_bits(get_le32(p));
}

static void f32_put(uint8_t *p, float f)
{
	put_le32(p, flt_bits(f));
}

uint64_t infer_out_size(const struct edge_model *m, uint32_t n)
{
	switch (m->infer.release) {
	case EDGE_INFER_SCORES:
		return (uint64_t)n * m->out * 4;
	case EDGE_INFER_TOPK:
		return (uint64_t)n * m->infer.top_k * 4;
	case EDGE_INFER_LABEL:
		return (uint64_t)n * 4;
	default:
		return 0;
	}
}

/* A plausible feature: finite, and within the bound when there is one. */
static bool feature_ok(const struct edge_model *m, float x)
{
	if (!flt_finite(x))
		return false;
	if (!(flt_bits(m->infer.bound) & 0x7fffffffu))
		return true;
	return (x < 0 ? -x : x) <= m->infer.bound;
}

TEE_Result infer_check_features(const struct edge_model *m, uint32_t n,
				const uint8_t *x)
{
	uint64_t count = (uint64_t)n * m->in;

	for (uint64_t i = 0; i < count; i++)
		if (!feature_ok(m, f32_get(x + 4 * i)))
			return TEE_ERROR_BAD_FORMAT;
	return TEE_SUCCESS;
}

/* Is score a ranked above score b? NaN ranks last; ties keep the lower index. */
static bool ranks_above(float a, float b)
{
	if (!flt_finite(b) && (flt_bits(b) & 0x007fffffu))
		return !(!flt_finite(a) && (flt_bits(a) & 0x007fffffu));
	return a > b;
}

/* Writes the k best labels of acc[0..out) to dst as u32 LE, best first. */
static void put_top_labels(uint8_t *dst, const float *acc, size_t out,
			   size_t k, uint8_t *taken)
{
	size_t best = 0;

	TEE_MemFill(taken, 0, out);
	for (size_t r = 0; r < k; r++) {
		best = out;
		for (size_t j = 0; j < out; j++)
			if (!taken[j] && (best == out ||
					  ranks_above(acc[j], acc[best])))
				best = j;
		taken[best] = 1;
		put_le32(dst + 4 * r, (uint32_t)best);
	}
}

TEE_Result head_infer(const struct edge_model *m, uint32_t n,
		      const uint8_t *x, uint8_t *y)
{
	const size_t in = m->in;
	const size_t out = m->out;
	const uint8_t *w = m->head;
	const uint8_t *b = m->head + 4 * in * out;
	const size_t k = m->infer.release == EDGE_INFER_SCORES ? out :
			 m->infer.release == EDGE_INFER_TOPK ? m->infer.top_k :
			 1;
	uint8_t *row = NULL;	/* input row copy, then output row */
	uint8_t *taken = NULL;
	float *xf = NULL;
	float *acc = NULL;
	size_t row_bytes = 4 * (in > out ? in : out);
	size_t r = 0;
	size_t i = 0;
	size_t j = 0;
	float xi = 0;
	const uint8_t *wi = NULL;
	TEE_Result res = TEE_ERROR_OUT_OF_MEMORY;

	if (!m->present)
		return EDGE_ERR_NO_MODEL;
	if (m->infer.release == EDGE_INFER_NONE)
		return EDGE_ERR_INFER_DISABLED;
	row = TEE_Malloc(row_bytes, TEE_MALLOC_FILL_ZERO);
	taken = TEE_Malloc(out, TEE_MALLOC_FILL_ZERO);
	xf = TEE_Malloc(in * sizeof(float), TEE_MALLOC_FILL_ZERO);
	acc = TEE_Malloc(out * sizeof(float), TEE_MALLOC_FILL_ZERO);
	if (!row || !taken || !xf || !acc)
		goto out;

	for (r = 0; r < n; r++) {
		/* One fetch of the caller's row into TA memory, checked there. */
		TEE_MemMove(row, x + r * in * 4, in * 4);
		for (i = 0; i < in; i++) {
			xf[i] = f32_get(row + 4 * i);
			if (!feature_ok(m, xf[i])) {
				res = TEE_ERROR_BAD_FORMAT;
				goto out;
			}
		}
		for (j = 0; j < out; j++)
			acc[j] = f32_get(b + 4 * j);
		for (i = 0; i < in; i++) {
			xi = xf[i];
			wi = w + 4 * i * out;
			for (j = 0; j < out; j++)
				acc[j] += xi * f32_get(wi + 4 * j);
		}
		if (m->infer.release == EDGE_INFER_SCORES) {
			for (j = 0; j < out; j++)
				f32_put(row + 4 * j, acc[j]);
		} else {
			put_top_labels(row, acc, out, k, taken);
		}
		TEE_MemMove(y + r * k * 4, row, k * 4);
	}
	res = TEE_SUCCESS;
out:
	/* Features and scores are the caller's data: do not leave them. */
	if (row) {
		TEE_MemFill(row, 0, row_bytes);
		TEE_Free(row);
	}
	TEE_Free(taken);
	if (xf) {
		TEE_MemFill(xf, 0, in * sizeof(float));
		TEE_Free(xf);
	}
	if (acc) {
		TEE_MemFill(acc, 0, out * sizeof(float));
		TEE_Free(acc);
	}
	return res;
}
