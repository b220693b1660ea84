/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Tests of libteec_sim.so (the GP Client API of the simulated secure world)
 * against the echo test TA (sim_ta_echo.c, built next to this program).
 * Covers parameter copying, size propagation, shared memory, crash
 * isolation, the storage lock and concurrent callers.
 *
 * Usage: client_test_sim [ignored...]   Prints "N passed, M failed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tee_client_api.h>

#include "harness.h"

/* Command numbers of sim_ta_echo.c. */
#define CMD_VALUE_ADD	0
#define CMD_ECHO	1
#define CMD_TRANSFORM	2
#define CMD_SHORT	3
#define CMD_PANIC	4
#define CMD_SEGV	5
#define CMD_ABORT	6
#define CMD_SLEEP	7
#define CMD_GETPID	8
#define CMD_COUNTER	9
#define CMD_RETURN	10
#define CMD_OVERSIZE	11
#define OPEN_DENY	0xDEAD

static const TEEC_UUID echo_uuid = {
	0x5e0c4a1f, 0x1d3b, 0x4c2e,
	{ 0x9f, 0x6a, 0x7b, 0x8c, 0x9d, 0x0e, 0x1f, 0x20 }
};
static const TEEC_UUID other_uuid = {
	0x5441d9b6, 0xa634, 0x4050,
	{ 0x97, 0x31, 0xe7, 0x0a, 0xe4, 0x7d, 0xd2, 0x81 }
};

/* Closing a session that failed to open must be harmless. */
#define NO_SESSION { .imp = { .ctx = NULL } }

static const char *tmpdir;

static char *state_dir(const char *name)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	return p;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static TEEC_Result open_echo(TEEC_Context *ctx, TEEC_Session *s)
{
	uint32_t origin = 0;

	return TEEC_OpenSession(ctx, s, &echo_uuid, TEEC_LOGIN_PUBLIC, NULL,
				NULL, &origin);
}

/* Context + session on a state dir; 0 on success. */
static int setup(const char *dir, TEEC_Context *ctx, TEEC_Session *s)
{
	TEEC_Result res = TEEC_InitializeContext(dir, ctx);

	CHECK_EQ(res, TEEC_SUCCESS);
	if (res)
		return -1;
	res = open_echo(ctx, s);
	CHECK_EQ(res, TEEC_SUCCESS);
	if (res) {
		TEEC_FinalizeContext(ctx);
		return -1;
	}
	return 0;
}

static TEEC_Result invoke_value(TEEC_Session *s, uint32_t cmd, uint32_t type,
				uint32_t *a, uint32_t *b, uint32_t *origin)
{
	TEEC_Operation op;
	TEEC_Result res;

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(type, TEEC_NONE, TEEC_NONE,
					 TEEC_NONE);
	op.params[0].value.a = a ? *a : 0;
	op.params[0].value.b = b ? *b : 0;
	res = TEEC_InvokeCommand(s, cmd, &op, origin);
	if (a)
		*a = op.params[0].value.a;
	if (b)
		*b = op.params[0].value.b;
	return res;
}

static uint32_t sw_pid(TEEC_Session *s)
{
	uint32_t pid = 0, origin;

	if (invoke_value(s, CMD_GETPID, TEEC_VALUE_OUTPUT, &pid, NULL,
			 &origin) != TEEC_SUCCESS)
		return 0;
	return pid;
}

static void test_values(TEEC_Session *s)
{
	TEEC_Operation op;
	uint32_t origin = 0;

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INPUT, TEEC_VALUE_OUTPUT,
					 TEEC_VALUE_INOUT, TEEC_NONE);
	op.params[0].value.a = 7;
	op.params[0].value.b = 5;
	op.params[1].value.a = 0xAAAA;
	op.params[2].value.a = 10;
	op.params[2].value.b = 3;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_VALUE_ADD, &op, &origin),
		 TEEC_SUCCESS);
	CHECK_EQ(origin, TEEC_ORIGIN_TRUSTED_APP);
	CHECK_EQ(op.params[0].value.a, 7);	/* input stays as it was */
	CHECK_EQ(op.params[1].value.a, 12);
	CHECK_EQ(op.params[1].value.b, 2);
	CHECK_EQ(op.params[2].value.a, 11);
	CHECK_EQ(op.params[2].value.b, 6);
	CHECK(op.imp.session == s);

	/* The TA's own error codes come back with origin TRUSTED_APP. */
	uint32_t a = 0xED6E0001;

	CHECK_EQ(invoke_value(s, CMD_RETURN, TEEC_VALUE_INPUT, &a, NULL,
			      &origin), 0xED6E0001);
	CHECK_EQ(origin, TEEC_ORIGIN_TRUSTED_APP);
	CHECK_EQ(TEEC_InvokeCommand(s, 999, NULL, &origin),
		 TEEC_ERROR_NOT_SUPPORTED);
	CHECK_EQ(origin, TEEC_ORIGIN_TRUSTED_APP);
}

static void test_tmpref(TEEC_Session *s)
{
	TEEC_Operation op;
	uint32_t origin = 0;
	char in[] = "hello, secure world";
	uint8_t out[64], io[16], want[16];

	memset(out, 0xEE, sizeof(out));
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT,
					 TEEC_MEMREF_TEMP_OUTPUT, TEEC_NONE,
					 TEEC_NONE);
	op.params[0].tmpref.buffer = in;
	op.params[0].tmpref.size = strlen(in);
	op.params[1].tmpref.buffer = out;
	op.params[1].tmpref.size = sizeof(out);
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin), TEEC_SUCCESS);
	CHECK_EQ(op.params[1].tmpref.size, strlen(in));
	CHECK_EQ(op.params[0].tmpref.size, strlen(in));
	CHECK(!memcmp(out, in, strlen(in)));
	CHECK_EQ(out[strlen(in)], 0xEE);	/* nothing past the new size */

	for (int i = 0; i < 16; i++)
		io[i] = want[i] = (uint8_t)i;
	for (int i = 0; i < 16; i++)
		want[i] ^= 0x5A;
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INOUT,
					 TEEC_VALUE_INPUT, TEEC_NONE,
					 TEEC_NONE);
	op.params[0].tmpref.buffer = io;
	op.params[0].tmpref.size = sizeof(io);
	op.params[1].value.a = 5;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_TRANSFORM, &op, &origin),
		 TEEC_SUCCESS);
	CHECK_EQ(op.params[0].tmpref.size, 5);
	CHECK(!memcmp(io, want, 5));
	/* Bytes past the shrunk size are not copied back. */
	CHECK_EQ(io[5], 5);

	/* NULL with size 0 in both directions. */
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT,
					 TEEC_MEMREF_TEMP_OUTPUT, TEEC_NONE,
					 TEEC_NONE);
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin), TEEC_SUCCESS);
	CHECK_EQ(op.params[1].tmpref.size, 0);

	/* A 1 MiB round trip (several socket buffers). */
	size_t big = 1 << 20;
	uint8_t *bin = malloc(big), *bout = calloc(1, big);

	if (bin && bout) {
		for (size_t i = 0; i < big; i++)
			bin[i] = (uint8_t)(i * 31 + 7);
		memset(&op, 0, sizeof(op));
		op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT,
						 TEEC_MEMREF_TEMP_OUTPUT,
						 TEEC_NONE, TEEC_NONE);
		op.params[0].tmpref.buffer = bin;
		op.params[0].tmpref.size = big;
		op.params[1].tmpref.buffer = bout;
		op.params[1].tmpref.size = big;
		CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
			 TEEC_SUCCESS);
		CHECK(!memcmp(bin, bout, big));
	}
	free(bin);
	free(bout);
}

static void test_param_errors(TEEC_Session *s)
{
	TEEC_Operation op;
	uint32_t origin = 0;
	uint8_t buf[8];

	/* Over the 64 MiB limit: refused before anything is sent. */
	size_t huge = (64u << 20) + 1;
	void *h = malloc(huge);

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT,
					 TEEC_MEMREF_TEMP_OUTPUT, TEEC_NONE,
					 TEEC_NONE);
	op.params[0].tmpref.buffer = h;
	op.params[0].tmpref.size = huge;
	op.params[1].tmpref.buffer = buf;
	op.params[1].tmpref.size = sizeof(buf);
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_EXCESS_DATA);
	CHECK_EQ(origin, TEEC_ORIGIN_API);
	free(h);

	/* NULL input with a size. */
	op.params[0].tmpref.buffer = NULL;
	op.params[0].tmpref.size = 4;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_BAD_PARAMETERS);
	CHECK_EQ(origin, TEEC_ORIGIN_API);

	/* Reserved parameter types. */
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(4, TEEC_NONE, TEEC_NONE, TEEC_NONE);
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_BAD_PARAMETERS);
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_NONE, 8, TEEC_NONE, TEEC_NONE);
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_BAD_PARAMETERS);
	CHECK_EQ(origin, TEEC_ORIGIN_API);

	/* The session still works. */
	uint32_t a = 0;

	CHECK_EQ(invoke_value(s, CMD_COUNTER, TEEC_VALUE_OUTPUT, &a, NULL,
			      &origin), TEEC_SUCCESS);
}

static void test_short_buffer(TEEC_Session *s)
{
	TEEC_Operation op;
	uint32_t origin = 0;
	char in[] = "0123456789A";
	uint8_t out[4], got[100];

	memset(out, 0xEE, sizeof(out));
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT,
					 TEEC_MEMREF_TEMP_OUTPUT, TEEC_NONE,
					 TEEC_NONE);
	op.params[0].tmpref.buffer = in;
	op.params[0].tmpref.size = 11;
	op.params[1].tmpref.buffer = out;
	op.params[1].tmpref.size = sizeof(out);
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_SHORT_BUFFER);
	CHECK_EQ(origin, TEEC_ORIGIN_TRUSTED_APP);
	CHECK_EQ(op.params[1].tmpref.size, 11);
	CHECK_EQ(out[0], 0xEE);

	/* Ask with a NULL buffer, then call again with what was asked for. */
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_OUTPUT,
					 TEEC_VALUE_INPUT, TEEC_NONE,
					 TEEC_NONE);
	op.params[1].value.a = 100;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_SHORT, &op, &origin),
		 TEEC_ERROR_SHORT_BUFFER);
	CHECK_EQ(op.params[0].tmpref.size, 100);
	op.params[0].tmpref.buffer = got;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_SHORT, &op, &origin),
		 TEEC_SUCCESS);
	CHECK_EQ(op.params[0].tmpref.size, 100);
	CHECK_EQ(got[0], 1);
	CHECK_EQ(got[99], (uint8_t)(99 * 7 + 1));

	/* A TA that claims more than the buffer on SUCCESS: the size comes
	 * back, the bytes do not. */
	memset(out, 0xEE, sizeof(out));
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_OUTPUT, TEEC_NONE,
					 TEEC_NONE, TEEC_NONE);
	op.params[0].tmpref.buffer = out;
	op.params[0].tmpref.size = sizeof(out);
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_OVERSIZE, &op, &origin),
		 TEEC_SUCCESS);
	CHECK_EQ(op.params[0].tmpref.size, sizeof(out) + 100);
	CHECK_EQ(out[0], 0xEE);
}

/* Runs the shared-memory cases on three blocks the caller prepared. */
static void shm_cases(TEEC_Session *s, TEEC_SharedMemory *in,
		      TEEC_SharedMemory *out, TEEC_SharedMemory *io)
{
	TEEC_Operation op;
	uint32_t origin = 0;
	uint8_t *pi = in->buffer, *po = out->buffer, *pio = io->buffer;

	for (size_t i = 0; i < in->size; i++)
		pi[i] = (uint8_t)(i + 1);
	memset(po, 0xEE, out->size);
	for (size_t i = 0; i < io->size; i++)
		pio[i] = (uint8_t)i;

	/* WHOLE takes its direction from the block's flags. */
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_WHOLE, TEEC_MEMREF_WHOLE,
					 TEEC_NONE, TEEC_NONE);
	op.params[0].memref.parent = in;
	op.params[1].memref.parent = out;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin), TEEC_SUCCESS);
	CHECK_EQ(op.params[1].memref.size, in->size);
	CHECK(!memcmp(po, pi, in->size));
	CHECK_EQ(po[in->size], 0xEE);

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_WHOLE, TEEC_NONE,
					 TEEC_NONE, TEEC_NONE);
	op.params[0].memref.parent = io;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_TRANSFORM, &op, &origin),
		 TEEC_SUCCESS);
	CHECK_EQ(op.params[0].memref.size, io->size);
	CHECK_EQ(pio[0], 0x5A);
	CHECK_EQ(pio[io->size - 1], (uint8_t)((io->size - 1) ^ 0x5A));

	/* PARTIAL: only [offset, offset+size) moves. */
	memset(po, 0xEE, out->size);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_PARTIAL_INPUT,
					 TEEC_MEMREF_PARTIAL_OUTPUT, TEEC_NONE,
					 TEEC_NONE);
	op.params[0].memref.parent = in;
	op.params[0].memref.offset = 3;
	op.params[0].memref.size = 5;
	op.params[1].memref.parent = out;
	op.params[1].memref.offset = 10;
	op.params[1].memref.size = 20;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin), TEEC_SUCCESS);
	CHECK_EQ(op.params[1].memref.size, 5);
	CHECK_EQ(op.params[1].memref.offset, 10);
	CHECK(!memcmp(po + 10, pi + 3, 5));
	CHECK_EQ(po[9], 0xEE);
	CHECK_EQ(po[15], 0xEE);

	for (size_t i = 0; i < io->size; i++)
		pio[i] = (uint8_t)i;
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_PARTIAL_INOUT, TEEC_NONE,
					 TEEC_NONE, TEEC_NONE);
	op.params[0].memref.parent = io;
	op.params[0].memref.offset = 8;
	op.params[0].memref.size = 8;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_TRANSFORM, &op, &origin),
		 TEEC_SUCCESS);
	CHECK_EQ(pio[7], 7);
	CHECK_EQ(pio[8], 8 ^ 0x5A);
	CHECK_EQ(pio[15], 15 ^ 0x5A);
	CHECK_EQ(pio[16], 16);

	/* Short buffer through a partial reference. */
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_PARTIAL_OUTPUT,
					 TEEC_VALUE_INPUT, TEEC_NONE,
					 TEEC_NONE);
	op.params[0].memref.parent = out;
	op.params[0].memref.offset = 1;
	op.params[0].memref.size = 2;
	op.params[1].value.a = 50;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_SHORT, &op, &origin),
		 TEEC_ERROR_SHORT_BUFFER);
	CHECK_EQ(op.params[0].memref.size, 50);

	/* Direction must be allowed by the block; range must fit. */
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_PARTIAL_INPUT,
					 TEEC_MEMREF_PARTIAL_OUTPUT, TEEC_NONE,
					 TEEC_NONE);
	op.params[0].memref.parent = in;
	op.params[0].memref.size = 1;
	op.params[1].memref.parent = in;	/* input-only block */
	op.params[1].memref.size = 1;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_BAD_PARAMETERS);
	CHECK_EQ(origin, TEEC_ORIGIN_API);
	op.params[1].memref.parent = out;
	op.params[1].memref.offset = out->size - 1;
	op.params[1].memref.size = 2;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_BAD_PARAMETERS);
	op.params[1].memref.offset = (size_t)-1;
	op.params[1].memref.size = 2;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_BAD_PARAMETERS);
	op.params[1].memref.parent = NULL;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_ECHO, &op, &origin),
		 TEEC_ERROR_BAD_PARAMETERS);
}

static void test_shm(TEEC_Context *ctx, TEEC_Session *s)
{
	TEEC_SharedMemory in, out, io;
	uint8_t rin[40], rout[64], rio[32];

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	memset(&io, 0, sizeof(io));
	in.size = 40;
	in.flags = TEEC_MEM_INPUT;
	out.size = 64;
	out.flags = TEEC_MEM_OUTPUT;
	io.size = 32;
	io.flags = TEEC_MEM_INPUT | TEEC_MEM_OUTPUT;
	CHECK_EQ(TEEC_AllocateSharedMemory(ctx, &in), TEEC_SUCCESS);
	CHECK_EQ(TEEC_AllocateSharedMemory(ctx, &out), TEEC_SUCCESS);
	CHECK_EQ(TEEC_AllocateSharedMemory(ctx, &io), TEEC_SUCCESS);
	if (in.buffer && out.buffer && io.buffer)
		shm_cases(s, &in, &out, &io);
	TEEC_ReleaseSharedMemory(&in);
	TEEC_ReleaseSharedMemory(&out);
	TEEC_ReleaseSharedMemory(&io);
	CHECK(in.buffer == NULL);

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	memset(&io, 0, sizeof(io));
	in.buffer = rin;
	in.size = sizeof(rin);
	in.flags = TEEC_MEM_INPUT;
	out.buffer = rout;
	out.size = sizeof(rout);
	out.flags = TEEC_MEM_OUTPUT;
	io.buffer = rio;
	io.size = sizeof(rio);
	io.flags = TEEC_MEM_INPUT | TEEC_MEM_OUTPUT;
	CHECK_EQ(TEEC_RegisterSharedMemory(ctx, &in), TEEC_SUCCESS);
	CHECK_EQ(TEEC_RegisterSharedMemory(ctx, &out), TEEC_SUCCESS);
	CHECK_EQ(TEEC_RegisterSharedMemory(ctx, &io), TEEC_SUCCESS);
	shm_cases(s, &in, &out, &io);
	TEEC_ReleaseSharedMemory(&in);
	TEEC_ReleaseSharedMemory(&out);
	TEEC_ReleaseSharedMemory(&io);
	/* Registered memory belongs to the caller: still there. */
	CHECK(out.buffer == rout);

	/* A block without direction cannot be passed WHOLE. */
	TEEC_SharedMemory none;
	TEEC_Operation op;
	uint32_t origin;

	memset(&none, 0, sizeof(none));
	none.buffer = rin;
	none.size = sizeof(rin);
	CHECK_EQ(TEEC_RegisterSharedMemory(ctx, &none), TEEC_SUCCESS);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_WHOLE, TEEC_NONE,
					 TEEC_NONE, TEEC_NONE);
	op.params[0].memref.parent = &none;
	CHECK_EQ(TEEC_InvokeCommand(s, CMD_TRANSFORM, &op, &origin),
		 TEEC_ERROR_BAD_PARAMETERS);
	TEEC_ReleaseSharedMemory(&none);
	none.flags = 0x100;
	CHECK_EQ(TEEC_RegisterSharedMemory(ctx, &none),
		 TEEC_ERROR_BAD_PARAMETERS);
}

static void test_open_session(void)
{
	TEEC_Context ctx;
	TEEC_Session s = NO_SESSION;
	TEEC_Operation op;
	uint32_t origin = 0;

	CHECK_EQ(TEEC_InitializeContext(state_dir("open"), &ctx),
		 TEEC_SUCCESS);
	CHECK_EQ(TEEC_OpenSession(&ctx, &s, &other_uuid, TEEC_LOGIN_PUBLIC,
				  NULL, NULL, &origin),
		 TEEC_ERROR_ITEM_NOT_FOUND);
	CHECK_EQ(origin, TEEC_ORIGIN_TEE);

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INPUT, TEEC_VALUE_OUTPUT,
					 TEEC_NONE, TEEC_NONE);
	op.params[0].value.a = OPEN_DENY;
	CHECK_EQ(TEEC_OpenSession(&ctx, &s, &echo_uuid, TEEC_LOGIN_PUBLIC,
				  NULL, &op, &origin),
		 TEEC_ERROR_ACCESS_DENIED);
	CHECK_EQ(origin, TEEC_ORIGIN_TRUSTED_APP);

	op.params[0].value.a = 77;
	CHECK_EQ(TEEC_OpenSession(&ctx, &s, &echo_uuid, TEEC_LOGIN_PUBLIC,
				  NULL, &op, &origin), TEEC_SUCCESS);
	CHECK_EQ(origin, TEEC_ORIGIN_TRUSTED_APP);
	CHECK_EQ(op.params[1].value.a, 0x1234);
	CHECK_EQ(op.params[1].value.b, 77);
	CHECK_EQ(TEEC_OpenSession(&ctx, &s, &echo_uuid, 0x77, NULL, NULL,
				  &origin), TEEC_ERROR_BAD_PARAMETERS);
	CHECK_EQ(origin, TEEC_ORIGIN_API);
	TEEC_CloseSession(&s);
	TEEC_FinalizeContext(&ctx);
}

static void expect_dead(TEEC_Session *s, int line)
{
	uint32_t origin = 0, a = 0;
	TEEC_Result res = invoke_value(s, CMD_COUNTER, TEEC_VALUE_OUTPUT, &a,
				       NULL, &origin);

	harness_check(res == TEEC_ERROR_TARGET_DEAD &&
		      origin == TEEC_ORIGIN_TEE, __FILE__, line, "dead session",
		      " later call on a dead session is TARGET_DEAD/TEE"
		      " (0x%x, 0x%x)", res, origin);
}

/* Crashes the secure world with `cmd`; both sessions must be dead. */
static void crash_case(const char *name, uint32_t cmd)
{
	TEEC_Context ctx;
	TEEC_Session s1 = NO_SESSION, s2 = NO_SESSION, s3 = NO_SESSION;
	uint32_t origin = 0, a = 0, b = 0;

	if (setup(state_dir(name), &ctx, &s1))
		return;
	CHECK_EQ(open_echo(&ctx, &s2), TEEC_SUCCESS);
	CHECK_EQ(invoke_value(&s1, CMD_COUNTER, TEEC_VALUE_OUTPUT, &a, NULL,
			      &origin), TEEC_SUCCESS);
	CHECK_EQ(a, 1);
	CHECK_EQ(TEEC_InvokeCommand(&s1, cmd, NULL, &origin),
		 TEEC_ERROR_TARGET_DEAD);
	CHECK_EQ(origin, TEEC_ORIGIN_TEE);
	expect_dead(&s1, __LINE__);
	expect_dead(&s2, __LINE__);

	/* A new session gets a new instance with fresh globals; the old
	 * sessions stay dead. */
	CHECK_EQ(open_echo(&ctx, &s3), TEEC_SUCCESS);
	CHECK_EQ(invoke_value(&s3, CMD_COUNTER, TEEC_VALUE_OUTPUT, &a, &b,
			      &origin), TEEC_SUCCESS);
	CHECK_EQ(a, 1);
	CHECK_EQ(b, 1);
	expect_dead(&s1, __LINE__);
	TEEC_CloseSession(&s1);
	TEEC_CloseSession(&s2);
	CHECK_EQ(invoke_value(&s3, CMD_COUNTER, TEEC_VALUE_OUTPUT, &a, NULL,
			      &origin), TEEC_SUCCESS);
	CHECK_EQ(a, 2);
	TEEC_CloseSession(&s3);
	TEEC_FinalizeContext(&ctx);
}

static void test_crashes(void)
{
	crash_case("panic", CMD_PANIC);
	crash_case("abort", CMD_ABORT);

	/* Sanitizers would report the fault; let it kill the process. */
	const char *old = getenv("ASAN_OPTIONS");
	char *saved = old ? strdup(old) : NULL;
	char opts[1024];

	snprintf(opts, sizeof(opts), "%s%shandle_segv=0", old ? old : "",
		 old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	crash_case("segv", CMD_SEGV);
	if (saved)
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(saved);
}

struct sleeper {
	TEEC_Session *s;
	uint32_t ms;
	TEEC_Result res;
	uint32_t origin;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *sl = arg;
	uint32_t a = sl->ms;

	sl->res = invoke_value(sl->s, CMD_SLEEP, TEEC_VALUE_INPUT, &a, NULL,
			       &sl->origin);
	return NULL;
}

static void test_external_kill(void)
{
	TEEC_Context ctx;
	TEEC_Session s = NO_SESSION;
	uint32_t pid, origin = 0;

	if (setup(state_dir("kill"), &ctx, &s))
		return;
	/* Killed between calls. */
	pid = sw_pid(&s);
	CHECK(pid > 0);
	CHECK_EQ(kill((pid_t)pid, SIGKILL), 0);
	sleep_ms(50);
	CHECK_EQ(TEEC_InvokeCommand(&s, CMD_COUNTER, NULL, &origin),
		 TEEC_ERROR_TARGET_DEAD);
	CHECK_EQ(origin, TEEC_ORIGIN_TEE);
	expect_dead(&s, __LINE__);
	TEEC_CloseSession(&s);

	/* Killed in the middle of a command. */
	CHECK_EQ(open_echo(&ctx, &s), TEEC_SUCCESS);
	pid = sw_pid(&s);
	CHECK(pid > 0);

	struct sleeper sl = { .s = &s, .ms = 3000 };
	pthread_t t;

	CHECK_EQ(pthread_create(&t, NULL, sleeper_main, &sl), 0);
	sleep_ms(200);
	CHECK_EQ(kill((pid_t)pid, SIGKILL), 0);
	pthread_join(t, NULL);
	CHECK_EQ(sl.res, TEEC_ERROR_TARGET_DEAD);
	CHECK_EQ(sl.origin, TEEC_ORIGIN_TEE);
	TEEC_CloseSession(&s);
	TEEC_FinalizeContext(&ctx);
}

static void test_fault_injection(void)
{
	TEEC_Context ctx;
	TEEC_Session s = NO_SESSION;
	TEEC_Operation op;
	uint32_t origin = 0, a = 0xAB;
	char in[] = "abc";
	uint8_t out[8];

	setenv("EDGE_SIM_CRASH_ON_CMD", "1", 1);
	if (!setup(state_dir("inject"), &ctx, &s)) {
		unsetenv("EDGE_SIM_CRASH_ON_CMD");
		/* Other commands are unaffected. */
		CHECK_EQ(invoke_value(&s, CMD_COUNTER, TEEC_VALUE_OUTPUT, &a,
				      NULL, &origin), TEEC_SUCCESS);
		memset(out, 0xEE, sizeof(out));
		memset(&op, 0, sizeof(op));
		op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT,
						 TEEC_MEMREF_TEMP_OUTPUT,
						 TEEC_NONE, TEEC_NONE);
		op.params[0].tmpref.buffer = in;
		op.params[0].tmpref.size = 3;
		op.params[1].tmpref.buffer = out;
		op.params[1].tmpref.size = sizeof(out);
		CHECK_EQ(TEEC_InvokeCommand(&s, CMD_ECHO, &op, &origin),
			 TEEC_ERROR_TARGET_DEAD);
		CHECK_EQ(origin, TEEC_ORIGIN_TEE);
		CHECK_EQ(op.params[1].tmpref.size, sizeof(out));
		CHECK_EQ(out[0], 0xEE);
		expect_dead(&s, __LINE__);
		TEEC_CloseSession(&s);
		TEEC_FinalizeContext(&ctx);
	}
	unsetenv("EDGE_SIM_CRASH_ON_CMD");

	setenv("EDGE_SIM_CRASH_AFTER_CMD", "9", 1);
	if (!setup(state_dir("inject"), &ctx, &s)) {
		unsetenv("EDGE_SIM_CRASH_AFTER_CMD");
		a = 0xAB;
		CHECK_EQ(invoke_value(&s, CMD_COUNTER, TEEC_VALUE_OUTPUT, &a,
				      NULL, &origin), TEEC_ERROR_TARGET_DEAD);
		CHECK_EQ(origin, TEEC_ORIGIN_TEE);
		CHECK_EQ(a, 0xAB);	/* the reply never came */
		TEEC_CloseSession(&s);
		TEEC_FinalizeContext(&ctx);
	}
	unsetenv("EDGE_SIM_CRASH_AFTER_CMD");
}

static void test_busy(void)
{
	TEEC_Context c1, c2;
	TEEC_Session s1 = NO_SESSION, s2 = NO_SESSION, s3 = NO_SESSION;
	uint32_t origin = 0;
	const char *dir = state_dir("busy");
	char lock[512];
	struct stat st;

	if (setup(dir, &c1, &s1))
		return;
	snprintf(lock, sizeof(lock), "%s/lock", dir);
	CHECK_EQ(stat(lock, &st), 0);
	CHECK_EQ(TEEC_InitializeContext(dir, &c2), TEEC_SUCCESS);
	CHECK_EQ(TEEC_OpenSession(&c2, &s2, &echo_uuid, TEEC_LOGIN_PUBLIC,
				  NULL, NULL, &origin), TEEC_ERROR_BUSY);
	CHECK_EQ(origin, TEEC_ORIGIN_TEE);
	/* Another storage is independent. */
	TEEC_Context c3;

	if (!setup(state_dir("busy-other"), &c3, &s3)) {
		TEEC_CloseSession(&s3);
		TEEC_FinalizeContext(&c3);
	}
	/* Once the first instance is gone, the second context gets it. */
	TEEC_CloseSession(&s1);
	CHECK_EQ(TEEC_OpenSession(&c2, &s2, &echo_uuid, TEEC_LOGIN_PUBLIC,
				  NULL, NULL, &origin), TEEC_SUCCESS);
	CHECK_EQ(TEEC_OpenSession(&c1, &s1, &echo_uuid, TEEC_LOGIN_PUBLIC,
				  NULL, NULL, &origin), TEEC_ERROR_BUSY);
	TEEC_CloseSession(&s2);
	TEEC_FinalizeContext(&c2);
	TEEC_FinalizeContext(&c1);
}

struct worker {
	TEEC_Session *s;
	uint32_t base;
	int errors;
	uint32_t counters[200];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (uint32_t i = 0; i < 200; i++) {
		TEEC_Operation op;
		uint32_t origin;

		memset(&op, 0, sizeof(op));
		op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INPUT,
						 TEEC_VALUE_OUTPUT,
						 TEEC_VALUE_INOUT, TEEC_NONE);
		op.params[0].value.a = w->base + i;
		op.params[0].value.b = i;
		op.params[2].value.a = i;
		op.params[2].value.b = w->base;
		if (TEEC_InvokeCommand(w->s, CMD_VALUE_ADD, &op, &origin) ||
		    op.params[1].value.a != w->base + 2 * i ||
		    op.params[1].value.b != w->base ||
		    op.params[2].value.a != i + 1 ||
		    op.params[2].value.b != 2 * w->base)
			w->errors++;
		memset(&op, 0, sizeof(op));
		op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_OUTPUT, TEEC_NONE,
						 TEEC_NONE, TEEC_NONE);
		if (TEEC_InvokeCommand(w->s, CMD_COUNTER, &op, &origin))
			w->errors++;
		w->counters[i] = op.params[0].value.a;
	}
	return NULL;
}

static void test_threads(void)
{
	TEEC_Context ctx;
	TEEC_Session s1 = NO_SESSION, s2 = NO_SESSION;
	struct worker w[2];
	pthread_t t[2];
	uint8_t seen[401];

	if (setup(state_dir("threads"), &ctx, &s1))
		return;
	CHECK_EQ(open_echo(&ctx, &s2), TEEC_SUCCESS);
	memset(w, 0, sizeof(w));
	w[0].s = &s1;
	w[0].base = 1000;
	w[1].s = &s2;
	w[1].base = 5000;
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(w[0].errors, 0);
	CHECK_EQ(w[1].errors, 0);
	/* Serialized in the TA: every counter value exactly once. */
	memset(seen, 0, sizeof(seen));
	int dup = 0;

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 200; j++) {
			uint32_t v = w[i].counters[j];

			if (v == 0 || v > 400 || seen[v]++)
				dup++;
		}
	CHECK_EQ(dup, 0);
	TEEC_CloseSession(&s1);
	TEEC_CloseSession(&s2);
	TEEC_FinalizeContext(&ctx);
}

static char *read_file(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static void test_lifecycle(void)
{
	TEEC_Context ctx;
	TEEC_Session s1 = NO_SESSION, s2 = NO_SESSION;
	char log[512];
	uint32_t origin = 0;

	snprintf(log, sizeof(log), "%s/lifecycle.log", tmpdir);
	setenv("EDGE_SIM_ECHO_LOG", log, 1);

	/* Last session closed: the instance is destroyed. */
	if (!setup(state_dir("life"), &ctx, &s1)) {
		CHECK_EQ(open_echo(&ctx, &s2), TEEC_SUCCESS);
		TEEC_CloseSession(&s1);
		TEEC_CloseSession(&s2);
		CHECK(!strcmp(read_file(log),
			      "create\nopen\nopen\nclose\nclose\ndestroy\n"));
		/* Context closed with sessions open: closed for us. */
		unlink(log);
		CHECK_EQ(open_echo(&ctx, &s1), TEEC_SUCCESS);
		CHECK_EQ(open_echo(&ctx, &s2), TEEC_SUCCESS);
		TEEC_FinalizeContext(&ctx);
		CHECK(!strcmp(read_file(log),
			      "create\nopen\nopen\nclose\nclose\ndestroy\n"));
	}

	/* A failing TA_CreateEntryPoint fails OpenSession. */
	unlink(log);
	setenv("EDGE_SIM_ECHO_FAIL_CREATE", "1", 1);
	CHECK_EQ(TEEC_InitializeContext(state_dir("life"), &ctx),
		 TEEC_SUCCESS);
	CHECK_EQ(TEEC_OpenSession(&ctx, &s1, &echo_uuid, TEEC_LOGIN_PUBLIC,
				  NULL, NULL, &origin),
		 TEEC_ERROR_OUT_OF_MEMORY);
	CHECK_EQ(origin, TEEC_ORIGIN_TRUSTED_APP);
	unsetenv("EDGE_SIM_ECHO_FAIL_CREATE");
	CHECK_EQ(open_echo(&ctx, &s1), TEEC_SUCCESS);
	TEEC_CloseSession(&s1);
	TEEC_FinalizeContext(&ctx);
	CHECK(!strcmp(read_file(log), "create\ncreate\nopen\nclose\ndestroy\n"));
	unsetenv("EDGE_SIM_ECHO_LOG");
}

static void test_context_setup(void)
{
	TEEC_Context ctx;
	TEEC_Session s = NO_SESSION;
	char lock[512];
	struct stat st;
	const char *saved = getenv("EDGE_SIM_TEE");
	char *tee = saved ? strdup(saved) : NULL;

	/* NULL name: the state directory comes from EDGE_SIM_STATE. */
	setenv("EDGE_SIM_STATE", state_dir("from-env"), 1);
	if (!setup(NULL, &ctx, &s)) {
		snprintf(lock, sizeof(lock), "%s/lock", state_dir("from-env"));
		CHECK_EQ(stat(lock, &st), 0);
		TEEC_CloseSession(&s);
		TEEC_FinalizeContext(&ctx);
	}
	unsetenv("EDGE_SIM_STATE");

	/* A missing or foreign executable fails cleanly (messages expected
	 * on stderr). */
	fprintf(stderr, "(two expected libteec_sim errors follow)\n");
	setenv("EDGE_SIM_TEE", "/nonexistent/edge-sim-tee", 1);
	CHECK_EQ(TEEC_InitializeContext(state_dir("x"), &ctx),
		 TEEC_ERROR_COMMUNICATION);
	setenv("EDGE_SIM_TEE", "/bin/true", 1);
	CHECK_EQ(TEEC_InitializeContext(state_dir("x"), &ctx),
		 TEEC_ERROR_COMMUNICATION);
	if (tee)
		setenv("EDGE_SIM_TEE", tee, 1);
	free(tee);
	CHECK_EQ(TEEC_InitializeContext(state_dir("x"), NULL),
		 TEEC_ERROR_BAD_PARAMETERS);
}

struct opener {
	TEEC_Context ctx;
	TEEC_Session s;
	int ok;
};

static void *opener_main(void *arg)
{
	struct opener *op = arg;

	op->ok = !setup(state_dir("thread-owner"), &op->ctx, &op->s);
	return NULL;
}

static void test_process_ties(void)
{
	/* The secure world outlives the thread that started it (the
	 * parent-death signal follows the forking thread, not the process). */
	struct opener o;
	pthread_t t;
	uint32_t origin = 0, a = 0;

	memset(&o, 0, sizeof(o));
	CHECK_EQ(pthread_create(&t, NULL, opener_main, &o), 0);
	pthread_join(t, NULL);
	if (o.ok) {
		sleep_ms(100);
		CHECK_EQ(invoke_value(&o.s, CMD_COUNTER, TEEC_VALUE_OUTPUT, &a,
				      NULL, &origin), TEEC_SUCCESS);
		TEEC_CloseSession(&o.s);
		TEEC_FinalizeContext(&o.ctx);
	}

	/* ...but not the client process: SIGKILL the client, and the
	 * secure world goes too. */
	int fds[2];
	pid_t child;
	uint32_t swpid = 0;

	if (pipe(fds))
		return;
	/* Adopt the orphaned secure world, to see how it ends. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	child = fork();
	if (child == 0) {
		TEEC_Context ctx;
		TEEC_Session s = NO_SESSION;
		uint32_t pid = 0;

		close(fds[0]);
		alarm(30);	/* never outlive a stuck parent for long */
		if (!TEEC_InitializeContext(state_dir("orphan"), &ctx) &&
		    !open_echo(&ctx, &s))
			pid = sw_pid(&s);
		if (write(fds[1], &pid, sizeof(pid)) != sizeof(pid))
			_exit(1);
		/* Busy in a command, the secure world cannot notice the
		 * closed socket: only the parent-death signal ends it. */
		pid = 20000;
		invoke_value(&s, CMD_SLEEP, TEEC_VALUE_INPUT, &pid, NULL,
			     NULL);
		_exit(1);
	}
	close(fds[1]);
	CHECK(child > 0);
	if (child > 0) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };

		CHECK_EQ(poll(&pfd, 1, 20000), 1);
		CHECK_EQ(read(fds[0], &swpid, sizeof(swpid)), sizeof(swpid));
		CHECK(swpid > 0);
		sleep_ms(200);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);

		int status = 0, gone = 0;

		for (int i = 0; swpid && i < 300 && !gone; i++) {
			gone = waitpid((pid_t)swpid, &status, WNOHANG) > 0;
			if (!gone)
				sleep_ms(10);
		}
		CHECK(gone && WIFSIGNALED(status) &&
		      WTERMSIG(status) == SIGKILL);
		if (swpid && !gone) {
			kill((pid_t)swpid, SIGKILL);
			waitpid((pid_t)swpid, NULL, 0);
		}
	}
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	close(fds[0]);
}

int main(int argc, char **argv)
{
	TEEC_Context ctx;
	TEEC_Session s = NO_SESSION;
	char tee[4096];
	const char *slash = strrchr(argv[0], '/');

	(void)argc;
	/* The echo TA sits next to this program. */
	if (slash)
		snprintf(tee, sizeof(tee), "%.*s/sim_ta_echo",
			 (int)(slash - argv[0]), argv[0]);
	else
		snprintf(tee, sizeof(tee), "./sim_ta_echo");
	setenv("EDGE_SIM_TEE", tee, 1);
	tmpdir = harness_tmpdir("edge-client-test-sim");

	if (!setup(state_dir("main"), &ctx, &s)) {
		test_values(&s);
		test_tmpref(&s);
		test_param_errors(&s);
		test_short_buffer(&s);
		test_shm(&ctx, &s);
		TEEC_CloseSession(&s);
		TEEC_FinalizeContext(&ctx);
	}
	test_open_session();
	test_crashes();
	test_external_kill();
	test_fault_injection();
	test_busy();
	test_threads();
	test_lifecycle();
	test_context_setup();
	test_process_ties();

	return harness_summary();
}
