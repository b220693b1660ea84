/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * DP-SGD on the linear head (docs/formats.md "Training and sealing").
 * Parameters theta are float32, as the head is; logits, softmax, norms, the
 * clipped-gradient sum and the update are computed in double. Every example
 * row is copied into TA memory each time it is used, because the features
 * may stay in shared memory the normal world can change during the call;
 * a row that is not finite refuses the round (nothing is spent).
 */
#ifndef EDGE_DPSGD_H
#define EDGE_DPSGD_H

#include <stdint.h>
#include <tee_internal_api.h>

#include "gauss.h"

struct dpsgd_cfg {
	uint32_t in;			/* I */
	uint32_t out;			/* O */
	uint32_t n;			/* examples */
	uint64_t steps;			/* T */
	uint8_t sampling;		/* EDGE_SAMPLING_* */
	double q;			/* Poisson rate */
	uint32_t batch;			/* B, fixed-size sampling */
	double clip;			/* C */
	double sigma;			/* noise multiplier */
	double lr;			/* eta */
};

/*
 * Runs cfg->steps steps from theta0 (the head, P = I*O + O float32 LE) on
 * features (n*I float32 LE, possibly shared) and labels (TA memory, each
 * < O, checked by the caller). On success delta[0..P) = theta_T - theta0.
 * TEE_ERROR_BAD_PARAMETERS for a non-finite feature, TEE_ERROR_OVERFLOW if
 * the parameters left the float range. All working memory is wiped.
 */
TEE_Result dpsgd_run(const struct dpsgd_cfg *cfg, const uint8_t *theta0,
		     const uint8_t *features, const uint32_t *labels,
		     struct edge_rng *rng, double *delta);

#endif /* EDGE_DPSGD_H */
