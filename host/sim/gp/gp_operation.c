// SPDX-License-Identifier: BSD-2-Clause
/*
 * Simulated GP Internal Core API: cryptographic operations over OpenSSL 3
 * (SHA-256, HMAC-SHA256, AES-CTR, AES-GCM, Ed25519, X25519).
 *
 * State checks follow OP-TEE 4.x's libutee: what libutee turns into a panic
 * panics here too, what it returns is returned.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/proverr.h>

#include "gp_internal.h"

/* GP operation classes (TEE_OPERATION_*). */
#define OP_CLASS_CIPHER		1
#define OP_CLASS_MAC		3
#define OP_CLASS_AE		4
#define OP_CLASS_DIGEST		5
#define OP_CLASS_ASYM_SIGN	7
#define OP_CLASS_KEY_DERIVE	8

#define OP_STATE_INITIAL	0
#define OP_STATE_ACTIVE		1

#define SHA256_LEN 32

struct __TEE_OperationHandle {
	uint32_t algorithm;
	uint32_t mode;
	uint32_t op_class;
	uint32_t max_key_size;
	uint32_t handle_state; /* GP_HANDLE_FLAG_KEY_SET, _INITIALIZED */
	uint32_t op_state;     /* OP_STATE_* */
	uint32_t req_usage;
	uint32_t key_type;
	struct gp_key key;     /* private copy, wiped on change and free */
	EVP_MD_CTX *md;
	EVP_MAC_CTX *mac;
	EVP_CIPHER_CTX *cipher;
	EVP_PKEY *pkey;
	size_t tag_len;        /* AE tag length in bytes */
	bool ae_spent;         /* a failed AEDecryptFinal consumed the context */
};

static TEE_OperationHandle op_get(TEE_OperationHandle h)
{
	if (!gp_handle_live(h, GP_HANDLE_OPERATION))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "invalid operation handle %p", (void *)h);
	return h;
}

static void op_require_class(TEE_OperationHandle op, uint32_t op_class,
			     const char *func)
{
	if (op->op_class != op_class)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "%s on an operation of algorithm 0x%08x", func,
			 (unsigned int)op->algorithm);
}

static void op_drop_key(TEE_OperationHandle op)
{
	gp_key_clear(&op->key);
	EVP_PKEY_free(op->pkey);
	op->pkey = NULL;
	op->handle_state &= ~GP_HANDLE_FLAG_KEY_SET;
}

static void op_reset_state(TEE_OperationHandle op)
{
	op->op_state = OP_STATE_INITIAL;
	op->ae_spent = false;
	if (op->op_class == OP_CLASS_DIGEST) {
		if (EVP_DigestInit_ex(op->md, EVP_sha256(), NULL) != 1)
			GP_PANIC(TEE_ERROR_GENERIC, "digest init failed");
		op->handle_state |= TEE_HANDLE_FLAG_INITIALIZED;
	} else {
		op->handle_state &= ~TEE_HANDLE_FLAG_INITIALIZED;
	}
}

static void op_free(TEE_OperationHandle op)
{
	op_drop_key(op);
	EVP_MD_CTX_free(op->md);
	EVP_MAC_CTX_free(op->mac);
	EVP_CIPHER_CTX_free(op->cipher);
	OPENSSL_cleanse(op, sizeof(*op));
	free(op);
}

TEE_Result TEE_AllocateOperation(TEE_OperationHandle *operation,
				 uint32_t algorithm, uint32_t mode,
				 uint32_t maxKeySize)
{
	const struct gp_type_props *kp = NULL;
	TEE_OperationHandle op;
	bool ok;

	if (!operation)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL operation pointer");

	op = calloc(1, sizeof(*op));
	if (!op)
		return TEE_ERROR_OUT_OF_MEMORY;
	op->algorithm = algorithm;
	op->mode = mode;
	op->max_key_size = maxKeySize;

	switch (algorithm) {
	case TEE_ALG_SHA256:
		if (mode != TEE_MODE_DIGEST)
			goto not_supported;
		op->op_class = OP_CLASS_DIGEST;
		break;
	case TEE_ALG_HMAC_SHA256:
		if (mode != TEE_MODE_MAC)
			goto not_supported;
		op->op_class = OP_CLASS_MAC;
		op->req_usage = TEE_USAGE_MAC;
		op->key_type = TEE_TYPE_HMAC_SHA256;
		break;
	case TEE_ALG_AES_CTR:
	case TEE_ALG_AES_GCM:
		/* CTR is its own inverse; GP still asks for a direction. */
		if (mode == TEE_MODE_ENCRYPT)
			op->req_usage = TEE_USAGE_ENCRYPT;
		else if (mode == TEE_MODE_DECRYPT)
			op->req_usage = TEE_USAGE_DECRYPT;
		else
			goto not_supported;
		op->op_class = algorithm == TEE_ALG_AES_CTR ? OP_CLASS_CIPHER
							    : OP_CLASS_AE;
		op->key_type = TEE_TYPE_AES;
		break;
	case TEE_ALG_ED25519:
		if (maxKeySize != 256)
			goto not_supported;
		if (mode == TEE_MODE_SIGN) {
			op->req_usage = TEE_USAGE_SIGN;
			op->key_type = TEE_TYPE_ED25519_KEYPAIR;
		} else if (mode == TEE_MODE_VERIFY) {
			op->req_usage = TEE_USAGE_VERIFY;
			op->key_type = TEE_TYPE_ED25519_PUBLIC_KEY;
		} else {
			goto not_supported;
		}
		op->op_class = OP_CLASS_ASYM_SIGN;
		break;
	case TEE_ALG_X25519:
		if (maxKeySize != 256 || mode != TEE_MODE_DERIVE)
			goto not_supported;
		op->op_class = OP_CLASS_KEY_DERIVE;
		op->req_usage = TEE_USAGE_DERIVE;
		op->key_type = TEE_TYPE_X25519_KEYPAIR;
		break;
	default:
		goto not_supported;
	}

	/* OP-TEE sizes the operation's key object by maxKeySize. */
	if (op->key_type) {
		kp = gp_type_props(op->key_type);
		if (!kp || maxKeySize % kp->quanta || maxKeySize < kp->min_bits ||
		    maxKeySize > kp->max_bits)
			goto not_supported;
	}

	switch (op->op_class) {
	case OP_CLASS_DIGEST:
		op->md = EVP_MD_CTX_new();
		ok = op->md != NULL;
		break;
	case OP_CLASS_MAC: {
		EVP_MAC *mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);

		op->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
		EVP_MAC_free(mac);
		ok = op->mac != NULL;
		break;
	}
	case OP_CLASS_CIPHER:
	case OP_CLASS_AE:
		op->cipher = EVP_CIPHER_CTX_new();
		ok = op->cipher != NULL;
		break;
	default:
		ok = true;
		break;
	}
	if (!ok || !gp_handle_add(op, GP_HANDLE_OPERATION)) {
		op_free(op);
		return TEE_ERROR_OUT_OF_MEMORY;
	}
	if (op->op_class == OP_CLASS_DIGEST) {
		op->handle_state |= GP_HANDLE_FLAG_KEY_SET;
		op_reset_state(op);
	}
	*operation = op;
	return TEE_SUCCESS;

not_supported:
	free(op);
	return TEE_ERROR_NOT_SUPPORTED;
}

void TEE_FreeOperation(TEE_OperationHandle operation)
{
	if (operation == TEE_HANDLE_NULL)
		return;
	op_get(operation);
	gp_handle_remove(operation);
	op_free(operation);
}

void TEE_ResetOperation(TEE_OperationHandle operation)
{
	TEE_OperationHandle op = op_get(operation);

	if (!(op->handle_state & GP_HANDLE_FLAG_KEY_SET))
		GP_PANIC(TEE_ERROR_BAD_STATE, "reset of an operation with no key");
	op_reset_state(op);
}

TEE_Result TEE_SetOperationKey(TEE_OperationHandle operation,
			       TEE_ObjectHandle key)
{
	TEE_OperationHandle op = op_get(operation);
	const struct gp_key *k;
	bool type_ok;

	if (op->handle_state & TEE_HANDLE_FLAG_INITIALIZED)
		GP_PANIC(TEE_ERROR_BAD_STATE,
			 "TEE_SetOperationKey on an initialised operation");

	if (key == TEE_HANDLE_NULL) {
		op_drop_key(op);
		if (op->op_state != OP_STATE_INITIAL)
			op_reset_state(op);
		return TEE_SUCCESS;
	}

	if (op->op_class == OP_CLASS_DIGEST)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "digest operations take no key");
	k = gp_object_key(gp_object_get(key));
	if (!k->initialized)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "key object not initialised");

	type_ok = k->type == op->key_type;
	/* Verifying with a key pair uses its public half (GP allows both). */
	if (op->algorithm == TEE_ALG_ED25519 && op->mode == TEE_MODE_VERIFY &&
	    k->type == TEE_TYPE_ED25519_KEYPAIR)
		type_ok = true;
	if (!type_ok)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "key type 0x%08x does not fit algorithm 0x%08x",
			 (unsigned int)k->type, (unsigned int)op->algorithm);
	if ((k->usage & op->req_usage) != op->req_usage)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "key usage 0x%08x lacks 0x%08x",
			 (unsigned int)k->usage, (unsigned int)op->req_usage);
	if (k->obj_size > op->max_key_size)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "%u-bit key exceeds the operation's maximum of %u",
			 (unsigned int)k->obj_size,
			 (unsigned int)op->max_key_size);

	op_drop_key(op);
	if (!gp_key_copy(&op->key, k))
		GP_PANIC(TEE_ERROR_OUT_OF_MEMORY, "out of memory copying a key");
	if (op->op_class == OP_CLASS_ASYM_SIGN ||
	    op->op_class == OP_CLASS_KEY_DERIVE) {
		op->pkey = gp_key_to_pkey(&op->key, op->mode != TEE_MODE_VERIFY);
		if (!op->pkey)
			GP_PANIC(TEE_ERROR_GENERIC, "cannot load the key");
	}
	op->handle_state |= GP_HANDLE_FLAG_KEY_SET;
	if (op->op_state != OP_STATE_INITIAL)
		op_reset_state(op);
	return TEE_SUCCESS;
}

/* ---- Digest ------------------------------------------------------------ */

void TEE_DigestUpdate(TEE_OperationHandle operation, const void *chunk,
		      size_t chunkSize)
{
	TEE_OperationHandle op = op_get(operation);

	op_require_class(op, OP_CLASS_DIGEST, __func__);
	if (!chunk && chunkSize)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL chunk");
	op->op_state = OP_STATE_ACTIVE;
	if (chunkSize && EVP_DigestUpdate(op->md, chunk, chunkSize) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "digest update failed");
}

TEE_Result TEE_DigestDoFinal(TEE_OperationHandle operation, const void *chunk,
			     size_t chunkLen, void *hash, size_t *hashLen)
{
	TEE_OperationHandle op = op_get(operation);
	unsigned int len = 0;

	op_require_class(op, OP_CLASS_DIGEST, __func__);
	if ((!chunk && chunkLen) || !hashLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	if (*hashLen < SHA256_LEN) {
		*hashLen = SHA256_LEN;
		return TEE_ERROR_SHORT_BUFFER;
	}
	if (!hash)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL hash buffer");
	if (chunkLen && EVP_DigestUpdate(op->md, chunk, chunkLen) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "digest update failed");
	if (EVP_DigestFinal_ex(op->md, hash, &len) != 1 || len != SHA256_LEN)
		GP_PANIC(TEE_ERROR_GENERIC, "digest final failed");
	*hashLen = SHA256_LEN;
	op_reset_state(op);
	return TEE_SUCCESS;
}

/* ---- MAC --------------------------------------------------------------- */

void TEE_MACInit(TEE_OperationHandle operation, const void *IV, size_t IVLen)
{
	TEE_OperationHandle op = op_get(operation);
	const struct gp_attr *a;
	OSSL_PARAM params[2];

	(void)IV; /* HMAC has no IV */
	(void)IVLen;
	op_require_class(op, OP_CLASS_MAC, __func__);
	if (!(op->handle_state & GP_HANDLE_FLAG_KEY_SET))
		GP_PANIC(TEE_ERROR_BAD_STATE, "TEE_MACInit without a key");
	if (op->op_state != OP_STATE_INITIAL)
		op_reset_state(op);

	a = gp_key_attr(&op->key, TEE_ATTR_SECRET_VALUE);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!a || EVP_MAC_init(op->mac, a->buf, a->len, params) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "HMAC init failed");
	op->op_state = OP_STATE_ACTIVE;
	op->handle_state |= TEE_HANDLE_FLAG_INITIALIZED;
}

static void mac_require_active(TEE_OperationHandle op, const char *func)
{
	op_require_class(op, OP_CLASS_MAC, func);
	if (!(op->handle_state & TEE_HANDLE_FLAG_INITIALIZED) ||
	    op->op_state != OP_STATE_ACTIVE)
		GP_PANIC(TEE_ERROR_BAD_STATE, "%s before TEE_MACInit", func);
}

void TEE_MACUpdate(TEE_OperationHandle operation, const void *chunk,
		   size_t chunkSize)
{
	TEE_OperationHandle op = op_get(operation);

	if (!chunk && chunkSize)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL chunk");
	mac_require_active(op, __func__);
	if (chunkSize && EVP_MAC_update(op->mac, chunk, chunkSize) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "HMAC update failed");
}

TEE_Result TEE_MACComputeFinal(TEE_OperationHandle operation,
			       const void *message, size_t messageLen,
			       void *mac, size_t *macLen)
{
	TEE_OperationHandle op = op_get(operation);
	size_t len = 0;

	if ((!message && messageLen) || !macLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	mac_require_active(op, __func__);
	if (*macLen < SHA256_LEN) {
		*macLen = SHA256_LEN;
		return TEE_ERROR_SHORT_BUFFER;
	}
	if (!mac)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL mac buffer");
	if (messageLen && EVP_MAC_update(op->mac, message, messageLen) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "HMAC update failed");
	if (EVP_MAC_final(op->mac, mac, &len, SHA256_LEN) != 1 ||
	    len != SHA256_LEN)
		GP_PANIC(TEE_ERROR_GENERIC, "HMAC final failed");
	*macLen = SHA256_LEN;
	op->handle_state &= ~TEE_HANDLE_FLAG_INITIALIZED;
	op->op_state = OP_STATE_INITIAL;
	return TEE_SUCCESS;
}

/* ---- Symmetric cipher (AES-CTR) ---------------------------------------- */

/* Also AES-GCM's update: EVP takes int lengths. */
static void cipher_update(TEE_OperationHandle op, uint8_t *out,
			  const uint8_t *in, size_t len)
{
	while (len) {
		int chunk = len > (size_t)(INT_MAX - 32) ? INT_MAX - 32
							 : (int)len;
		int outl = 0;

		if (EVP_CipherUpdate(op->cipher, out, &outl, in, chunk) != 1 ||
		    (out && outl != chunk))
			GP_PANIC(TEE_ERROR_GENERIC, "AES update failed");
		in += chunk;
		if (out)
			out += chunk;
		len -= (size_t)chunk;
	}
}

static const EVP_CIPHER *aes_cipher(TEE_OperationHandle op, bool gcm)
{
	const struct gp_attr *a = gp_key_attr(&op->key, TEE_ATTR_SECRET_VALUE);

	switch (a ? a->len : 0) {
	case 16:
		return gcm ? EVP_aes_128_gcm() : EVP_aes_128_ctr();
	case 24:
		return gcm ? EVP_aes_192_gcm() : EVP_aes_192_ctr();
	case 32:
		return gcm ? EVP_aes_256_gcm() : EVP_aes_256_ctr();
	default:
		GP_PANIC(TEE_ERROR_BAD_STATE, "bad AES key");
	}
}

void TEE_CipherInit(TEE_OperationHandle operation, const void *IV,
		    size_t IVLen)
{
	TEE_OperationHandle op = op_get(operation);
	const struct gp_attr *a;

	op_require_class(op, OP_CLASS_CIPHER, __func__);
	if (!(op->handle_state & GP_HANDLE_FLAG_KEY_SET))
		GP_PANIC(TEE_ERROR_BAD_STATE, "TEE_CipherInit without a key");
	/* AES-CTR's IV is the whole initial counter block. */
	if (!IV || IVLen != 16)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "AES-CTR needs a 16-byte IV");
	a = gp_key_attr(&op->key, TEE_ATTR_SECRET_VALUE);
	if (EVP_CipherInit_ex(op->cipher, aes_cipher(op, false), NULL, a->buf,
			      IV, op->mode == TEE_MODE_ENCRYPT) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "AES-CTR init failed");
	op->op_state = OP_STATE_ACTIVE;
	op->handle_state |= TEE_HANDLE_FLAG_INITIALIZED;
}

static TEE_Result cipher_run(TEE_OperationHandle operation, const void *src,
			     size_t srcLen, void *dest, size_t *destLen,
			     const char *func)
{
	TEE_OperationHandle op = op_get(operation);

	op_require_class(op, OP_CLASS_CIPHER, func);
	if (!(op->handle_state & TEE_HANDLE_FLAG_INITIALIZED))
		GP_PANIC(TEE_ERROR_BAD_STATE, "%s before TEE_CipherInit", func);
	if ((!src && srcLen) || !destLen || (!dest && *destLen))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "%s: NULL buffer", func);
	if (*destLen < srcLen) {
		*destLen = srcLen;
		return TEE_ERROR_SHORT_BUFFER;
	}
	cipher_update(op, dest, src, srcLen);
	*destLen = srcLen;
	return TEE_SUCCESS;
}

TEE_Result TEE_CipherUpdate(TEE_OperationHandle operation, const void *srcData,
			    size_t srcLen, void *destData, size_t *destLen)
{
	return cipher_run(operation, srcData, srcLen, destData, destLen,
			  __func__);
}

TEE_Result TEE_CipherDoFinal(TEE_OperationHandle operation,
			     const void *srcData, size_t srcLen,
			     void *destData, size_t *destLen)
{
	TEE_Result res = cipher_run(operation, srcData, srcLen, destData,
				    destLen, __func__);

	if (res == TEE_SUCCESS)
		op_reset_state(op_get(operation));
	return res;
}

/* ---- Authenticated encryption (AES-GCM) -------------------------------- */

static void ae_require_ready(TEE_OperationHandle op, const char *func)
{
	op_require_class(op, OP_CLASS_AE, func);
	if (!(op->handle_state & TEE_HANDLE_FLAG_INITIALIZED))
		GP_PANIC(TEE_ERROR_BAD_STATE, "%s before TEE_AEInit", func);
	if (op->ae_spent)
		GP_PANIC(TEE_ERROR_BAD_STATE,
			 "%s after a failed TEE_AEDecryptFinal", func);
}

TEE_Result TEE_AEInit(TEE_OperationHandle operation, const void *nonce,
		      size_t nonceLen, uint32_t tagLen, size_t AADLen,
		      size_t payloadLen)
{
	TEE_OperationHandle op = op_get(operation);
	const EVP_CIPHER *cipher;
	const struct gp_attr *a;
	int enc = op->mode == TEE_MODE_ENCRYPT;

	(void)AADLen; /* GCM needs neither length up front */
	(void)payloadLen;
	if (!nonce)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL nonce");
	op_require_class(op, OP_CLASS_AE, __func__);
	if (op->op_state != OP_STATE_INITIAL)
		GP_PANIC(TEE_ERROR_BAD_STATE,
			 "TEE_AEInit on an active operation");
	if (tagLen < 96 || tagLen > 128 || tagLen % 8)
		return TEE_ERROR_NOT_SUPPORTED;
	if (!(op->handle_state & GP_HANDLE_FLAG_KEY_SET))
		GP_PANIC(TEE_ERROR_BAD_STATE, "TEE_AEInit without a key");
	if (!nonceLen || nonceLen > INT_MAX)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "bad nonce length %zu",
			 nonceLen);

	a = gp_key_attr(&op->key, TEE_ATTR_SECRET_VALUE);
	cipher = aes_cipher(op, true);
	if (EVP_CipherInit_ex(op->cipher, cipher, NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(op->cipher, EVP_CTRL_GCM_SET_IVLEN,
				(int)nonceLen, NULL) != 1 ||
	    EVP_CipherInit_ex(op->cipher, NULL, NULL, a->buf, nonce, enc) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "AES-GCM init failed");

	op->tag_len = tagLen / 8;
	op->ae_spent = false;
	op->handle_state |= TEE_HANDLE_FLAG_INITIALIZED;
	return TEE_SUCCESS;
}

void TEE_AEUpdateAAD(TEE_OperationHandle operation, const void *AADdata,
		     size_t AADdataLen)
{
	TEE_OperationHandle op = op_get(operation);

	if (!AADdata && AADdataLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL AAD");
	op_require_class(op, OP_CLASS_AE, __func__);
	if (op->op_state != OP_STATE_INITIAL)
		GP_PANIC(TEE_ERROR_BAD_STATE, "AAD after payload");
	ae_require_ready(op, __func__);
	cipher_update(op, NULL, AADdata, AADdataLen);
}

TEE_Result TEE_AEUpdate(TEE_OperationHandle operation, const void *srcData,
			size_t srcLen, void *destData, size_t *destLen)
{
	TEE_OperationHandle op = op_get(operation);

	if ((!srcData && srcLen) || !destLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	ae_require_ready(op, __func__);
	if (!srcLen) {
		*destLen = 0;
		return TEE_SUCCESS;
	}
	if (*destLen < srcLen) {
		*destLen = srcLen;
		return TEE_ERROR_SHORT_BUFFER;
	}
	if (!destData)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL destination");
	cipher_update(op, destData, srcData, srcLen);
	*destLen = srcLen;
	op->op_state = OP_STATE_ACTIVE;
	return TEE_SUCCESS;
}

static void ae_finished(TEE_OperationHandle op)
{
	op->handle_state &= ~TEE_HANDLE_FLAG_INITIALIZED;
	op->op_state = OP_STATE_INITIAL;
}

TEE_Result TEE_AEEncryptFinal(TEE_OperationHandle operation,
			      const void *srcData, size_t srcLen,
			      void *destData, size_t *destLen, void *tag,
			      size_t *tagLen)
{
	TEE_OperationHandle op = op_get(operation);
	uint8_t scratch[32];
	bool short_buf = false;
	int outl = 0;

	if ((!srcData && srcLen) || !destLen || !tagLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	ae_require_ready(op, __func__);
	if (op->mode != TEE_MODE_ENCRYPT)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "TEE_AEEncryptFinal on a decryption");
	if (*destLen < srcLen) {
		*destLen = srcLen;
		short_buf = true;
	}
	if (*tagLen < op->tag_len) {
		*tagLen = op->tag_len;
		short_buf = true;
	}
	if (short_buf)
		return TEE_ERROR_SHORT_BUFFER;
	if ((!destData && srcLen) || !tag)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL destination");

	cipher_update(op, destData, srcData, srcLen);
	if (EVP_CipherFinal_ex(op->cipher, scratch, &outl) != 1 || outl ||
	    EVP_CIPHER_CTX_ctrl(op->cipher, EVP_CTRL_GCM_GET_TAG,
				(int)op->tag_len, tag) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "AES-GCM final failed");
	*destLen = srcLen;
	*tagLen = op->tag_len;
	ae_finished(op);
	return TEE_SUCCESS;
}

TEE_Result TEE_AEDecryptFinal(TEE_OperationHandle operation,
			      const void *srcData, size_t srcLen,
			      void *destData, size_t *destLen, void *tag,
			      size_t tagLen)
{
	TEE_OperationHandle op = op_get(operation);
	uint8_t scratch[32];
	int outl = 0;

	if ((!srcData && srcLen) || !destLen || (!tag && tagLen))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	ae_require_ready(op, __func__);
	if (op->mode != TEE_MODE_DECRYPT)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "TEE_AEDecryptFinal on an encryption");
	if (*destLen < srcLen) {
		*destLen = srcLen;
		return TEE_ERROR_SHORT_BUFFER;
	}
	if (!destData && srcLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL destination");

	/* Like OP-TEE: a tag of another length than AEInit's never matches. */
	if (tagLen != op->tag_len) {
		*destLen = 0;
		ae_finished(op);
		return TEE_ERROR_MAC_INVALID;
	}

	cipher_update(op, destData, srcData, srcLen);
	if (EVP_CIPHER_CTX_ctrl(op->cipher, EVP_CTRL_GCM_SET_TAG, (int)tagLen,
				tag) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "AES-GCM set tag failed");
	/* OpenSSL compares the tag in constant time (CRYPTO_memcmp). */
	if (EVP_CipherFinal_ex(op->cipher, scratch, &outl) != 1) {
		ERR_clear_error();
		/* Unauthenticated plaintext must not reach the TA. */
		if (srcLen)
			OPENSSL_cleanse(destData, srcLen);
		*destLen = 0;
		/*
		 * OP-TEE leaves the operation initialised but unusable until
		 * TEE_ResetOperation; mirror that.
		 */
		op->ae_spent = true;
		return TEE_ERROR_MAC_INVALID;
	}
	*destLen = srcLen;
	ae_finished(op);
	return TEE_SUCCESS;
}

/* ---- Ed25519 ----------------------------------------------------------- */

static void sign_require(TEE_OperationHandle op, uint32_t mode,
			 uint32_t paramCount, const char *func)
{
	op_require_class(op, OP_CLASS_ASYM_SIGN, func);
	if (op->mode != mode)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "%s in the wrong mode",
			 func);
	if (!(op->handle_state & GP_HANDLE_FLAG_KEY_SET))
		GP_PANIC(TEE_ERROR_BAD_STATE, "%s without a key", func);
	if (paramCount)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "%s: Ed25519ctx/Ed25519ph parameters not supported",
			 func);
}

TEE_Result TEE_AsymmetricSignDigest(TEE_OperationHandle operation,
				    const TEE_Attribute *params,
				    uint32_t paramCount, const void *digest,
				    size_t digestLen, void *signature,
				    size_t *signatureLen)
{
	static const uint8_t empty[1];
	TEE_OperationHandle op = op_get(operation);
	EVP_MD_CTX *ctx;
	size_t len = GP_ED25519_SIG_LEN;
	bool ok;

	(void)params;
	if ((!digest && digestLen) || !signatureLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	sign_require(op, TEE_MODE_SIGN, paramCount, __func__);
	if (*signatureLen < GP_ED25519_SIG_LEN) {
		*signatureLen = GP_ED25519_SIG_LEN;
		return TEE_ERROR_SHORT_BUFFER;
	}
	if (!signature)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL signature buffer");

	ctx = EVP_MD_CTX_new();
	ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, op->pkey) == 1 &&
	     EVP_DigestSign(ctx, signature, &len, digest ? digest : empty,
			    digestLen) == 1 &&
	     len == GP_ED25519_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		GP_PANIC(TEE_ERROR_GENERIC, "Ed25519 signing failed");
	*signatureLen = GP_ED25519_SIG_LEN;
	return TEE_SUCCESS;
}

TEE_Result TEE_AsymmetricVerifyDigest(TEE_OperationHandle operation,
				      const TEE_Attribute *params,
				      uint32_t paramCount, const void *digest,
				      size_t digestLen, const void *signature,
				      size_t signatureLen)
{
	static const uint8_t empty[1];
	TEE_OperationHandle op = op_get(operation);
	EVP_MD_CTX *ctx;
	int rc;

	(void)params;
	if ((!digest && digestLen) || (!signature && signatureLen))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	sign_require(op, TEE_MODE_VERIFY, paramCount, __func__);
	if (signatureLen != GP_ED25519_SIG_LEN)
		return TEE_ERROR_SIGNATURE_INVALID;

	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, op->pkey) != 1)
		GP_PANIC(TEE_ERROR_GENERIC, "Ed25519 verify init failed");
	rc = EVP_DigestVerify(ctx, signature, signatureLen,
			      digest ? digest : empty, digestLen);
	EVP_MD_CTX_free(ctx);
	if (rc != 1) {
		ERR_clear_error();
		return TEE_ERROR_SIGNATURE_INVALID;
	}
	return TEE_SUCCESS;
}

/* ---- X25519 ------------------------------------------------------------ */

void TEE_DeriveKey(TEE_OperationHandle operation, const TEE_Attribute *params,
		   uint32_t paramCount, TEE_ObjectHandle derivedKey)
{
	TEE_OperationHandle op = op_get(operation);
	TEE_ObjectHandle dk;
	struct gp_key *k;
	uint8_t secret[GP_25519_LEN];
	size_t len = sizeof(secret);
	EVP_PKEY *peer = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	bool ok;

	if (derivedKey == TEE_HANDLE_NULL)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL derived key");
	op_require_class(op, OP_CLASS_KEY_DERIVE, __func__);
	if (!(op->handle_state & GP_HANDLE_FLAG_KEY_SET))
		GP_PANIC(TEE_ERROR_BAD_STATE, "TEE_DeriveKey without a key");
	dk = gp_object_get(derivedKey);
	k = gp_object_key(dk);
	if (dk->persistent || k->type != TEE_TYPE_GENERIC_SECRET ||
	    k->initialized)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "derived key must be an empty transient "
			 "TEE_TYPE_GENERIC_SECRET");
	if (paramCount != 1 || !params ||
	    params[0].attributeID != TEE_ATTR_X25519_PUBLIC_VALUE ||
	    params[0].content.ref.length != GP_25519_LEN ||
	    !params[0].content.ref.buffer)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "X25519 needs one 32-byte TEE_ATTR_X25519_PUBLIC_VALUE");
	if (k->max_size < GP_25519_LEN * 8)
		GP_PANIC(TEE_ERROR_SHORT_BUFFER,
			 "derived key object too small for 256 bits");

	peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL,
					   params[0].content.ref.buffer,
					   GP_25519_LEN);
	ctx = peer ? EVP_PKEY_CTX_new(op->pkey, NULL) : NULL;
	ok = ctx && EVP_PKEY_derive_init(ctx) == 1 &&
	     EVP_PKEY_derive_set_peer(ctx, peer) == 1;
	if (ok && (EVP_PKEY_derive(ctx, secret, &len) != 1 ||
		   len != GP_25519_LEN)) {
		/*
		 * OpenSSL refuses the all-zero result of a small-order peer
		 * key; OP-TEE returns it and leaves the check to the TA.
		 */
		ok = ERR_GET_REASON(ERR_peek_last_error()) ==
		     PROV_R_FAILED_DURING_DERIVATION;
		if (ok) {
			memset(secret, 0, sizeof(secret));
			len = GP_25519_LEN;
		}
	}
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	if (!ok) {
		OPENSSL_cleanse(secret, sizeof(secret));
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "X25519 derivation failed");
	}
	ok = gp_key_add_attr(k, TEE_ATTR_SECRET_VALUE, secret, len);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (!ok)
		GP_PANIC(TEE_ERROR_OUT_OF_MEMORY, "out of memory");
	k->obj_size = GP_25519_LEN * 8;
	k->initialized = true;
}
