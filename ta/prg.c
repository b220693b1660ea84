// SPDX-License-Identifier: BSD-2-Clause
/*
 * AES-128-CTR keystream as a mask generator (Bonawitz et al., CCS 2017 use
 * AES in counter mode too). The keystream is produced a block of words at a
 * time into a buffer on the stack and folded into the update at once, so a
 * 100k-word mask needs no 400 KB heap buffer and one GP call per piece.
 */
#include <string.h>

#include "bytes.h"
#include "prg.h"

#define PRG_PIECE_WORDS	512

TEE_Result prg_apply(const uint8_t seed[PRG_SEED_SIZE], int sign,
		     uint32_t *words, size_t n)
{
	static const uint8_t zero[4 * PRG_PIECE_WORDS];
	uint8_t stream[4 * PRG_PIECE_WORDS];
	uint8_t counter[16] = { 0 };
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_ObjectHandle key = TEE_HANDLE_NULL;
	TEE_Attribute attr = { 0 };
	TEE_Result res = TEE_SUCCESS;

	if (!seed || (!words && n) || !sign)
		return TEE_ERROR_BAD_PARAMETERS;
	res = TEE_AllocateTransientObject(TEE_TYPE_AES, 128, &key);
	if (res)
		return res;
	TEE_InitRefAttribute(&attr, TEE_ATTR_SECRET_VALUE, seed, PRG_SEED_SIZE);
	res = TEE_PopulateTransientObject(key, &attr, 1);
	if (!res)
		res = TEE_AllocateOperation(&op, TEE_ALG_AES_CTR,
					    TEE_MODE_ENCRYPT, 128);
	if (!res)
		res = TEE_SetOperationKey(op, key);
	if (res)
		goto out;
	TEE_CipherInit(op, counter, sizeof(counter));
	for (size_t done = 0; done < n;) {
		size_t m = n - done < PRG_PIECE_WORDS ? n - done : PRG_PIECE_WORDS;
		size_t out_len = 4 * m;

		res = TEE_CipherUpdate(op, zero, 4 * m, stream, &out_len);
		if (res)
			goto out;
		if (out_len != 4 * m) {
			res = TEE_ERROR_GENERIC;
			goto out;
		}
		for (size_t i = 0; i < m; i++) {
			uint32_t w = get_le32(stream + 4 * i);

			words[done + i] = sign > 0 ? words[done + i] + w
						   : words[done + i] - w;
		}
		done += m;
	}
out:
	TEE_MemFill(stream, 0, sizeof(stream));
	TEE_FreeOperation(op);
	TEE_FreeTransientObject(key);
	return res;
}
