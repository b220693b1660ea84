/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Thin wrappers over the GlobalPlatform cryptographic operations the TA uses:
 * SHA-256 (hashed in pieces), Ed25519 over a 32-byte digest, X25519 key
 * agreement and AES-256-GCM with a 16-byte tag. Every function frees what it
 * allocates and wipes secret intermediates before returning.
 */
#ifndef EDGE_CRYPTO_H
#define EDGE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

#define EDGE_SHA256_SIZE	32
#define EDGE_AES_KEY_SIZE	32
#define EDGE_GCM_NONCE_SIZE	12
#define EDGE_GCM_TAG_SIZE	16

/* SHA-256 of (a, a_len) || (b, b_len); b may be NULL with b_len 0. */
TEE_Result edge_sha256_2(const void *a, size_t a_len, const void *b,
			 size_t b_len, uint8_t out[EDGE_SHA256_SIZE]);
TEE_Result edge_sha256(const void *data, size_t len,
		       uint8_t out[EDGE_SHA256_SIZE]);

/* key_id(pub) = first 16 bytes of SHA-256(pub). */
TEE_Result edge_key_id(const uint8_t pub[32], uint8_t id[16]);

/*
 * Pure Ed25519 verification of a 32-byte message (a digest) under a raw
 * public key. TEE_ERROR_SIGNATURE_INVALID if it does not verify.
 */
TEE_Result edge_ed25519_verify(const uint8_t pub[32],
			       const uint8_t digest[EDGE_SHA256_SIZE],
			       const uint8_t sig[64]);
/* Ed25519 signature of a 32-byte message with a key pair object. */
TEE_Result edge_ed25519_sign(TEE_ObjectHandle keypair,
			     const uint8_t digest[EDGE_SHA256_SIZE],
			     uint8_t sig[64]);

/* Z = X25519(private key of keypair, peer). */
TEE_Result edge_x25519(TEE_ObjectHandle keypair, const uint8_t peer[32],
		       uint8_t z[32]);

/*
 * A fresh X25519 key pair as raw bytes (the secure-aggregation keys are
 * Shamir-shared, so their private halves exist as bytes inside the TA).
 */
TEE_Result edge_x25519_generate(uint8_t priv[32], uint8_t pub[32]);

/* Z = X25519(priv, peer) for a raw key pair (priv, pub). */
TEE_Result edge_x25519_raw(const uint8_t priv[32], const uint8_t pub[32],
			   const uint8_t peer[32], uint8_t z[32]);

/* AES-256-GCM encryption with a 12-byte nonce; ct is pt_len bytes. */
TEE_Result edge_gcm_encrypt(const uint8_t key[EDGE_AES_KEY_SIZE],
			    const uint8_t nonce[EDGE_GCM_NONCE_SIZE],
			    const void *aad, size_t aad_len,
			    const void *pt, size_t pt_len, void *ct,
			    uint8_t tag[EDGE_GCM_TAG_SIZE]);

/*
 * AES-256-GCM decryption with a 12-byte nonce and a 16-byte tag. pt receives
 * ct_len bytes; on TEE_ERROR_MAC_INVALID (or any error) pt is wiped.
 */
TEE_Result edge_gcm_decrypt(const uint8_t key[EDGE_AES_KEY_SIZE],
			    const uint8_t nonce[EDGE_GCM_NONCE_SIZE],
			    const void *aad, size_t aad_len,
			    const void *ct, size_t ct_len,
			    const uint8_t tag[EDGE_GCM_TAG_SIZE], void *pt);

#endif /* EDGE_CRYPTO_H */
