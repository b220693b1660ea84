// SPDX-License-Identifier: BSD-2-Clause
/*
 * Normal-world client of the edge TA over the GP TEE Client API. The TA does
 * every check that matters; this side only frames calls, streams backbone
 * chunks through shared memory and reports which side failed.
 */
#include <edge_client.h>
#include <edge_ta.h>
#include <tee_client_api.h>

#include "edge_results.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EDGE_API __attribute__((visibility("default")))

struct edge_client {
	TEEC_Context ctx;
	TEEC_Session sess;
	/* Reused between loads: registered once, sized for the largest chunk. */
	TEEC_SharedMemory shm_in;
	TEEC_SharedMemory shm_out;
	size_t shm_size;
};

static uint64_t le32(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24;
}

static uint32_t set_origin(uint32_t *origin, uint32_t value)
{
	if (origin)
		*origin = value;
	return value;
}

/* A failure detected by this library, before or instead of the TA. */
static uint32_t api_error(uint32_t *origin, uint32_t code)
{
	set_origin(origin, TEEC_ORIGIN_API);
	return code;
}

static uint32_t invoke(edge_client *c, uint32_t cmd, TEEC_Operation *op,
		       uint32_t *origin)
{
	uint32_t err_origin = TEEC_ORIGIN_API;
	TEEC_Result res;

	res = TEEC_InvokeCommand(&c->sess, cmd, op, &err_origin);
	set_origin(origin, err_origin);
	return res;
}

EDGE_API uint32_t edge_client_open(const char *tee_name, edge_client **out,
				   uint32_t *origin)
{
	const TEEC_UUID uuid = TA_EDGE_UUID;
	uint32_t err_origin = TEEC_ORIGIN_API;
	edge_client *c;
	TEEC_Result res;

	if (!out)
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return api_error(origin, TEEC_ERROR_OUT_OF_MEMORY);

	res = TEEC_InitializeContext(tee_name, &c->ctx);
	if (res != TEEC_SUCCESS) {
		free(c);
		set_origin(origin, TEEC_ORIGIN_COMMS);
		return res;
	}
	res = TEEC_OpenSession(&c->ctx, &c->sess, &uuid, TEEC_LOGIN_PUBLIC,
			       NULL, NULL, &err_origin);
	if (res != TEEC_SUCCESS) {
		TEEC_FinalizeContext(&c->ctx);
		free(c);
		set_origin(origin, err_origin);
		return res;
	}
	*out = c;
	set_origin(origin, TEEC_ORIGIN_API);
	return TEEC_SUCCESS;
}

static void release_shm(edge_client *c)
{
	if (c->shm_size) {
		TEEC_ReleaseSharedMemory(&c->shm_in);
		TEEC_ReleaseSharedMemory(&c->shm_out);
		c->shm_size = 0;
	}
}

EDGE_API void edge_client_close(edge_client *c)
{
	if (!c)
		return;
	release_shm(c);
	TEEC_CloseSession(&c->sess);
	TEEC_FinalizeContext(&c->ctx);
	free(c);
}

/* Commands whose only parameter is one output buffer. */
static uint32_t get_buffer(edge_client *c, uint32_t cmd, uint8_t *buf,
			   size_t *len, uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	if (!c || !len || (!buf && *len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_OUTPUT, TEEC_NONE,
					 TEEC_NONE, TEEC_NONE);
	op.params[0].tmpref.buffer = buf;
	op.params[0].tmpref.size = *len;
	res = invoke(c, cmd, &op, origin);
	if (res == TEEC_SUCCESS || res == TEEC_ERROR_SHORT_BUFFER)
		*len = op.params[0].tmpref.size;
	return res;
}

EDGE_API uint32_t edge_get_identity(edge_client *c, uint8_t *record,
				    size_t *record_len, uint32_t *origin)
{
	return get_buffer(c, TA_EDGE_CMD_GET_IDENTITY, record, record_len,
			  origin);
}

EDGE_API uint32_t edge_get_status(edge_client *c, uint8_t *status,
				  size_t *status_len, uint32_t *origin)
{
	return get_buffer(c, TA_EDGE_CMD_GET_STATUS, status, status_len,
			  origin);
}

/*
 * Commands whose parameter 0 is one input buffer. The caller's `op` holds
 * parameters 1 and 2 (of types t1, t2), and gets the results back.
 */
static uint32_t put_buffer_with(edge_client *c, uint32_t cmd,
				const uint8_t *buf, size_t len,
				TEEC_Operation *op, uint32_t t1, uint32_t t2,
				uint32_t *origin)
{
	if (!c || (!buf && len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	op->paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT, t1, t2,
					  TEEC_NONE);
	op->params[0].tmpref.buffer = (void *)buf;
	op->params[0].tmpref.size = len;
	return invoke(c, cmd, op, origin);
}

/* Commands whose only parameter is one input buffer. */
static uint32_t put_buffer(edge_client *c, uint32_t cmd, const uint8_t *buf,
			   size_t len, uint32_t *origin)
{
	TEEC_Operation op;

	memset(&op, 0, sizeof(op));
	return put_buffer_with(c, cmd, buf, len, &op, TEEC_NONE, TEEC_NONE,
			       origin);
}

struct in_buf {
	const void *buf;
	size_t len;
};

/*
 * Commands taking value `a`, then the n_in (1 or 2) input buffers, then
 * one output buffer whose size the TA reports back (also when too short).
 */
static uint32_t value_in_out(edge_client *c, uint32_t cmd, uint32_t a,
			     const struct in_buf *in, size_t n_in, void *out,
			     size_t *out_len, uint32_t *origin)
{
	uint32_t t[4] = { TEEC_VALUE_INPUT, TEEC_NONE, TEEC_NONE, TEEC_NONE };
	TEEC_Operation op;
	uint32_t res;
	size_t i;

	if (!c || !out_len || (!out && *out_len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	for (i = 0; i < n_in; i++)
		if (!in[i].buf && in[i].len)
			return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.params[0].value.a = a;
	for (i = 0; i < n_in; i++) {
		t[1 + i] = TEEC_MEMREF_TEMP_INPUT;
		op.params[1 + i].tmpref.buffer = (void *)in[i].buf;
		op.params[1 + i].tmpref.size = in[i].len;
	}
	t[1 + n_in] = TEEC_MEMREF_TEMP_OUTPUT;
	op.params[1 + n_in].tmpref.buffer = out;
	op.params[1 + n_in].tmpref.size = *out_len;
	op.paramTypes = TEEC_PARAM_TYPES(t[0], t[1], t[2], t[3]);
	res = invoke(c, cmd, &op, origin);
	if (res == TEEC_SUCCESS || res == TEEC_ERROR_SHORT_BUFFER)
		*out_len = op.params[1 + n_in].tmpref.size;
	return res;
}

EDGE_API uint32_t edge_install_anchors(edge_client *c,
				       const uint8_t *signer_pub,
				       const uint8_t *aggregator_pub,
				       uint32_t *origin)
{
	uint8_t both[2 * EDGE_PUBKEY_SIZE];

	if (!signer_pub || !aggregator_pub)
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memcpy(both, signer_pub, EDGE_PUBKEY_SIZE);
	memcpy(both + EDGE_PUBKEY_SIZE, aggregator_pub, EDGE_PUBKEY_SIZE);
	return put_buffer(c, TA_EDGE_CMD_INSTALL_ANCHORS, both, sizeof(both),
			  origin);
}

EDGE_API uint32_t edge_replace_anchor(edge_client *c, const uint8_t *statement,
				      size_t statement_len, uint32_t *origin)
{
	return put_buffer(c, TA_EDGE_CMD_REPLACE_ANCHOR, statement,
			  statement_len, origin);
}

EDGE_API uint32_t edge_load_begin(edge_client *c, const uint8_t *manifest,
				  size_t manifest_len, const uint8_t *wrap,
				  size_t wrap_len, uint32_t *chunk_count,
				  uint32_t *flags, uint32_t *chunk_size,
				  uint32_t *last_stored_size, uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	if (!c || (!manifest && manifest_len) || (!wrap && wrap_len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT,
					 TEEC_VALUE_OUTPUT, TEEC_VALUE_OUTPUT,
					 TEEC_MEMREF_TEMP_INPUT);
	op.params[0].tmpref.buffer = (void *)manifest;
	op.params[0].tmpref.size = manifest_len;
	op.params[3].tmpref.buffer = (void *)wrap;
	op.params[3].tmpref.size = wrap_len;
	res = invoke(c, TA_EDGE_CMD_LOAD_BEGIN, &op, origin);
	if (res != TEEC_SUCCESS)
		return res;
	if (chunk_count)
		*chunk_count = op.params[1].value.a;
	if (flags)
		*flags = op.params[1].value.b;
	if (chunk_size)
		*chunk_size = op.params[2].value.a;
	if (last_stored_size)
		*last_stored_size = op.params[2].value.b;
	return res;
}

EDGE_API uint32_t edge_load_chunk(edge_client *c, uint32_t index,
				  const uint8_t *stored, size_t stored_len,
				  uint8_t *plain, size_t *plain_len,
				  uint32_t *origin)
{
	const struct in_buf in = { stored, stored_len };

	return value_in_out(c, TA_EDGE_CMD_LOAD_CHUNK, index, &in, 1, plain,
			    plain_len, origin);
}

EDGE_API uint32_t edge_load_finish(edge_client *c, uint64_t *version,
				   uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	if (!c)
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_OUTPUT, TEEC_NONE,
					 TEEC_NONE, TEEC_NONE);
	res = invoke(c, TA_EDGE_CMD_LOAD_FINISH, &op, origin);
	if (res == TEEC_SUCCESS && version)
		*version = (uint64_t)op.params[0].value.b << 32 |
			   op.params[0].value.a;
	return res;
}

EDGE_API uint32_t edge_load_abort(edge_client *c, uint32_t *origin)
{
	TEEC_Operation op;

	if (!c)
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_NONE, TEEC_NONE, TEEC_NONE,
					 TEEC_NONE);
	return invoke(c, TA_EDGE_CMD_LOAD_ABORT, &op, origin);
}

/* ---- Streaming a whole package ---------------------------------------- */

/* Where package bytes come from: a caller's buffer or a file. */
struct source {
	const uint8_t *buf;
	int fd;
	uint64_t size;
	uint64_t pos;
};

/* Where the verified backbone goes: a caller's buffer or a file. */
struct sink {
	uint8_t *buf;
	size_t cap;
	int fd;
	uint64_t written;
	bool overflow;
};

static size_t source_read(struct source *s, uint8_t *dst, size_t n)
{
	size_t done = 0;

	if (s->size - s->pos < n)
		n = (size_t)(s->size - s->pos);
	if (s->buf) {
		memcpy(dst, s->buf + s->pos, n);
		s->pos += n;
		return n;
	}
	while (done < n) {
		ssize_t r = read(s->fd, dst + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	s->pos += done;
	return done;
}

static int sink_write(struct sink *k, const uint8_t *src, size_t n)
{
	size_t done = 0;

	if (k->fd < 0) {
		if (k->buf && !k->overflow && k->cap - k->written >= n)
			memcpy(k->buf + k->written, src, n);
		else
			k->overflow = true;
		k->written += n;
		return 0;
	}
	while (done < n) {
		ssize_t w = write(k->fd, src + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	k->written += n;
	return 0;
}

static uint32_t ensure_shm(edge_client *c, size_t size, uint32_t *origin)
{
	TEEC_Result res;

	if (c->shm_size >= size)
		return TEEC_SUCCESS;
	release_shm(c);
	memset(&c->shm_in, 0, sizeof(c->shm_in));
	memset(&c->shm_out, 0, sizeof(c->shm_out));
	c->shm_in.size = size;
	c->shm_in.flags = TEEC_MEM_INPUT;
	c->shm_out.size = size;
	c->shm_out.flags = TEEC_MEM_OUTPUT;
	res = TEEC_AllocateSharedMemory(&c->ctx, &c->shm_in);
	if (res != TEEC_SUCCESS)
		return api_error(origin, res);
	res = TEEC_AllocateSharedMemory(&c->ctx, &c->shm_out);
	if (res != TEEC_SUCCESS) {
		TEEC_ReleaseSharedMemory(&c->shm_in);
		return api_error(origin, res);
	}
	c->shm_size = size;
	return TEEC_SUCCESS;
}

static uint32_t chunk_via_shm(edge_client *c, uint32_t index, size_t len,
			      size_t *plain_len, uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INPUT,
					 TEEC_MEMREF_PARTIAL_INPUT,
					 TEEC_MEMREF_PARTIAL_OUTPUT, TEEC_NONE);
	op.params[0].value.a = index;
	op.params[1].memref.parent = &c->shm_in;
	op.params[1].memref.size = len;
	op.params[2].memref.parent = &c->shm_out;
	op.params[2].memref.size = c->shm_size;
	res = invoke(c, TA_EDGE_CMD_LOAD_CHUNK, &op, origin);
	if (res == TEEC_SUCCESS)
		*plain_len = op.params[2].memref.size;
	return res;
}

/* Aborts the pending load after a failure, keeping the first error. */
static uint32_t fail_load(edge_client *c, uint32_t res)
{
	edge_load_abort(c, NULL);
	return res;
}

static uint32_t load_stream(edge_client *c, struct source *src,
			    const uint8_t *wrap, size_t wrap_len,
			    struct sink *dst, uint64_t *version,
			    uint32_t *origin)
{
	uint8_t header[EDGE_ENVELOPE_HEADER_SIZE];
	uint32_t count = 0, flags = 0, chunk = 0, last = 0;
	uint64_t manifest_len, body_len, stored;
	uint8_t *manifest;
	uint32_t res;
	size_t got;

	/* Only framing is read here; the TA re-checks everything. */
	got = source_read(src, header, sizeof(header));
	body_len = got == sizeof(header) ?
		   le32(header + EDGE_ENVELOPE_HEADER_OFF_BODY_LEN) : 0;
	manifest_len = got + (got == sizeof(header) ? body_len + EDGE_SIG_SIZE : 0);
	if (manifest_len > src->size)
		manifest_len = src->size;
	/* Enough to let the TA see an oversized manifest for what it is. */
	if (manifest_len > 2 * (uint64_t)EDGE_MAX_MANIFEST_SIZE)
		manifest_len = 2 * (uint64_t)EDGE_MAX_MANIFEST_SIZE;
	manifest = malloc(manifest_len ? manifest_len : 1);
	if (!manifest)
		return api_error(origin, TEEC_ERROR_OUT_OF_MEMORY);
	memcpy(manifest, header, got);
	if (source_read(src, manifest + got, manifest_len - got) !=
	    manifest_len - got) {
		free(manifest);
		return api_error(origin, TEEC_ERROR_COMMUNICATION);
	}
	res = edge_load_begin(c, manifest, manifest_len, wrap, wrap_len, &count,
			      &flags, &chunk, &last, origin);
	free(manifest);
	if (res != TEEC_SUCCESS)
		return res;

	stored = (uint64_t)chunk +
		 ((flags & EDGE_PKG_FLAG_BACKBONE_ENCRYPTED) ? EDGE_AEAD_TAG_SIZE : 0);
	if (count) {
		res = ensure_shm(c, (size_t)stored, origin);
		if (res != TEEC_SUCCESS)
			return fail_load(c, res);
	}
	for (uint32_t i = 0; i < count; i++) {
		size_t want = (size_t)(i + 1 == count ? last : stored);
		size_t plain_len = 0;

		if (want > c->shm_size)
			return fail_load(c, api_error(origin,
						      TEEC_ERROR_BAD_FORMAT));
		/* A short read passes a short chunk: the TA names it. */
		got = source_read(src, c->shm_in.buffer, want);
		res = chunk_via_shm(c, i, got, &plain_len, origin);
		if (res != TEEC_SUCCESS)
			return fail_load(c, res);
		if (sink_write(dst, c->shm_out.buffer, plain_len))
			return fail_load(c, api_error(origin,
						      TEEC_ERROR_COMMUNICATION));
	}
	if (src->pos != src->size)	/* trailing bytes after the payload */
		return fail_load(c, api_error(origin, TEEC_ERROR_BAD_FORMAT));
	if (dst->overflow)
		return fail_load(c, api_error(origin, TEEC_ERROR_SHORT_BUFFER));
	/*
	 * The file is complete and on disk before the TA commits: a failure
	 * here refuses the load with the TA's state unchanged, and after the
	 * commit only the rename is left to do.
	 */
	if (dst->fd >= 0) {
		int bad = fsync(dst->fd);

		bad |= close(dst->fd);
		dst->fd = -1;
		if (bad)
			return fail_load(c, api_error(origin,
						      TEEC_ERROR_ACCESS_DENIED));
	}
	return edge_load_finish(c, version, origin);
}

EDGE_API uint32_t edge_load_model_buffer(edge_client *c,
					 const uint8_t *package,
					 size_t package_len,
					 const uint8_t *wrap, size_t wrap_len,
					 uint8_t *backbone,
					 size_t *backbone_len,
					 uint64_t *version, uint32_t *origin)
{
	struct source src = { .buf = package, .fd = -1, .size = package_len };
	struct sink dst = { .fd = -1 };
	uint32_t res;

	if (!c || !package || !backbone_len || (!backbone && *backbone_len) ||
	    (!wrap && wrap_len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	dst.buf = backbone;
	dst.cap = *backbone_len;
	res = load_stream(c, &src, wrap, wrap_len, &dst, version, origin);
	if (res == TEEC_SUCCESS || res == TEEC_ERROR_SHORT_BUFFER)
		*backbone_len = (size_t)dst.written;
	return res;
}

/* fsync the directory holding path, so a rename into it is durable. */
static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	int fd, bad;

	if (n >= sizeof(dir))
		return -1;
	if (slash && n == 0)
		n = 1;	/* the root directory */
	memcpy(dir, slash ? path : ".", slash ? n : 1);
	dir[slash ? n : 1] = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	bad = fsync(fd);
	return close(fd) | bad;
}

EDGE_API uint32_t edge_load_model_file(edge_client *c, const char *package_path,
				       const uint8_t *wrap, size_t wrap_len,
				       const char *backbone_path,
				       uint64_t *backbone_len,
				       uint64_t *version, uint32_t *origin)
{
	struct source src = { .fd = -1 };
	struct sink dst = { .fd = -1 };
	char tmp[PATH_MAX];
	struct stat st;
	uint32_t res;

	if (!c || !package_path || (!wrap && wrap_len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	src.fd = open(package_path, O_RDONLY | O_CLOEXEC);
	if (src.fd < 0)
		return api_error(origin, TEEC_ERROR_ITEM_NOT_FOUND);
	if (fstat(src.fd, &st) || !S_ISREG(st.st_mode)) {
		close(src.fd);
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	}
	src.size = (uint64_t)st.st_size;

	if (backbone_path) {
		int n = snprintf(tmp, sizeof(tmp), "%s.partial", backbone_path);

		if (n < 0 || (size_t)n >= sizeof(tmp)) {
			close(src.fd);
			return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
		}
		/*
		 * Never through a file or link planted at the temporary name:
		 * remove whatever is there (unlink does not follow links) and
		 * create a new file only this user can read.
		 */
		if (unlink(tmp) && errno != ENOENT) {
			close(src.fd);
			return api_error(origin, TEEC_ERROR_ACCESS_DENIED);
		}
		dst.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			      O_CLOEXEC, 0600);
		if (dst.fd < 0) {
			close(src.fd);
			return api_error(origin, TEEC_ERROR_ACCESS_DENIED);
		}
	}
	res = load_stream(c, &src, wrap, wrap_len, &dst, version, origin);
	close(src.fd);
	if (backbone_path && res != TEEC_SUCCESS) {
		if (dst.fd >= 0)
			close(dst.fd);
		unlink(tmp);
	} else if (backbone_path) {
		/*
		 * The TA committed: publish the backbone. If that fails, the
		 * complete, synced file stays at <path>.partial for the caller
		 * (EDGE_CLIENT_ERR_BACKBONE_NOT_PUBLISHED); deleting it would
		 * leave the committed version without its backbone.
		 */
		if (rename(tmp, backbone_path) || sync_parent(backbone_path))
			res = api_error(origin,
					EDGE_CLIENT_ERR_BACKBONE_NOT_PUBLISHED);
	}
	if (res == TEEC_SUCCESS && backbone_len)
		*backbone_len = dst.written;
	return res;
}

EDGE_API uint32_t edge_infer(edge_client *c, const float *features, uint32_t n,
			     size_t features_len, void *out, size_t *out_len,
			     uint32_t *release, uint32_t *rows_left,
			     uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	if (!c || !out_len || (!out && *out_len) || (!features && features_len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INOUT,
					 TEEC_MEMREF_TEMP_INPUT,
					 TEEC_MEMREF_TEMP_OUTPUT, TEEC_NONE);
	op.params[0].value.a = n;
	op.params[1].tmpref.buffer = (void *)features;
	op.params[1].tmpref.size = features_len;
	op.params[2].tmpref.buffer = out;
	op.params[2].tmpref.size = *out_len;
	res = invoke(c, TA_EDGE_CMD_INFER, &op, origin);
	if (res == TEEC_SUCCESS || res == TEEC_ERROR_SHORT_BUFFER)
		*out_len = op.params[2].tmpref.size;
	if (res == TEEC_SUCCESS) {
		if (release)
			*release = op.params[0].value.a;
		if (rows_left)
			*rows_left = op.params[0].value.b;
	}
	return res;
}

EDGE_API uint32_t edge_verify_ticket(edge_client *c, const uint8_t *ticket,
				     size_t ticket_len, uint64_t ree_time,
				     uint32_t *steps_left,
				     uint32_t *steps_per_round,
				     uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	memset(&op, 0, sizeof(op));
	op.params[1].value.a = (uint32_t)ree_time;
	op.params[1].value.b = (uint32_t)(ree_time >> 32);
	res = put_buffer_with(c, TA_EDGE_CMD_VERIFY_TICKET, ticket, ticket_len,
			      &op, TEEC_VALUE_INPUT, TEEC_VALUE_OUTPUT,
			      origin);
	if (res != TEEC_SUCCESS)
		return res;
	if (steps_left)
		*steps_left = op.params[2].value.a;
	if (steps_per_round)
		*steps_per_round = op.params[2].value.b;
	return res;
}

EDGE_API uint32_t edge_train_and_seal(edge_client *c, const float *features,
				      uint32_t n, size_t features_len,
				      const uint32_t *labels,
				      size_t labels_len, uint8_t *update,
				      size_t *update_len, uint32_t *origin)
{
	const struct in_buf in[2] = {
		{ features, features_len }, { labels, labels_len }
	};

	return value_in_out(c, TA_EDGE_CMD_TRAIN_AND_SEAL, n, in, 2, update,
			    update_len, origin);
}

EDGE_API uint32_t edge_budget_status(edge_client *c, uint8_t *block,
				     size_t *block_len, uint32_t *origin)
{
	return get_buffer(c, TA_EDGE_CMD_BUDGET_STATUS, block, block_len,
			  origin);
}

EDGE_API uint32_t edge_install_policy(edge_client *c, const uint8_t *policy,
				      size_t policy_len, uint32_t *origin)
{
	return put_buffer(c, TA_EDGE_CMD_INSTALL_POLICY, policy, policy_len,
			  origin);
}

/* Commands taking one input buffer and returning one output buffer. */
static uint32_t in_out(edge_client *c, uint32_t cmd, const uint8_t *in,
		       size_t in_len, uint8_t *out, size_t *out_len,
		       uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	if (!out_len || (!out && *out_len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.params[1].tmpref.buffer = out;
	op.params[1].tmpref.size = *out_len;
	res = put_buffer_with(c, cmd, in, in_len, &op,
			      TEEC_MEMREF_TEMP_OUTPUT, TEEC_NONE, origin);
	if (res == TEEC_SUCCESS || res == TEEC_ERROR_SHORT_BUFFER)
		*out_len = op.params[1].tmpref.size;
	return res;
}

EDGE_API uint32_t edge_secagg_advertise(edge_client *c, const uint8_t *ticket,
					size_t ticket_len, uint64_t ree_time,
					uint8_t *advert, size_t *advert_len,
					uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	if (!advert_len || (!advert && *advert_len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.params[1].value.a = (uint32_t)ree_time;
	op.params[1].value.b = (uint32_t)(ree_time >> 32);
	op.params[2].tmpref.buffer = advert;
	op.params[2].tmpref.size = *advert_len;
	res = put_buffer_with(c, TA_EDGE_CMD_SECAGG_ADVERTISE, ticket,
			      ticket_len, &op, TEEC_VALUE_INPUT,
			      TEEC_MEMREF_TEMP_OUTPUT, origin);
	if (res == TEEC_SUCCESS || res == TEEC_ERROR_SHORT_BUFFER)
		*advert_len = op.params[2].tmpref.size;
	return res;
}

EDGE_API uint32_t edge_secagg_share(edge_client *c, const uint8_t *roster,
				    size_t roster_len, uint8_t *bundle,
				    size_t *bundle_len, uint32_t *origin)
{
	return in_out(c, TA_EDGE_CMD_SECAGG_SHARE, roster, roster_len, bundle,
		      bundle_len, origin);
}

EDGE_API uint32_t edge_secagg_receive(edge_client *c, const uint8_t *inbox,
				      size_t inbox_len, uint32_t *origin)
{
	return put_buffer(c, TA_EDGE_CMD_SECAGG_RECEIVE, inbox, inbox_len,
			  origin);
}

EDGE_API uint32_t edge_secagg_unmask(edge_client *c, const uint8_t *survivors,
				     size_t survivors_len, uint8_t *reveals,
				     size_t *reveals_len, uint32_t *origin)
{
	return in_out(c, TA_EDGE_CMD_SECAGG_UNMASK, survivors, survivors_len,
		      reveals, reveals_len, origin);
}

EDGE_API uint32_t edge_install_registrar(edge_client *c,
					 const uint8_t *registrar_pub,
					 uint32_t *origin)
{
	return put_buffer(c, TA_EDGE_CMD_INSTALL_REGISTRAR, registrar_pub,
			  registrar_pub ? EDGE_PUBKEY_SIZE : 0, origin);
}

EDGE_API uint32_t edge_sign_skip(edge_client *c, const uint8_t *ticket,
				 size_t ticket_len, uint64_t ree_time,
				 uint32_t reason, uint32_t n, uint8_t *report,
				 size_t *report_len, uint32_t *refusal,
				 uint32_t *field, uint32_t *origin)
{
	TEEC_Operation op;
	uint32_t res;

	if (!c || !report_len || (!report && *report_len) ||
	    (!ticket && ticket_len))
		return api_error(origin, TEEC_ERROR_BAD_PARAMETERS);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT,
					 TEEC_VALUE_INPUT,
					 TEEC_MEMREF_TEMP_OUTPUT,
					 TEEC_VALUE_INOUT);
	op.params[0].tmpref.buffer = (void *)ticket;
	op.params[0].tmpref.size = ticket_len;
	op.params[1].value.a = (uint32_t)ree_time;
	op.params[1].value.b = (uint32_t)(ree_time >> 32);
	op.params[2].tmpref.buffer = report;
	op.params[2].tmpref.size = *report_len;
	op.params[3].value.a = reason;
	op.params[3].value.b = n;
	res = invoke(c, TA_EDGE_CMD_SIGN_SKIP, &op, origin);
	if (res == TEEC_SUCCESS || res == TEEC_ERROR_SHORT_BUFFER)
		*report_len = op.params[2].tmpref.size;
	if (res != TEEC_SUCCESS)
		return res;
	if (refusal)
		*refusal = op.params[3].value.a;
	if (field)
		*field = op.params[3].value.b;
	return res;
}

EDGE_API const char *edge_result_name(uint32_t result)
{
	size_t i;

	for (i = 0; i < sizeof(edge_result_names) / sizeof(edge_result_names[0]);
	     i++)
		if (edge_result_names[i].code == result)
			return edge_result_names[i].name;
	return "unknown result";
}
