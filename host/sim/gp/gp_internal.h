/* SPDX-License-Identifier: BSD-2-Clause */
/* Shared internals of the simulated GP Internal Core API (host/sim/gp). */
#ifndef EDGE_SIM_GP_INTERNAL_H
#define EDGE_SIM_GP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include <tee_internal_api.h>

/* GP values the public header does not carry (same values as OP-TEE). */
#define GP_TYPE_DATA			0xA00000BFu
#define GP_ATTR_FLAG_PUBLIC		(1u << 28)
#define GP_ATTR_FLAG_VALUE		(1u << 29)
#define GP_DATA_MAX_POSITION		0xFFFFFFFFu
#define GP_HANDLE_FLAG_KEY_SET		0x00040000u
#define GP_USAGE_ALL			0xFFFFFFFFu

#define GP_DATA_ACCESS_FLAGS                                                  \
	(TEE_DATA_FLAG_ACCESS_READ | TEE_DATA_FLAG_ACCESS_WRITE |             \
	 TEE_DATA_FLAG_ACCESS_WRITE_META | TEE_DATA_FLAG_SHARE_READ |         \
	 TEE_DATA_FLAG_SHARE_WRITE)

#define GP_MAX_ATTRS 2
#define GP_25519_LEN 32
#define GP_ED25519_SIG_LEN 64

/* Panics with a message in the secure log naming the broken rule. */
#define GP_PANIC(code, ...)                                                   \
	do {                                                                  \
		EMSG(__VA_ARGS__);                                            \
		TEE_Panic(code);                                              \
	} while (0)

struct gp_attr {
	uint32_t id;
	size_t len;
	uint8_t *buf; /* owned; wiped before it is freed */
};

/* Key material and metadata of an object (transient, or persistent). */
struct gp_key {
	uint32_t type;
	uint32_t obj_size; /* bits; 0 while uninitialised */
	uint32_t max_size; /* bits */
	uint32_t usage;
	bool initialized;
	unsigned int n_attrs;
	struct gp_attr attrs[GP_MAX_ATTRS];
};

struct gp_type_props {
	uint32_t type;
	uint32_t quanta;
	uint32_t min_bits;
	uint32_t max_bits;
	unsigned int n_attrs;
	uint32_t attr_ids[GP_MAX_ATTRS]; /* all required when populating */
};

struct gp_pobj; /* persistent object state shared by its handles */

struct __TEE_ObjectHandle {
	bool persistent;
	struct gp_key key;     /* transient objects */
	struct gp_pobj *pobj;  /* persistent objects */
	uint32_t flags;        /* persistent: TEE_DATA_FLAG_* it was opened with */
	size_t pos;            /* persistent: data position */
};

/* ---- gp_core.c --------------------------------------------------------- */

enum gp_handle_kind { GP_HANDLE_OBJECT = 1, GP_HANDLE_OPERATION = 2 };

/* Registry of live handles: an unknown handle is a TA bug and panics. */
bool gp_handle_add(const void *h, enum gp_handle_kind kind);
void gp_handle_remove(const void *h);
bool gp_handle_live(const void *h, enum gp_handle_kind kind);
/* Calls fn for every live object handle (persistent-object bookkeeping). */
void gp_handle_foreach_object(void (*fn)(TEE_ObjectHandle o, void *arg),
			      void *arg);

/* ---- gp_object.c ------------------------------------------------------- */

const struct gp_type_props *gp_type_props(uint32_t type);
/* Panics unless h is a live object handle. */
TEE_ObjectHandle gp_object_get(TEE_ObjectHandle h);
/* The key (type, usage, attributes) of a transient or persistent object. */
struct gp_key *gp_object_key(TEE_ObjectHandle o);
const struct gp_attr *gp_key_attr(const struct gp_key *k, uint32_t id);
/* Deep copy; false on allocation failure (dst then left empty). */
bool gp_key_copy(struct gp_key *dst, const struct gp_key *src);
/* Wipes and frees the attributes and marks the key uninitialised. */
void gp_key_clear(struct gp_key *k);
/* Adds an attribute (copying buf); false on allocation failure. */
bool gp_key_add_attr(struct gp_key *k, uint32_t id, const void *buf,
		     size_t len);
/*
 * OpenSSL key for an Ed25519/X25519 key object: from the private value when
 * want_private, else from the public value. NULL on failure.
 */
EVP_PKEY *gp_key_to_pkey(const struct gp_key *k, bool want_private);

/* ---- gp_storage.c ------------------------------------------------------ */

/* The key (type, usage, attributes) of a persistent object. */
struct gp_key *gp_storage_key(TEE_ObjectHandle o);
/* Releases a persistent handle's share of its object. */
void gp_storage_close_handle(TEE_ObjectHandle o);
/* Rewrites the stored object after its key metadata (usage) changed. */
TEE_Result gp_storage_update_key(TEE_ObjectHandle o, uint32_t new_usage);
size_t gp_storage_data_size(TEE_ObjectHandle o);

#endif /* EDGE_SIM_GP_INTERNAL_H */
