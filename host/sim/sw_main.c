/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * edge-sim-tee: the simulated secure world. One process per TEEC_Context,
 * started by libteec_sim.so, linked with the unmodified TA sources and the
 * host GP Internal API (host/sim/gp/). Protocol: sim_ipc.h.
 *
 * What this process guarantees the TA, as OP-TEE does for a single-instance
 * TA: its own address space (parameters are copies, never the client's
 * memory), one command at a time, TA_CreateEntryPoint before the first
 * session and TA_DestroyEntryPoint after the last, and one live instance
 * per storage (an exclusive lock on the state directory).
 *
 * Usage: edge-sim-tee STATE_DIR, with the socket on fd 3. Never writes to
 * stdout; diagnostics and TA traces go to stderr (the "secure log").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tee_internal_api.h>
#include <user_ta_header.h>

#include "gp_sim.h"
#include "sim_ipc.h"

/* From ta_props.c (the TA's user_ta_header_defines.h) or a test TA. */
extern const TEE_UUID edge_sim_ta_uuid;
extern const uint32_t edge_sim_ta_flags;
extern const size_t edge_sim_ta_data_size;

#define MAX_SESSIONS 1024

struct session {
	uint32_t id;
	void *ctx;
};

/* Parameters of one request, as the TA sees them. */
struct call {
	uint32_t types;
	TEE_Param params[TEE_NUM_PARAMS];
	void *bufs[TEE_NUM_PARAMS];	/* ours: the TA may overwrite .buffer */
	size_t sizes[TEE_NUM_PARAMS];	/* sizes the client sent */
	bool oom;
};

static struct {
	int sock;
	const char *state_dir;
	int lock_fd;
	bool locked;
	bool gp_ready;
	bool instance;
	struct session *sessions;
	size_t nsessions;
	bool crash_on_set, crash_after_set;
	uint32_t crash_on, crash_after;
} sw = { .sock = SIM_IPC_FD, .lock_fd = -1 };

static void fatal(const char *what)
{
	fprintf(stderr, "edge-sim-tee: %s\n", what);
	exit(EXIT_FAILURE);
}

/* The client is ours, so malformed framing means a bug or a hostile peer:
 * stop rather than guess. The client sees end-of-file. */
static void protocol_error(const char *what)
{
	fprintf(stderr, "edge-sim-tee: protocol error: %s\n", what);
	exit(EXIT_FAILURE);
}

static bool env_u32(const char *name, uint32_t *out)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v > UINT32_MAX) {
		fprintf(stderr, "edge-sim-tee: ignoring %s=%s\n", name, s);
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

static int mkdir_p(const char *path)
{
	char *p = strdup(path);
	int rc = 0;

	if (!p)
		return -1;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) && errno != EEXIST) {
			rc = -1;
			break;
		}
		*s = '/';
	}
	if (!rc && mkdir(p, 0700) && errno != EEXIST)
		rc = -1;
	free(p);
	return rc;
}

/*
 * Takes the storage lock (once held, kept for the life of the process) and
 * initialises the GP layer behind it, so that two instances never open the
 * same storage. Retried at each OpenSession: the holder may have gone.
 */
static TEE_Result acquire_storage(void)
{
	if (!sw.locked) {
		if (sw.lock_fd < 0) {
			char path[PATH_MAX];

			if (snprintf(path, sizeof(path), "%s/lock",
				     sw.state_dir) >= (int)sizeof(path))
				fatal("state directory path too long");
			sw.lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC,
					  0600);
			if (sw.lock_fd < 0) {
				fprintf(stderr, "edge-sim-tee: %s: %s\n", path,
					strerror(errno));
				return TEE_ERROR_STORAGE_NOT_AVAILABLE;
			}
		}
		if (flock(sw.lock_fd, LOCK_EX | LOCK_NB)) {
			if (errno == EWOULDBLOCK)
				return TEE_ERROR_BUSY;
			fprintf(stderr, "edge-sim-tee: lock %s: %s\n",
				sw.state_dir, strerror(errno));
			return TEE_ERROR_STORAGE_NOT_AVAILABLE;
		}
		sw.locked = true;
	}
	if (!sw.gp_ready) {
		if (edge_sim_gp_init(sw.state_dir)) {
			fprintf(stderr,
				"edge-sim-tee: cannot initialise storage in %s\n",
				sw.state_dir);
			return TEE_ERROR_STORAGE_NOT_AVAILABLE;
		}
		sw.gp_ready = true;
	}
	return TEE_SUCCESS;
}

static void release_storage(void)
{
	if (sw.lock_fd >= 0)
		close(sw.lock_fd);
	sw.lock_fd = -1;
	sw.locked = false;
}

static struct session *find_session(uint32_t id)
{
	for (size_t i = 0; i < sw.nsessions; i++)
		if (sw.sessions[i].id == id)
			return &sw.sessions[i];
	return NULL;
}

static void free_call(struct call *c)
{
	for (int i = 0; i < TEE_NUM_PARAMS; i++)
		free(c->bufs[i]);
	memset(c, 0, sizeof(*c));
}

static void shutdown_instance(void)
{
	while (sw.nsessions) {
		void *ctx = sw.sessions[--sw.nsessions].ctx;

		TA_CloseSessionEntryPoint(ctx);
	}
	if (sw.instance && !(edge_sim_ta_flags & TA_FLAG_INSTANCE_KEEP_ALIVE))
		TA_DestroyEntryPoint();
	sw.instance = false;
	free(sw.sessions);
	sw.sessions = NULL;
	release_storage();
}

/* The client closed its context or died (OP-TEE closes the sessions of a
 * dead client the same way). */
static void __attribute__((noreturn)) client_gone(void)
{
	shutdown_instance();
	exit(EXIT_SUCCESS);
}

/* Copies the request's parameters into memory of this process. */
static void recv_params(const struct sim_req *req, struct call *c)
{
	uint64_t expected = 0;

	memset(c, 0, sizeof(*c));
	if (!edge_sim_ipc_types_valid(req->param_types))
		protocol_error("parameter types");
	c->types = req->param_types;

	for (int i = 0; i < TEE_NUM_PARAMS; i++) {
		const struct sim_param *p = &req->params[i];
		uint32_t t = SIM_PT_GET(c->types, i);

		if (!edge_sim_ipc_is_memref(t))
			continue;
		if (p->size > SIM_IPC_MAX_MEMREF)
			protocol_error("memref too large");
		if (!(p->flags & SIM_PARAM_F_NULL))
			expected += edge_sim_ipc_is_input(t) ? p->size : 0;
		else if (p->size && t != SIM_PT_MEMREF_OUTPUT)
			/* Only an output may be NULL with a size: the TA
			 * is asked for the size it needs. */
			protocol_error("NULL input memref with a size");
	}
	if (req->payload != expected)
		protocol_error("payload length");

	for (int i = 0; i < TEE_NUM_PARAMS; i++) {
		const struct sim_param *p = &req->params[i];
		uint32_t t = SIM_PT_GET(c->types, i);

		if (!edge_sim_ipc_is_memref(t) || (p->flags & SIM_PARAM_F_NULL))
			continue;
		/* Zeroed, so an OUTPUT buffer never shows stale memory. */
		c->bufs[i] = calloc(p->size ? (size_t)p->size : 1, 1);
		if (!c->bufs[i]) {
			c->oom = true;
			break;
		}
	}
	if (c->oom) {
		for (int i = 0; i < TEE_NUM_PARAMS; i++)
			free(c->bufs[i]);
		memset(c->bufs, 0, sizeof(c->bufs));
		if (edge_sim_ipc_discard(sw.sock, req->payload))
			client_gone();
		return;
	}

	for (int i = 0; i < TEE_NUM_PARAMS; i++) {
		const struct sim_param *p = &req->params[i];
		uint32_t t = SIM_PT_GET(c->types, i);

		switch (t) {
		case SIM_PT_VALUE_INPUT:
		case SIM_PT_VALUE_INOUT:
			c->params[i].value.a = p->a;
			c->params[i].value.b = p->b;
			break;
		case SIM_PT_MEMREF_INPUT:
		case SIM_PT_MEMREF_OUTPUT:
		case SIM_PT_MEMREF_INOUT:
			c->sizes[i] = (size_t)p->size;
			c->params[i].memref.buffer = c->bufs[i];
			c->params[i].memref.size = (size_t)p->size;
			if (t != SIM_PT_MEMREF_OUTPUT && c->bufs[i] && p->size &&
			    edge_sim_ipc_recv_all(sw.sock, c->bufs[i],
						  (size_t)p->size))
				client_gone();
			break;
		default:
			break;
		}
	}
}

/*
 * Sends the result and, if the TA ran (c != NULL), its outputs. Output
 * bytes go back only when they fit the buffer the client offered and the
 * TA did not ask for a bigger one; the size always goes back.
 */
static void send_reply(TEE_Result res, uint32_t origin, uint32_t flags,
		       const struct call *c)
{
	struct sim_rsp rsp;

	memset(&rsp, 0, sizeof(rsp));
	rsp.magic = SIM_IPC_MAGIC;
	rsp.result = res;
	rsp.origin = origin;
	rsp.flags = flags;
	if (c) {
		rsp.flags |= SIM_RSP_F_PARAMS;
		for (int i = 0; i < TEE_NUM_PARAMS; i++) {
			uint32_t t = SIM_PT_GET(c->types, i);
			struct sim_param *p = &rsp.params[i];

			if (!edge_sim_ipc_is_output(t))
				continue;
			if (!edge_sim_ipc_is_memref(t)) {
				p->a = c->params[i].value.a;
				p->b = c->params[i].value.b;
				continue;
			}
			p->size = c->params[i].memref.size;
			if (res != TEE_ERROR_SHORT_BUFFER &&
			    p->size <= c->sizes[i] && c->bufs[i]) {
				p->flags = SIM_PARAM_F_DATA;
				rsp.payload += p->size;
			}
		}
	}
	if (edge_sim_ipc_send_all(sw.sock, &rsp, sizeof(rsp)))
		goto gone;
	for (int i = 0; c && i < TEE_NUM_PARAMS; i++) {
		const struct sim_param *p = &rsp.params[i];

		if ((p->flags & SIM_PARAM_F_DATA) && p->size &&
		    edge_sim_ipc_send_all(sw.sock, c->bufs[i], (size_t)p->size))
			goto gone;
	}
	return;
gone:
	client_gone();
}

/* After the instance is gone, the next session gets a new process. */
static void __attribute__((noreturn))
exit_after_reply(TEE_Result res, uint32_t origin, struct call *c)
{
	free(sw.sessions);
	sw.sessions = NULL;
	release_storage();
	send_reply(res, origin, SIM_RSP_F_EXITING, c);
	if (c)
		free_call(c);
	exit(EXIT_SUCCESS);
}

static bool uuid_matches(const struct sim_uuid *u)
{
	const TEE_UUID *ta = &edge_sim_ta_uuid;

	return u->time_low == ta->timeLow && u->time_mid == ta->timeMid &&
	       u->time_hi_and_version == ta->timeHiAndVersion &&
	       !memcmp(u->clock_seq_and_node, ta->clockSeqAndNode,
		       sizeof(ta->clockSeqAndNode));
}

static void do_open_session(const struct sim_req *req)
{
	struct call c;
	TEE_Result res;
	void *ctx = NULL;
	struct session *grown;

	recv_params(req, &c);
	if (c.oom) {
		send_reply(TEE_ERROR_OUT_OF_MEMORY, TEE_ORIGIN_TEE, 0, NULL);
		return;
	}
	if (!uuid_matches(&req->uuid)) {
		res = TEE_ERROR_ITEM_NOT_FOUND;
		goto tee_error;
	}
	res = acquire_storage();
	if (res != TEE_SUCCESS)
		goto tee_error;
	if (!req->session || find_session(req->session) ||
	    sw.nsessions >= MAX_SESSIONS) {
		res = TEE_ERROR_BAD_PARAMETERS;
		goto tee_error;
	}
	if (sw.nsessions && !(edge_sim_ta_flags & TA_FLAG_MULTI_SESSION)) {
		res = TEE_ERROR_BUSY;
		goto tee_error;
	}
	grown = realloc(sw.sessions, (sw.nsessions + 1) * sizeof(*grown));
	if (!grown) {
		res = TEE_ERROR_OUT_OF_MEMORY;
		goto tee_error;
	}
	sw.sessions = grown;

	if (!sw.instance) {
		res = TA_CreateEntryPoint();
		if (res != TEE_SUCCESS) {
			free_call(&c);
			exit_after_reply(res, TEE_ORIGIN_TRUSTED_APP, NULL);
		}
		sw.instance = true;
	}
	res = TA_OpenSessionEntryPoint(c.types, c.params, &ctx);
	if (res == TEE_SUCCESS) {
		sw.sessions[sw.nsessions].id = req->session;
		sw.sessions[sw.nsessions].ctx = ctx;
		sw.nsessions++;
	} else if (!sw.nsessions &&
		   !(edge_sim_ta_flags & TA_FLAG_INSTANCE_KEEP_ALIVE)) {
		TA_DestroyEntryPoint();
		sw.instance = false;
		exit_after_reply(res, TEE_ORIGIN_TRUSTED_APP, &c);
	}
	send_reply(res, TEE_ORIGIN_TRUSTED_APP, 0, &c);
	free_call(&c);
	return;

tee_error:
	free_call(&c);
	send_reply(res, TEE_ORIGIN_TEE, 0, NULL);
}

static void do_invoke(const struct sim_req *req)
{
	struct call c;
	struct session *s;
	TEE_Result res;

	recv_params(req, &c);
	if (sw.crash_on_set && req->cmd == sw.crash_on) {
		fprintf(stderr, "edge-sim-tee: EDGE_SIM_CRASH_ON_CMD=%u\n",
			req->cmd);
		abort();
	}
	if (c.oom) {
		send_reply(TEE_ERROR_OUT_OF_MEMORY, TEE_ORIGIN_TEE, 0, NULL);
		return;
	}
	s = find_session(req->session);
	if (!s) {
		free_call(&c);
		send_reply(TEE_ERROR_BAD_PARAMETERS, TEE_ORIGIN_TEE, 0, NULL);
		return;
	}
	res = TA_InvokeCommandEntryPoint(s->ctx, req->cmd, c.types, c.params);
	if (sw.crash_after_set && req->cmd == sw.crash_after) {
		fprintf(stderr, "edge-sim-tee: EDGE_SIM_CRASH_AFTER_CMD=%u\n",
			req->cmd);
		abort();
	}
	send_reply(res, TEE_ORIGIN_TRUSTED_APP, 0, &c);
	free_call(&c);
}

static void do_close_session(const struct sim_req *req)
{
	struct session *s;
	void *ctx;

	if (req->payload)
		protocol_error("payload on close");
	s = find_session(req->session);
	if (!s) {
		send_reply(TEE_ERROR_BAD_PARAMETERS, TEE_ORIGIN_TEE, 0, NULL);
		return;
	}
	ctx = s->ctx;
	*s = sw.sessions[--sw.nsessions];
	TA_CloseSessionEntryPoint(ctx);
	if (!sw.nsessions &&
	    !(edge_sim_ta_flags & TA_FLAG_INSTANCE_KEEP_ALIVE)) {
		TA_DestroyEntryPoint();
		sw.instance = false;
		exit_after_reply(TEE_SUCCESS, TEE_ORIGIN_TEE, NULL);
	}
	send_reply(TEE_SUCCESS, TEE_ORIGIN_TEE, 0, NULL);
}

/*
 * OP-TEE prints TA traces on a separate secure UART, not on the normal
 * world's console; likewise our stderr goes to STATE_DIR/secure.log unless
 * EDGE_SIM_SECURE_LOG names another file ("-" keeps the caller's stderr).
 */
static void redirect_secure_log(void)
{
	const char *target = getenv("EDGE_SIM_SECURE_LOG");
	char path[PATH_MAX];
	int fd, n;

	if (target && !strcmp(target, "-"))
		return;
	if (target && *target)
		n = snprintf(path, sizeof(path), "%s", target);
	else
		n = snprintf(path, sizeof(path), "%s/secure.log", sw.state_dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "edge-sim-tee: cannot open secure log %s: %s\n",
			path, strerror(errno));
		return;
	}
	if (fd != STDERR_FILENO) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct sim_hello hello;
	struct stat st;

	if (argc != 2 || !argv[1][0] || fstat(SIM_IPC_FD, &st) ||
	    !S_ISSOCK(st.st_mode)) {
		fprintf(stderr,
			"usage: %s STATE_DIR (with the client socket on fd %d)\n"
			"Started by libteec_sim.so; not meant to be run by hand.\n",
			argv[0], SIM_IPC_FD);
		return 2;
	}
	sw.state_dir = argv[1];
	fcntl(sw.sock, F_SETFD, FD_CLOEXEC);

	/* A terminal's Ctrl-C goes to the whole process group; a real secure
	 * world does not die with it. The client's death still ends us
	 * (PR_SET_PDEATHSIG, set before exec). */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	sw.crash_on_set = env_u32("EDGE_SIM_CRASH_ON_CMD", &sw.crash_on);
	sw.crash_after_set = env_u32("EDGE_SIM_CRASH_AFTER_CMD",
				     &sw.crash_after);

	if (mkdir_p(sw.state_dir)) {
		fprintf(stderr, "edge-sim-tee: cannot create %s: %s\n",
			sw.state_dir, strerror(errno));
	} else {
		redirect_secure_log();
		/* Busy is not an error yet: OpenSession retries and reports. */
		(void)acquire_storage();
	}
	edge_sim_gp_set_heap_limit(edge_sim_ta_data_size);

	memset(&hello, 0, sizeof(hello));
	hello.magic = SIM_IPC_MAGIC;
	hello.version = SIM_IPC_VERSION;
	hello.pid = (uint32_t)getpid();
	hello.flags = sw.locked ? SIM_HELLO_F_LOCKED : 0;
	if (edge_sim_ipc_send_all(sw.sock, &hello, sizeof(hello)))
		return EXIT_FAILURE;

	for (;;) {
		struct sim_req req;

		if (edge_sim_ipc_recv_all(sw.sock, &req, sizeof(req)))
			client_gone();
		if (req.magic != SIM_IPC_MAGIC)
			protocol_error("bad magic");
		switch (req.op) {
		case SIM_OP_OPEN_SESSION:
			do_open_session(&req);
			break;
		case SIM_OP_INVOKE:
			do_invoke(&req);
			break;
		case SIM_OP_CLOSE_SESSION:
			do_close_session(&req);
			break;
		default:
			protocol_error("unknown operation");
		}
	}
}
