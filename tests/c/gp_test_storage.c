// SPDX-License-Identifier: BSD-2-Clause
/*
 * Tests of the simulated GP persistent objects: data stream semantics,
 * create/overwrite/delete, sharing, persistence across a re-initialisation,
 * tamper and wrong-key detection, persistent key objects.
 *
 * Usage: gp_test_storage [vectors-dir]   (the directory is not used)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tee_internal_api.h>

#include "gp_sim.h"
#include "harness.h"

#define TYPE_DATA 0xA00000BFu

static const char *state_dir;

#define RW (TEE_DATA_FLAG_ACCESS_READ | TEE_DATA_FLAG_ACCESS_WRITE)
#define RWM (RW | TEE_DATA_FLAG_ACCESS_WRITE_META)

static void path_of(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", state_dir, rel);
}

static bool file_exists(const char *rel)
{
	char p[512];

	path_of(p, sizeof(p), rel);
	return access(p, F_OK) == 0;
}

static TEE_Result create(const char *id, uint32_t flags, const void *data,
			 size_t len, TEE_ObjectHandle *o)
{
	return TEE_CreatePersistentObject(TEE_STORAGE_PRIVATE, id, strlen(id),
					  flags, TEE_HANDLE_NULL, data, len, o);
}

static TEE_Result open_obj(const char *id, uint32_t flags, TEE_ObjectHandle *o)
{
	return TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, id, strlen(id),
					flags, o);
}

/* Reads the whole data stream from position 0. */
static bool content_is(TEE_ObjectHandle o, const void *want, size_t len)
{
	uint8_t buf[256];
	size_t n = 0;

	if (TEE_SeekObjectData(o, 0, TEE_DATA_SEEK_SET) != TEE_SUCCESS ||
	    TEE_ReadObjectData(o, buf, sizeof(buf), &n) != TEE_SUCCESS)
		return false;
	return n == len && !memcmp(buf, want, len);
}

static bool stored_content_is(const char *id, const void *want, size_t len)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	bool ok;

	if (open_obj(id, TEE_DATA_FLAG_ACCESS_READ, &o) != TEE_SUCCESS)
		return false;
	ok = content_is(o, want, len);
	TEE_CloseObject(o);
	return ok;
}

static int count_entries(const char *prefix)
{
	char p[512];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	path_of(p, sizeof(p), "objects");
	dir = opendir(p);
	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		if (!strncmp(d->d_name, prefix, strlen(prefix)))
			n++;
	closedir(dir);
	return n;
}

/* ---- Installation ------------------------------------------------------- */

static void test_init(void)
{
	struct stat sb;
	char p[512];
	char other[300];

	path_of(p, sizeof(p), "storage.key");
	CHECK(stat(p, &sb) == 0 && sb.st_size == 32 &&
	      (sb.st_mode & 0777) == 0600);
	path_of(p, sizeof(p), "objects");
	CHECK(stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) &&
	      (sb.st_mode & 0777) == 0700);

	/* A state directory that does not exist yet is created. */
	snprintf(other, sizeof(other), "%s/sub", state_dir);
	CHECK(edge_sim_gp_init(other) == 0);
	CHECK(stat(other, &sb) == 0 && (sb.st_mode & 0777) == 0700);
	CHECK(edge_sim_gp_init(state_dir) == 0);
	errno = 0;
	CHECK(edge_sim_gp_init("") == -1 && errno == EINVAL);
}

/* ---- Data stream -------------------------------------------------------- */

static void test_stream(void)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_ObjectInfo info;
	uint8_t buf[64];
	uint8_t want[32];
	size_t n = 0;

	CHECK_RES(create("obj1", RWM, "hello world", 11, &o), TEE_SUCCESS);
	CHECK(o != TEE_HANDLE_NULL);
	CHECK(file_exists("objects/6f626a31"));
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.objectType == TYPE_DATA && info.dataSize == 11 &&
	      info.dataPosition == 0);
	CHECK((info.handleFlags & (TEE_HANDLE_FLAG_PERSISTENT |
				   TEE_HANDLE_FLAG_INITIALIZED)) ==
	      (TEE_HANDLE_FLAG_PERSISTENT | TEE_HANDLE_FLAG_INITIALIZED));

	CHECK_RES(TEE_ReadObjectData(o, buf, 5, &n), TEE_SUCCESS);
	CHECK(n == 5 && !memcmp(buf, "hello", 5));
	CHECK_RES(TEE_SeekObjectData(o, 1, TEE_DATA_SEEK_CUR), TEE_SUCCESS);
	CHECK_RES(TEE_ReadObjectData(o, buf, sizeof(buf), &n), TEE_SUCCESS);
	CHECK(n == 5 && !memcmp(buf, "world", 5));
	CHECK_RES(TEE_ReadObjectData(o, buf, sizeof(buf), &n), TEE_SUCCESS);
	CHECK(n == 0);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.dataPosition == 11);

	CHECK_RES(TEE_SeekObjectData(o, -5, TEE_DATA_SEEK_END), TEE_SUCCESS);
	CHECK_RES(TEE_WriteObjectData(o, "WORLD", 5), TEE_SUCCESS);
	CHECK(content_is(o, "hello WORLD", 11));

	/* Writing past the end leaves a zero-filled gap. */
	CHECK_RES(TEE_SeekObjectData(o, 20, TEE_DATA_SEEK_SET), TEE_SUCCESS);
	CHECK_RES(TEE_WriteObjectData(o, "x", 1), TEE_SUCCESS);
	memset(want, 0, sizeof(want));
	memcpy(want, "hello WORLD", 11);
	want[20] = 'x';
	CHECK(content_is(o, want, 21));

	/* Truncation keeps the position. */
	CHECK_RES(TEE_SeekObjectData(o, 21, TEE_DATA_SEEK_SET), TEE_SUCCESS);
	CHECK_RES(TEE_TruncateObjectData(o, 5), TEE_SUCCESS);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.dataSize == 5 && info.dataPosition == 21);
	CHECK_RES(TEE_ReadObjectData(o, buf, sizeof(buf), &n), TEE_SUCCESS);
	CHECK(n == 0);
	CHECK_RES(TEE_TruncateObjectData(o, 8), TEE_SUCCESS);
	CHECK(content_is(o, "hello\0\0\0", 8));
	CHECK_RES(TEE_TruncateObjectData(o, 5), TEE_SUCCESS);

	/* Seeks before the start clamp to 0; past the maximum overflow. */
	CHECK_RES(TEE_SeekObjectData(o, -3, TEE_DATA_SEEK_SET), TEE_SUCCESS);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.dataPosition == 0);
	CHECK_RES(TEE_SeekObjectData(o, -100, TEE_DATA_SEEK_END), TEE_SUCCESS);
	CHECK_RES(TEE_SeekObjectData(o, (intmax_t)0xFFFFFFFF + 1,
				     TEE_DATA_SEEK_SET),
		  TEE_ERROR_OVERFLOW);
	CHECK_RES(TEE_SeekObjectData(o, 0xFFFFFFFF, TEE_DATA_SEEK_SET),
		  TEE_SUCCESS);
	CHECK_RES(TEE_WriteObjectData(o, "y", 1), TEE_ERROR_OVERFLOW);
	CHECK_RES(TEE_SeekObjectData(o, 1, TEE_DATA_SEEK_CUR),
		  TEE_ERROR_OVERFLOW);
	CHECK_RES(TEE_SeekObjectData(o, 0, TEE_DATA_SEEK_SET), TEE_SUCCESS);
	TEE_CloseObject(o);

	CHECK(stored_content_is("obj1", "hello", 5));
	/* Nothing half-written is left behind. */
	CHECK(count_entries(".tmp") == 0);
}

/* ---- Create, overwrite, delete ------------------------------------------ */

static void test_create_delete(void)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_ObjectHandle o2 = TEE_HANDLE_NULL;
	uint8_t id64[64];
	uint8_t buf[8];
	size_t n = sizeof(buf);

	CHECK_RES(create("obj1", RWM, "other", 5, &o),
		  TEE_ERROR_ACCESS_CONFLICT);
	CHECK(o == TEE_HANDLE_NULL);
	CHECK(stored_content_is("obj1", "hello", 5));
	CHECK_RES(create("obj1", RWM | TEE_DATA_FLAG_OVERWRITE, "other", 5, &o),
		  TEE_SUCCESS);
	CHECK(content_is(o, "other", 5));
	/* Opened here: re-creating it conflicts. */
	CHECK_RES(create("obj1", RWM | TEE_DATA_FLAG_OVERWRITE, "x", 1, &o2),
		  TEE_ERROR_ACCESS_CONFLICT);
	TEE_CloseObject(o);
	CHECK(stored_content_is("obj1", "other", 5));

	/* Created and closed at once when no handle is wanted. */
	CHECK_RES(create("nohandle", RW, "n", 1, NULL), TEE_SUCCESS);
	CHECK(stored_content_is("nohandle", "n", 1));
	CHECK_RES(create("empty", RW, NULL, 0, &o), TEE_SUCCESS);
	CHECK_RES(TEE_ReadObjectData(o, buf, sizeof(buf), &n), TEE_SUCCESS);
	CHECK(n == 0);
	/* A data object has no attributes. */
	n = sizeof(buf);
	CHECK_RES(TEE_GetObjectBufferAttribute(o, TEE_ATTR_SECRET_VALUE, buf,
					       &n),
		  TEE_ERROR_ITEM_NOT_FOUND);
	TEE_CloseObject(o);

	o = (TEE_ObjectHandle)(uintptr_t)1;
	CHECK_RES(open_obj("missing", TEE_DATA_FLAG_ACCESS_READ, &o),
		  TEE_ERROR_ITEM_NOT_FOUND);
	CHECK(o == TEE_HANDLE_NULL);
	CHECK_RES(TEE_OpenPersistentObject(0x80000000, "obj1", 4,
					   TEE_DATA_FLAG_ACCESS_READ, &o),
		  TEE_ERROR_ITEM_NOT_FOUND);

	memset(id64, 0xa5, sizeof(id64));
	CHECK_RES(TEE_CreatePersistentObject(TEE_STORAGE_PRIVATE, id64, 64, RWM,
					     TEE_HANDLE_NULL, "z", 1, &o),
		  TEE_SUCCESS);
	CHECK_RES(TEE_CloseAndDeletePersistentObject1(o), TEE_SUCCESS);
	CHECK_RES(TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, id64, 64,
					   TEE_DATA_FLAG_ACCESS_READ, &o),
		  TEE_ERROR_ITEM_NOT_FOUND);

	CHECK_RES(open_obj("obj1", TEE_DATA_FLAG_ACCESS_WRITE_META, &o),
		  TEE_SUCCESS);
	CHECK_RES(TEE_CloseAndDeletePersistentObject1(o), TEE_SUCCESS);
	CHECK(!file_exists("objects/6f626a31"));
	CHECK_RES(open_obj("obj1", TEE_DATA_FLAG_ACCESS_READ, &o),
		  TEE_ERROR_ITEM_NOT_FOUND);
	CHECK_RES(TEE_CloseAndDeletePersistentObject1(TEE_HANDLE_NULL),
		  TEE_SUCCESS);
}

/* ---- Sharing ------------------------------------------------------------ */

static void test_sharing(void)
{
	const uint32_t rs = TEE_DATA_FLAG_ACCESS_READ | TEE_DATA_FLAG_SHARE_READ;
	const uint32_t ws = TEE_DATA_FLAG_ACCESS_WRITE |
			    TEE_DATA_FLAG_SHARE_WRITE | TEE_DATA_FLAG_SHARE_READ;
	TEE_ObjectHandle a = TEE_HANDLE_NULL;
	TEE_ObjectHandle b = TEE_HANDLE_NULL;
	TEE_ObjectHandle c = TEE_HANDLE_NULL;

	CHECK_RES(create("shared", RW, "abc", 3, NULL), TEE_SUCCESS);

	CHECK_RES(open_obj("shared", TEE_DATA_FLAG_ACCESS_READ, &a),
		  TEE_SUCCESS);
	CHECK_RES(open_obj("shared", TEE_DATA_FLAG_ACCESS_READ, &b),
		  TEE_ERROR_ACCESS_CONFLICT);
	CHECK_RES(open_obj("shared", rs, &b), TEE_ERROR_ACCESS_CONFLICT);
	TEE_CloseObject(a);

	CHECK_RES(open_obj("shared", rs, &a), TEE_SUCCESS);
	CHECK_RES(open_obj("shared", rs, &b), TEE_SUCCESS);
	/* Writing needs every handle to allow shared writing. */
	CHECK_RES(open_obj("shared", ws, &c), TEE_ERROR_ACCESS_CONFLICT);
	CHECK_RES(open_obj("shared", TEE_DATA_FLAG_ACCESS_WRITE_META, &c),
		  TEE_ERROR_ACCESS_CONFLICT);
	TEE_CloseObject(a);
	TEE_CloseObject(b);

	/* Two handles share the data but not the position. */
	CHECK_RES(open_obj("shared", ws | rs, &a), TEE_SUCCESS);
	CHECK_RES(open_obj("shared", ws | rs, &b), TEE_SUCCESS);
	CHECK_RES(TEE_SeekObjectData(a, 0, TEE_DATA_SEEK_END), TEE_SUCCESS);
	CHECK_RES(TEE_WriteObjectData(a, "def", 3), TEE_SUCCESS);
	CHECK(content_is(b, "abcdef", 6));
	TEE_CloseObject(a);
	TEE_CloseObject(b);

	CHECK_RES(open_obj("shared", TEE_DATA_FLAG_ACCESS_WRITE_META, &a),
		  TEE_SUCCESS);
	CHECK_RES(open_obj("shared", rs, &b), TEE_ERROR_ACCESS_CONFLICT);
	CHECK_RES(TEE_CloseAndDeletePersistentObject1(a), TEE_SUCCESS);
}

/* ---- Persistence, tampering, wrong key ---------------------------------- */

static void test_persistence(void)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;

	CHECK_RES(create("persist", RWM, "kept", 4, &o), TEE_SUCCESS);
	errno = 0;
	CHECK(edge_sim_gp_init(state_dir) == -1 && errno == EBUSY);
	TEE_CloseObject(o);
	CHECK(edge_sim_gp_init(state_dir) == 0);
	CHECK(stored_content_is("persist", "kept", 4));
}

static void flip_byte(const char *rel, off_t off)
{
	char p[512];
	uint8_t b = 0;
	int fd;

	path_of(p, sizeof(p), rel);
	fd = open(p, O_RDWR);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(pread(fd, &b, 1, off) == 1);
	b ^= 0x01;
	CHECK(pwrite(fd, &b, 1, off) == 1);
	close(fd);
}

static bool copy_file(const char *from_rel, const char *to_rel)
{
	char from[512];
	char to[512];
	uint8_t buf[4096];
	ssize_t n;
	int in;
	int out;
	bool ok = true;

	path_of(from, sizeof(from), from_rel);
	path_of(to, sizeof(to), to_rel);
	in = open(from, O_RDONLY);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (in < 0 || out < 0)
		ok = false;
	while (ok && (n = read(in, buf, sizeof(buf))) > 0)
		ok = write(out, buf, (size_t)n) == n;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ok;
}

static void test_tamper(void)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	off_t offsets[] = { 0, 4, 5, 20, -1 };
	size_t i;

	for (i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		char p[512];
		struct stat sb;

		CHECK_RES(create("tamper", RW | TEE_DATA_FLAG_OVERWRITE,
				 "secret data", 11, NULL),
			  TEE_SUCCESS);
		path_of(p, sizeof(p), "objects/74616d706572");
		CHECK(stat(p, &sb) == 0);
		flip_byte("objects/74616d706572",
			  offsets[i] >= 0 ? offsets[i] : sb.st_size - 1);
		CHECK_RES(open_obj("tamper", TEE_DATA_FLAG_ACCESS_READ, &o),
			  TEE_ERROR_CORRUPT_OBJECT);
		CHECK(o == TEE_HANDLE_NULL);
		/* Gone for the TA (as in OP-TEE), kept aside for people. */
		CHECK(!file_exists("objects/74616d706572"));
		CHECK(file_exists("objects/74616d706572.corrupt"));
		CHECK_RES(open_obj("tamper", TEE_DATA_FLAG_ACCESS_READ, &o),
			  TEE_ERROR_ITEM_NOT_FOUND);
	}

	/* A valid file under another object's name does not authenticate. */
	CHECK_RES(create("aaaa", RW, "A", 1, NULL), TEE_SUCCESS);
	CHECK(copy_file("objects/61616161", "objects/62626262"));
	CHECK_RES(open_obj("bbbb", TEE_DATA_FLAG_ACCESS_READ, &o),
		  TEE_ERROR_CORRUPT_OBJECT);
	CHECK(stored_content_is("aaaa", "A", 1));

	/* A truncated file. */
	{
		char p[512];

		path_of(p, sizeof(p), "objects/61616161");
		CHECK(truncate(p, 10) == 0);
	}
	CHECK_RES(open_obj("aaaa", TEE_DATA_FLAG_ACCESS_READ, &o),
		  TEE_ERROR_CORRUPT_OBJECT);
}

static void test_wrong_key(void)
{
	char p[512];
	uint8_t key[32];
	int fd;

	CHECK_RES(create("wk", RW, "data", 4, NULL), TEE_SUCCESS);
	memset(key, 0x42, sizeof(key));
	path_of(p, sizeof(p), "storage.key");
	fd = open(p, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, key, sizeof(key)) == (ssize_t)sizeof(key));
	if (fd >= 0)
		close(fd);
	CHECK(edge_sim_gp_init(state_dir) == 0);
	{
		TEE_ObjectHandle o = TEE_HANDLE_NULL;

		CHECK_RES(open_obj("wk", TEE_DATA_FLAG_ACCESS_READ, &o),
			  TEE_ERROR_CORRUPT_OBJECT);
	}
	/* Objects written under the new key work. */
	CHECK_RES(create("wk2", RW, "new", 3, NULL), TEE_SUCCESS);
	CHECK(edge_sim_gp_init(state_dir) == 0);
	CHECK(stored_content_is("wk2", "new", 3));

	/* A storage.key of the wrong size is refused. */
	fd = open(p, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, key, 16) == 16);
	if (fd >= 0)
		close(fd);
	CHECK(edge_sim_gp_init(state_dir) == -1);
	fd = open(p, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, key, sizeof(key)) == (ssize_t)sizeof(key));
	if (fd >= 0)
		close(fd);
	CHECK(edge_sim_gp_init(state_dir) == 0);
}

/* ---- Key objects -------------------------------------------------------- */

static void unhex(const char *s, uint8_t *out)
{
	unsigned int v;

	while (s[0] && s[1] && sscanf(s, "%2x", &v) == 1) {
		*out++ = (uint8_t)v;
		s += 2;
	}
}

static void test_key_objects(void)
{
	uint8_t priv[32];
	uint8_t pub[32];
	uint8_t want[64];
	uint8_t sig[64];
	uint8_t buf[32];
	size_t len;
	TEE_ObjectHandle t = TEE_HANDLE_NULL;
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_ObjectInfo info;
	TEE_Attribute a[2];

	/* RFC 8032 TEST 1, stored and reopened after a restart. */
	unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	      priv);
	unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
	      pub);
	unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
	      want);
	CHECK_RES(TEE_AllocateTransientObject(TEE_TYPE_ED25519_KEYPAIR, 256, &t),
		  TEE_SUCCESS);
	TEE_InitRefAttribute(&a[0], TEE_ATTR_ED25519_PUBLIC_VALUE, pub, 32);
	TEE_InitRefAttribute(&a[1], TEE_ATTR_ED25519_PRIVATE_VALUE, priv, 32);
	CHECK_RES(TEE_PopulateTransientObject(t, a, 2), TEE_SUCCESS);
	CHECK_RES(TEE_CreatePersistentObject(TEE_STORAGE_PRIVATE, "idkey", 5,
					     TEE_DATA_FLAG_ACCESS_READ |
						     TEE_DATA_FLAG_ACCESS_WRITE_META,
					     t, "hdr", 3, &o),
		  TEE_SUCCESS);
	TEE_FreeTransientObject(t);
	TEE_CloseObject(o);
	CHECK(edge_sim_gp_init(state_dir) == 0);

	CHECK_RES(TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, "idkey", 5,
					   TEE_DATA_FLAG_ACCESS_READ |
						   TEE_DATA_FLAG_SHARE_READ,
					   &o),
		  TEE_SUCCESS);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.objectType == TEE_TYPE_ED25519_KEYPAIR &&
	      info.objectSize == 256 && info.maxObjectSize == 256 &&
	      info.dataSize == 3 && info.objectUsage == 0xFFFFFFFF);
	CHECK(content_is(o, "hdr", 3));
	len = sizeof(buf);
	CHECK_RES(TEE_GetObjectBufferAttribute(o, TEE_ATTR_ED25519_PUBLIC_VALUE,
					       buf, &len),
		  TEE_SUCCESS);
	CHECK(len == 32 && !memcmp(buf, pub, 32));

	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_ED25519, TEE_MODE_SIGN,
					256),
		  TEE_SUCCESS);
	CHECK_RES(TEE_SetOperationKey(op, o), TEE_SUCCESS);
	TEE_CloseObject(o);
	len = sizeof(sig);
	CHECK_RES(TEE_AsymmetricSignDigest(op, NULL, 0, NULL, 0, sig, &len),
		  TEE_SUCCESS);
	CHECK(len == 64 && !memcmp(sig, want, 64));
	TEE_FreeOperation(op);

	/* A generated key whose private half is not extractable. */
	CHECK_RES(TEE_AllocateTransientObject(TEE_TYPE_X25519_KEYPAIR, 256, &t),
		  TEE_SUCCESS);
	CHECK_RES(TEE_GenerateKey(t, 256, NULL, 0), TEE_SUCCESS);
	CHECK_RES(TEE_RestrictObjectUsage1(t, TEE_USAGE_DERIVE), TEE_SUCCESS);
	CHECK_RES(TEE_CreatePersistentObject(TEE_STORAGE_PRIVATE, "kex", 3,
					     TEE_DATA_FLAG_ACCESS_READ, t, NULL,
					     0, NULL),
		  TEE_SUCCESS);
	TEE_FreeTransientObject(t);
	CHECK(edge_sim_gp_init(state_dir) == 0);
	CHECK_RES(TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, "kex", 3,
					   TEE_DATA_FLAG_ACCESS_READ, &o),
		  TEE_SUCCESS);
	CHECK_RES(TEE_GetObjectInfo1(o, &info), TEE_SUCCESS);
	CHECK(info.objectType == TEE_TYPE_X25519_KEYPAIR &&
	      info.objectUsage == TEE_USAGE_DERIVE);
	len = sizeof(buf);
	CHECK_RES(TEE_GetObjectBufferAttribute(o, TEE_ATTR_X25519_PUBLIC_VALUE,
					       buf, &len),
		  TEE_SUCCESS);
	CHECK_RES(TEE_AllocateOperation(&op, TEE_ALG_X25519, TEE_MODE_DERIVE,
					256),
		  TEE_SUCCESS);
	CHECK_RES(TEE_SetOperationKey(op, o), TEE_SUCCESS);
	TEE_FreeOperation(op);
	TEE_CloseObject(o);
}

/* ---- Panics and unavailable storage ------------------------------------- */

static void p_private_not_extractable(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	uint8_t buf[32];
	size_t len = sizeof(buf);

	(void)arg;
	TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, "kex", 3,
				 TEE_DATA_FLAG_ACCESS_READ, &o);
	TEE_GetObjectBufferAttribute(o, TEE_ATTR_X25519_PRIVATE_VALUE, buf,
				     &len);
}

static void p_delete_without_meta(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;

	(void)arg;
	TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, "kex", 3,
				 TEE_DATA_FLAG_ACCESS_READ, &o);
	TEE_CloseAndDeletePersistentObject1(o);
}

static void p_write_read_only(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;

	(void)arg;
	TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, "kex", 3,
				 TEE_DATA_FLAG_ACCESS_READ, &o);
	TEE_WriteObjectData(o, "x", 1);
}

static void p_read_write_only(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;
	uint8_t b[4];
	size_t n;

	(void)arg;
	TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, "kex", 3,
				 TEE_DATA_FLAG_ACCESS_WRITE, &o);
	TEE_ReadObjectData(o, b, sizeof(b), &n);
}

static void p_long_id(void *arg)
{
	uint8_t id[65] = { 0 };
	TEE_ObjectHandle o = TEE_HANDLE_NULL;

	(void)arg;
	TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, id, sizeof(id),
				 TEE_DATA_FLAG_ACCESS_READ, &o);
}

static void p_open_overwrite_flag(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;

	(void)arg;
	TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, "kex", 3,
				 TEE_DATA_FLAG_ACCESS_READ |
					 TEE_DATA_FLAG_OVERWRITE,
				 &o);
}

static void p_seek_transient(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;

	(void)arg;
	TEE_AllocateTransientObject(TEE_TYPE_AES, 256, &o);
	TEE_SeekObjectData(o, 0, TEE_DATA_SEEK_SET);
}

static void p_free_persistent(void *arg)
{
	TEE_ObjectHandle o = TEE_HANDLE_NULL;

	(void)arg;
	TEE_OpenPersistentObject(TEE_STORAGE_PRIVATE, "kex", 3,
				 TEE_DATA_FLAG_ACCESS_READ, &o);
	TEE_FreeTransientObject(o);
}

static void test_panics(void)
{
	CHECK(harness_dies(p_private_not_extractable, NULL));
	CHECK(harness_dies(p_delete_without_meta, NULL));
	CHECK(harness_dies(p_write_read_only, NULL));
	CHECK(harness_dies(p_read_write_only, NULL));
	CHECK(harness_dies(p_long_id, NULL));
	CHECK(harness_dies(p_open_overwrite_flag, NULL));
	CHECK(harness_dies(p_seek_transient, NULL));
	CHECK(harness_dies(p_free_persistent, NULL));
}

static void test_unavailable(void)
{
	char dir[300];
	char objects[320];
	TEE_ObjectHandle o = TEE_HANDLE_NULL;

	/* The objects directory vanishing under us (works even as root). */
	snprintf(dir, sizeof(dir), "%s/gone", state_dir);
	snprintf(objects, sizeof(objects), "%s/objects", dir);
	CHECK(edge_sim_gp_init(dir) == 0);
	CHECK(rmdir(objects) == 0);
	CHECK_RES(create("x", RW, "1", 1, &o), TEE_ERROR_STORAGE_NOT_AVAILABLE);
	CHECK(o == TEE_HANDLE_NULL);
	CHECK_RES(open_obj("x", TEE_DATA_FLAG_ACCESS_READ, &o),
		  TEE_ERROR_ITEM_NOT_FOUND);
	CHECK(edge_sim_gp_init(state_dir) == 0);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	state_dir = harness_tmpdir("gp_test_storage");
	if (edge_sim_gp_init(state_dir) != 0)
		harness_die("edge_sim_gp_init");

	test_init();
	test_stream();
	test_create_delete();
	test_sharing();
	test_persistence();
	test_tamper();
	test_key_objects();
	test_panics();
	test_unavailable();
	test_wrong_key();

	return harness_summary();
}
