// SPDX-License-Identifier: BSD-2-Clause
/*
 * Simulated GP Internal Core API: persistent objects (TEE_STORAGE_PRIVATE).
 *
 * Stands in for OP-TEE's REE FS secure storage. Each object is one file,
 * <state_dir>/objects/<hex of object id>, holding
 *
 *   "EGPO" | version (1 byte) | nonce (12) | AES-256-GCM ciphertext | tag (16)
 *
 * under the installation's storage.key, with AAD = magic | version |
 * id length (1 byte) | id, so a file renamed to another id fails to
 * authenticate. The plaintext (little-endian) is
 *
 *   type u32 | objectSize u32 | maxObjectSize u32 | usage u32 | n u32 |
 *   n x (attribute id u32 | length u32 | value) | data length u64 | data
 *
 * Every change rewrites the whole file through a temporary file, fsync,
 * rename and a directory fsync, so a crash leaves the old or the new object.
 * An open object is cached in memory and shared by its handles; the cache
 * only changes after the new file is in place.
 *
 * Sharing rules are enforced between handles of this process only: two
 * secure-world processes on the same state directory do not see each
 * other's open handles (the last writer wins).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "gp_internal.h"
#include "gp_sim.h"

#define FILE_MAGIC "EGPO"
#define FILE_MAGIC_LEN 4
#define FILE_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16
#define HEADER_LEN (FILE_MAGIC_LEN + 1 + NONCE_LEN)
#define STORAGE_KEY_LEN 32
#define MAX_ATTR_LEN 512
#define NAME_MAX_LEN (2 * TEE_OBJECT_ID_MAX_LEN + 1)

struct gp_pobj {
	struct gp_key key;
	uint8_t id[TEE_OBJECT_ID_MAX_LEN];
	size_t id_len;
	uint8_t *data; /* wiped before it is freed */
	size_t data_len;
	unsigned int refs;
	struct gp_pobj *next;
};

static struct {
	bool ready;
	int objects_fd;
	uint8_t key[STORAGE_KEY_LEN];
} st = { .objects_fd = -1 };

static struct gp_pobj *open_pobjs;

/* ---- Installation ------------------------------------------------------ */

static int read_exact(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EINVAL;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int load_key(int dfd, uint8_t key[STORAGE_KEY_LEN])
{
	struct stat sb;
	int fd = openat(dfd, "storage.key", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc = -1;
	int saved;

	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) == 0) {
		if (!S_ISREG(sb.st_mode) || sb.st_size != STORAGE_KEY_LEN)
			errno = EINVAL;
		else
			rc = read_exact(fd, key, STORAGE_KEY_LEN);
	}
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* Creates storage.key unless another process got there first. */
static int create_key(int dfd)
{
	uint8_t key[STORAGE_KEY_LEN];
	uint8_t rnd[8];
	char tmp[64];
	int fd;
	int rc = -1;
	int saved;

	if (RAND_bytes(key, sizeof(key)) != 1 ||
	    RAND_bytes(rnd, sizeof(rnd)) != 1) {
		errno = EIO;
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "storage.key.tmp.%02x%02x%02x%02x%02x%02x%02x%02x",
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		 rnd[7]);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	if (write_all(fd, key, sizeof(key)) == 0 && fsync(fd) == 0) {
		/* link() refuses to replace a key another process created. */
		if (linkat(dfd, tmp, dfd, "storage.key", 0) == 0 ||
		    errno == EEXIST)
			rc = 0;
	}
	saved = errno;
	close(fd);
	unlinkat(dfd, tmp, 0);
	errno = saved;
	if (rc == 0 && fsync(dfd) != 0)
		rc = -1;
out:
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int edge_sim_gp_init(const char *state_dir)
{
	uint8_t key[STORAGE_KEY_LEN];
	int dfd = -1;
	int ofd = -1;
	int saved;

	if (!state_dir || !*state_dir) {
		errno = EINVAL;
		return -1;
	}
	if (open_pobjs) {
		errno = EBUSY;
		return -1;
	}
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return -1;
	dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	if (mkdirat(dfd, "objects", 0700) != 0 && errno != EEXIST)
		goto fail;
	ofd = openat(dfd, "objects", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ofd < 0)
		goto fail;
	if (load_key(dfd, key) != 0) {
		if (errno != ENOENT || create_key(dfd) != 0 ||
		    load_key(dfd, key) != 0)
			goto fail;
	}
	if (fsync(dfd) != 0)
		goto fail;
	close(dfd);

	if (st.objects_fd >= 0)
		close(st.objects_fd);
	st.objects_fd = ofd;
	memcpy(st.key, key, sizeof(key));
	OPENSSL_cleanse(key, sizeof(key));
	st.ready = true;
	return 0;

fail:
	saved = errno;
	OPENSSL_cleanse(key, sizeof(key));
	if (ofd >= 0)
		close(ofd);
	close(dfd);
	errno = saved;
	return -1;
}

/* ---- Files ------------------------------------------------------------- */

static void object_name(const uint8_t *id, size_t id_len,
			char name[NAME_MAX_LEN])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < id_len; i++) {
		name[2 * i] = hex[id[i] >> 4];
		name[2 * i + 1] = hex[id[i] & 15];
	}
	name[2 * id_len] = '\0';
}

static TEE_Result errno_result(int err)
{
	return (err == ENOSPC || err == EDQUOT) ? TEE_ERROR_STORAGE_NO_SPACE :
						  TEE_ERROR_STORAGE_NOT_AVAILABLE;
}

enum write_outcome { WRITE_OK, WRITE_FAILED, WRITE_APPLIED_NOT_DURABLE };

/*
 * Puts a file in place atomically. Without replace, an existing file wins
 * and *res is TEE_ERROR_ACCESS_CONFLICT.
 */
static enum write_outcome write_atomic(const char *name, const void *buf,
				       size_t len, bool replace,
				       TEE_Result *res)
{
	char tmp[NAME_MAX_LEN + 40];
	uint8_t rnd[8];
	int fd;
	int rc;
	int err;

	TEE_GenerateRandom(rnd, sizeof(rnd));
	snprintf(tmp, sizeof(tmp), ".tmp.%s.%02x%02x%02x%02x%02x%02x%02x%02x",
		 name, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		 rnd[7]);
	fd = openat(st.objects_fd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		*res = errno_result(errno);
		return WRITE_FAILED;
	}
	rc = write_all(fd, buf, len);
	if (rc == 0)
		rc = fsync(fd);
	err = errno;
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		err = errno;
	}
	if (rc != 0)
		goto fail;

	if (replace) {
		rc = renameat(st.objects_fd, tmp, st.objects_fd, name);
		err = errno;
	} else {
		rc = linkat(st.objects_fd, tmp, st.objects_fd, name, 0);
		err = errno;
		if (rc == 0)
			unlinkat(st.objects_fd, tmp, 0);
	}
	if (rc != 0)
		goto fail;

	if (fsync(st.objects_fd) != 0) {
		EMSG("fsync of the objects directory failed: errno %d", errno);
		*res = errno_result(errno);
		return WRITE_APPLIED_NOT_DURABLE;
	}
	*res = TEE_SUCCESS;
	return WRITE_OK;

fail:
	unlinkat(st.objects_fd, tmp, 0);
	*res = (!replace && err == EEXIST) ? TEE_ERROR_ACCESS_CONFLICT :
					     errno_result(err);
	return WRITE_FAILED;
}

/* ---- Encoding ---------------------------------------------------------- */

static void put_u32(uint8_t **p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		*(*p)++ = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t **p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		*(*p)++ = (uint8_t)(v >> (8 * i));
}

struct reader {
	const uint8_t *p;
	size_t left;
};

static bool get_u32(struct reader *r, uint32_t *v)
{
	int i;

	if (r->left < 4)
		return false;
	*v = 0;
	for (i = 0; i < 4; i++)
		*v |= (uint32_t)r->p[i] << (8 * i);
	r->p += 4;
	r->left -= 4;
	return true;
}

static bool get_u64(struct reader *r, uint64_t *v)
{
	int i;

	if (r->left < 8)
		return false;
	*v = 0;
	for (i = 0; i < 8; i++)
		*v |= (uint64_t)r->p[i] << (8 * i);
	r->p += 8;
	r->left -= 8;
	return true;
}

/* Plaintext of an object; the caller wipes and frees it. */
static uint8_t *encode_object(const struct gp_key *k, const uint8_t *data,
			      size_t data_len, size_t *out_len)
{
	size_t len = 5 * 4 + 8;
	unsigned int i;
	uint8_t *buf;
	uint8_t *p;

	for (i = 0; i < k->n_attrs; i++)
		len += 8 + k->attrs[i].len;
	if (data_len > SIZE_MAX - len)
		return NULL;
	len += data_len;
	buf = malloc(len);
	if (!buf)
		return NULL;
	p = buf;
	put_u32(&p, k->type);
	put_u32(&p, k->obj_size);
	put_u32(&p, k->max_size);
	put_u32(&p, k->usage);
	put_u32(&p, k->n_attrs);
	for (i = 0; i < k->n_attrs; i++) {
		put_u32(&p, k->attrs[i].id);
		put_u32(&p, (uint32_t)k->attrs[i].len);
		memcpy(p, k->attrs[i].buf, k->attrs[i].len);
		p += k->attrs[i].len;
	}
	put_u64(&p, data_len);
	if (data_len)
		memcpy(p, data, data_len);
	*out_len = len;
	return buf;
}

enum decode_result { DECODE_OK, DECODE_MALFORMED, DECODE_NO_MEMORY };

/* Fills po->key and po->data from an authenticated plaintext. */
static enum decode_result decode_object(const uint8_t *buf, size_t len,
					struct gp_pobj *po)
{
	struct reader r = { buf, len };
	const struct gp_type_props *p;
	uint32_t n;
	uint32_t i;
	uint64_t data_len;

	if (!get_u32(&r, &po->key.type) || !get_u32(&r, &po->key.obj_size) ||
	    !get_u32(&r, &po->key.max_size) || !get_u32(&r, &po->key.usage) ||
	    !get_u32(&r, &n))
		return DECODE_MALFORMED;
	p = gp_type_props(po->key.type);
	if (po->key.type == GP_TYPE_DATA) {
		if (n != 0)
			return DECODE_MALFORMED;
	} else if (!p || n != p->n_attrs) {
		return DECODE_MALFORMED;
	}
	for (i = 0; i < n; i++) {
		uint32_t id;
		uint32_t alen;

		if (!get_u32(&r, &id) || !get_u32(&r, &alen) ||
		    id != p->attr_ids[i] || alen > MAX_ATTR_LEN ||
		    alen > r.left)
			return DECODE_MALFORMED;
		if (!gp_key_add_attr(&po->key, id, r.p, alen))
			return DECODE_NO_MEMORY;
		r.p += alen;
		r.left -= alen;
	}
	if (!get_u64(&r, &data_len) || data_len != r.left)
		return DECODE_MALFORMED;
	po->data = malloc(r.left ? r.left : 1);
	if (!po->data)
		return DECODE_NO_MEMORY;
	if (r.left)
		memcpy(po->data, r.p, r.left);
	po->data_len = r.left;
	po->key.initialized = true;
	return DECODE_OK;
}

static size_t make_aad(const uint8_t *id, size_t id_len, uint8_t *aad)
{
	memcpy(aad, FILE_MAGIC, FILE_MAGIC_LEN);
	aad[FILE_MAGIC_LEN] = FILE_VERSION;
	aad[FILE_MAGIC_LEN + 1] = (uint8_t)id_len;
	memcpy(aad + FILE_MAGIC_LEN + 2, id, id_len);
	return FILE_MAGIC_LEN + 2 + id_len;
}

static bool gcm_crypt(bool enc, const uint8_t *nonce, const uint8_t *aad,
		      size_t aad_len, const uint8_t *in, size_t len,
		      uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t scratch[32];
	int outl;
	bool ok;

	ok = ctx &&
	     EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL,
			       enc) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
				 NULL) == 1 &&
	     EVP_CipherInit_ex(ctx, NULL, NULL, st.key, nonce, enc) == 1 &&
	     EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1;
	while (ok && len) {
		int chunk = len > (size_t)(INT_MAX - 32) ? INT_MAX - 32
							 : (int)len;

		ok = EVP_CipherUpdate(ctx, out, &outl, in, chunk) == 1 &&
		     outl == chunk;
		in += chunk;
		out += chunk;
		len -= (size_t)chunk;
	}
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
					 tag) == 1;
	/* Decryption: the tag check, constant time inside OpenSSL. */
	if (ok)
		ok = EVP_CipherFinal_ex(ctx, scratch, &outl) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
					 tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		ERR_clear_error();
	return ok;
}

/* Encrypts and stores an object's new content. */
static enum write_outcome store_object(const uint8_t *id, size_t id_len,
				       const struct gp_key *k,
				       const uint8_t *data, size_t data_len,
				       bool replace, TEE_Result *res)
{
	uint8_t aad[FILE_MAGIC_LEN + 2 + TEE_OBJECT_ID_MAX_LEN];
	char name[NAME_MAX_LEN];
	size_t aad_len = make_aad(id, id_len, aad);
	size_t plain_len = 0;
	uint8_t *plain;
	uint8_t *file = NULL;
	size_t file_len;
	enum write_outcome w = WRITE_FAILED;

	if (data_len > GP_DATA_MAX_POSITION) {
		*res = TEE_ERROR_STORAGE_NO_SPACE;
		return WRITE_FAILED;
	}
	plain = encode_object(k, data, data_len, &plain_len);
	if (plain && plain_len <= SIZE_MAX - HEADER_LEN - TAG_LEN)
		file = malloc(HEADER_LEN + plain_len + TAG_LEN);
	if (!file) {
		*res = TEE_ERROR_STORAGE_NO_SPACE;
		goto out;
	}
	file_len = HEADER_LEN + plain_len + TAG_LEN;
	memcpy(file, FILE_MAGIC, FILE_MAGIC_LEN);
	file[FILE_MAGIC_LEN] = FILE_VERSION;
	TEE_GenerateRandom(file + FILE_MAGIC_LEN + 1, NONCE_LEN);
	if (!gcm_crypt(true, file + FILE_MAGIC_LEN + 1, aad, aad_len, plain,
		       plain_len, file + HEADER_LEN,
		       file + HEADER_LEN + plain_len))
		GP_PANIC(TEE_ERROR_GENERIC, "storage encryption failed");
	object_name(id, id_len, name);
	w = write_atomic(name, file, file_len, replace, res);
out:
	if (plain) {
		OPENSSL_cleanse(plain, plain_len);
		free(plain);
	}
	free(file);
	return w;
}

/* A corrupt object disappears, as in OP-TEE, but is kept for inspection. */
static void set_aside_corrupt(const char *name)
{
	char aside[NAME_MAX_LEN + 16];

	snprintf(aside, sizeof(aside), "%s.corrupt", name);
	if (renameat(st.objects_fd, name, st.objects_fd, aside) == 0)
		fsync(st.objects_fd);
	EMSG("object %s is corrupt; moved to objects/%s", name, aside);
}

static TEE_Result load_object(struct gp_pobj *po)
{
	uint8_t aad[FILE_MAGIC_LEN + 2 + TEE_OBJECT_ID_MAX_LEN];
	char name[NAME_MAX_LEN];
	size_t aad_len = make_aad(po->id, po->id_len, aad);
	uint8_t *file = NULL;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	struct stat sb;
	TEE_Result res;
	int fd;

	object_name(po->id, po->id_len, name);
	fd = openat(st.objects_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? TEE_ERROR_ITEM_NOT_FOUND :
					 TEE_ERROR_STORAGE_NOT_AVAILABLE;
	if (fstat(fd, &sb) != 0) {
		res = TEE_ERROR_STORAGE_NOT_AVAILABLE;
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size < HEADER_LEN + TAG_LEN ||
	    (uint64_t)sb.st_size > (uint64_t)GP_DATA_MAX_POSITION + (1u << 20)) {
		res = TEE_ERROR_CORRUPT_OBJECT;
		goto out;
	}
	file = malloc((size_t)sb.st_size);
	plain_len = (size_t)sb.st_size - HEADER_LEN - TAG_LEN;
	plain = malloc(plain_len ? plain_len : 1);
	if (!file || !plain) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	if (read_exact(fd, file, (size_t)sb.st_size) != 0) {
		res = TEE_ERROR_STORAGE_NOT_AVAILABLE;
		goto out;
	}
	if (memcmp(file, FILE_MAGIC, FILE_MAGIC_LEN) != 0 ||
	    file[FILE_MAGIC_LEN] != FILE_VERSION ||
	    !gcm_crypt(false, file + FILE_MAGIC_LEN + 1, aad, aad_len,
		       file + HEADER_LEN, plain_len, plain,
		       file + HEADER_LEN + plain_len)) {
		res = TEE_ERROR_CORRUPT_OBJECT;
		goto out;
	}
	switch (decode_object(plain, plain_len, po)) {
	case DECODE_OK:
		res = TEE_SUCCESS;
		break;
	case DECODE_NO_MEMORY:
		res = TEE_ERROR_OUT_OF_MEMORY;
		break;
	default:
		res = TEE_ERROR_CORRUPT_OBJECT;
		break;
	}
	if (res != TEE_SUCCESS)
		gp_key_clear(&po->key);
out:
	close(fd);
	free(file);
	if (plain) {
		OPENSSL_cleanse(plain, plain_len);
		free(plain);
	}
	if (res == TEE_ERROR_CORRUPT_OBJECT)
		set_aside_corrupt(name);
	return res;
}

/* ---- Open objects ------------------------------------------------------ */

static void pobj_free(struct gp_pobj *po)
{
	gp_key_clear(&po->key);
	if (po->data) {
		OPENSSL_cleanse(po->data, po->data_len);
		free(po->data);
	}
	free(po);
}

static struct gp_pobj *pobj_find(const uint8_t *id, size_t id_len)
{
	struct gp_pobj *po;

	for (po = open_pobjs; po; po = po->next)
		if (po->id_len == id_len && !memcmp(po->id, id, id_len))
			return po;
	return NULL;
}

void gp_storage_close_handle(TEE_ObjectHandle o)
{
	struct gp_pobj *po = o->pobj;
	struct gp_pobj **pp;

	o->pobj = NULL;
	if (!po || --po->refs)
		return;
	for (pp = &open_pobjs; *pp; pp = &(*pp)->next) {
		if (*pp == po) {
			*pp = po->next;
			break;
		}
	}
	pobj_free(po);
}

struct gp_key *gp_storage_key(TEE_ObjectHandle o)
{
	return &o->pobj->key;
}

size_t gp_storage_data_size(TEE_ObjectHandle o)
{
	return o->pobj->data_len;
}

static TEE_ObjectHandle new_handle(struct gp_pobj *po, uint32_t flags)
{
	TEE_ObjectHandle o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->persistent = true;
	o->pobj = po;
	o->flags = flags;
	if (!gp_handle_add(o, GP_HANDLE_OBJECT)) {
		free(o);
		return NULL;
	}
	return o;
}

/* GP sharing rules; WRITE_META is exclusive, as in OP-TEE. */
static bool flags_compatible(uint32_t a, uint32_t b)
{
	uint32_t both = a | b;

	if (both & TEE_DATA_FLAG_ACCESS_WRITE_META)
		return false;
	if ((both & TEE_DATA_FLAG_ACCESS_READ) &&
	    !(a & b & TEE_DATA_FLAG_SHARE_READ))
		return false;
	if ((both & TEE_DATA_FLAG_ACCESS_WRITE) &&
	    !(a & b & TEE_DATA_FLAG_SHARE_WRITE))
		return false;
	return true;
}

struct share_check {
	const struct gp_pobj *po;
	uint32_t flags;
	bool conflict;
};

static void share_check_one(TEE_ObjectHandle o, void *arg)
{
	struct share_check *c = arg;

	if (o->persistent && o->pobj == c->po &&
	    !flags_compatible(o->flags, c->flags))
		c->conflict = true;
}

static void check_id(const void *id, size_t id_len)
{
	if (!id || !id_len || id_len > TEE_OBJECT_ID_MAX_LEN)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "object id must be 1..%d bytes (got %zu)",
			 TEE_OBJECT_ID_MAX_LEN, id_len);
}

static TEE_ObjectHandle get_persistent(TEE_ObjectHandle h, uint32_t need,
				       const char *func)
{
	TEE_ObjectHandle o = gp_object_get(h);

	if (!o->persistent)
		GP_PANIC(TEE_ERROR_BAD_STATE, "%s on a transient object", func);
	if ((o->flags & need) != need)
		GP_PANIC(TEE_ERROR_ACCESS_CONFLICT,
			 "%s needs access flags 0x%x", func,
			 (unsigned int)need);
	return o;
}

TEE_Result TEE_OpenPersistentObject(uint32_t storageID, const void *objectID,
				    size_t objectIDLen, uint32_t flags,
				    TEE_ObjectHandle *object)
{
	struct gp_pobj *po;
	struct share_check c;
	TEE_ObjectHandle o;
	TEE_Result res;

	if (!object)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL object pointer");
	*object = TEE_HANDLE_NULL;
	if (flags & ~GP_DATA_ACCESS_FLAGS)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "bad open flags 0x%x",
			 (unsigned int)flags);
	if (storageID != TEE_STORAGE_PRIVATE)
		return TEE_ERROR_ITEM_NOT_FOUND;
	check_id(objectID, objectIDLen);
	if (!st.ready)
		return TEE_ERROR_STORAGE_NOT_AVAILABLE;

	po = pobj_find(objectID, objectIDLen);
	if (po) {
		c.po = po;
		c.flags = flags;
		c.conflict = false;
		gp_handle_foreach_object(share_check_one, &c);
		if (c.conflict)
			return TEE_ERROR_ACCESS_CONFLICT;
		o = new_handle(po, flags);
		if (!o)
			return TEE_ERROR_OUT_OF_MEMORY;
		po->refs++;
		*object = o;
		return TEE_SUCCESS;
	}

	po = calloc(1, sizeof(*po));
	if (!po)
		return TEE_ERROR_OUT_OF_MEMORY;
	memcpy(po->id, objectID, objectIDLen);
	po->id_len = objectIDLen;
	res = load_object(po);
	if (res != TEE_SUCCESS) {
		pobj_free(po);
		return res;
	}
	o = new_handle(po, flags);
	if (!o) {
		pobj_free(po);
		return TEE_ERROR_OUT_OF_MEMORY;
	}
	po->refs = 1;
	po->next = open_pobjs;
	open_pobjs = po;
	*object = o;
	return TEE_SUCCESS;
}

TEE_Result TEE_CreatePersistentObject(uint32_t storageID, const void *objectID,
				      size_t objectIDLen, uint32_t flags,
				      TEE_ObjectHandle attributes,
				      const void *initialData,
				      size_t initialDataLen,
				      TEE_ObjectHandle *object)
{
	const struct gp_key *src = NULL;
	struct gp_pobj *po;
	TEE_ObjectHandle o = NULL;
	TEE_Result res;
	enum write_outcome w;

	if (object)
		*object = TEE_HANDLE_NULL;
	if (flags & ~(GP_DATA_ACCESS_FLAGS | TEE_DATA_FLAG_OVERWRITE))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "bad create flags 0x%x",
			 (unsigned int)flags);
	if (storageID != TEE_STORAGE_PRIVATE)
		return TEE_ERROR_ITEM_NOT_FOUND;
	check_id(objectID, objectIDLen);
	if (!initialData && initialDataLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL initial data");
	if (attributes != TEE_HANDLE_NULL) {
		src = gp_object_key(gp_object_get(attributes));
		if (!src->initialized)
			GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
				 "attributes object not initialised");
	}
	if (!st.ready)
		return TEE_ERROR_STORAGE_NOT_AVAILABLE;
	/* Simplification: an object open here cannot be re-created. */
	if (pobj_find(objectID, objectIDLen))
		return TEE_ERROR_ACCESS_CONFLICT;

	po = calloc(1, sizeof(*po));
	if (!po)
		return TEE_ERROR_OUT_OF_MEMORY;
	memcpy(po->id, objectID, objectIDLen);
	po->id_len = objectIDLen;
	if (src) {
		if (!gp_key_copy(&po->key, src))
			goto oom;
		po->key.initialized = true;
	} else {
		po->key.type = GP_TYPE_DATA;
		po->key.usage = GP_USAGE_ALL;
		po->key.initialized = true;
	}
	po->data = malloc(initialDataLen ? initialDataLen : 1);
	if (!po->data)
		goto oom;
	if (initialDataLen)
		memcpy(po->data, initialData, initialDataLen);
	po->data_len = initialDataLen;
	/* Allocated first so that success on disk is success for the TA. */
	if (object) {
		o = new_handle(po, flags);
		if (!o)
			goto oom;
	}

	w = store_object(po->id, po->id_len, &po->key, po->data, po->data_len,
			 flags & TEE_DATA_FLAG_OVERWRITE, &res);
	if (w == WRITE_FAILED) {
		if (o) {
			gp_handle_remove(o);
			free(o);
		}
		pobj_free(po);
		return res;
	}
	if (!o) {
		pobj_free(po);
		return res;
	}
	po->refs = 1;
	po->next = open_pobjs;
	open_pobjs = po;
	*object = o;
	/*
	 * WRITE_APPLIED_NOT_DURABLE: the object exists but may not survive a
	 * crash; the handle stays valid so that the TA can clean up.
	 */
	return res;

oom:
	pobj_free(po);
	return TEE_ERROR_OUT_OF_MEMORY;
}

TEE_Result TEE_CloseAndDeletePersistentObject1(TEE_ObjectHandle object)
{
	char name[NAME_MAX_LEN];
	TEE_Result res = TEE_SUCCESS;
	TEE_ObjectHandle o;

	if (object == TEE_HANDLE_NULL)
		return TEE_SUCCESS;
	o = get_persistent(object, TEE_DATA_FLAG_ACCESS_WRITE_META, __func__);
	object_name(o->pobj->id, o->pobj->id_len, name);
	if (unlinkat(st.objects_fd, name, 0) != 0 && errno != ENOENT)
		res = TEE_ERROR_STORAGE_NOT_AVAILABLE;
	else if (fsync(st.objects_fd) != 0)
		res = TEE_ERROR_STORAGE_NOT_AVAILABLE;
	/* OP-TEE closes the handle whatever the outcome. */
	TEE_CloseObject(o);
	return res;
}

/* ---- Data stream ------------------------------------------------------- */

/*
 * Stores po with new data (and key) and, once the file is in place, makes
 * them current. Takes ownership of data.
 */
static TEE_Result commit(struct gp_pobj *po, const struct gp_key *k,
			 uint8_t *data, size_t data_len)
{
	TEE_Result res;
	enum write_outcome w = store_object(po->id, po->id_len, k, data,
					    data_len, true, &res);

	if (w == WRITE_FAILED) {
		OPENSSL_cleanse(data, data_len);
		free(data);
		return res;
	}
	/* Applied (even if not yet durable): memory follows the disk. */
	OPENSSL_cleanse(po->data, po->data_len);
	free(po->data);
	po->data = data;
	po->data_len = data_len;
	if (k != &po->key)
		po->key.usage = k->usage;
	return res;
}

TEE_Result gp_storage_update_key(TEE_ObjectHandle o, uint32_t new_usage)
{
	struct gp_pobj *po = o->pobj;
	struct gp_key k;
	uint8_t *data = malloc(po->data_len ? po->data_len : 1);
	TEE_Result res;

	if (!data)
		GP_PANIC(TEE_ERROR_OUT_OF_MEMORY, "out of memory");
	if (po->data_len)
		memcpy(data, po->data, po->data_len);
	k = po->key; /* shallow: only the usage differs */
	k.usage = new_usage;
	res = commit(po, &k, data, po->data_len);
	return res;
}

TEE_Result TEE_ReadObjectData(TEE_ObjectHandle object, void *buffer,
			      size_t size, size_t *count)
{
	TEE_ObjectHandle o = get_persistent(object, TEE_DATA_FLAG_ACCESS_READ,
					    __func__);
	const struct gp_pobj *po = o->pobj;
	size_t n = 0;

	if (!count || (!buffer && size))
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	if (o->pos < po->data_len) {
		n = po->data_len - o->pos;
		if (n > size)
			n = size;
		memcpy(buffer, po->data + o->pos, n);
	}
	o->pos += n;
	*count = n;
	return TEE_SUCCESS;
}

TEE_Result TEE_WriteObjectData(TEE_ObjectHandle object, const void *buffer,
			       size_t size)
{
	TEE_ObjectHandle o = get_persistent(object, TEE_DATA_FLAG_ACCESS_WRITE,
					    __func__);
	struct gp_pobj *po = o->pobj;
	size_t new_len;
	uint8_t *data;
	TEE_Result res;

	if (!buffer && size)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL buffer");
	if (o->pos > GP_DATA_MAX_POSITION ||
	    size > GP_DATA_MAX_POSITION - o->pos)
		return TEE_ERROR_OVERFLOW;
	if (!size)
		return TEE_SUCCESS;

	new_len = o->pos + size > po->data_len ? o->pos + size : po->data_len;
	data = malloc(new_len);
	if (!data)
		return TEE_ERROR_STORAGE_NO_SPACE;
	memcpy(data, po->data, po->data_len);
	if (o->pos > po->data_len)
		memset(data + po->data_len, 0, o->pos - po->data_len);
	memcpy(data + o->pos, buffer, size);
	res = commit(po, &po->key, data, new_len);
	if (res == TEE_SUCCESS)
		o->pos += size;
	return res;
}

TEE_Result TEE_TruncateObjectData(TEE_ObjectHandle object, size_t size)
{
	TEE_ObjectHandle o = get_persistent(object, TEE_DATA_FLAG_ACCESS_WRITE,
					    __func__);
	struct gp_pobj *po = o->pobj;
	uint8_t *data;

	if (size > GP_DATA_MAX_POSITION)
		return TEE_ERROR_STORAGE_NO_SPACE;
	data = malloc(size ? size : 1);
	if (!data)
		return TEE_ERROR_STORAGE_NO_SPACE;
	if (size <= po->data_len) {
		memcpy(data, po->data, size);
	} else {
		memcpy(data, po->data, po->data_len);
		memset(data + po->data_len, 0, size - po->data_len);
	}
	return commit(po, &po->key, data, size);
}

TEE_Result TEE_SeekObjectData(TEE_ObjectHandle object, intmax_t offset,
			      TEE_Whence whence)
{
	TEE_ObjectHandle o = get_persistent(object, 0, __func__);
	intmax_t base;
	intmax_t pos;

	switch (whence) {
	case TEE_DATA_SEEK_SET:
		base = 0;
		break;
	case TEE_DATA_SEEK_CUR:
		base = (intmax_t)o->pos;
		break;
	case TEE_DATA_SEEK_END:
		base = (intmax_t)o->pobj->data_len;
		break;
	default:
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "bad whence %u",
			 (unsigned int)whence);
	}
	if (offset > 0 && base > (intmax_t)GP_DATA_MAX_POSITION - offset)
		return TEE_ERROR_OVERFLOW;
	pos = base + offset; /* base >= 0, so only positive overflow exists */
	if (pos < 0)
		pos = 0;
	o->pos = (size_t)pos;
	return TEE_SUCCESS;
}
