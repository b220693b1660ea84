/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Distributed DP under secure aggregation (docs/privacy.md "Distributed
 * DP"): a device's released update, quantized for the masked sum, with its
 * share of the fleet's discrete Gaussian noise. Kairouz, Liu, Steinke, "The
 * Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
 * Aggregation" (ICML 2021): conditional randomized rounding onto the grid of
 * the secagg quantization (scale 2^s, so r = U 2^s grid steps per clip),
 * then N_Z(0, z^2 norm2_max) added to every word before masking. The sum of
 * n survivors carries N_Z noise of variance n z^2 norm2_max: an effective
 * noise multiplier sqrt(n) z on the rounded sensitivity sqrt(norm2_max).
 * edge/secagg/distributed_dp.py is the twin of the bounds.
 */
#ifndef EDGE_TA_NOISE_SHARE_H
#define EDGE_TA_NOISE_SHARE_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

/* Noise tail allowed for in the 32-bit headroom, in standard deviations of
 * the summed noise: a coordinate passes it with probability < 1e-32. */
#define NOISE_SHARE_TAIL_SIGMAS	12.0

/*
 * words[i] for x[i] (finite, |x[i]| <= clip, ||x|| <= clip): with z = 0 the
 * plain stochastic rounding of quantize_words (no noise); with z > 0
 * conditionally rounded (squared norm <= dgauss_norm2_bound(clip 2^s, n),
 * redrawn otherwise) plus a discrete Gaussian share each, mod 2^32.
 * EDGE_ERR_NOISE_SHARE_UNFIT if z's share is out of the sampler's range or
 * cohort sums with the noise tail could overflow a signed 32-bit word;
 * TEE_ERROR_BAD_PARAMETERS as quantize_words; TEE_ERROR_GENERIC if a
 * bounded loop ran out (probability < 2^-120). Nothing is written on error.
 */
TEE_Result noise_share_words(const double *x, size_t n, double clip,
			     uint32_t scale_log2, uint32_t cohort, float z,
			     uint32_t *words);

#endif
