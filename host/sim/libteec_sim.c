/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libteec_sim.so: the GP TEE Client API for the simulated secure world.
 *
 * Each TEEC_Context owns one edge-sim-tee process, connected by a socketpair
 * whose fd is context->imp.fd. Parameters are copied over the socket in
 * both directions (protocol: sim_ipc.h), so the TA never sees client memory
 * and a TA crash cannot take the client with it: the client sees
 * TEEC_ERROR_TARGET_DEAD, as with OP-TEE.
 *
 * A TA crash kills the sessions of that process only. The next
 * TEEC_OpenSession on the context starts a new process, as OP-TEE loads a
 * new instance of a TA that panicked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tee_client_api.h"
#include "sim_ipc.h"

#define API __attribute__((visibility("default")))

/* TEEC_SharedMemory.imp.flags: we own .buffer. */
#define SHM_ALLOCATED		0x1u

/* Start-up of a sanitizer build can take a while; a hang is still a bug. */
#define HELLO_TIMEOUT_MS	30000
/* Time the secure world gets to close sessions and destroy the instance
 * after the client closes the context, before it is killed. */
#define EXIT_GRACE_MS		2000

struct sim_ctx {
	struct sim_ctx *next;
	/* The caller's context->imp.fd. The number stays open (and ours)
	 * until TEEC_FinalizeContext, even while no process runs, so that it
	 * cannot be reused as a key. */
	int fd;
	pid_t pid;		/* -1 once reaped */
	bool running;		/* a live process serves fd */
	uint32_t next_sid;
	/* Sessions with a lower id belonged to a process that is gone. */
	uint32_t dead_below;
	char *exe;
	char *state_dir;
	pthread_mutex_t lock;	/* one request/response at a time */
	unsigned refs;		/* under table_lock */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_ctx *table;

/* Parameters of one operation on our side of the wire. */
struct marshal {
	uint32_t types;			/* SIM_PT_* */
	void *buf[SIM_IPC_NUM_PARAMS];	/* caller memory, NULL if none */
	size_t size[SIM_IPC_NUM_PARAMS];
};

static void set_origin(uint32_t *origin, uint32_t value)
{
	if (origin)
		*origin = value;
}

/* ---- Context table -------------------------------------------------- */

static struct sim_ctx *ctx_get(const TEEC_Context *ctx)
{
	struct sim_ctx *e;

	if (!ctx)
		return NULL;
	pthread_mutex_lock(&table_lock);
	for (e = table; e; e = e->next)
		if (e->fd == ctx->imp.fd)
			break;
	if (e)
		e->refs++;
	pthread_mutex_unlock(&table_lock);
	return e;
}

static void ctx_put(struct sim_ctx *e)
{
	unsigned left;

	pthread_mutex_lock(&table_lock);
	left = --e->refs;
	pthread_mutex_unlock(&table_lock);
	if (left)
		return;
	pthread_mutex_destroy(&e->lock);
	free(e->exe);
	free(e->state_dir);
	free(e);
}

/* ---- Process management --------------------------------------------- */

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * Waits for the process, SIGKILLs it if it takes longer than grace_ms.
 * Kills only after waitpid() said it is still our unreaped child, so a pid
 * reused after someone else reaped it is never signalled.
 */
static void reap(pid_t pid, long grace_ms)
{
	for (long waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, NULL, WNOHANG);

		if (r == pid)
			return;
		/* ECHILD: the caller ignores SIGCHLD or reaped it itself. */
		if (r < 0 && errno != EINTR)
			return;
		if (waited >= grace_ms)
			break;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void close_fd_range(unsigned lo, unsigned hi, int maxfd)
{
	if (lo > hi)
		return;
#ifdef SYS_close_range
	if (!syscall(SYS_close_range, lo, hi, 0))
		return;
#endif
	for (unsigned fd = lo; fd <= hi && fd < (unsigned)maxfd; fd++)
		close((int)fd);
}

struct spawn_job {
	const char *exe;
	const char *state_dir;
	pid_t pid;
	int fd;
	int err;
	bool done;
};

/* Runs between fork and exec: async-signal-safe calls only. */
static void __attribute__((noreturn))
exec_child(const struct spawn_job *job, char *const argv[], pid_t parent,
	   int sock, int devnull, int errfd, int maxfd)
{
	sigset_t none;
	int err;

	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	/* The secure world must never outlive its client. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		goto fail;
	if (getppid() != parent)
		_exit(127);
	/* Keep stderr (the secure log); stdout may carry the caller's data,
	 * so it gets stderr too. */
	if (fcntl(2, F_GETFD) < 0 && dup2(devnull, 2) < 0)
		goto fail;
	if (dup2(devnull, 0) < 0 || dup2(2, 1) < 0 ||
	    dup2(sock, SIM_IPC_FD) < 0)
		goto fail;
	close_fd_range(SIM_IPC_FD + 1, (unsigned)errfd - 1, maxfd);
	close_fd_range((unsigned)errfd + 1, ~0u, maxfd);
	execv(job->exe, argv);
fail:
	err = errno;
	while (write(errfd, &err, sizeof(err)) < 0 && errno == EINTR)
		;
	_exit(127);
}

static void run_spawn(struct spawn_job *job)
{
	int sv[2] = { -1, -1 }, ep[2] = { -1, -1 };
	int csock = -1, cnull = -1, cerr = -1, devnull, err = 0;
	char *argv[] = { (char *)job->exe, (char *)job->state_dir, NULL };
	struct rlimit rl;
	int maxfd = 65536;
	pid_t parent = getpid(), pid;
	ssize_t n;

	job->pid = -1;
	job->fd = -1;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)INT_MAX)
		maxfd = (int)rl.rlim_cur;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
	    pipe2(ep, O_CLOEXEC))
		goto fail;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		goto fail;
	/* Above fd 3, so that setting up fds 0-3 in the child cannot
	 * overwrite them (the caller may have closed its stdio). */
	cnull = fcntl(devnull, F_DUPFD_CLOEXEC, 10);
	close(devnull);
	csock = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
	cerr = fcntl(ep[1], F_DUPFD_CLOEXEC, 10);
	if (cnull < 0 || csock < 0 || cerr < 0)
		goto fail;
	/* Only the child may hold the write end, or the read below would
	 * never see end-of-file. */
	close(sv[1]);
	sv[1] = -1;
	close(ep[1]);
	ep[1] = -1;

	pid = fork();
	if (pid == 0)
		exec_child(job, argv, parent, csock, cnull, cerr, maxfd);
	if (pid < 0)
		goto fail;
	close(cerr);
	cerr = -1;
	do
		n = read(ep[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(err)) {
		/* exec failed; the child has exited. */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = err;
		goto fail;
	}
	job->pid = pid;
	job->fd = sv[0];
	sv[0] = -1;
	job->err = 0;
	goto out;
fail:
	job->err = errno ? errno : EIO;
out:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	if (csock >= 0)
		close(csock);
	if (cnull >= 0)
		close(cnull);
	if (cerr >= 0)
		close(cerr);
}

/*
 * PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the
 * process. A caller that opens a context or session from a short-lived
 * thread would otherwise lose its secure world with that thread. So all
 * forks happen on one helper thread that lives as long as the process.
 */
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t spawner_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawner_cv = PTHREAD_COND_INITIALIZER;
static struct spawn_job *spawner_job;
static pid_t spawner_pid;	/* process the helper thread runs in */

static void *spawner_main(void *arg)
{
	sigset_t all;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	pthread_mutex_lock(&spawner_mu);
	for (;;) {
		struct spawn_job *job;

		while (!spawner_job || spawner_job->done)
			pthread_cond_wait(&spawner_cv, &spawner_mu);
		job = spawner_job;
		pthread_mutex_unlock(&spawner_mu);
		run_spawn(job);
		pthread_mutex_lock(&spawner_mu);
		job->done = true;
		pthread_cond_broadcast(&spawner_cv);
	}
	return NULL;
}

/*
 * In a forked child the helper thread does not exist, and the copies of
 * the locks may be held (or the condition variable waited on) by threads
 * that did not survive the fork: start from scratch.
 */
static void spawner_atfork_child(void)
{
	pthread_mutex_init(&table_lock, NULL);
	pthread_mutex_init(&spawn_lock, NULL);
	pthread_mutex_init(&spawner_mu, NULL);
	pthread_cond_init(&spawner_cv, NULL);
	spawner_job = NULL;
	spawner_pid = 0;
}

static void spawner_register_atfork(void)
{
	pthread_atfork(NULL, NULL, spawner_atfork_child);
}

static void spawn(struct spawn_job *job)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, spawner_register_atfork);
	pthread_mutex_lock(&spawn_lock);
	if (spawner_pid != getpid()) {
		pthread_t t;
		pthread_attr_t attr;
		sigset_t all, old;
		int rc;

		/* The helper inherits our mask only briefly: it blocks all
		 * signals itself, so they go to the caller's threads. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&t, &attr, spawner_main, NULL);
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc) {
			/* Still works; only tied to this thread's life. */
			run_spawn(job);
			pthread_mutex_unlock(&spawn_lock);
			return;
		}
		spawner_pid = getpid();
	}
	pthread_mutex_lock(&spawner_mu);
	job->done = false;
	spawner_job = job;
	pthread_cond_broadcast(&spawner_cv);
	while (!job->done)
		pthread_cond_wait(&spawner_cv, &spawner_mu);
	spawner_job = NULL;
	pthread_mutex_unlock(&spawner_mu);
	pthread_mutex_unlock(&spawn_lock);
}

/* Starts a secure-world process and waits for its hello. */
static TEEC_Result start_sw(const char *exe, const char *state_dir,
			    pid_t *pid, int *fd)
{
	struct spawn_job job = { .exe = exe, .state_dir = state_dir };
	struct sim_hello hello;
	struct pollfd pfd;
	int rc;

	spawn(&job);
	if (job.err) {
		fprintf(stderr,
			"libteec_sim: cannot start the simulated secure world %s: %s\n",
			exe, strerror(job.err));
		return TEEC_ERROR_COMMUNICATION;
	}
	pfd.fd = job.fd;
	pfd.events = POLLIN;
	do
		rc = poll(&pfd, 1, HELLO_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	if (rc != 1 || edge_sim_ipc_recv_all(job.fd, &hello, sizeof(hello)) ||
	    hello.magic != SIM_IPC_MAGIC || hello.version != SIM_IPC_VERSION) {
		fprintf(stderr,
			"libteec_sim: %s did not start as a simulated secure world\n",
			exe);
		close(job.fd);
		reap(job.pid, 0);
		return TEEC_ERROR_COMMUNICATION;
	}
	*pid = job.pid;
	*fd = job.fd;
	return TEEC_SUCCESS;
}

/* The process died or broke the protocol: its sessions are gone. */
static void mark_dead(struct sim_ctx *e)
{
	e->running = false;
	e->dead_below = e->next_sid;
	if (e->pid > 0) {
		reap(e->pid, 0);
		e->pid = -1;
	}
}

/* Gives the context a fresh process on the same fd number. */
static TEEC_Result restart(struct sim_ctx *e)
{
	TEEC_Result res;
	pid_t pid;
	int fd;

	if (e->pid > 0) {
		shutdown(e->fd, SHUT_RDWR);
		reap(e->pid, EXIT_GRACE_MS);
		e->pid = -1;
	}
	res = start_sw(e->exe, e->state_dir, &pid, &fd);
	if (res != TEEC_SUCCESS)
		return res;
	if (dup3(fd, e->fd, O_CLOEXEC) < 0) {
		close(fd);
		reap(pid, 0);
		return TEEC_ERROR_COMMUNICATION;
	}
	close(fd);
	e->pid = pid;
	e->running = true;
	e->dead_below = e->next_sid;
	return TEEC_SUCCESS;
}

/* ---- Parameters ----------------------------------------------------- */

static TEEC_Result marshal(const TEEC_Operation *op, struct sim_req *req,
			   struct marshal *m)
{
	memset(m, 0, sizeof(*m));
	if (!op)
		return TEEC_SUCCESS;

	for (int i = 0; i < SIM_IPC_NUM_PARAMS; i++) {
		const TEEC_Parameter *p = &op->params[i];
		uint32_t t = TEEC_PARAM_TYPE_GET(op->paramTypes, i);
		uint32_t wt, need;
		TEEC_SharedMemory *shm;
		void *buf;
		size_t size;

		switch (t) {
		case TEEC_NONE:
			continue;
		case TEEC_VALUE_INPUT:
		case TEEC_VALUE_OUTPUT:
		case TEEC_VALUE_INOUT:
			m->types |= t << (4 * i);
			if (t != TEEC_VALUE_OUTPUT) {
				req->params[i].a = p->value.a;
				req->params[i].b = p->value.b;
			}
			continue;
		case TEEC_MEMREF_TEMP_INPUT:
		case TEEC_MEMREF_TEMP_OUTPUT:
		case TEEC_MEMREF_TEMP_INOUT:
			/* Same numbers as the TA's MEMREF_INPUT/OUTPUT/INOUT. */
			wt = t;
			buf = p->tmpref.buffer;
			size = p->tmpref.size;
			break;
		case TEEC_MEMREF_WHOLE:
			shm = p->memref.parent;
			if (!shm)
				return TEEC_ERROR_BAD_PARAMETERS;
			switch (shm->flags & (TEEC_MEM_INPUT | TEEC_MEM_OUTPUT)) {
			case TEEC_MEM_INPUT:
				wt = SIM_PT_MEMREF_INPUT;
				break;
			case TEEC_MEM_OUTPUT:
				wt = SIM_PT_MEMREF_OUTPUT;
				break;
			case TEEC_MEM_INPUT | TEEC_MEM_OUTPUT:
				wt = SIM_PT_MEMREF_INOUT;
				break;
			default:
				return TEEC_ERROR_BAD_PARAMETERS;
			}
			buf = shm->buffer;
			size = shm->size;
			break;
		case TEEC_MEMREF_PARTIAL_INPUT:
		case TEEC_MEMREF_PARTIAL_OUTPUT:
		case TEEC_MEMREF_PARTIAL_INOUT:
			shm = p->memref.parent;
			wt = t - (TEEC_MEMREF_PARTIAL_INPUT - SIM_PT_MEMREF_INPUT);
			need = (edge_sim_ipc_is_input(wt) ? TEEC_MEM_INPUT : 0) |
			       (edge_sim_ipc_is_output(wt) ? TEEC_MEM_OUTPUT : 0);
			if (!shm || (shm->flags & need) != need ||
			    p->memref.offset > shm->size ||
			    p->memref.size > shm->size - p->memref.offset)
				return TEEC_ERROR_BAD_PARAMETERS;
			buf = shm->buffer ?
			      (char *)shm->buffer + p->memref.offset : NULL;
			size = p->memref.size;
			break;
		default:
			return TEEC_ERROR_BAD_PARAMETERS;
		}

		if (size > SIM_IPC_MAX_MEMREF)
			return TEEC_ERROR_EXCESS_DATA;
		/* NULL lets a TA report the size it needs (GP "null memref");
		 * there is nothing to read from it. */
		if (!buf && size && edge_sim_ipc_is_input(wt))
			return TEEC_ERROR_BAD_PARAMETERS;
		m->types |= wt << (4 * i);
		m->buf[i] = buf;
		m->size[i] = size;
		req->params[i].size = size;
		if (!buf)
			req->params[i].flags = SIM_PARAM_F_NULL;
		else if (edge_sim_ipc_is_input(wt))
			req->payload += size;
	}
	req->param_types = m->types;
	return TEEC_SUCCESS;
}

/* Copies the TA's outputs into the caller's operation, as optee_client. */
static void unmarshal(TEEC_Operation *op, const struct marshal *m,
		      const struct sim_rsp *rsp)
{
	if (!op || !(rsp->flags & SIM_RSP_F_PARAMS))
		return;
	for (int i = 0; i < SIM_IPC_NUM_PARAMS; i++) {
		TEEC_Parameter *p = &op->params[i];
		uint32_t t = TEEC_PARAM_TYPE_GET(op->paramTypes, i);
		uint32_t wt = SIM_PT_GET(m->types, i);

		if (!edge_sim_ipc_is_output(wt))
			continue;
		switch (t) {
		case TEEC_VALUE_OUTPUT:
		case TEEC_VALUE_INOUT:
			p->value.a = rsp->params[i].a;
			p->value.b = rsp->params[i].b;
			break;
		case TEEC_MEMREF_TEMP_OUTPUT:
		case TEEC_MEMREF_TEMP_INOUT:
			p->tmpref.size = (size_t)rsp->params[i].size;
			break;
		case TEEC_MEMREF_WHOLE:
		case TEEC_MEMREF_PARTIAL_OUTPUT:
		case TEEC_MEMREF_PARTIAL_INOUT:
			p->memref.size = (size_t)rsp->params[i].size;
			break;
		default:
			break;
		}
	}
}

/* Nothing in a reply may make us write beyond what we offered. */
static bool reply_valid(const struct sim_rsp *rsp, const struct marshal *m)
{
	uint64_t total = 0;

	if (rsp->magic != SIM_IPC_MAGIC)
		return false;
	for (int i = 0; i < SIM_IPC_NUM_PARAMS; i++) {
		const struct sim_param *p = &rsp->params[i];
		uint32_t wt = SIM_PT_GET(m->types, i);

		if (!(p->flags & SIM_PARAM_F_DATA))
			continue;
		if (!(rsp->flags & SIM_RSP_F_PARAMS) ||
		    !edge_sim_ipc_is_memref(wt) ||
		    !edge_sim_ipc_is_output(wt) || p->size > m->size[i] ||
		    (!m->buf[i] && p->size))
			return false;
		total += p->size;
	}
	return rsp->payload == total;
}

/*
 * One request/response with e->lock held. Returns TEEC_SUCCESS when the
 * exchange completed (the TA's result is then in rsp), else the transport
 * failure with its origin.
 */
static TEEC_Result transact(struct sim_ctx *e, const struct sim_req *req,
			    const struct marshal *m, struct sim_rsp *rsp,
			    uint32_t *origin)
{
	if (edge_sim_ipc_send_all(e->fd, req, sizeof(*req)))
		goto dead;
	for (int i = 0; i < SIM_IPC_NUM_PARAMS; i++) {
		uint32_t wt = SIM_PT_GET(m->types, i);

		if (edge_sim_ipc_is_memref(wt) && edge_sim_ipc_is_input(wt) &&
		    m->buf[i] && m->size[i] &&
		    edge_sim_ipc_send_all(e->fd, m->buf[i], m->size[i]))
			goto dead;
	}
	if (edge_sim_ipc_recv_all(e->fd, rsp, sizeof(*rsp)))
		goto dead;
	if (!reply_valid(rsp, m)) {
		fprintf(stderr,
			"libteec_sim: malformed reply from the secure world\n");
		mark_dead(e);
		set_origin(origin, TEEC_ORIGIN_COMMS);
		return TEEC_ERROR_COMMUNICATION;
	}
	for (int i = 0; i < SIM_IPC_NUM_PARAMS; i++) {
		const struct sim_param *p = &rsp->params[i];

		if ((p->flags & SIM_PARAM_F_DATA) && p->size &&
		    edge_sim_ipc_recv_all(e->fd, m->buf[i], (size_t)p->size))
			goto dead;
	}
	if (rsp->flags & SIM_RSP_F_EXITING) {
		/* Reaped at the next OpenSession or at FinalizeContext. */
		e->running = false;
		e->dead_below = e->next_sid;
	}
	return TEEC_SUCCESS;
dead:
	mark_dead(e);
	set_origin(origin, TEEC_ORIGIN_TEE);
	return TEEC_ERROR_TARGET_DEAD;
}

/* ---- Paths ---------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

/*
 * The process may be restarted later (after a crash), possibly after the
 * caller changed directory: relative paths are resolved once, now.
 */
static char *absolute(char *path)
{
	char cwd[PATH_MAX], *dir, *abs;

	if (!path || path[0] == '/')
		return path;
	if (!getcwd(cwd, sizeof(cwd)) || !(dir = join(cwd, "/"))) {
		free(path);
		return NULL;
	}
	abs = join(dir, path);
	free(dir);
	free(path);
	return abs;
}

static char *default_state_dir(void)
{
	const char *s = getenv("EDGE_SIM_STATE");
	struct passwd pw, *res = NULL;
	char pwbuf[4096];

	if (s && *s)
		return strdup(s);
	s = getenv("XDG_DATA_HOME");
	if (s && s[0] == '/')
		return join(s, "/edge/sim-tee");
	s = getenv("HOME");
	if ((!s || !*s) && !getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf),
				       &res) && res)
		s = res->pw_dir;
	if (!s || !*s)
		return NULL;
	return join(s, "/.local/share/edge/sim-tee");
}

static char *sw_path(void)
{
	const char *s = getenv("EDGE_SIM_TEE");
	Dl_info info;
	char *dir, *slash, *path;

	if (s && *s)
		return strdup(s);
	/* Our own (hidden, so never interposed) symbol finds our file. */
	if (!dladdr((void *)&sw_path, &info) || !info.dli_fname)
		return strdup("edge-sim-tee");
	dir = realpath(info.dli_fname, NULL);
	if (!dir)
		dir = strdup(info.dli_fname);
	if (!dir)
		return NULL;
	slash = strrchr(dir, '/');
	if (slash) {
		slash[1] = '\0';
		path = join(dir, "edge-sim-tee");
	} else {
		path = strdup("./edge-sim-tee");
	}
	free(dir);
	return path;
}

/* ---- API ------------------------------------------------------------ */

API TEEC_Result TEEC_InitializeContext(const char *name, TEEC_Context *ctx)
{
	struct sim_ctx *e;
	TEEC_Result res;

	if (!ctx)
		return TEEC_ERROR_BAD_PARAMETERS;
	e = calloc(1, sizeof(*e));
	if (!e)
		return TEEC_ERROR_OUT_OF_MEMORY;
	e->state_dir = absolute(name && *name ? strdup(name) :
					       default_state_dir());
	e->exe = absolute(sw_path());
	if (!e->state_dir || !e->exe) {
		if (!e->state_dir)
			fprintf(stderr,
				"libteec_sim: no state directory (set EDGE_SIM_STATE or HOME)\n");
		res = e->exe && !e->state_dir ? TEEC_ERROR_BAD_STATE :
						 TEEC_ERROR_OUT_OF_MEMORY;
		goto fail;
	}
	res = start_sw(e->exe, e->state_dir, &e->pid, &e->fd);
	if (res != TEEC_SUCCESS)
		goto fail;
	e->running = true;
	e->next_sid = 1;
	e->dead_below = 1;
	e->refs = 1;	/* the table's */
	pthread_mutex_init(&e->lock, NULL);

	pthread_mutex_lock(&table_lock);
	e->next = table;
	table = e;
	pthread_mutex_unlock(&table_lock);

	memset(ctx, 0, sizeof(*ctx));
	ctx->imp.fd = e->fd;
	ctx->imp.reg_mem = true;
	ctx->imp.memref_null = true;
	return TEEC_SUCCESS;
fail:
	free(e->state_dir);
	free(e->exe);
	free(e);
	return res;
}

API void TEEC_FinalizeContext(TEEC_Context *ctx)
{
	struct sim_ctx *e, **pp;

	if (!ctx)
		return;
	pthread_mutex_lock(&table_lock);
	for (pp = &table; (e = *pp); pp = &e->next) {
		if (e->fd == ctx->imp.fd) {
			*pp = e->next;
			break;
		}
	}
	pthread_mutex_unlock(&table_lock);
	if (!e)
		return;

	/* Waits for a request in flight on another thread (a caller bug
	 * by the spec, but not a reason to crash). */
	pthread_mutex_lock(&e->lock);
	/* End-of-file: the secure world closes its sessions, destroys the
	 * TA instance and exits. */
	close(e->fd);
	if (e->pid > 0)
		reap(e->pid, EXIT_GRACE_MS);
	e->pid = -1;
	e->running = false;
	e->fd = -1;
	pthread_mutex_unlock(&e->lock);
	ctx->imp.fd = -1;
	ctx_put(e);
}

API TEEC_Result TEEC_OpenSession(TEEC_Context *ctx, TEEC_Session *session,
				 const TEEC_UUID *destination,
				 uint32_t connectionMethod,
				 const void *connectionData,
				 TEEC_Operation *operation,
				 uint32_t *returnOrigin)
{
	struct sim_req req;
	struct sim_rsp rsp;
	struct marshal m;
	struct sim_ctx *e;
	TEEC_Result res;
	uint32_t sid;

	set_origin(returnOrigin, TEEC_ORIGIN_API);
	if (!ctx || !session || !destination)
		return TEEC_ERROR_BAD_PARAMETERS;
	switch (connectionMethod) {
	case TEEC_LOGIN_PUBLIC:
	case TEEC_LOGIN_USER:
	case TEEC_LOGIN_APPLICATION:
	case TEEC_LOGIN_USER_APPLICATION:
		break;
	case TEEC_LOGIN_GROUP:
	case TEEC_LOGIN_GROUP_APPLICATION:
		if (!connectionData)
			return TEEC_ERROR_BAD_PARAMETERS;
		break;
	default:
		return TEEC_ERROR_BAD_PARAMETERS;
	}

	memset(&req, 0, sizeof(req));
	res = marshal(operation, &req, &m);
	if (res != TEEC_SUCCESS)
		return res;
	e = ctx_get(ctx);
	if (!e)
		return TEEC_ERROR_BAD_STATE;
	if (operation)
		operation->imp.session = session;

	pthread_mutex_lock(&e->lock);
	if (!e->running) {
		res = restart(e);
		if (res != TEEC_SUCCESS) {
			set_origin(returnOrigin, TEEC_ORIGIN_COMMS);
			goto out;
		}
	}
	sid = e->next_sid++;
	if (!e->next_sid)
		e->next_sid = 1;
	req.magic = SIM_IPC_MAGIC;
	req.op = SIM_OP_OPEN_SESSION;
	req.session = sid;
	req.login = connectionMethod;
	req.uuid.time_low = destination->timeLow;
	req.uuid.time_mid = destination->timeMid;
	req.uuid.time_hi_and_version = destination->timeHiAndVersion;
	memcpy(req.uuid.clock_seq_and_node, destination->clockSeqAndNode,
	       sizeof(req.uuid.clock_seq_and_node));
	res = transact(e, &req, &m, &rsp, returnOrigin);
	if (res != TEEC_SUCCESS)
		goto out;
	unmarshal(operation, &m, &rsp);
	res = rsp.result;
	set_origin(returnOrigin, rsp.origin);
	if (res == TEEC_SUCCESS) {
		session->imp.ctx = ctx;
		session->imp.session_id = sid;
	}
out:
	pthread_mutex_unlock(&e->lock);
	ctx_put(e);
	return res;
}

API void TEEC_CloseSession(TEEC_Session *session)
{
	struct sim_req req;
	struct sim_rsp rsp;
	struct marshal m;
	struct sim_ctx *e;

	if (!session || !session->imp.ctx)
		return;
	e = ctx_get(session->imp.ctx);
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	if (e->running && session->imp.session_id >= e->dead_below) {
		memset(&req, 0, sizeof(req));
		memset(&m, 0, sizeof(m));
		req.magic = SIM_IPC_MAGIC;
		req.op = SIM_OP_CLOSE_SESSION;
		req.session = session->imp.session_id;
		(void)transact(e, &req, &m, &rsp, NULL);
	}
	pthread_mutex_unlock(&e->lock);
	ctx_put(e);
	session->imp.ctx = NULL;
}

API TEEC_Result TEEC_InvokeCommand(TEEC_Session *session, uint32_t commandID,
				   TEEC_Operation *operation,
				   uint32_t *returnOrigin)
{
	struct sim_req req;
	struct sim_rsp rsp;
	struct marshal m;
	struct sim_ctx *e;
	TEEC_Result res;

	set_origin(returnOrigin, TEEC_ORIGIN_API);
	if (!session || !session->imp.ctx)
		return TEEC_ERROR_BAD_PARAMETERS;
	memset(&req, 0, sizeof(req));
	res = marshal(operation, &req, &m);
	if (res != TEEC_SUCCESS)
		return res;
	e = ctx_get(session->imp.ctx);
	if (!e)
		return TEEC_ERROR_BAD_STATE;
	if (operation) {
		operation->imp.session = session;
		operation->started = 1;
	}

	pthread_mutex_lock(&e->lock);
	if (!e->running || session->imp.session_id < e->dead_below) {
		set_origin(returnOrigin, TEEC_ORIGIN_TEE);
		res = TEEC_ERROR_TARGET_DEAD;
		goto out;
	}
	req.magic = SIM_IPC_MAGIC;
	req.op = SIM_OP_INVOKE;
	req.session = session->imp.session_id;
	req.cmd = commandID;
	res = transact(e, &req, &m, &rsp, returnOrigin);
	if (res != TEEC_SUCCESS)
		goto out;
	unmarshal(operation, &m, &rsp);
	res = rsp.result;
	set_origin(returnOrigin, rsp.origin);
out:
	pthread_mutex_unlock(&e->lock);
	ctx_put(e);
	return res;
}

static void shm_reset_imp(TEEC_SharedMemory *shm)
{
	shm->imp.id = -1;
	shm->imp.alloced_size = 0;
	shm->imp.shadow_buffer = NULL;
	shm->imp.registered_fd = -1;
	shm->imp.flags = 0;
}

API TEEC_Result TEEC_RegisterSharedMemory(TEEC_Context *ctx,
					  TEEC_SharedMemory *shm)
{
	if (!ctx || !shm || (shm->flags & ~(TEEC_MEM_INPUT | TEEC_MEM_OUTPUT)) ||
	    (!shm->buffer && shm->size))
		return TEEC_ERROR_BAD_PARAMETERS;
	/* Nothing to map: every invocation copies through the socket. */
	shm_reset_imp(shm);
	return TEEC_SUCCESS;
}

API TEEC_Result TEEC_AllocateSharedMemory(TEEC_Context *ctx,
					  TEEC_SharedMemory *shm)
{
	if (!ctx || !shm || (shm->flags & ~(TEEC_MEM_INPUT | TEEC_MEM_OUTPUT)))
		return TEEC_ERROR_BAD_PARAMETERS;
	shm_reset_imp(shm);
	/* Never NULL, even for size 0: NULL would mean "null memref". */
	shm->buffer = calloc(shm->size ? shm->size : 1, 1);
	if (!shm->buffer)
		return TEEC_ERROR_OUT_OF_MEMORY;
	shm->imp.alloced_size = shm->size;
	shm->imp.flags = SHM_ALLOCATED;
	return TEEC_SUCCESS;
}

API void TEEC_ReleaseSharedMemory(TEEC_SharedMemory *shm)
{
	if (!shm)
		return;
	if (shm->imp.flags & SHM_ALLOCATED) {
		free(shm->buffer);
		shm->buffer = NULL;
		shm->size = 0;
	}
	shm_reset_imp(shm);
}

API void TEEC_RequestCancellation(TEEC_Operation *operation)
{
	/* The simulated TA runs commands to completion, as OP-TEE does for a
	 * TA that never checks TEE_GetCancellationFlag. */
	(void)operation;
}
