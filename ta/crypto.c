// SPDX-License-Identifier: BSD-2-Clause
/*
 * GlobalPlatform cryptographic operations used by the edge TA. Only
 * algorithms, object types and calls OP-TEE 4.x provides are used.
 */
#include <tee_internal_api.h>

#include "crypto.h"
#include "ed25519_strict.h"

/* Large inputs are fed to the digest in pieces of this size. */
#define DIGEST_PIECE	(64 * 1024)

static void digest_update_pieces(TEE_OperationHandle op, const uint8_t *p,
				 size_t len)
{
	size_t n = 0;

	while (len) {
		n = len < DIGEST_PIECE ? len : DIGEST_PIECE;
		TEE_DigestUpdate(op, p, n);
		p += n;
		len -= n;
	}
}

TEE_Result edge_sha256_2(const void *a, size_t a_len, const void *b,
			 size_t b_len, uint8_t out[EDGE_SHA256_SIZE])
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Result res = TEE_ERROR_GENERIC;
	size_t out_len = EDGE_SHA256_SIZE;

	res = TEE_AllocateOperation(&op, TEE_ALG_SHA256, TEE_MODE_DIGEST, 0);
	if (res)
		return res;
	digest_update_pieces(op, a, a_len);
	if (b_len)
		digest_update_pieces(op, b, b_len);
	res = TEE_DigestDoFinal(op, NULL, 0, out, &out_len);
	if (!res && out_len != EDGE_SHA256_SIZE)
		res = TEE_ERROR_GENERIC;
	TEE_FreeOperation(op);
	return res;
}

TEE_Result edge_sha256(const void *data, size_t len,
		       uint8_t out[EDGE_SHA256_SIZE])
{
	return edge_sha256_2(data, len, NULL, 0, out);
}

TEE_Result edge_key_id(const uint8_t pub[32], uint8_t id[16])
{
	uint8_t h[EDGE_SHA256_SIZE] = { 0 };
	TEE_Result res = edge_sha256(pub, 32, h);

	if (res)
		return res;
	TEE_MemMove(id, h, 16);
	return TEE_SUCCESS;
}

TEE_Result edge_ed25519_verify(const uint8_t pub[32],
			       const uint8_t digest[EDGE_SHA256_SIZE],
			       const uint8_t sig[64])
{
	TEE_ObjectHandle key = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Attribute attr = { };
	TEE_Result res = TEE_ERROR_GENERIC;

	/* Strict verification: GP's (RFC 8032's) lets small-order keys and R forge. */
	if (ed25519_check_pub(pub))
		return TEE_ERROR_SIGNATURE_INVALID;
	res = ed25519_check_sig(sig);
	if (res)
		return res;
	res = TEE_AllocateTransientObject(TEE_TYPE_ED25519_PUBLIC_KEY, 256,
					  &key);
	if (res)
		return res;
	TEE_InitRefAttribute(&attr, TEE_ATTR_ED25519_PUBLIC_VALUE, pub, 32);
	res = TEE_PopulateTransientObject(key, &attr, 1);
	if (res)
		goto out;
	res = TEE_AllocateOperation(&op, TEE_ALG_ED25519, TEE_MODE_VERIFY,
				    256);
	if (res)
		goto out;
	res = TEE_SetOperationKey(op, key);
	if (res)
		goto out;
	res = TEE_AsymmetricVerifyDigest(op, NULL, 0, digest,
					 EDGE_SHA256_SIZE, sig, 64);
	if (res != TEE_SUCCESS)
		res = TEE_ERROR_SIGNATURE_INVALID;
out:
	if (op)
		TEE_FreeOperation(op);
	TEE_FreeTransientObject(key);
	return res;
}

TEE_Result edge_ed25519_sign(TEE_ObjectHandle keypair,
			     const uint8_t digest[EDGE_SHA256_SIZE],
			     uint8_t sig[64])
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Result res = TEE_ERROR_GENERIC;
	size_t sig_len = 64;

	res = TEE_AllocateOperation(&op, TEE_ALG_ED25519, TEE_MODE_SIGN, 256);
	if (res)
		return res;
	res = TEE_SetOperationKey(op, keypair);
	if (!res)
		res = TEE_AsymmetricSignDigest(op, NULL, 0, digest,
					       EDGE_SHA256_SIZE, sig, &sig_len);
	if (!res && sig_len != 64)
		res = TEE_ERROR_GENERIC;
	TEE_FreeOperation(op);
	return res;
}

TEE_Result edge_x25519(TEE_ObjectHandle keypair, const uint8_t peer[32],
		       uint8_t z[32])
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_ObjectHandle secret = TEE_HANDLE_NULL;
	TEE_Attribute attr = { };
	TEE_Result res = TEE_ERROR_GENERIC;
	size_t z_len = 32;
	uint8_t acc = 0;
	size_t i = 0;

	res = TEE_AllocateOperation(&op, TEE_ALG_X25519, TEE_MODE_DERIVE, 256);
	if (res)
		return res;
	res = TEE_SetOperationKey(op, keypair);
	if (res)
		goto out;
	res = TEE_AllocateTransientObject(TEE_TYPE_GENERIC_SECRET, 256,
					  &secret);
	if (res)
		goto out;
	TEE_InitRefAttribute(&attr, TEE_ATTR_X25519_PUBLIC_VALUE, peer, 32);
	TEE_DeriveKey(op, &attr, 1, secret);
	res = TEE_GetObjectBufferAttribute(secret, TEE_ATTR_SECRET_VALUE, z,
					   &z_len);
	if (!res && z_len != 32)
		res = TEE_ERROR_GENERIC;
	if (!res) {
		/* A low-order peer point gives the all-zero secret. */
		for (i = 0; i < 32; i++)
			acc |= z[i];
		if (!acc)
			res = TEE_ERROR_SECURITY;
	}
	if (res)
		TEE_MemFill(z, 0, 32);
out:
	if (secret)
		TEE_FreeTransientObject(secret);
	TEE_FreeOperation(op);
	return res;
}

TEE_Result edge_gcm_decrypt(const uint8_t key[EDGE_AES_KEY_SIZE],
			    const uint8_t nonce[EDGE_GCM_NONCE_SIZE],
			    const void *aad, size_t aad_len,
			    const void *ct, size_t ct_len,
			    const uint8_t tag[EDGE_GCM_TAG_SIZE], void *pt)
{
	TEE_ObjectHandle kobj = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Attribute attr = { };
	TEE_Result res = TEE_ERROR_GENERIC;
	size_t out_len = ct_len;

	res = TEE_AllocateTransientObject(TEE_TYPE_AES, 256, &kobj);
	if (res)
		return res;
	TEE_InitRefAttribute(&attr, TEE_ATTR_SECRET_VALUE, key,
			     EDGE_AES_KEY_SIZE);
	res = TEE_PopulateTransientObject(kobj, &attr, 1);
	if (res)
		goto out;
	res = TEE_AllocateOperation(&op, TEE_ALG_AES_GCM, TEE_MODE_DECRYPT,
				    256);
	if (res)
		goto out;
	res = TEE_SetOperationKey(op, kobj);
	if (res)
		goto out;
	res = TEE_AEInit(op, nonce, EDGE_GCM_NONCE_SIZE,
			 EDGE_GCM_TAG_SIZE * 8, aad_len, ct_len);
	if (res)
		goto out;
	if (aad_len)
		TEE_AEUpdateAAD(op, aad, aad_len);
	/* One final call: no plaintext is produced before the tag check. */
	res = TEE_AEDecryptFinal(op, ct, ct_len, pt, &out_len, (void *)tag,
				 EDGE_GCM_TAG_SIZE);
	if (!res && out_len != ct_len)
		res = TEE_ERROR_GENERIC;
out:
	if (res)
		TEE_MemFill(pt, 0, ct_len);
	if (op)
		TEE_FreeOperation(op);
	/* Freeing a transient object clears its key material. */
	TEE_FreeTransientObject(kobj);
	return res;
}

TEE_Result edge_x25519_generate(uint8_t priv[32], uint8_t pub[32])
{
	TEE_ObjectHandle key = TEE_HANDLE_NULL;
	size_t priv_len = 32;
	size_t pub_len = 32;
	TEE_Result res = TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR,
						     256, &key);

	if (res)
		return res;
	res = TEE_GenerateKey(key, 256, NULL, 0);
	if (!res)
		res = TEE_GetObjectBufferAttribute(key,
						   TEE_ATTR_X25519_PRIVATE_VALUE,
						   priv, &priv_len);
	if (!res)
		res = TEE_GetObjectBufferAttribute(key,
						   TEE_ATTR_X25519_PUBLIC_VALUE,
						   pub, &pub_len);
	if (!res && (priv_len != 32 || pub_len != 32))
		res = TEE_ERROR_GENERIC;
	if (res)
		TEE_MemFill(priv, 0, 32);
	TEE_FreeTransientObject(key);
	return res;
}

TEE_Result edge_x25519_raw(const uint8_t priv[32], const uint8_t pub[32],
			   const uint8_t peer[32], uint8_t z[32])
{
	TEE_ObjectHandle key = TEE_HANDLE_NULL;
	TEE_Attribute attrs[2] = { };
	TEE_Result res = TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR,
						     256, &key);

	if (res)
		return res;
	TEE_InitRefAttribute(&attrs[0], TEE_ATTR_X25519_PUBLIC_VALUE, pub, 32);
	TEE_InitRefAttribute(&attrs[1], TEE_ATTR_X25519_PRIVATE_VALUE, priv,
			     32);
	res = TEE_PopulateTransientObject(key, attrs, 2);
	if (!res)
		res = edge_x25519(key, peer, z);
	TEE_FreeTransientObject(key);
	return res;
}

TEE_Result edge_gcm_encrypt(const uint8_t key[EDGE_AES_KEY_SIZE],
			    const uint8_t nonce[EDGE_GCM_NONCE_SIZE],
			    const void *aad, size_t aad_len,
			    const void *pt, size_t pt_len, void *ct,
			    uint8_t tag[EDGE_GCM_TAG_SIZE])
{
	TEE_ObjectHandle kobj = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Attribute attr = { };
	TEE_Result res = TEE_ERROR_GENERIC;
	size_t out_len = pt_len;
	size_t tag_len = EDGE_GCM_TAG_SIZE;

	res = TEE_AllocateTransientObject(TEE_TYPE_AES, 256, &kobj);
	if (res)
		return res;
	TEE_InitRefAttribute(&attr, TEE_ATTR_SECRET_VALUE, key,
			     EDGE_AES_KEY_SIZE);
	res = TEE_PopulateTransientObject(kobj, &attr, 1);
	if (!res)
		res = TEE_AllocateOperation(&op, TEE_ALG_AES_GCM,
					    TEE_MODE_ENCRYPT, 256);
	if (!res)
		res = TEE_SetOperationKey(op, kobj);
	if (!res)
		res = TEE_AEInit(op, nonce, EDGE_GCM_NONCE_SIZE,
				 EDGE_GCM_TAG_SIZE * 8, aad_len, pt_len);
	if (!res) {
		if (aad_len)
			TEE_AEUpdateAAD(op, aad, aad_len);
		res = TEE_AEEncryptFinal(op, pt, pt_len, ct, &out_len, tag,
					 &tag_len);
	}
	if (!res && (out_len != pt_len || tag_len != EDGE_GCM_TAG_SIZE))
		res = TEE_ERROR_GENERIC;
	if (op)
		TEE_FreeOperation(op);
	TEE_FreeTransientObject(kobj);
	return res;
}
