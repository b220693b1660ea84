/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A clipped update as 32-bit words for secure aggregation: scaled by 2^k and
 * stochastically rounded (edge/secagg/quantize.py is the twin and says why
 * the sum of a cohort cannot overflow).
 */
#ifndef EDGE_TA_QUANTIZE_H
#define EDGE_TA_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

#define QUANTIZE_MAX_SCALE_LOG2	30

/*
 * words[i] = floor(x[i] * 2^scale_log2 + r[i] / 2^32) mod 2^32, i.e. x[i]
 * scaled and rounded up with probability equal to its fractional part, r[i]
 * uniform random words. TEE_ERROR_BAD_PARAMETERS if a coordinate is not
 * finite or lies outside [-clip, clip], or scale_log2 is out of range:
 * nothing is written then.
 */
TEE_Result quantize_words(const double *x, const uint32_t *r, size_t n,
			  double clip, uint32_t scale_log2, uint32_t *words);

#endif
