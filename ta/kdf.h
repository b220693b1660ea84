/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * HKDF-SHA256 (RFC 5869) built on TEE_ALG_HMAC_SHA256 MAC operations, which
 * every OP-TEE version provides (no dependency on a TEE-side HKDF algorithm).
 * Both the salt and the pseudo-random key become HMAC keys, so the salt must
 * be 24..128 bytes (the HMAC-SHA256 key sizes GlobalPlatform allows); the
 * edge key schedule only uses 32- and 64-byte salts.
 */
#ifndef EDGE_KDF_H
#define EDGE_KDF_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

#define EDGE_HKDF_MIN_SALT	24
#define EDGE_HKDF_MAX_SALT	128
#define EDGE_HKDF_MAX_OUT	(255 * 32)

/* HMAC-SHA256(key, msg1 || msg2) into mac[32]; msg2 may be NULL/0. */
TEE_Result edge_hmac_sha256(const void *key, size_t key_len,
			    const void *msg1, size_t msg1_len,
			    const void *msg2, size_t msg2_len,
			    uint8_t mac[32]);

/*
 * okm = HKDF-SHA256(ikm, salt, info, out_len). The info string is the
 * concatenation of info1 and info2 (a label and a binding), as the key
 * schedule writes it. TEE_ERROR_BAD_PARAMETERS for unsupported sizes.
 */
TEE_Result edge_hkdf_sha256(const void *ikm, size_t ikm_len,
			    const void *salt, size_t salt_len,
			    const void *info1, size_t info1_len,
			    const void *info2, size_t info2_len,
			    void *okm, size_t out_len);

#endif /* EDGE_KDF_H */
