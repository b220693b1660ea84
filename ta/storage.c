// SPDX-License-Identifier: BSD-2-Clause
/*
 * Secure storage objects of the edge TA.
 */
#include <string.h>
#include <tee_internal_api.h>

#include "bytes.h"
#include "storage.h"

void storage_hdr_init(uint8_t *buf, uint32_t tag)
{
	put_le32(buf, tag);
	put_le32(buf + 4, EDGE_STORE_LAYOUT);
}

static bool hdr_ok(const uint8_t *hdr, uint32_t tag)
{
	return get_le32(hdr) == tag && get_le32(hdr + 4) == EDGE_STORE_LAYOUT;
}

static TEE_Result open_ro(const char *id, TEE_ObjectHandle *obj)
{
	return TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, id, strlen(id),
					TEE_DATA_FLAG_ACCESS_READ |
					TEE_DATA_FLAG_SHARE_READ, obj);
}

TEE_Result storage_get(const char *id, uint32_t tag, size_t min_payload,
		       size_t max_payload, uint8_t **buf, size_t *len)
{
	TEE_ObjectHandle obj = TEE_HANDLE_NULL;
	TEE_ObjectInfo info = { };
	TEE_Result res = TEE_ERROR_GENERIC;
	uint8_t *data = NULL;
	size_t count = 0;

	*buf = NULL;
	*len = 0;
	res = open_ro(id, &obj);
	if (res)
		return res;
	res = TEE_GetObjectInfo1(obj, &info);
	if (res)
		goto out;
	if (info.dataSize < EDGE_STORE_HDR_SIZE + min_payload ||
	    info.dataSize - EDGE_STORE_HDR_SIZE > max_payload) {
		EMSG("object %s: bad size %zu", id, info.dataSize);
		res = TEE_ERROR_CORRUPT_OBJECT;
		goto out;
	}
	data = TEE_Malloc(info.dataSize, TEE_MALLOC_FILL_ZERO);
	if (!data) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	res = TEE_ReadObjectData(obj, data, info.dataSize, &count);
	if (res)
		goto out;
	if (count != info.dataSize || !hdr_ok(data, tag)) {
		EMSG("object %s: bad header or short read", id);
		res = TEE_ERROR_CORRUPT_OBJECT;
		goto out;
	}
	*buf = data;
	*len = count;
	data = NULL;
out:
	if (data) {
		TEE_MemFill(data, 0, info.dataSize);
		TEE_Free(data);
	}
	TEE_CloseObject(obj);
	return res;
}

TEE_Result storage_put(const char *id, const uint8_t *buf, size_t len,
		       bool overwrite)
{
	TEE_ObjectHandle obj = TEE_HANDLE_NULL;
	TEE_Result res = TEE_ERROR_GENERIC;
	uint32_t flags = TEE_DATA_FLAG_ACCESS_READ | TEE_DATA_FLAG_ACCESS_WRITE |
			 TEE_DATA_FLAG_ACCESS_WRITE_META;

	if (overwrite)
		flags |= TEE_DATA_FLAG_OVERWRITE;
	res = TEE_CreatePersistentObject(TEE_STORAGE_PRIVATE, id, strlen(id),
					 flags, TEE_HANDLE_NULL, buf, len,
					 &obj);
	if (res)
		return res;
	TEE_CloseObject(obj);
	return TEE_SUCCESS;
}

TEE_Result storage_delete(const char *id)
{
	TEE_ObjectHandle obj = TEE_HANDLE_NULL;
	TEE_Result res = TEE_ERROR_GENERIC;

	res = TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, id, strlen(id),
				       TEE_DATA_FLAG_ACCESS_WRITE_META, &obj);
	if (res == TEE_ERROR_ITEM_NOT_FOUND)
		return TEE_SUCCESS;
	if (res)
		return res;
	return TEE_CloseAndDeletePersistentObject1(obj);
}

TEE_Result storage_create_key(const char *id, TEE_ObjectHandle key)
{
	TEE_ObjectHandle obj = TEE_HANDLE_NULL;
	TEE_Result res = TEE_ERROR_GENERIC;
	uint8_t hdr[EDGE_STORE_HDR_SIZE] = { 0 };

	storage_hdr_init(hdr, EDGE_TAG_KEY);
	/* Stored keys are used in place, never read back: drop EXTRACTABLE so
	 * not even TA code can export the private values later. */
	res = TEE_RestrictObjectUsage1(key, ~(uint32_t)TEE_USAGE_EXTRACTABLE);
	if (res)
		return res;
	res = TEE_CreatePersistentObject(TEE_STORAGE_PRIVATE, id, strlen(id),
					 TEE_DATA_FLAG_ACCESS_READ |
					 TEE_DATA_FLAG_ACCESS_WRITE_META |
					 TEE_DATA_FLAG_OVERWRITE,
					 key, hdr, sizeof(hdr), &obj);
	if (res)
		return res;
	TEE_CloseObject(obj);
	return TEE_SUCCESS;
}

TEE_Result storage_open_key(const char *id, TEE_ObjectHandle *key)
{
	TEE_ObjectHandle obj = TEE_HANDLE_NULL;
	TEE_Result res = TEE_ERROR_GENERIC;
	uint8_t hdr[EDGE_STORE_HDR_SIZE] = { 0 };
	size_t count = 0;

	*key = TEE_HANDLE_NULL;
	res = open_ro(id, &obj);
	if (res)
		return res;
	res = TEE_ReadObjectData(obj, hdr, sizeof(hdr), &count);
	if (!res && (count != sizeof(hdr) || !hdr_ok(hdr, EDGE_TAG_KEY))) {
		EMSG("key object %s: bad header", id);
		res = TEE_ERROR_CORRUPT_OBJECT;
	}
	if (res) {
		TEE_CloseObject(obj);
		return res;
	}
	*key = obj;
	return TEE_SUCCESS;
}
