/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Wire protocol between libteec_sim.so (normal world) and edge-sim-tee (the
 * simulated secure world), over a SOCK_STREAM socketpair.
 *
 * Both ends are built from the same tree and run on the same machine, so
 * the structures go over the wire in native byte order. They are still
 * fixed-size and free of pointers, and each side checks every count and
 * size it receives: the secure world must not trust the normal world, and
 * the client library must not let a broken or hostile secure-world process
 * write past the caller's buffers.
 *
 *   spawn:  edge-sim-tee STATE_DIR, socket on fd SIM_IPC_FD
 *   sw  -> client  struct sim_hello            once, at start
 *   client -> sw   struct sim_req  + payload   (bytes of INPUT/INOUT memrefs,
 *                                               in parameter order)
 *   sw  -> client  struct sim_rsp  + payload   (bytes of OUTPUT/INOUT memrefs
 *                                               that carry SIM_PARAM_F_DATA)
 *
 * Sizes: a reply carries the size the TA set for every OUTPUT/INOUT memref;
 * its bytes only when that size is within what the client offered and the
 * result is not TEE_ERROR_SHORT_BUFFER. Session ids are chosen by the
 * client and never reused within a context, so a session of a process that
 * died can never be confused with one of its successor.
 *
 * One request is outstanding at a time; the secure world is single-threaded
 * (OP-TEE serializes a single-instance TA without TA_FLAG_CONCURRENT).
 */
#ifndef EDGE_SIM_IPC_H
#define EDGE_SIM_IPC_H

#include <stddef.h>
#include <stdint.h>

#define SIM_IPC_FD		3
#define SIM_IPC_MAGIC		0x45534931u	/* "ESI1" */
#define SIM_IPC_VERSION		1u
#define SIM_IPC_NUM_PARAMS	4

/* Largest memory reference either side accepts (per parameter). */
#define SIM_IPC_MAX_MEMREF	((uint64_t)64 * 1024 * 1024)

/* Parameter types on the wire are the Internal API's TEE_PARAM_TYPE_*. */
#define SIM_PT_NONE		0u
#define SIM_PT_VALUE_INPUT	1u
#define SIM_PT_VALUE_OUTPUT	2u
#define SIM_PT_VALUE_INOUT	3u
#define SIM_PT_MEMREF_INPUT	5u
#define SIM_PT_MEMREF_OUTPUT	6u
#define SIM_PT_MEMREF_INOUT	7u
#define SIM_PT_GET(t, i)	(((t) >> ((i) * 4)) & 0xFu)

enum sim_op {
	SIM_OP_OPEN_SESSION = 1,
	SIM_OP_INVOKE = 2,
	SIM_OP_CLOSE_SESSION = 3,
};

/* sim_param.flags */
/* Request: the memref's buffer is NULL; no bytes are sent for it. Only an
 * OUTPUT memref may be NULL with a nonzero size (the TA reports the size
 * it needs; GP "null memref"). */
#define SIM_PARAM_F_NULL	0x1u
#define SIM_PARAM_F_DATA	0x2u	/* response: `size` bytes follow */

/* sim_rsp.flags */
/*
 * The TA instance is gone (destroyed after its last session, or never
 * created) and the process exits after this reply, so that the next
 * OpenSession gets a fresh process with fresh TA globals, as OP-TEE loads
 * a fresh instance. The storage lock is already released.
 */
#define SIM_RSP_F_EXITING	0x1u
/* The TA ran: values and sizes in params[] are its outputs. Without it the
 * client leaves the caller's operation untouched. */
#define SIM_RSP_F_PARAMS	0x2u

/* sim_hello.flags */
#define SIM_HELLO_F_LOCKED	0x1u	/* holds the state directory lock */

struct sim_uuid {
	uint32_t time_low;
	uint16_t time_mid;
	uint16_t time_hi_and_version;
	uint8_t clock_seq_and_node[8];
};

struct sim_param {
	uint32_t a;
	uint32_t b;
	uint64_t size;
	uint32_t flags;
	uint32_t reserved;
};

struct sim_hello {
	uint32_t magic;
	uint32_t version;
	uint32_t pid;
	uint32_t flags;
};

struct sim_req {
	uint32_t magic;
	uint32_t op;		/* enum sim_op */
	uint32_t session;	/* chosen by the client at OPEN_SESSION */
	uint32_t cmd;		/* INVOKE: command id */
	uint32_t param_types;	/* SIM_PT_* nibbles */
	uint32_t login;		/* OPEN_SESSION: TEEC_LOGIN_* */
	struct sim_uuid uuid;	/* OPEN_SESSION */
	struct sim_param params[SIM_IPC_NUM_PARAMS];
	uint64_t payload;	/* bytes following this header */
};

struct sim_rsp {
	uint32_t magic;
	uint32_t result;
	uint32_t origin;
	uint32_t flags;		/* SIM_RSP_F_* */
	struct sim_param params[SIM_IPC_NUM_PARAMS];
	uint64_t payload;	/* bytes following this header */
};

_Static_assert(sizeof(struct sim_uuid) == 16, "uuid layout");
_Static_assert(sizeof(struct sim_param) == 24, "param layout");
_Static_assert(sizeof(struct sim_req) == 144, "request layout");
_Static_assert(sizeof(struct sim_rsp) == 120, "response layout");

/* True for a well-formed parameter type word (unused nibbles 0). */
int edge_sim_ipc_types_valid(uint32_t types);
int edge_sim_ipc_is_memref(uint32_t type);
/* Direction of a memref or value type: data flows in / out. */
int edge_sim_ipc_is_input(uint32_t type);
int edge_sim_ipc_is_output(uint32_t type);

/*
 * Full-length transfers, retried on EINTR and partial transfers. Sending
 * uses MSG_NOSIGNAL so that a dead peer is an error, never SIGPIPE.
 * Return 0, or -1 with errno set (EPIPE/ECONNRESET when the peer is gone;
 * a receive hitting end-of-file sets ECONNRESET too).
 */
int edge_sim_ipc_send_all(int fd, const void *buf, size_t len);
int edge_sim_ipc_recv_all(int fd, void *buf, size_t len);
/* Reads and throws away len bytes. */
int edge_sim_ipc_discard(int fd, uint64_t len);

#endif /* EDGE_SIM_IPC_H */
