// SPDX-License-Identifier: BSD-2-Clause
/*
 * Device identity: key pairs in secure storage and the device record.
 */
#include <tee_internal_api.h>

#include "bytes.h"
#include "crypto.h"
#include "envelope.h"
#include "identity.h"
#include "storage.h"

void identity_close(struct edge_identity *id)
{
	if (id->sign_key)
		TEE_CloseObject(id->sign_key);
	if (id->kex_key)
		TEE_CloseObject(id->kex_key);
	TEE_MemFill(id, 0, sizeof(*id));
}

static TEE_Result read_pub(TEE_ObjectHandle key, uint32_t attr,
			   uint8_t pub[EDGE_PUBKEY_SIZE])
{
	size_t len = EDGE_PUBKEY_SIZE;
	TEE_Result res = TEE_GetObjectBufferAttribute(key, attr, pub, &len);

	if (!res && len != EDGE_PUBKEY_SIZE)
		res = TEE_ERROR_CORRUPT_OBJECT;
	return res;
}

TEE_Result identity_load(struct edge_identity *id)
{
	struct edge_identity tmp = { };
	TEE_Result res = TEE_ERROR_GENERIC;

	identity_close(id);
	res = storage_open_key(EDGE_OBJ_IDENTITY_SIGN, &tmp.sign_key);
	if (res)
		return res;
	res = storage_open_key(EDGE_OBJ_IDENTITY_KEX, &tmp.kex_key);
	if (res == TEE_ERROR_ITEM_NOT_FOUND) {
		/* An Ed25519 key without its X25519 partner: corrupt. */
		EMSG("identity: key-agreement key missing");
		res = TEE_ERROR_CORRUPT_OBJECT;
	}
	if (!res)
		res = read_pub(tmp.sign_key, TEE_ATTR_ED25519_PUBLIC_VALUE,
			       tmp.sign_pub);
	if (!res)
		res = read_pub(tmp.kex_key, TEE_ATTR_X25519_PUBLIC_VALUE,
			       tmp.kex_pub);
	if (!res)
		res = edge_key_id(tmp.sign_pub, tmp.device_id);
	if (res) {
		identity_close(&tmp);
		return res;
	}
	tmp.present = true;
	*id = tmp;
	return TEE_SUCCESS;
}

static TEE_Result generate_and_store(const char *obj_id, uint32_t type)
{
	TEE_ObjectHandle key = TEE_HANDLE_NULL;
	TEE_Result res = TEE_ERROR_GENERIC;

	res = TEE_AllocateTransientObject(type, 256, &key);
	if (res)
		return res;
	res = TEE_GenerateKey(key, 256, NULL, 0);
	if (!res)
		res = storage_create_key(obj_id, key);
	/* Freeing the transient object clears its private key. */
	TEE_FreeTransientObject(key);
	return res;
}

TEE_Result identity_load_or_create(struct edge_identity *id)
{
	TEE_Result res = identity_load(id);

	if (res != TEE_ERROR_ITEM_NOT_FOUND)
		return res;
	IMSG("creating the device identity");
	res = generate_and_store(EDGE_OBJ_IDENTITY_KEX,
				 TEE_TYPE_X25519_KEYPAIR);
	if (!res)
		res = generate_and_store(EDGE_OBJ_IDENTITY_SIGN,
					 TEE_TYPE_ED25519_KEYPAIR);
	if (res) {
		EMSG("identity creation failed: 0x%x", (unsigned int)res);
		return res;
	}
	return identity_load(id);
}

TEE_Result identity_device_record(TEE_ObjectHandle sign_key,
				  const uint8_t sign_pub[EDGE_PUBKEY_SIZE],
				  const uint8_t kex_pub[EDGE_PUBKEY_SIZE],
				  uint8_t rec[EDGE_DEVICE_RECORD_SIZE])
{
	uint8_t device_id[EDGE_KEY_ID_SIZE] = { 0 };
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };
	uint8_t *body = rec + EDGE_ENVELOPE_HEADER_SIZE;
	TEE_Result res = TEE_ERROR_GENERIC;

	res = edge_key_id(sign_pub, device_id);
	if (res)
		return res;
	TEE_MemFill(rec, 0, EDGE_DEVICE_RECORD_SIZE);
	envelope_put_header(rec, EDGE_KIND_DEVICE_RECORD, EDGE_DEVICE_BODY_SIZE,
			    device_id);
	TEE_MemMove(body + EDGE_DEVICE_OFF_SIGN_PUB, sign_pub, EDGE_PUBKEY_SIZE);
	TEE_MemMove(body + EDGE_DEVICE_OFF_KEX_PUB, kex_pub, EDGE_PUBKEY_SIZE);
	put_le32(body + EDGE_DEVICE_OFF_ABI_VERSION, EDGE_TA_ABI_VERSION);
	/* Reserved: zero from the fill above. */
	res = edge_sha256(rec, EDGE_ENVELOPE_HEADER_SIZE + EDGE_DEVICE_BODY_SIZE,
			  digest);
	if (res)
		return res;
	return edge_ed25519_sign(sign_key, digest,
				 body + EDGE_DEVICE_BODY_SIZE);
}

TEE_Result identity_device_record_open(const uint8_t *buf, size_t len,
				       uint8_t sign_pub[EDGE_PUBKEY_SIZE],
				       uint8_t kex_pub[EDGE_PUBKEY_SIZE],
				       uint8_t device_id[EDGE_KEY_ID_SIZE],
				       uint32_t *abi_version)
{
	struct edge_envelope env = { };
	uint8_t id[EDGE_KEY_ID_SIZE] = { 0 };
	const uint8_t *body = NULL;
	TEE_Result res = TEE_ERROR_GENERIC;

	res = envelope_precheck(buf, len, EDGE_KIND_DEVICE_RECORD,
				EDGE_DEVICE_RECORD_SIZE);
	if (res)
		return res;
	/* Self-signed: the expected signer is the key in the body. */
	if (get_le32(buf + EDGE_ENVELOPE_HEADER_OFF_BODY_LEN) !=
	    EDGE_DEVICE_BODY_SIZE)
		return TEE_ERROR_BAD_FORMAT;
	body = buf + EDGE_ENVELOPE_HEADER_SIZE;
	res = edge_key_id(body + EDGE_DEVICE_OFF_SIGN_PUB, id);
	if (res)
		return res;
	res = envelope_open(buf, len, EDGE_KIND_DEVICE_RECORD,
			    EDGE_DEVICE_RECORD_SIZE, id,
			    body + EDGE_DEVICE_OFF_SIGN_PUB, &env);
	if (res)
		return res;
	if (!zeros_at(body + EDGE_DEVICE_OFF_RESERVED,
		      EDGE_DEVICE_LEN_RESERVED))
		return TEE_ERROR_BAD_FORMAT;
	if (sign_pub)
		TEE_MemMove(sign_pub, body + EDGE_DEVICE_OFF_SIGN_PUB,
			    EDGE_PUBKEY_SIZE);
	if (kex_pub)
		TEE_MemMove(kex_pub, body + EDGE_DEVICE_OFF_KEX_PUB,
			    EDGE_PUBKEY_SIZE);
	if (device_id)
		TEE_MemMove(device_id, id, EDGE_KEY_ID_SIZE);
	if (abi_version)
		*abi_version = get_le32(body + EDGE_DEVICE_OFF_ABI_VERSION);
	return TEE_SUCCESS;
}
