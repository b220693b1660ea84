/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Elementary functions for DP-SGD inside the TA. OP-TEE's TA dev kit ships
 * no libm, and the compiler may turn a math builtin into a libm call (errno
 * handling), so the TA carries its own. Accuracy, checked against the host
 * libm by tests/c/ta_test_dpmath.c:
 *   edge_log  x in (0, inf): within 2 ulp (argument reduction to
 *             [sqrt(1/2), sqrt(2)), then an odd atanh series);
 *   edge_exp  x in [-745, 709]: within 2 ulp relative (reduction by ln 2,
 *             then a degree-13 Taylor polynomial);
 *   edge_sqrt x in [0, inf): within 1 ulp (Newton's iteration on a
 *             reduced argument).
 * Special inputs: edge_log(0) = -inf, edge_log(x < 0 or NaN) = NaN,
 * edge_exp(x > 709.78) = +inf, edge_exp(x < -745.2) = 0, edge_sqrt(x < 0)
 * = NaN; infinities and NaN pass through as IEEE-754 would.
 */
#ifndef EDGE_DPMATH_H
#define EDGE_DPMATH_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bytes.h"

double edge_log(double x);
double edge_exp(double x);
double edge_sqrt(double x);

static inline uint64_t dbl_bits(double d)
{
	uint64_t u = 0;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static inline double dbl_from_bits(uint64_t u)
{
	double d = 0;

	memcpy(&d, &u, sizeof(d));
	return d;
}

static inline uint32_t flt_bits(float f)
{
	uint32_t u = 0;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static inline float flt_from_bits(uint32_t u)
{
	float f = 0;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* IEEE-754 little-endian fields of the signed artefacts. */
static inline float rd_f32(struct edge_rd *r)
{
	return flt_from_bits(rd_u32(r));
}

static inline double rd_f64(struct edge_rd *r)
{
	return dbl_from_bits(rd_u64(r));
}

static inline float get_f32(const uint8_t *p)
{
	return flt_from_bits(get_le32(p));
}

static inline double get_f64(const uint8_t *p)
{
	return dbl_from_bits(get_le64(p));
}

/* By bit pattern: -Wfloat-equal forbids comparing floats for equality. */
static inline bool flt_finite(float f)
{
	return (flt_bits(f) & 0x7f800000u) != 0x7f800000u;
}

static inline bool dbl_finite(double d)
{
	return (dbl_bits(d) & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
}

#endif /* EDGE_DPMATH_H */
