/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Little-endian readers and writers over (pointer, length) with explicit
 * bounds, and a constant-time comparison. Every read from an artefact goes
 * through a struct edge_rd cursor: a read past the end sets the cursor's
 * error flag and yields zeros, so a parser checks the flag once at the end of
 * a fixed-layout section and never reads out of bounds.
 */
#ifndef EDGE_BYTES_H
#define EDGE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
	       ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* A bounded read cursor over bytes the TA owns. */
struct edge_rd {
	const uint8_t *buf;
	size_t len;
	size_t off;
	bool err;
};

static inline void rd_init(struct edge_rd *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
	r->err = false;
}

static inline size_t rd_left(const struct edge_rd *r)
{
	return r->err ? 0 : r->len - r->off;
}

/* Returns a pointer to the next n bytes, or NULL (and sets err) if short. */
static inline const uint8_t *rd_bytes(struct edge_rd *r, size_t n)
{
	const uint8_t *p = NULL;

	if (r->err || n > r->len - r->off) {
		r->err = true;
		return NULL;
	}
	p = r->buf + r->off;
	r->off += n;
	return p;
}

static inline uint8_t rd_u8(struct edge_rd *r)
{
	const uint8_t *p = rd_bytes(r, 1);

	return p ? p[0] : 0;
}

static inline uint16_t rd_u16(struct edge_rd *r)
{
	const uint8_t *p = rd_bytes(r, 2);

	return p ? get_le16(p) : 0;
}

static inline uint32_t rd_u32(struct edge_rd *r)
{
	const uint8_t *p = rd_bytes(r, 4);

	return p ? get_le32(p) : 0;
}

static inline uint64_t rd_u64(struct edge_rd *r)
{
	const uint8_t *p = rd_bytes(r, 8);

	return p ? get_le64(p) : 0;
}

/* True if the next n bytes are all zero (reserved fields); consumes them. */
static inline bool rd_zeros(struct edge_rd *r, size_t n)
{
	const uint8_t *p = rd_bytes(r, n);
	uint8_t acc = 0;
	size_t i = 0;

	if (!p)
		return false;
	for (i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* True if the n bytes at p are all zero (reserved fields). */
static inline bool zeros_at(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	size_t i = 0;

	for (i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/*
 * Constant-time comparison: 0 if the n bytes are equal, 1 otherwise. The
 * running time depends on n only.
 */
static inline int ct_memcmp(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *pa = (const volatile uint8_t *)a;
	const volatile uint8_t *pb = (const volatile uint8_t *)b;
	uint8_t acc = 0;
	size_t i = 0;

	for (i = 0; i < n; i++)
		acc |= (uint8_t)(pa[i] ^ pb[i]);
	return acc != 0;
}

#endif /* EDGE_BYTES_H */
