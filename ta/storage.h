/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Secure storage objects of the edge TA (TEE_STORAGE_PRIVATE). Every object's
 * data stream starts with an 8-byte header, u32 tag || u32 layout version,
 * so a layout can evolve; a reader refuses a tag or version it does not know
 * (TEE_ERROR_CORRUPT_OBJECT). Data objects are written whole with one
 * TEE_CreatePersistentObject(), which OP-TEE commits atomically, and are
 * never kept open between calls.
 */
#ifndef EDGE_STORAGE_H
#define EDGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>

#define EDGE_STORE_HDR_SIZE	8
#define EDGE_STORE_LAYOUT	1

/* Object ids. */
#define EDGE_OBJ_IDENTITY_SIGN	"edge.identity.ed25519"
#define EDGE_OBJ_IDENTITY_KEX	"edge.identity.x25519"
#define EDGE_OBJ_ANCHORS	"edge.anchors"
#define EDGE_OBJ_MODEL		"edge.model"
#define EDGE_OBJ_TRAIN		"edge.train"
#define EDGE_OBJ_INFER		"edge.infer"
#define EDGE_OBJ_REGISTRAR	"edge.registrar"
#define EDGE_OBJ_SECAGG		"edge.secagg"

/* Header tags. */
#define EDGE_TAG_KEY		0x4b474445u	/* "EDGK" */
#define EDGE_TAG_ANCHORS	0x41474445u	/* "EDGA" */
#define EDGE_TAG_MODEL		0x4d474445u	/* "EDGM" */
#define EDGE_TAG_TRAIN		0x54474445u	/* "EDGT" */
#define EDGE_TAG_INFER		0x49474445u	/* "EDGI" */
#define EDGE_TAG_REGISTRAR	0x52474445u	/* "EDGR" */
#define EDGE_TAG_SECAGG		0x53474445u	/* "EDGS" */

/* Writes the header into the first EDGE_STORE_HDR_SIZE bytes of buf. */
void storage_hdr_init(uint8_t *buf, uint32_t tag);

/*
 * Reads a whole data object into a new TEE_Malloc'ed buffer (header
 * included). The payload must be min_payload..max_payload bytes.
 * TEE_ERROR_ITEM_NOT_FOUND if absent. The caller wipes and frees *buf.
 */
TEE_Result storage_get(const char *id, uint32_t tag, size_t min_payload,
		       size_t max_payload, uint8_t **buf, size_t *len);

/*
 * Writes buf (header included) as the whole object id in one
 * TEE_CreatePersistentObject. With overwrite false, an existing object gives
 * TEE_ERROR_ACCESS_CONFLICT and is left untouched.
 */
TEE_Result storage_put(const char *id, const uint8_t *buf, size_t len,
		       bool overwrite);

/* Deletes object id; success if it did not exist. */
TEE_Result storage_delete(const char *id);

/*
 * Key objects: a persistent object created from a transient key object, with
 * a header-only data stream. storage_create_key overwrites.
 */
TEE_Result storage_create_key(const char *id, TEE_ObjectHandle key);
/* Opens a key object read-only (shared read); ITEM_NOT_FOUND if absent. */
TEE_Result storage_open_key(const char *id, TEE_ObjectHandle *key);

#endif /* EDGE_STORAGE_H */
