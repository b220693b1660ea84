// SPDX-License-Identifier: BSD-2-Clause
/*
 * Simulated GP Internal Core API: transient objects and the generic object
 * functions shared with persistent objects.
 *
 * Where OP-TEE's libutee turns a kernel error into TEE_Panic, so do we: a
 * TA that passes the simulator must not panic on the real TEE for a reason
 * the simulator forgave.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "gp_internal.h"


static const struct gp_type_props type_props[] = {
	{ TEE_TYPE_AES, 64, 128, 256, 1, { TEE_ATTR_SECRET_VALUE, 0 } },
	{ TEE_TYPE_HMAC_SHA256, 8, 192, 1024, 1, { TEE_ATTR_SECRET_VALUE, 0 } },
	{ TEE_TYPE_GENERIC_SECRET, 8, 8, 4096, 1,
	  { TEE_ATTR_SECRET_VALUE, 0 } },
	{ TEE_TYPE_ED25519_KEYPAIR, 256, 256, 256, 2,
	  { TEE_ATTR_ED25519_PUBLIC_VALUE, TEE_ATTR_ED25519_PRIVATE_VALUE } },
	{ TEE_TYPE_ED25519_PUBLIC_KEY, 256, 256, 256, 1,
	  { TEE_ATTR_ED25519_PUBLIC_VALUE, 0 } },
	{ TEE_TYPE_X25519_KEYPAIR, 256, 256, 256, 2,
	  { TEE_ATTR_X25519_PUBLIC_VALUE, TEE_ATTR_X25519_PRIVATE_VALUE } },
	{ TEE_TYPE_X25519_PUBLIC_KEY, 256, 256, 256, 1,
	  { TEE_ATTR_X25519_PUBLIC_VALUE, 0 } },
};

const struct gp_type_props *gp_type_props(uint32_t type)
{
	size_t i;

	for (i = 0; i < sizeof(type_props) / sizeof(type_props[0]); i++)
		if (type_props[i].type == type)
			return &type_props[i];
	return NULL;
}

static bool is_secret_type(uint32_t type)
{
	return type == TEE_TYPE_AES || type == TEE_TYPE_HMAC_SHA256 ||
	       type == TEE_TYPE_GENERIC_SECRET;
}

static bool key_size_valid(const struct gp_type_props *p, uint64_t bits)
{
	return bits % p->quanta == 0 && bits >= p->min_bits &&
	       bits <= p->max_bits;
}

/* ---- Key helpers ------------------------------------------------------- */

const struct gp_attr *gp_key_attr(const struct gp_key *k, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < k->n_attrs; i++)
		if (k->attrs[i].id == id)
			return &k->attrs[i];
	return NULL;
}

void gp_key_clear(struct gp_key *k)
{
	unsigned int i;

	for (i = 0; i < k->n_attrs; i++) {
		if (k->attrs[i].buf) {
			OPENSSL_cleanse(k->attrs[i].buf, k->attrs[i].len);
			free(k->attrs[i].buf);
		}
		k->attrs[i].buf = NULL;
		k->attrs[i].len = 0;
		k->attrs[i].id = 0;
	}
	k->n_attrs = 0;
	k->obj_size = 0;
	k->initialized = false;
}

bool gp_key_add_attr(struct gp_key *k, uint32_t id, const void *buf,
		     size_t len)
{
	struct gp_attr *a;

	if (k->n_attrs >= GP_MAX_ATTRS)
		return false;
	a = &k->attrs[k->n_attrs];
	/* One spare byte so that a zero-length value still has a buffer. */
	a->buf = malloc(len + 1);
	if (!a->buf)
		return false;
	if (len)
		memcpy(a->buf, buf, len);
	a->len = len;
	a->id = id;
	k->n_attrs++;
	return true;
}

bool gp_key_copy(struct gp_key *dst, const struct gp_key *src)
{
	unsigned int i;

	*dst = *src;
	dst->n_attrs = 0;
	memset(dst->attrs, 0, sizeof(dst->attrs));
	for (i = 0; i < src->n_attrs; i++) {
		if (!gp_key_add_attr(dst, src->attrs[i].id, src->attrs[i].buf,
				     src->attrs[i].len)) {
			gp_key_clear(dst);
			return false;
		}
	}
	return true;
}

static int pkey_id_of(uint32_t type)
{
	switch (type) {
	case TEE_TYPE_ED25519_KEYPAIR:
	case TEE_TYPE_ED25519_PUBLIC_KEY:
		return EVP_PKEY_ED25519;
	case TEE_TYPE_X25519_KEYPAIR:
	case TEE_TYPE_X25519_PUBLIC_KEY:
		return EVP_PKEY_X25519;
	default:
		return EVP_PKEY_NONE;
	}
}

static uint32_t public_attr_of(uint32_t type)
{
	return pkey_id_of(type) == EVP_PKEY_ED25519 ?
		       TEE_ATTR_ED25519_PUBLIC_VALUE :
		       TEE_ATTR_X25519_PUBLIC_VALUE;
}

static uint32_t private_attr_of(uint32_t type)
{
	return pkey_id_of(type) == EVP_PKEY_ED25519 ?
		       TEE_ATTR_ED25519_PRIVATE_VALUE :
		       TEE_ATTR_X25519_PRIVATE_VALUE;
}

EVP_PKEY *gp_key_to_pkey(const struct gp_key *k, bool want_private)
{
	int id = pkey_id_of(k->type);
	const struct gp_attr *a;

	if (id == EVP_PKEY_NONE || !k->initialized)
		return NULL;
	if (want_private) {
		a = gp_key_attr(k, private_attr_of(k->type));
		if (!a || a->len != GP_25519_LEN)
			return NULL;
		return EVP_PKEY_new_raw_private_key(id, NULL, a->buf, a->len);
	}
	a = gp_key_attr(k, public_attr_of(k->type));
	if (!a || a->len != GP_25519_LEN)
		return NULL;
	return EVP_PKEY_new_raw_public_key(id, NULL, a->buf, a->len);
}

/*
 * OP-TEE takes a key pair's two halves on trust; a mismatched pair then
 * signs with the wrong public key and the TA only notices much later.
 * Refusing it here points at the real bug.
 */
static bool keypair_consistent(int id, const uint8_t *priv, const uint8_t *pub)
{
	uint8_t derived[GP_25519_LEN];
	size_t len = sizeof(derived);
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(id, NULL, priv,
						    GP_25519_LEN);
	bool ok = false;

	if (!pk)
		return false;
	if (EVP_PKEY_get_raw_public_key(pk, derived, &len) == 1 &&
	    len == GP_25519_LEN)
		ok = CRYPTO_memcmp(derived, pub, GP_25519_LEN) == 0;
	EVP_PKEY_free(pk);
	return ok;
}

/* ---- Handles ----------------------------------------------------------- */

TEE_ObjectHandle gp_object_get(TEE_ObjectHandle h)
{
	if (!gp_handle_live(h, GP_HANDLE_OBJECT))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "invalid object handle %p",
			 (void *)h);
	return h;
}

struct gp_key *gp_object_key(TEE_ObjectHandle o)
{
	if (o->persistent)
		return gp_storage_key(o);
	return &o->key;
}

static void object_destroy(TEE_ObjectHandle o)
{
	if (o->persistent)
		gp_storage_close_handle(o);
	else
		gp_key_clear(&o->key);
	gp_handle_remove(o);
	OPENSSL_cleanse(o, sizeof(*o));
	free(o);
}

TEE_Result TEE_AllocateTransientObject(TEE_ObjectType objectType,
				       uint32_t maxObjectSize,
				       TEE_ObjectHandle *object)
{
	const struct gp_type_props *p = gp_type_props(objectType);
	TEE_ObjectHandle o;

	if (!object)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL object pointer");
	if (!p || !key_size_valid(p, maxObjectSize))
		return TEE_ERROR_NOT_SUPPORTED;

	o = calloc(1, sizeof(*o));
	if (!o)
		return TEE_ERROR_OUT_OF_MEMORY;
	o->key.type = objectType;
	o->key.max_size = maxObjectSize;
	o->key.usage = GP_USAGE_ALL;
	if (!gp_handle_add(o, GP_HANDLE_OBJECT)) {
		free(o);
		return TEE_ERROR_OUT_OF_MEMORY;
	}
	*object = o;
	return TEE_SUCCESS;
}

static TEE_ObjectHandle get_transient(TEE_ObjectHandle h)
{
	TEE_ObjectHandle o = gp_object_get(h);

	if (o->persistent)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "persistent object where a transient one is needed");
	return o;
}

void TEE_FreeTransientObject(TEE_ObjectHandle object)
{
	if (object == TEE_HANDLE_NULL)
		return;
	object_destroy(get_transient(object));
}

void TEE_ResetTransientObject(TEE_ObjectHandle object)
{
	TEE_ObjectHandle o;

	if (object == TEE_HANDLE_NULL)
		return;
	o = get_transient(object);
	gp_key_clear(&o->key);
	o->key.usage = GP_USAGE_ALL;
}

void TEE_CloseObject(TEE_ObjectHandle object)
{
	if (object == TEE_HANDLE_NULL)
		return;
	object_destroy(gp_object_get(object));
}

void TEE_InitRefAttribute(TEE_Attribute *attr, uint32_t attributeID,
			  const void *buffer, size_t length)
{
	if (!attr || (attributeID & GP_ATTR_FLAG_VALUE))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "bad reference attribute 0x%08x",
			 (unsigned int)attributeID);
	attr->attributeID = attributeID;
	attr->content.ref.buffer = (void *)(uintptr_t)buffer;
	attr->content.ref.length = length;
}

void TEE_InitValueAttribute(TEE_Attribute *attr, uint32_t attributeID,
			    uint32_t a, uint32_t b)
{
	if (!attr || !(attributeID & GP_ATTR_FLAG_VALUE))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "bad value attribute 0x%08x",
			 (unsigned int)attributeID);
	attr->attributeID = attributeID;
	attr->content.value.a = a;
	attr->content.value.b = b;
}

static int attr_index(const struct gp_type_props *p, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < p->n_attrs; i++)
		if (p->attr_ids[i] == id)
			return (int)i;
	return -1;
}

TEE_Result TEE_PopulateTransientObject(TEE_ObjectHandle object,
				       const TEE_Attribute *attrs,
				       uint32_t attrCount)
{
	TEE_ObjectHandle o = get_transient(object);
	const struct gp_type_props *p = gp_type_props(o->key.type);
	const TEE_Attribute *by_idx[GP_MAX_ATTRS] = { NULL, NULL };
	uint32_t n;
	unsigned int i;

	if (o->key.initialized)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "object already populated");
	if (!attrs && attrCount)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL attributes");

	for (n = 0; n < attrCount; n++) {
		int idx = attr_index(p, attrs[n].attributeID);

		if (idx < 0)
			GP_PANIC(TEE_ERROR_ITEM_NOT_FOUND,
				 "attribute 0x%08x not defined for type 0x%08x",
				 (unsigned int)attrs[n].attributeID,
				 (unsigned int)p->type);
		if (by_idx[idx])
			GP_PANIC(TEE_ERROR_ITEM_NOT_FOUND,
				 "attribute 0x%08x repeated",
				 (unsigned int)attrs[n].attributeID);
		if (!attrs[n].content.ref.buffer && attrs[n].content.ref.length)
			GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
				 "NULL attribute buffer");
		by_idx[idx] = &attrs[n];
	}
	for (i = 0; i < p->n_attrs; i++)
		if (!by_idx[i])
			GP_PANIC(TEE_ERROR_ITEM_NOT_FOUND,
				 "required attribute 0x%08x missing",
				 (unsigned int)p->attr_ids[i]);

	if (is_secret_type(p->type)) {
		size_t len = by_idx[0]->content.ref.length;
		uint64_t bits = (uint64_t)len * 8;

		if (bits > o->key.max_size)
			return TEE_ERROR_BAD_PARAMETERS;
		if (!key_size_valid(p, bits))
			GP_PANIC(TEE_ERROR_NOT_SUPPORTED,
				 "%zu-byte key not valid for type 0x%08x", len,
				 (unsigned int)p->type);
		o->key.obj_size = (uint32_t)bits;
	} else {
		for (i = 0; i < p->n_attrs; i++)
			if (by_idx[i]->content.ref.length != GP_25519_LEN)
				return TEE_ERROR_BAD_PARAMETERS;
		if (p->n_attrs == 2 &&
		    !keypair_consistent(pkey_id_of(p->type),
					by_idx[1]->content.ref.buffer,
					by_idx[0]->content.ref.buffer)) {
			EMSG("public value does not match the private value");
			return TEE_ERROR_BAD_PARAMETERS;
		}
		o->key.obj_size = 256;
	}

	for (i = 0; i < p->n_attrs; i++) {
		if (!gp_key_add_attr(&o->key, p->attr_ids[i],
				     by_idx[i]->content.ref.buffer,
				     by_idx[i]->content.ref.length))
			GP_PANIC(TEE_ERROR_OUT_OF_MEMORY,
				 "out of memory populating an object");
	}
	o->key.initialized = true;
	return TEE_SUCCESS;
}

static void generate_25519(struct gp_key *k)
{
	uint8_t priv[GP_25519_LEN];
	uint8_t pub[GP_25519_LEN];
	size_t priv_len = sizeof(priv);
	size_t pub_len = sizeof(pub);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(pkey_id_of(k->type), NULL);
	EVP_PKEY *pk = NULL;
	bool ok;

	ok = ctx && EVP_PKEY_keygen_init(ctx) == 1 &&
	     EVP_PKEY_keygen(ctx, &pk) == 1 &&
	     EVP_PKEY_get_raw_private_key(pk, priv, &priv_len) == 1 &&
	     EVP_PKEY_get_raw_public_key(pk, pub, &pub_len) == 1 &&
	     priv_len == GP_25519_LEN && pub_len == GP_25519_LEN &&
	     gp_key_add_attr(k, public_attr_of(k->type), pub, pub_len) &&
	     gp_key_add_attr(k, private_attr_of(k->type), priv, priv_len);
	OPENSSL_cleanse(priv, sizeof(priv));
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		GP_PANIC(TEE_ERROR_GENERIC, "key pair generation failed");
}

TEE_Result TEE_GenerateKey(TEE_ObjectHandle object, uint32_t keySize,
			   const TEE_Attribute *params, uint32_t paramCount)
{
	TEE_ObjectHandle o = get_transient(object);
	const struct gp_type_props *p = gp_type_props(o->key.type);

	(void)params;
	if (o->key.initialized)
		GP_PANIC(TEE_ERROR_BAD_STATE, "object already initialised");
	if (paramCount)
		GP_PANIC(TEE_ERROR_ITEM_NOT_FOUND,
			 "no key generation parameters are defined for type "
			 "0x%08x", (unsigned int)p->type);
	if (!key_size_valid(p, keySize) || keySize > o->key.max_size)
		GP_PANIC(TEE_ERROR_NOT_SUPPORTED,
			 "key size %u not valid for this object",
			 (unsigned int)keySize);

	if (is_secret_type(p->type)) {
		size_t len = keySize / 8;
		uint8_t *buf = malloc(len);

		if (!buf)
			GP_PANIC(TEE_ERROR_OUT_OF_MEMORY, "out of memory");
		TEE_GenerateRandom(buf, len);
		if (!gp_key_add_attr(&o->key, TEE_ATTR_SECRET_VALUE, buf, len))
			GP_PANIC(TEE_ERROR_OUT_OF_MEMORY, "out of memory");
		OPENSSL_cleanse(buf, len);
		free(buf);
	} else if (p->n_attrs == 2) {
		generate_25519(&o->key);
	} else {
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "cannot generate a lone public key");
	}
	o->key.obj_size = keySize;
	o->key.initialized = true;
	return TEE_SUCCESS;
}

TEE_Result TEE_GetObjectInfo1(TEE_ObjectHandle object,
			      TEE_ObjectInfo *objectInfo)
{
	TEE_ObjectHandle o = gp_object_get(object);
	const struct gp_key *k = gp_object_key(o);

	if (!objectInfo)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL objectInfo");
	memset(objectInfo, 0, sizeof(*objectInfo));
	objectInfo->objectType = k->type;
	objectInfo->objectSize = k->obj_size;
	objectInfo->maxObjectSize = k->max_size;
	objectInfo->objectUsage = k->usage;
	if (o->persistent) {
		objectInfo->dataSize = gp_storage_data_size(o);
		objectInfo->dataPosition = o->pos;
		objectInfo->handleFlags = TEE_HANDLE_FLAG_PERSISTENT |
					  TEE_HANDLE_FLAG_INITIALIZED |
					  o->flags;
	} else {
		objectInfo->handleFlags =
			k->initialized ? TEE_HANDLE_FLAG_INITIALIZED : 0;
	}
	return TEE_SUCCESS;
}

TEE_Result TEE_GetObjectBufferAttribute(TEE_ObjectHandle object,
					uint32_t attributeID, void *buffer,
					size_t *size)
{
	TEE_ObjectHandle o = gp_object_get(object);
	const struct gp_key *k = gp_object_key(o);
	const struct gp_attr *a;

	if (!size)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL size");
	if (attributeID & GP_ATTR_FLAG_VALUE)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "0x%08x is a value attribute",
			 (unsigned int)attributeID);
	if (!k->initialized)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "object not initialised");
	if (!(attributeID & GP_ATTR_FLAG_PUBLIC) &&
	    !(k->usage & TEE_USAGE_EXTRACTABLE))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "attribute 0x%08x is not extractable",
			 (unsigned int)attributeID);

	a = gp_key_attr(k, attributeID);
	if (!a)
		return TEE_ERROR_ITEM_NOT_FOUND;
	if (*size < a->len) {
		*size = a->len;
		return TEE_ERROR_SHORT_BUFFER;
	}
	if (!buffer && a->len)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	if (a->len)
		memcpy(buffer, a->buf, a->len);
	*size = a->len;
	return TEE_SUCCESS;
}

TEE_Result TEE_RestrictObjectUsage1(TEE_ObjectHandle object,
				    uint32_t objectUsage)
{
	TEE_ObjectHandle o = gp_object_get(object);
	struct gp_key *k = gp_object_key(o);
	uint32_t usage = k->usage & objectUsage;

	if (o->persistent)
		return gp_storage_update_key(o, usage);
	k->usage = usage;
	return TEE_SUCCESS;
}
