/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The subset of the GlobalPlatform TEE Internal Core API (v1.3, the size_t
 * signatures OP-TEE 4.x uses) that the edge TA calls, for the simulated
 * secure world. Names, signatures and constant values follow the GP
 * specification so the TA sources build unchanged against OP-TEE's TA dev
 * kit. Implemented over OpenSSL 3 in host/sim/gp/.
 *
 * Anything the TA needs that is not declared here must be added here and in
 * host/sim/gp/ together; a TA that compiles against this header uses only
 * calls OP-TEE 4.x provides.
 */
#ifndef EDGE_SIM_TEE_INTERNAL_API_H
#define EDGE_SIM_TEE_INTERNAL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <trace.h>

/* ---- Types ------------------------------------------------------------ */

typedef uint32_t TEE_Result;

typedef struct {
	uint32_t timeLow;
	uint16_t timeMid;
	uint16_t timeHiAndVersion;
	uint8_t clockSeqAndNode[8];
} TEE_UUID;

typedef union {
	struct {
		void *buffer;
		size_t size;
	} memref;
	struct {
		uint32_t a;
		uint32_t b;
	} value;
} TEE_Param;

typedef struct {
	uint32_t attributeID;
	union {
		struct {
			void *buffer;
			size_t length;
		} ref;
		struct {
			uint32_t a, b;
		} value;
	} content;
} TEE_Attribute;

typedef struct {
	uint32_t objectType;
	uint32_t objectSize;
	uint32_t maxObjectSize;
	uint32_t objectUsage;
	size_t dataSize;
	size_t dataPosition;
	uint32_t handleFlags;
} TEE_ObjectInfo;

typedef struct {
	uint32_t seconds;
	uint32_t millis;
} TEE_Time;

typedef uint32_t TEE_ObjectType;
typedef uint32_t TEE_Whence;
typedef uint32_t TEE_OperationMode;

typedef struct __TEE_ObjectHandle *TEE_ObjectHandle;
typedef struct __TEE_OperationHandle *TEE_OperationHandle;

/* ---- Constants (values from the GP specification) --------------------- */

#define TEE_HANDLE_NULL			0

#define TEE_SUCCESS			0x00000000
#define TEE_ERROR_CORRUPT_OBJECT	0xF0100001
#define TEE_ERROR_STORAGE_NOT_AVAILABLE	0xF0100003
#define TEE_ERROR_GENERIC		0xFFFF0000
#define TEE_ERROR_ACCESS_DENIED		0xFFFF0001
#define TEE_ERROR_CANCEL		0xFFFF0002
#define TEE_ERROR_ACCESS_CONFLICT	0xFFFF0003
#define TEE_ERROR_EXCESS_DATA		0xFFFF0004
#define TEE_ERROR_BAD_FORMAT		0xFFFF0005
#define TEE_ERROR_BAD_PARAMETERS	0xFFFF0006
#define TEE_ERROR_BAD_STATE		0xFFFF0007
#define TEE_ERROR_ITEM_NOT_FOUND	0xFFFF0008
#define TEE_ERROR_NOT_IMPLEMENTED	0xFFFF0009
#define TEE_ERROR_NOT_SUPPORTED		0xFFFF000A
#define TEE_ERROR_NO_DATA		0xFFFF000B
#define TEE_ERROR_OUT_OF_MEMORY		0xFFFF000C
#define TEE_ERROR_BUSY			0xFFFF000D
#define TEE_ERROR_COMMUNICATION		0xFFFF000E
#define TEE_ERROR_SECURITY		0xFFFF000F
#define TEE_ERROR_SHORT_BUFFER		0xFFFF0010
#define TEE_ERROR_OVERFLOW		0xFFFF300F
#define TEE_ERROR_TARGET_DEAD		0xFFFF3024
#define TEE_ERROR_STORAGE_NO_SPACE	0xFFFF3041
#define TEE_ERROR_MAC_INVALID		0xFFFF3071
#define TEE_ERROR_SIGNATURE_INVALID	0xFFFF3072

#define TEE_PARAM_TYPE_NONE		0
#define TEE_PARAM_TYPE_VALUE_INPUT	1
#define TEE_PARAM_TYPE_VALUE_OUTPUT	2
#define TEE_PARAM_TYPE_VALUE_INOUT	3
#define TEE_PARAM_TYPE_MEMREF_INPUT	5
#define TEE_PARAM_TYPE_MEMREF_OUTPUT	6
#define TEE_PARAM_TYPE_MEMREF_INOUT	7
#define TEE_NUM_PARAMS			4

#define TEE_PARAM_TYPES(t0, t1, t2, t3) \
	((t0) | ((t1) << 4) | ((t2) << 8) | ((t3) << 12))
#define TEE_PARAM_TYPE_GET(t, i) ((((uint32_t)(t)) >> ((i) * 4)) & 0xF)

/*
 * The only GP hint: OP-TEE 4.5's TEE_Malloc panics on GP's
 * TEE_MALLOC_NO_FILL / NO_SHARE, so they are left out on purpose (OP-TEE's
 * own no-fill hint is in tee_internal_api_extensions.h).
 */
#define TEE_MALLOC_FILL_ZERO		0x00000000

#define TEE_STORAGE_PRIVATE		0x00000001
#define TEE_OBJECT_ID_MAX_LEN		64
#define TEE_DATA_FLAG_ACCESS_READ	0x00000001
#define TEE_DATA_FLAG_ACCESS_WRITE	0x00000002
#define TEE_DATA_FLAG_ACCESS_WRITE_META	0x00000004
#define TEE_DATA_FLAG_SHARE_READ	0x00000010
#define TEE_DATA_FLAG_SHARE_WRITE	0x00000020
#define TEE_DATA_FLAG_OVERWRITE		0x00000400
#define TEE_DATA_SEEK_SET		0x00000000
#define TEE_DATA_SEEK_CUR		0x00000001
#define TEE_DATA_SEEK_END		0x00000002
#define TEE_HANDLE_FLAG_PERSISTENT	0x00010000
#define TEE_HANDLE_FLAG_INITIALIZED	0x00020000

#define TEE_USAGE_EXTRACTABLE		0x00000001
#define TEE_USAGE_ENCRYPT		0x00000002
#define TEE_USAGE_DECRYPT		0x00000004
#define TEE_USAGE_MAC			0x00000008
#define TEE_USAGE_SIGN			0x00000010
#define TEE_USAGE_VERIFY		0x00000020
#define TEE_USAGE_DERIVE		0x00000040

#define TEE_MODE_ENCRYPT		0x00000000
#define TEE_MODE_DECRYPT		0x00000001
#define TEE_MODE_SIGN			0x00000002
#define TEE_MODE_VERIFY			0x00000003
#define TEE_MODE_MAC			0x00000004
#define TEE_MODE_DIGEST			0x00000005
#define TEE_MODE_DERIVE			0x00000006

#define TEE_ALG_AES_CTR			0x10000210
#define TEE_ALG_AES_GCM			0x40000810
#define TEE_ALG_SHA256			0x50000004
#define TEE_ALG_HMAC_SHA256		0x30000004
#define TEE_ALG_ED25519			0x70006043
#define TEE_ALG_X25519			0x80000044

#define TEE_TYPE_AES			0xA0000010
#define TEE_TYPE_DATA			0xA00000BF
#define TEE_TYPE_HMAC_SHA256		0xA0000004
#define TEE_TYPE_GENERIC_SECRET		0xA0000000
#define TEE_TYPE_ED25519_PUBLIC_KEY	0xA0000043
#define TEE_TYPE_ED25519_KEYPAIR	0xA1000043
#define TEE_TYPE_X25519_PUBLIC_KEY	0xA0000044
#define TEE_TYPE_X25519_KEYPAIR		0xA1000044

#define TEE_ATTR_SECRET_VALUE		0xC0000000
#define TEE_ATTR_ED25519_PUBLIC_VALUE	0xD0000743
#define TEE_ATTR_ED25519_PRIVATE_VALUE	0xC0000843
#define TEE_ATTR_X25519_PUBLIC_VALUE	0xD0000944
#define TEE_ATTR_X25519_PRIVATE_VALUE	0xC0000A44

#define TEE_ORIGIN_API			0x00000001
#define TEE_ORIGIN_COMMS		0x00000002
#define TEE_ORIGIN_TEE			0x00000003
#define TEE_ORIGIN_TRUSTED_APP		0x00000004

/* ---- TA entry points (implemented by the TA) -------------------------- */

TEE_Result TA_CreateEntryPoint(void);
void TA_DestroyEntryPoint(void);
TEE_Result TA_OpenSessionEntryPoint(uint32_t paramTypes,
				    TEE_Param params[TEE_NUM_PARAMS],
				    void **sessionContext);
void TA_CloseSessionEntryPoint(void *sessionContext);
TEE_Result TA_InvokeCommandEntryPoint(void *sessionContext,
				      uint32_t commandID, uint32_t paramTypes,
				      TEE_Param params[TEE_NUM_PARAMS]);

/* ---- Internal Core API subset ----------------------------------------- */

/* Panics end the secure-world process: the client sees TARGET_DEAD. */
void TEE_Panic(TEE_Result panicCode) __attribute__((noreturn));

void *TEE_Malloc(size_t size, uint32_t hint);
void *TEE_Realloc(void *buffer, size_t newSize);
void TEE_Free(void *buffer);
void TEE_MemMove(void *dest, const void *src, size_t size);
int32_t TEE_MemCompare(const void *buffer1, const void *buffer2, size_t size);
void TEE_MemFill(void *buff, uint32_t x, size_t size);

void TEE_GenerateRandom(void *randomBuffer, size_t randomBufferLen);
void TEE_GetSystemTime(TEE_Time *time);
void TEE_GetREETime(TEE_Time *time);

/* Transient and generic objects */
TEE_Result TEE_AllocateTransientObject(TEE_ObjectType objectType,
				       uint32_t maxObjectSize,
				       TEE_ObjectHandle *object);
void TEE_FreeTransientObject(TEE_ObjectHandle object);
void TEE_ResetTransientObject(TEE_ObjectHandle object);
TEE_Result TEE_PopulateTransientObject(TEE_ObjectHandle object,
				       const TEE_Attribute *attrs,
				       uint32_t attrCount);
void TEE_InitRefAttribute(TEE_Attribute *attr, uint32_t attributeID,
			  const void *buffer, size_t length);
void TEE_InitValueAttribute(TEE_Attribute *attr, uint32_t attributeID,
			    uint32_t a, uint32_t b);
TEE_Result TEE_GenerateKey(TEE_ObjectHandle object, uint32_t keySize,
			   const TEE_Attribute *params, uint32_t paramCount);
TEE_Result TEE_GetObjectInfo1(TEE_ObjectHandle object,
			      TEE_ObjectInfo *objectInfo);
/* Clears usage bits (usage &= objectUsage); a key kept in storage is made
 * non-extractable this way before it is persisted. */
TEE_Result TEE_RestrictObjectUsage1(TEE_ObjectHandle object,
				    uint32_t objectUsage);
TEE_Result TEE_GetObjectBufferAttribute(TEE_ObjectHandle object,
					uint32_t attributeID, void *buffer,
					size_t *size);
void TEE_CloseObject(TEE_ObjectHandle object);

/* Persistent objects (the simulated REE FS: encrypted files, see gp/) */
TEE_Result TEE_OpenPersistentObject(uint32_t storageID, const void *objectID,
				    size_t objectIDLen, uint32_t flags,
				    TEE_ObjectHandle *object);
TEE_Result TEE_CreatePersistentObject(uint32_t storageID, const void *objectID,
				      size_t objectIDLen, uint32_t flags,
				      TEE_ObjectHandle attributes,
				      const void *initialData,
				      size_t initialDataLen,
				      TEE_ObjectHandle *object);
TEE_Result TEE_CloseAndDeletePersistentObject1(TEE_ObjectHandle object);
TEE_Result TEE_ReadObjectData(TEE_ObjectHandle object, void *buffer,
			      size_t size, size_t *count);
TEE_Result TEE_WriteObjectData(TEE_ObjectHandle object, const void *buffer,
			       size_t size);
TEE_Result TEE_TruncateObjectData(TEE_ObjectHandle object, size_t size);
TEE_Result TEE_SeekObjectData(TEE_ObjectHandle object, intmax_t offset,
			      TEE_Whence whence);

/* Operations */
TEE_Result TEE_AllocateOperation(TEE_OperationHandle *operation,
				 uint32_t algorithm, uint32_t mode,
				 uint32_t maxKeySize);
void TEE_FreeOperation(TEE_OperationHandle operation);
void TEE_ResetOperation(TEE_OperationHandle operation);
TEE_Result TEE_SetOperationKey(TEE_OperationHandle operation,
			       TEE_ObjectHandle key);

void TEE_DigestUpdate(TEE_OperationHandle operation, const void *chunk,
		      size_t chunkSize);
TEE_Result TEE_DigestDoFinal(TEE_OperationHandle operation, const void *chunk,
			     size_t chunkLen, void *hash, size_t *hashLen);

void TEE_MACInit(TEE_OperationHandle operation, const void *IV, size_t IVLen);
void TEE_MACUpdate(TEE_OperationHandle operation, const void *chunk,
		   size_t chunkSize);
TEE_Result TEE_MACComputeFinal(TEE_OperationHandle operation,
			       const void *message, size_t messageLen,
			       void *mac, size_t *macLen);

void TEE_CipherInit(TEE_OperationHandle operation, const void *IV,
		    size_t IVLen);
TEE_Result TEE_CipherUpdate(TEE_OperationHandle operation, const void *srcData,
			    size_t srcLen, void *destData, size_t *destLen);
TEE_Result TEE_CipherDoFinal(TEE_OperationHandle operation,
			     const void *srcData, size_t srcLen,
			     void *destData, size_t *destLen);

TEE_Result TEE_AEInit(TEE_OperationHandle operation, const void *nonce,
		      size_t nonceLen, uint32_t tagLen, size_t AADLen,
		      size_t payloadLen);
void TEE_AEUpdateAAD(TEE_OperationHandle operation, const void *AADdata,
		     size_t AADdataLen);
TEE_Result TEE_AEUpdate(TEE_OperationHandle operation, const void *srcData,
			size_t srcLen, void *destData, size_t *destLen);
TEE_Result TEE_AEEncryptFinal(TEE_OperationHandle operation,
			      const void *srcData, size_t srcLen,
			      void *destData, size_t *destLen, void *tag,
			      size_t *tagLen);
TEE_Result TEE_AEDecryptFinal(TEE_OperationHandle operation,
			      const void *srcData, size_t srcLen,
			      void *destData, size_t *destLen, void *tag,
			      size_t tagLen);

TEE_Result TEE_AsymmetricSignDigest(TEE_OperationHandle operation,
				    const TEE_Attribute *params,
				    uint32_t paramCount, const void *digest,
				    size_t digestLen, void *signature,
				    size_t *signatureLen);
TEE_Result TEE_AsymmetricVerifyDigest(TEE_OperationHandle operation,
				      const TEE_Attribute *params,
				      uint32_t paramCount, const void *digest,
				      size_t digestLen, const void *signature,
				      size_t signatureLen);
void TEE_DeriveKey(TEE_OperationHandle operation, const TEE_Attribute *params,
		   uint32_t paramCount, TEE_ObjectHandle derivedKey);

#endif /* EDGE_SIM_TEE_INTERNAL_API_H */
