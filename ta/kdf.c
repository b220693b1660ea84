// SPDX-License-Identifier: BSD-2-Clause
/*
 * HKDF-SHA256 (RFC 5869) over GlobalPlatform HMAC-SHA256 MAC operations.
 */
#include <tee_internal_api.h>

#include "kdf.h"

struct piece {
	const void *p;
	size_t len;
};

static TEE_Result hmac_pieces(const void *key, size_t key_len,
			      const struct piece *pieces, size_t count,
			      uint8_t mac[32])
{
	TEE_ObjectHandle kobj = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Attribute attr = { };
	TEE_Result res = TEE_ERROR_GENERIC;
	size_t mac_len = 32;
	size_t i = 0;

	if (key_len < EDGE_HKDF_MIN_SALT || key_len > EDGE_HKDF_MAX_SALT)
		return TEE_ERROR_BAD_PARAMETERS;
	res = TEE_AllocateTransientObject(TEE_TYPE_HMAC_SHA256, key_len * 8,
					  &kobj);
	if (res)
		return res;
	TEE_InitRefAttribute(&attr, TEE_ATTR_SECRET_VALUE, key, key_len);
	res = TEE_PopulateTransientObject(kobj, &attr, 1);
	if (res)
		goto out;
	res = TEE_AllocateOperation(&op, TEE_ALG_HMAC_SHA256, TEE_MODE_MAC,
				    key_len * 8);
	if (res)
		goto out;
	res = TEE_SetOperationKey(op, kobj);
	if (res)
		goto out;
	TEE_MACInit(op, NULL, 0);
	for (i = 0; i < count; i++)
		if (pieces[i].len)
			TEE_MACUpdate(op, pieces[i].p, pieces[i].len);
	res = TEE_MACComputeFinal(op, NULL, 0, mac, &mac_len);
	if (!res && mac_len != 32)
		res = TEE_ERROR_GENERIC;
out:
	if (op)
		TEE_FreeOperation(op);
	TEE_FreeTransientObject(kobj);
	return res;
}

TEE_Result edge_hmac_sha256(const void *key, size_t key_len,
			    const void *msg1, size_t msg1_len,
			    const void *msg2, size_t msg2_len,
			    uint8_t mac[32])
{
	const struct piece pieces[2] = {
		{ msg1, msg1_len }, { msg2, msg2_len },
	};

	return hmac_pieces(key, key_len, pieces, 2, mac);
}

TEE_Result edge_hkdf_sha256(const void *ikm, size_t ikm_len,
			    const void *salt, size_t salt_len,
			    const void *info1, size_t info1_len,
			    const void *info2, size_t info2_len,
			    void *okm, size_t out_len)
{
	uint8_t prk[32] = { 0 };
	uint8_t t[32] = { 0 };
	uint8_t counter = 0;
	size_t t_len = 0;
	size_t done = 0;
	size_t n = 0;
	struct piece pieces[4] = { };
	TEE_Result res = TEE_ERROR_GENERIC;

	if (!out_len || out_len > EDGE_HKDF_MAX_OUT)
		return TEE_ERROR_BAD_PARAMETERS;

	/* Extract: PRK = HMAC(salt, IKM). */
	res = edge_hmac_sha256(salt, salt_len, ikm, ikm_len, NULL, 0, prk);
	if (res)
		goto out;

	/* Expand: T(i) = HMAC(PRK, T(i-1) || info || i). */
	while (done < out_len) {
		counter++;
		pieces[0].p = t;
		pieces[0].len = t_len;
		pieces[1].p = info1;
		pieces[1].len = info1_len;
		pieces[2].p = info2;
		pieces[2].len = info2_len;
		pieces[3].p = &counter;
		pieces[3].len = 1;
		res = hmac_pieces(prk, sizeof(prk), pieces, 4, t);
		if (res)
			goto out;
		t_len = sizeof(t);
		n = out_len - done < sizeof(t) ? out_len - done : sizeof(t);
		TEE_MemMove((uint8_t *)okm + done, t, n);
		done += n;
	}
out:
	if (res)
		TEE_MemFill(okm, 0, out_len);
	TEE_MemFill(prk, 0, sizeof(prk));
	TEE_MemFill(t, 0, sizeof(t));
	return res;
}
