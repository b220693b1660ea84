// SPDX-License-Identifier: BSD-2-Clause
/*
 * Known-answer and behaviour tests of the simulated GP cryptographic
 * operations: SHA-256 (FIPS 180-2 "abc"), HMAC-SHA256 (RFC 4231 test case
 * 4), AES-GCM (GCM spec test cases 14 and 16), Ed25519 (RFC 8032 7.1 TEST 1
 * and 2), X25519 (RFC 7748 6.1), and the panics OP-TEE would raise.
 *
 * Usage: gp_test_crypto [vectors-dir]   (the directory is not used)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tee_internal_api.h>

#include "gp_sim.h"
#include "harness.h"

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;

	while (s[0] && s[1]) {
		unsigned int v;

		if (sscanf(s, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static TEE_ObjectHandle make_secret(uint32_t type, uint32_t max_bits,
				    const uint8_t *key, size_t len)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_Attribute a;

	if (TEE_AllocateTransientObject(type, max_bits, &o) != TEE_SUCCESS)
		return TEE_HANDLE_NULL;
	TEE_InitRefAttribute(&a, TEE_ATTR_SECRET_VALUE, key, len);
	if (TEE_PopulateTransientObject(o, &a, 1) != TEE_SUCCESS) {
		TEE_FreeTransientObject(o);
		return TEE_HANDLE_NULL;
	}
	return o;
}

static TEE_ObjectHandle make_pair(uint32_t type, uint32_t pub_id,
				  const uint8_t pub[32], uint32_t priv_id,
				  const uint8_t priv[32])
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_Attribute a[2];

	if (TEE_AllocateTransientObject(type, 256, &o) != TEE_SUCCESS)
		return TEE_HANDLE_NULL;
	TEE_InitRefAttribute(&a[0], priv_id, priv, 32);
	TEE_InitRefAttribute(&a[1], pub_id, pub, 32);
	if (TEE_PopulateTransientObject(o, a, 2) != TEE_SUCCESS) {
		TEE_FreeTransientObject(o);
		return TEE_HANDLE_NULL;
	}
	return o;
}

static TEE_ObjectHandle make_pub(uint32_t type, uint32_t pub_id,
				 const uint8_t pub[32])
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_Attribute a;

	if (TEE_AllocateTransientObject(type, 256, &o) != TEE_SUCCESS)
		return TEE_HANDLE_NULL;
	TEE_InitRefAttribute(&a, pub_id, pub, 32);
	if (TEE_PopulateTransientObject(o, &a, 1) != TEE_SUCCESS) {
		TEE_FreeTransientObject(o);
		return TEE_HANDLE_NULL;
	}
	return o;
}

/* ---- SHA-256 ------------------------------------------------------------ */

static void test_sha256(void)
{
	uint8_t want[32];
	uint8_t out[40];
	size_t len;
	TEE_OperationHandle op = TEE_HANDLE_NULL;

	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	      want);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_SHA256, TEE_MODE_ENCRYPT,
					0),
		  TEE_ERROR_NOT_SUPPORTED);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_SHA256, TEE_MODE_DIGEST, 0),
		  TEE_SUCCESS);

	len = sizeof(out);
	CHECK_RES(TEE_DigestDoFinal(op, "abc", 3, out, &len), TEE_SUCCESS);
	CHECK(len == 32 && !memcmp(out, want, 32));

	/* The operation is ready again after a final; pieces add up. */
	TEE_DigestUpdate(op, "a", 1);
	TEE_DigestUpdate(op, "", 0);
	TEE_DigestUpdate(op, "b", 1);
	len = 31;
	CHECK_RES(TEE_DigestDoFinal(op, "c", 1, out, &len),
		  TEE_ERROR_SHORT_BUFFER);
	CHECK(len == 32);
	memset(out, 0, sizeof(out));
	CHECK_RES(TEE_DigestDoFinal(op, "c", 1, out, &len), TEE_SUCCESS);
	CHECK(len == 32 && !memcmp(out, want, 32));

	TEE_DigestUpdate(op, "zzz", 3);
	TEE_ResetOperation(op);
	len = 32;
	CHECK_RES(TEE_DigestDoFinal(op, "abc", 3, out, &len), TEE_SUCCESS);
	CHECK(!memcmp(out, want, 32));
	TEE_FreeOperation(op);
	TEE_FreeOperation(TEE_HANDLE_NULL);
}

/* ---- HMAC-SHA256 -------------------------------------------------------- */

static void test_hmac(void)
{
	uint8_t key[25];
	uint8_t data[50];
	uint8_t want[32];
	uint8_t mac[32];
	size_t len;
	size_t i;
	TEE_ObjectHandle k;
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Attribute a;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i + 1);
	memset(data, 0xcd, sizeof(data));
	unhex("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
	      want);

	/* GP key sizes for HMAC-SHA256: 192..1024 bits, multiples of 8. */
	CHECK_RES(TEE_AllocateTransientObject(TEE_TYPE_HMAC_SHA256, 128, &o),
		  TEE_ERROR_NOT_SUPPORTED);
	CHECK_RES(TEE_AllocateTransientObject(TEE_TYPE_HMAC_SHA256, 1032, &o),
		  TEE_ERROR_NOT_SUPPORTED);
	CHECK_RES(TEE_AllocateTransientObject(TEE_TYPE_HMAC_SHA256, 196, &o),
		  TEE_ERROR_NOT_SUPPORTED);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_HMAC_SHA256, TEE_MODE_MAC,
					128),
		  TEE_ERROR_NOT_SUPPORTED);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_HMAC_SHA256,
					TEE_MODE_DIGEST, 256),
		  TEE_ERROR_NOT_SUPPORTED);

	/* A key longer than the object's maximum. */
	CHECK_RES(TEE_AllocateTransientObject(TEE_TYPE_HMAC_SHA256, 192, &o),
		  TEE_SUCCESS);
	TEE_InitRefAttribute(&a, TEE_ATTR_SECRET_VALUE, key, sizeof(key));
	CHECK_RES(TEE_PopulateTransientObject(o, &a, 1),
		  TEE_ERROR_BAD_PARAMETERS);
	TEE_FreeTransientObject(o);

	k = make_secret(TEE_TYPE_HMAC_SHA256, 200, key, sizeof(key));
	CHECK(k != TEE_HANDLE_NULL);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_HMAC_SHA256, TEE_MODE_MAC,
					256),
		  TEE_SUCCESS);
	CHECK_RES(TEE_SetOperationKey(op, k), TEE_SUCCESS);
	/* The operation keeps its own copy of the key. */
	TEE_FreeTransientObject(k);

	TEE_MACInit(op, NULL, 0);
	len = sizeof(mac);
	CHECK_RES(TEE_MACComputeFinal(op, data, sizeof(data), mac, &len),
		  TEE_SUCCESS);
	CHECK(len == 32 && !memcmp(mac, want, 32));

	TEE_MACInit(op, NULL, 0);
	TEE_MACUpdate(op, data, 7);
	TEE_MACUpdate(op, data + 7, 0);
	TEE_MACUpdate(op, data + 7, 33);
	len = 16;
	CHECK_RES(TEE_MACComputeFinal(op, data + 40, 10, mac, &len),
		  TEE_ERROR_SHORT_BUFFER);
	CHECK(len == 32);
	memset(mac, 0, sizeof(mac));
	CHECK_RES(TEE_MACComputeFinal(op, data + 40, 10, mac, &len),
		  TEE_SUCCESS);
	CHECK(len == 32 && !memcmp(mac, want, 32));

	/* MACInit on an active operation starts over. */
	TEE_MACInit(op, NULL, 0);
	TEE_MACUpdate(op, "junk", 4);
	TEE_MACInit(op, NULL, 0);
	len = 32;
	CHECK_RES(TEE_MACComputeFinal(op, data, sizeof(data), mac, &len),
		  TEE_SUCCESS);
	CHECK(!memcmp(mac, want, 32));
	TEE_FreeOperation(op);
}

/* ---- AES-GCM ------------------------------------------------------------ */

struct gcm_vec {
	uint8_t key[32];
	uint8_t iv[12];
	uint8_t pt[64];
	uint8_t aad[20];
	uint8_t ct[64];
	uint8_t tag[16];
	size_t pt_len;
	size_t aad_len;
};

static void gcm_tc16(struct gcm_vec *v)
{
	unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	      v->key);
	unhex("cafebabefacedbaddecaf888", v->iv);
	v->pt_len = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c"
			  "303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aed"
			  "f5aa0de657ba637b39",
			  v->pt);
	v->aad_len = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", v->aad);
	unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	      v->ct);
	unhex("76fc6ece0f4e1768cddf8853bb2d551b", v->tag);
}

static TEE_OperationHandle gcm_op(uint32_t mode, const uint8_t *key,
				  size_t key_len)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_ObjectHandle k = make_secret(TEE_TYPE_AES, (uint32_t)key_len * 8,
					 key, key_len);

	if (!k || TEE_AllocateOperation(&op, TEE_ALG_AES_GCM, mode,
					(uint32_t)key_len * 8) != TEE_SUCCESS ||
	    TEE_SetOperationKey(op, k) != TEE_SUCCESS) {
		TEE_FreeTransientObject(k);
		return TEE_HANDLE_NULL;
	}
	TEE_FreeTransientObject(k);
	return op;
}

static void test_gcm(void)
{
	struct gcm_vec v;
	uint8_t out[64];
	uint8_t tag[16];
	uint8_t bad_tag[16];
	uint8_t zero[32] = { 0 };
	size_t len;
	size_t tag_len;
	size_t i;
	bool wiped;
	TEE_OperationHandle op;

	gcm_tc16(&v);

	/* Encryption in one final call. */
	op = gcm_op(TEE_MODE_ENCRYPT, v.key, 32);
	CHECK(op != TEE_HANDLE_NULL);
	if (!op)
		return;
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 64, 0, 0), TEE_ERROR_NOT_SUPPORTED);
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 128, v.aad_len, v.pt_len),
		  TEE_SUCCESS);
	TEE_AEUpdateAAD(op, v.aad, 7);
	TEE_AEUpdateAAD(op, v.aad + 7, v.aad_len - 7);
	len = v.pt_len - 1;
	tag_len = 8;
	CHECK_RES(TEE_AEEncryptFinal(op, v.pt, v.pt_len, out, &len, tag,
				     &tag_len),
		  TEE_ERROR_SHORT_BUFFER);
	CHECK(len == v.pt_len && tag_len == 16);
	CHECK_RES(TEE_AEEncryptFinal(op, v.pt, v.pt_len, out, &len, tag,
				     &tag_len),
		  TEE_SUCCESS);
	CHECK(len == v.pt_len && !memcmp(out, v.ct, v.pt_len));
	CHECK(tag_len == 16 && !memcmp(tag, v.tag, 16));

	/* Encryption in pieces, reusing the operation. */
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 128, 0, 0), TEE_SUCCESS);
	TEE_AEUpdateAAD(op, v.aad, v.aad_len);
	len = 10;
	CHECK_RES(TEE_AEUpdate(op, v.pt, 20, out, &len),
		  TEE_ERROR_SHORT_BUFFER);
	CHECK(len == 20);
	CHECK_RES(TEE_AEUpdate(op, v.pt, 20, out, &len), TEE_SUCCESS);
	CHECK(len == 20);
	len = sizeof(out) - 20;
	CHECK_RES(TEE_AEUpdate(op, v.pt + 20, 0, out + 20, &len), TEE_SUCCESS);
	CHECK(len == 0);
	len = sizeof(out) - 20;
	tag_len = sizeof(tag);
	CHECK_RES(TEE_AEEncryptFinal(op, v.pt + 20, v.pt_len - 20, out + 20,
				     &len, tag, &tag_len),
		  TEE_SUCCESS);
	CHECK(len == v.pt_len - 20 && !memcmp(out, v.ct, v.pt_len));
	CHECK(!memcmp(tag, v.tag, 16));
	TEE_FreeOperation(op);

	/* Decryption, good tag. */
	op = gcm_op(TEE_MODE_DECRYPT, v.key, 32);
	CHECK(op != TEE_HANDLE_NULL);
	if (!op)
		return;
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 128, 0, 0), TEE_SUCCESS);
	TEE_AEUpdateAAD(op, v.aad, v.aad_len);
	len = v.pt_len - 1;
	CHECK_RES(TEE_AEDecryptFinal(op, v.ct, v.pt_len, out, &len, v.tag, 16),
		  TEE_ERROR_SHORT_BUFFER);
	CHECK(len == v.pt_len);
	CHECK_RES(TEE_AEDecryptFinal(op, v.ct, v.pt_len, out, &len, v.tag, 16),
		  TEE_SUCCESS);
	CHECK(len == v.pt_len && !memcmp(out, v.pt, v.pt_len));

	/* Tampered tag: MAC_INVALID and no plaintext left behind. */
	memcpy(bad_tag, v.tag, 16);
	bad_tag[15] ^= 1;
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 128, 0, 0), TEE_SUCCESS);
	TEE_AEUpdateAAD(op, v.aad, v.aad_len);
	memset(out, 0xaa, sizeof(out));
	len = sizeof(out);
	CHECK_RES(TEE_AEDecryptFinal(op, v.ct, v.pt_len, out, &len, bad_tag,
				     16),
		  TEE_ERROR_MAC_INVALID);
	wiped = true;
	for (i = 0; i < v.pt_len; i++)
		wiped = wiped && out[i] == 0;
	CHECK(wiped);

	/* After a reset the operation works again; tampered ciphertext. */
	TEE_ResetOperation(op);
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 128, 0, 0), TEE_SUCCESS);
	TEE_AEUpdateAAD(op, v.aad, v.aad_len);
	memcpy(out, v.ct, v.pt_len);
	out[3] ^= 0x80;
	len = sizeof(out);
	CHECK_RES(TEE_AEDecryptFinal(op, out, v.pt_len, out, &len, v.tag, 16),
		  TEE_ERROR_MAC_INVALID);
	TEE_ResetOperation(op);

	/* Missing AAD. */
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 128, 0, 0), TEE_SUCCESS);
	len = sizeof(out);
	CHECK_RES(TEE_AEDecryptFinal(op, v.ct, v.pt_len, out, &len, v.tag, 16),
		  TEE_ERROR_MAC_INVALID);
	TEE_ResetOperation(op);

	/* A tag of another length than AEInit's never matches. */
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 128, 0, 0), TEE_SUCCESS);
	TEE_AEUpdateAAD(op, v.aad, v.aad_len);
	len = sizeof(out);
	CHECK_RES(TEE_AEDecryptFinal(op, v.ct, v.pt_len, out, &len, v.tag, 12),
		  TEE_ERROR_MAC_INVALID);

	/* Decryption in pieces. */
	CHECK_RES(TEE_AEInit(op, v.iv, 12, 128, 0, 0), TEE_SUCCESS);
	TEE_AEUpdateAAD(op, v.aad, v.aad_len);
	len = sizeof(out);
	CHECK_RES(TEE_AEUpdate(op, v.ct, 33, out, &len), TEE_SUCCESS);
	CHECK(len == 33);
	len = sizeof(out) - 33;
	CHECK_RES(TEE_AEDecryptFinal(op, v.ct + 33, v.pt_len - 33, out + 33,
				     &len, v.tag, 16),
		  TEE_SUCCESS);
	CHECK(!memcmp(out, v.pt, v.pt_len));
	TEE_FreeOperation(op);

	/* GCM spec test case 14: zero key and IV, one zero block. */
	op = gcm_op(TEE_MODE_ENCRYPT, zero, 32);
	CHECK(op != TEE_HANDLE_NULL);
	if (op) {
		uint8_t want[32];

		unhex("cea7403d4d606b6e074ec5d3baf39d18"
		      "d0d1c8a799996bf0265b98b5d48ab919",
		      want);
		CHECK_RES(TEE_AEInit(op, zero, 12, 128, 0, 16), TEE_SUCCESS);
		len = 16;
		tag_len = 16;
		CHECK_RES(TEE_AEEncryptFinal(op, zero, 16, out, &len, tag,
					     &tag_len),
			  TEE_SUCCESS);
		CHECK(!memcmp(out, want, 16) && !memcmp(tag, want + 16, 16));
		TEE_FreeOperation(op);
	}

	/* AES-128 round trip with a 96-bit tag. */
	op = gcm_op(TEE_MODE_ENCRYPT, v.key, 16);
	CHECK(op != TEE_HANDLE_NULL);
	if (op) {
		TEE_OperationHandle dop = gcm_op(TEE_MODE_DECRYPT, v.key, 16);

		CHECK_RES(TEE_AEInit(op, v.iv, 12, 96, 0, 0), TEE_SUCCESS);
		len = sizeof(out);
		tag_len = sizeof(tag);
		CHECK_RES(TEE_AEEncryptFinal(op, v.pt, v.pt_len, out, &len,
					     tag, &tag_len),
			  TEE_SUCCESS);
		CHECK(tag_len == 12);
		CHECK(dop != TEE_HANDLE_NULL);
		if (dop) {
			CHECK_RES(TEE_AEInit(dop, v.iv, 12, 96, 0, 0),
				  TEE_SUCCESS);
			len = sizeof(out);
			CHECK_RES(TEE_AEDecryptFinal(dop, out, v.pt_len, out,
						     &len, tag, 12),
				  TEE_SUCCESS);
			CHECK(!memcmp(out, v.pt, v.pt_len));
			TEE_FreeOperation(dop);
		}
		TEE_FreeOperation(op);
	}
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_AES_GCM, TEE_MODE_ENCRYPT,
					160),
		  TEE_ERROR_NOT_SUPPORTED);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_AES_GCM, TEE_MODE_SIGN,
					256),
		  TEE_ERROR_NOT_SUPPORTED);
}

/* ---- Ed25519 ------------------------------------------------------------ */

static const char *const ed_vectors[2][4] = {
	{ "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
	  "",
	  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	  "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" },
	{ "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
	  "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
	  "72",
	  "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
	  "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" },
};

static TEE_Result ed_verify(TEE_ObjectHandle key, const uint8_t *msg,
			    size_t msg_len, const uint8_t *sig, size_t sig_len)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Result res;

	res = TEE_AllocateOperation(&op, TEE_ALG_ED25519, TEE_MODE_VERIFY, 256);
	if (res)
		return res;
	res = TEE_SetOperationKey(op, key);
	if (!res)
		res = TEE_AsymmetricVerifyDigest(op, NULL, 0, msg, msg_len, sig,
						 sig_len);
	TEE_FreeOperation(op);
	return res;
}

static void test_ed25519(void)
{
	size_t t;

	for (t = 0; t < 2; t++) {
		uint8_t priv[32];
		uint8_t pub[32];
		uint8_t msg[8];
		uint8_t want[64];
		uint8_t sig[64];
		uint8_t attr[40];
		size_t msg_len;
		size_t len;
		TEE_ObjectHandle kp;
		TEE_ObjectHandle pk;
		TEE_OperationHandle op = TEE_HANDLE_NULL;

		unhex(ed_vectors[t][0], priv);
		unhex(ed_vectors[t][1], pub);
		msg_len = unhex(ed_vectors[t][2], msg);
		unhex(ed_vectors[t][3], want);

		kp = make_pair(TEE_TYPE_ED25519_KEYPAIR,
			       TEE_ATTR_ED25519_PUBLIC_VALUE, pub,
			       TEE_ATTR_ED25519_PRIVATE_VALUE, priv);
		pk = make_pub(TEE_TYPE_ED25519_PUBLIC_KEY,
			      TEE_ATTR_ED25519_PUBLIC_VALUE, pub);
		CHECK(kp != TEE_HANDLE_NULL && pk != TEE_HANDLE_NULL);
		if (!kp || !pk)
			continue;

		CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_ED25519,
						TEE_MODE_SIGN, 256),
			  TEE_SUCCESS);
		CHECK_RES(TEE_SetOperationKey(op, kp), TEE_SUCCESS);
		len = 63;
		CHECK_RES(TEE_AsymmetricSignDigest(op, NULL, 0, msg, msg_len,
						   sig, &len),
			  TEE_ERROR_SHORT_BUFFER);
		CHECK(len == 64);
		CHECK_RES(TEE_AsymmetricSignDigest(op, NULL, 0,
						   msg_len ? msg : NULL,
						   msg_len, sig, &len),
			  TEE_SUCCESS);
		CHECK(len == 64 && !memcmp(sig, want, 64));
		TEE_FreeOperation(op);

		CHECK_RES(ed_verify(pk, msg, msg_len, want, 64), TEE_SUCCESS);
		CHECK_RES(ed_verify(kp, msg, msg_len, want, 64), TEE_SUCCESS);
		sig[10] ^= 0x04;
		CHECK_RES(ed_verify(pk, msg, msg_len, sig, 64),
			  TEE_ERROR_SIGNATURE_INVALID);
		sig[10] ^= 0x04;
		sig[63] ^= 0x80;
		CHECK_RES(ed_verify(pk, msg, msg_len, sig, 64),
			  TEE_ERROR_SIGNATURE_INVALID);
		CHECK_RES(ed_verify(pk, (const uint8_t *)"x", 1, want, 64),
			  TEE_ERROR_SIGNATURE_INVALID);
		CHECK_RES(ed_verify(pk, msg, msg_len, want, 63),
			  TEE_ERROR_SIGNATURE_INVALID);

		/* Attributes: public always, private while extractable. */
		len = sizeof(attr);
		CHECK_RES(TEE_GetObjectBufferAttribute(
				  kp, TEE_ATTR_ED25519_PUBLIC_VALUE, attr,
				  &len),
			  TEE_SUCCESS);
		CHECK(len == 32 && !memcmp(attr, pub, 32));
		len = sizeof(attr);
		CHECK_RES(TEE_GetObjectBufferAttribute(
				  kp, TEE_ATTR_ED25519_PRIVATE_VALUE, attr,
				  &len),
			  TEE_SUCCESS);
		CHECK(len == 32 && !memcmp(attr, priv, 32));
		len = 10;
		CHECK_RES(TEE_GetObjectBufferAttribute(
				  kp, TEE_ATTR_ED25519_PUBLIC_VALUE, attr,
				  &len),
			  TEE_ERROR_SHORT_BUFFER);
		CHECK(len == 32);
		len = sizeof(attr);
		CHECK_RES(TEE_GetObjectBufferAttribute(
				  pk, TEE_ATTR_ED25519_PRIVATE_VALUE, attr,
				  &len),
			  TEE_ERROR_ITEM_NOT_FOUND);
		CHECK_RES(TEE_GetObjectBufferAttribute(
				  kp, TEE_ATTR_X25519_PUBLIC_VALUE, attr, &len),
			  TEE_ERROR_ITEM_NOT_FOUND);

		TEE_FreeTransientObject(kp);
		TEE_FreeTransientObject(pk);
	}
}

static void test_ed25519_objects(void)
{
	uint8_t priv[32];
	uint8_t pub[32];
	uint8_t sig[64];
	uint8_t buf[32];
	size_t len = sizeof(sig);
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_ObjectInfo info;
	TEE_Attribute a[2];

	/* Halves of two different key pairs. */
	unhex(ed_vectors[0][0], priv);
	unhex(ed_vectors[1][1], pub);
	CHECK_RES(TEE_AllocateTransientObject(TEE_TYPE_ED25519_KEYPAIR, 256, &o),
		  TEE_SUCCESS);
	TEE_InitRefAttribute(&a[0], TEE_ATTR_ED25519_PUBLIC_VALUE, pub, 32);
	TEE_InitRefAttribute(&a[1], TEE_ATTR_ED25519_PRIVATE_VALUE, priv, 32);
	CHECK_RES(TEE_PopulateTransientObject(o, a, 2),
		  TEE_ERROR_BAD_PARAMETERS);
	TEE_InitRefAttribute(&a[0], TEE_ATTR_ED25519_PUBLIC_VALUE, pub, 31);
	CHECK_RES(TEE_PopulateTransientObject(o, a, 2),
		  TEE_ERROR_BAD_PARAMETERS);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.handleFlags == 0 && info.objectSize == 0 &&
	      info.maxObjectSize == 256 && info.objectUsage == 0xFFFFFFFF);

	/* Generated key pair: sign, verify, reset. */
	CHECK_RES(TEE_GenerateKey(o, 256, NULL, 0), TEE_SUCCESS);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.objectType == TEE_TYPE_ED25519_KEYPAIR &&
	      info.objectSize == 256 &&
	      info.handleFlags == TEE_HANDLE_FLAG_INITIALIZED);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_ED25519, TEE_MODE_SIGN,
					256),
		  TEE_SUCCESS);
	CHECK_RES(TEE_SetOperationKey(op, o), TEE_SUCCESS);
	CHECK_RES(TEE_AsymmetricSignDigest(op, NULL, 0, "digest", 6, sig, &len),
		  TEE_SUCCESS);
	CHECK_RES(ed_verify(o, (const uint8_t *)"digest", 6, sig, 64),
		  TEE_SUCCESS);
	TEE_FreeOperation(op);

	/* Without EXTRACTABLE the public value stays readable. */
	CHECK_RES(TEE_RestrictObjectUsage1(o, ~(uint32_t)TEE_USAGE_EXTRACTABLE),
		  TEE_SUCCESS);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.objectUsage == ~(uint32_t)TEE_USAGE_EXTRACTABLE);
	len = sizeof(buf);
	CHECK_RES(TEE_GetObjectBufferAttribute(o, TEE_ATTR_ED25519_PUBLIC_VALUE,
					       buf, &len),
		  TEE_SUCCESS);

	TEE_ResetTransientObject(o);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.handleFlags == 0 && info.objectUsage == 0xFFFFFFFF);
	TEE_FreeTransientObject(o);
}

/* ---- X25519 ------------------------------------------------------------- */

static TEE_Result x_derive(TEE_ObjectHandle kp, const uint8_t peer[32],
			   uint8_t z[32])
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_ObjectHandle s = TEE_HANDLE_NULL;
	TEE_ObjectInfo info;
	TEE_Attribute a;
	size_t len = 32;
	TEE_Result res;

	res = TEE_AllocateOperation(&op, TEE_ALG_X25519, TEE_MODE_DERIVE, 256);
	if (res)
		return res;
	res = TEE_SetOperationKey(op, kp);
	if (!res)
		res = TEE_AllocateTransientObject(TEE_TYPE_GENERIC_SECRET, 256,
						  &s);
	if (!res) {
		TEE_InitRefAttribute(&a, TEE_ATTR_X25519_PUBLIC_VALUE, peer, 32);
		TEE_DeriveKey(op, &a, 1, s);
		res = TEE_GetObjectInfo1(s, &info);
		if (!res && (info.objectSize != 256 ||
			     !(info.handleFlags & TEE_HANDLE_FLAG_INITIALIZED)))
			res = TEE_ERROR_GENERIC;
	}
	if (!res)
		res = TEE_GetObjectBufferAttribute(s, TEE_ATTR_SECRET_VALUE, z,
						   &len);
	if (!res && len != 32)
		res = TEE_ERROR_GENERIC;
	TEE_FreeTransientObject(s);
	TEE_FreeOperation(op);
	return res;
}

static void test_x25519(void)
{
	uint8_t a_priv[32];
	uint8_t a_pub[32];
	uint8_t b_priv[32];
	uint8_t b_pub[32];
	uint8_t want[32];
	uint8_t z[32];
	uint8_t zero[32] = { 0 };
	TEE_ObjectHandle a;
	TEE_ObjectHandle b;
	TEE_ObjectHandle g = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;

	unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
	      a_priv);
	unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
	      a_pub);
	unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
	      b_priv);
	unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
	      b_pub);
	unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
	      want);

	a = make_pair(TEE_TYPE_X25519_KEYPAIR, TEE_ATTR_X25519_PUBLIC_VALUE,
		      a_pub, TEE_ATTR_X25519_PRIVATE_VALUE, a_priv);
	b = make_pair(TEE_TYPE_X25519_KEYPAIR, TEE_ATTR_X25519_PUBLIC_VALUE,
		      b_pub, TEE_ATTR_X25519_PRIVATE_VALUE, b_priv);
	CHECK(a != TEE_HANDLE_NULL && b != TEE_HANDLE_NULL);
	if (!a || !b)
		return;
	memset(z, 0, sizeof(z));
	CHECK_RES(x_derive(a, b_pub, z), TEE_SUCCESS);
	CHECK(!memcmp(z, want, 32));
	memset(z, 0, sizeof(z));
	CHECK_RES(x_derive(b, a_pub, z), TEE_SUCCESS);
	CHECK(!memcmp(z, want, 32));

	/* A small-order peer gives the all-zero secret, as on OP-TEE. */
	memset(z, 0xff, sizeof(z));
	CHECK_RES(x_derive(a, zero, z), TEE_SUCCESS);
	CHECK(!memcmp(z, zero, 32));

	/* Generated pairs agree with each other. */
	CHECK_RES(TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR, 256, &g),
		  TEE_SUCCESS);
	CHECK_RES(TEE_GenerateKey(g, 256, NULL, 0), TEE_SUCCESS);
	if (g) {
		uint8_t g_pub[32];
		uint8_t z2[32];
		size_t len = sizeof(g_pub);

		CHECK_RES(TEE_GetObjectBufferAttribute(
				  g, TEE_ATTR_X25519_PUBLIC_VALUE, g_pub, &len),
			  TEE_SUCCESS);
		CHECK_RES(x_derive(a, g_pub, z), TEE_SUCCESS);
		CHECK_RES(x_derive(g, a_pub, z2), TEE_SUCCESS);
		CHECK(!memcmp(z, z2, 32));
	}
	TEE_FreeTransientObject(g);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_X25519, TEE_MODE_DERIVE,
					255),
		  TEE_ERROR_NOT_SUPPORTED);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_X25519, TEE_MODE_SIGN,
					256),
		  TEE_ERROR_NOT_SUPPORTED);
	TEE_FreeTransientObject(a);
	TEE_FreeTransientObject(b);
}

/* ---- Panics ------------------------------------------------------------- */

static void p_bad_op_handle(void *arg)
{
	TEE_DigestUpdate((TEE_OperationHandle)arg, "x", 1);
}

static void p_freed_op(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;

	(void)arg;
	TEE_AllocateOperation(&op, TEE_ALG_SHA256, TEE_MODE_DIGEST, 0);
	TEE_FreeOperation(op);
	TEE_FreeOperation(op);
}

static void p_bad_obj_handle(void *arg)
{
	TEE_ObjectInfo info;

	TEE_GetObjectInfo1((TEE_ObjectHandle)arg, &info);
}

static void p_op_as_object(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_ObjectInfo info;

	(void)arg;
	TEE_AllocateOperation(&op, TEE_ALG_SHA256, TEE_MODE_DIGEST, 0);
	TEE_GetObjectInfo1((TEE_ObjectHandle)(void *)op, &info);
}

static void p_mac_on_digest(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;

	(void)arg;
	TEE_AllocateOperation(&op, TEE_ALG_SHA256, TEE_MODE_DIGEST, 0);
	TEE_MACInit(op, NULL, 0);
}

static void p_mac_without_key(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;

	(void)arg;
	TEE_AllocateOperation(&op, TEE_ALG_HMAC_SHA256, TEE_MODE_MAC, 256);
	TEE_MACInit(op, NULL, 0);
}

static void p_sign_in_verify_mode(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	uint8_t sig[64];
	size_t len = sizeof(sig);

	TEE_AllocateOperation(&op, TEE_ALG_ED25519, TEE_MODE_VERIFY, 256);
	TEE_SetOperationKey(op, (TEE_ObjectHandle)arg);
	TEE_AsymmetricSignDigest(op, NULL, 0, "d", 1, sig, &len);
}

static void p_wrong_key_type(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	uint8_t key[32] = { 1 };
	TEE_ObjectHandle aes = make_secret(TEE_TYPE_AES, 256, key, 32);

	(void)arg;
	TEE_AllocateOperation(&op, TEE_ALG_HMAC_SHA256, TEE_MODE_MAC, 256);
	TEE_SetOperationKey(op, aes);
}

static void p_key_too_big(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	uint8_t key[32] = { 1 };
	TEE_ObjectHandle aes = make_secret(TEE_TYPE_AES, 256, key, 32);

	(void)arg;
	TEE_AllocateOperation(&op, TEE_ALG_AES_GCM, TEE_MODE_ENCRYPT, 128);
	TEE_SetOperationKey(op, aes);
}

static void p_key_usage(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	uint8_t key[32] = { 1 };
	TEE_ObjectHandle aes = make_secret(TEE_TYPE_AES, 256, key, 32);

	(void)arg;
	TEE_RestrictObjectUsage1(aes, TEE_USAGE_ENCRYPT);
	TEE_AllocateOperation(&op, TEE_ALG_AES_GCM, TEE_MODE_DECRYPT, 256);
	TEE_SetOperationKey(op, aes);
}

static void p_setkey_initialized(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	uint8_t key[32] = { 1 };
	TEE_ObjectHandle k = make_secret(TEE_TYPE_HMAC_SHA256, 256, key, 32);

	(void)arg;
	TEE_AllocateOperation(&op, TEE_ALG_HMAC_SHA256, TEE_MODE_MAC, 256);
	TEE_SetOperationKey(op, k);
	TEE_MACInit(op, NULL, 0);
	TEE_SetOperationKey(op, k);
}

static void p_aad_after_payload(void *arg)
{
	uint8_t key[32] = { 1 };
	uint8_t out[8];
	size_t len = sizeof(out);
	TEE_OperationHandle op = gcm_op(TEE_MODE_ENCRYPT, key, 32);

	(void)arg;
	TEE_AEInit(op, key, 12, 128, 0, 0);
	TEE_AEUpdate(op, "abcd", 4, out, &len);
	TEE_AEUpdateAAD(op, "x", 1);
}

static void p_update_after_mac_invalid(void *arg)
{
	uint8_t key[32] = { 1 };
	uint8_t out[8];
	uint8_t tag[16] = { 0 };
	size_t len = sizeof(out);
	TEE_OperationHandle op = gcm_op(TEE_MODE_DECRYPT, key, 32);

	(void)arg;
	TEE_AEInit(op, key, 12, 128, 0, 0);
	TEE_AEDecryptFinal(op, "abcd", 4, out, &len, tag, 16);
	len = sizeof(out);
	TEE_AEUpdate(op, "abcd", 4, out, &len);
}

static void p_short_hmac_key(void *arg)
{
	uint8_t key[20] = { 0 };

	(void)arg;
	make_secret(TEE_TYPE_HMAC_SHA256, 256, key, sizeof(key));
}

static void p_attr_uninitialised(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	uint8_t buf[32];
	size_t len = sizeof(buf);

	(void)arg;
	TEE_AllocateTransientObject(TEE_TYPE_AES, 256, &o);
	TEE_GetObjectBufferAttribute(o, TEE_ATTR_SECRET_VALUE, buf, &len);
}

static void p_not_extractable(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	uint8_t buf[32];
	size_t len = sizeof(buf);

	(void)arg;
	TEE_AllocateTransientObject(TEE_TYPE_ED25519_KEYPAIR, 256, &o);
	TEE_GenerateKey(o, 256, NULL, 0);
	TEE_RestrictObjectUsage1(o, TEE_USAGE_SIGN | TEE_USAGE_VERIFY);
	TEE_GetObjectBufferAttribute(o, TEE_ATTR_ED25519_PRIVATE_VALUE, buf,
				     &len);
}

static void p_missing_attr(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_Attribute a;
	uint8_t pub[32] = { 9 };

	(void)arg;
	TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR, 256, &o);
	TEE_InitRefAttribute(&a, TEE_ATTR_X25519_PUBLIC_VALUE, pub, 32);
	TEE_PopulateTransientObject(o, &a, 1);
}

static void p_derive_bad_object(void *arg)
{
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_ObjectHandle s = TEE_HANDLE_NULL;
	TEE_Attribute a;
	uint8_t peer[32] = { 9 };

	TEE_AllocateOperation(&op, TEE_ALG_X25519, TEE_MODE_DERIVE, 256);
	TEE_SetOperationKey(op, (TEE_ObjectHandle)arg);
	TEE_AllocateTransientObject(TEE_TYPE_AES, 256, &s);
	TEE_InitRefAttribute(&a, TEE_ATTR_X25519_PUBLIC_VALUE, peer, 32);
	TEE_DeriveKey(op, &a, 1, s);
}

static void p_free_persistent_as_transient(void *arg)
{
	(void)arg;
	TEE_FreeTransientObject((TEE_ObjectHandle)(uintptr_t)0x1000);
}

static void test_panics(void)
{
	uint8_t dummy[64] = { 0 };
	TEE_ObjectHandle edpub;
	TEE_ObjectHandle xkp = TEE_HANDLE_NULL;
	uint8_t pub[32];

	unhex(ed_vectors[0][1], pub);
	edpub = make_pub(TEE_TYPE_ED25519_PUBLIC_KEY,
			 TEE_ATTR_ED25519_PUBLIC_VALUE, pub);
	TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR, 256, &xkp);
	TEE_GenerateKey(xkp, 256, NULL, 0);

	CHECK(harness_dies(p_bad_op_handle, dummy));
	CHECK(harness_dies(p_freed_op, NULL));
	CHECK(harness_dies(p_bad_obj_handle, dummy));
	CHECK(harness_dies(p_op_as_object, NULL));
	CHECK(harness_dies(p_mac_on_digest, NULL));
	CHECK(harness_dies(p_mac_without_key, NULL));
	CHECK(harness_dies(p_sign_in_verify_mode, edpub));
	CHECK(harness_dies(p_wrong_key_type, NULL));
	CHECK(harness_dies(p_key_too_big, NULL));
	CHECK(harness_dies(p_key_usage, NULL));
	CHECK(harness_dies(p_setkey_initialized, NULL));
	CHECK(harness_dies(p_aad_after_payload, NULL));
	CHECK(harness_dies(p_update_after_mac_invalid, NULL));
	CHECK(harness_dies(p_short_hmac_key, NULL));
	CHECK(harness_dies(p_attr_uninitialised, NULL));
	CHECK(harness_dies(p_not_extractable, NULL));
	CHECK(harness_dies(p_missing_attr, NULL));
	CHECK(harness_dies(p_derive_bad_object, xkp));
	CHECK(harness_dies(p_free_persistent_as_transient, NULL));
	TEE_FreeTransientObject(edpub);
	TEE_FreeTransientObject(xkp);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (edge_sim_gp_init(harness_tmpdir("gp_test_crypto")) != 0)
		harness_die("edge_sim_gp_init");
	test_sha256();
	test_hmac();
	test_gcm();
	test_ed25519();
	test_ed25519_objects();
	test_x25519();
	test_panics();

	return harness_summary();
}
