/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A test TA for the simulated secure world itself (not for the edge TA):
 * parameter copying in every direction, size propagation, crashes of every
 * kind, slow commands and the instance life cycle. Linked with sw_main.o
 * into build/host/tests/sim_ta_echo; driven by client_test_sim.c, which
 * repeats the command numbers below.
 *
 * EDGE_SIM_ECHO_LOG=<file>: append one line per entry point call, so the
 * test can check the life cycle the simulator drives.
 * EDGE_SIM_ECHO_FAIL_CREATE=1: TA_CreateEntryPoint fails.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <tee_internal_api.h>
#include <user_ta_header.h>

/* 5e0c4a1f-1d3b-4c2e-9f6a-7b8c9d0e1f20 */
const TEE_UUID edge_sim_ta_uuid = {
	0x5e0c4a1f, 0x1d3b, 0x4c2e,
	{ 0x9f, 0x6a, 0x7b, 0x8c, 0x9d, 0x0e, 0x1f, 0x20 }
};
const uint32_t edge_sim_ta_flags = TA_FLAG_SINGLE_INSTANCE |
				   TA_FLAG_MULTI_SESSION;
const size_t edge_sim_ta_data_size = 64 * 1024;

#define CMD_VALUE_ADD	0  /* [0] VALUE_IN, [1] VALUE_OUT, [2] VALUE_INOUT */
#define CMD_ECHO	1  /* [0] MEMREF_IN -> [1] MEMREF_OUT */
#define CMD_TRANSFORM	2  /* [0] MEMREF_INOUT ^= 0x5A; [1] VALUE_IN new size */
#define CMD_SHORT	3  /* [0] MEMREF_OUT needs [1].a bytes */
#define CMD_PANIC	4
#define CMD_SEGV	5
#define CMD_ABORT	6
#define CMD_SLEEP	7  /* [0] VALUE_IN a = milliseconds */
#define CMD_GETPID	8  /* [0] VALUE_OUT a = pid */
#define CMD_COUNTER	9  /* [0] VALUE_OUT a = ++counter, b = instances */
#define CMD_RETURN	10 /* [0] VALUE_IN: returns a */
#define CMD_OVERSIZE	11 /* [0] MEMREF_OUT: claims 100 bytes more, SUCCESS */

#define OPEN_DENY	0xDEAD

/* Globals on purpose: a fresh instance (process) must start from zero. */
static uint32_t counter;
static uint32_t instances;

static void log_event(const char *what)
{
	const char *path = getenv("EDGE_SIM_ECHO_LOG");
	FILE *f;

	if (!path || !(f = fopen(path, "a")))
		return;
	fprintf(f, "%s\n", what);
	fclose(f);
}

TEE_Result TA_CreateEntryPoint(void)
{
	const char *fail = getenv("EDGE_SIM_ECHO_FAIL_CREATE");

	log_event("create");
	if (fail && *fail == '1')
		return TEE_ERROR_OUT_OF_MEMORY;
	instances++;
	return TEE_SUCCESS;
}

void TA_DestroyEntryPoint(void)
{
	log_event("destroy");
}

TEE_Result TA_OpenSessionEntryPoint(uint32_t types,
				    TEE_Param params[TEE_NUM_PARAMS],
				    void **session)
{
	uint32_t *calls;

	log_event("open");
	if (types == TEE_PARAM_TYPES(TEE_PARAM_TYPE_VALUE_INPUT,
				     TEE_PARAM_TYPE_VALUE_OUTPUT,
				     TEE_PARAM_TYPE_NONE,
				     TEE_PARAM_TYPE_NONE)) {
		if (params[0].value.a == OPEN_DENY)
			return TEE_ERROR_ACCESS_DENIED;
		params[1].value.a = 0x1234;
		params[1].value.b = params[0].value.a;
	} else if (types != TEE_PARAM_TYPES(TEE_PARAM_TYPE_NONE,
					    TEE_PARAM_TYPE_NONE,
					    TEE_PARAM_TYPE_NONE,
					    TEE_PARAM_TYPE_NONE)) {
		return TEE_ERROR_BAD_PARAMETERS;
	}
	calls = TEE_Malloc(sizeof(*calls), TEE_MALLOC_FILL_ZERO);
	if (!calls)
		return TEE_ERROR_OUT_OF_MEMORY;
	*session = calls;
	return TEE_SUCCESS;
}

void TA_CloseSessionEntryPoint(void *session)
{
	log_event("close");
	TEE_Free(session);
}

static TEE_Result value_add(uint32_t types, TEE_Param p[TEE_NUM_PARAMS])
{
	if (types != TEE_PARAM_TYPES(TEE_PARAM_TYPE_VALUE_INPUT,
				     TEE_PARAM_TYPE_VALUE_OUTPUT,
				     TEE_PARAM_TYPE_VALUE_INOUT,
				     TEE_PARAM_TYPE_NONE))
		return TEE_ERROR_BAD_PARAMETERS;
	p[1].value.a = p[0].value.a + p[0].value.b;
	p[1].value.b = p[0].value.a - p[0].value.b;
	p[2].value.a += 1;
	p[2].value.b *= 2;
	return TEE_SUCCESS;
}

static TEE_Result echo(uint32_t types, TEE_Param p[TEE_NUM_PARAMS])
{
	if (types != TEE_PARAM_TYPES(TEE_PARAM_TYPE_MEMREF_INPUT,
				     TEE_PARAM_TYPE_MEMREF_OUTPUT,
				     TEE_PARAM_TYPE_NONE,
				     TEE_PARAM_TYPE_NONE))
		return TEE_ERROR_BAD_PARAMETERS;
	if (p[1].memref.size < p[0].memref.size) {
		p[1].memref.size = p[0].memref.size;
		return TEE_ERROR_SHORT_BUFFER;
	}
	if (p[0].memref.size)
		TEE_MemMove(p[1].memref.buffer, p[0].memref.buffer,
			    p[0].memref.size);
	p[1].memref.size = p[0].memref.size;
	return TEE_SUCCESS;
}

static TEE_Result transform(uint32_t types, TEE_Param p[TEE_NUM_PARAMS])
{
	uint8_t *b = p[0].memref.buffer;

	if (TEE_PARAM_TYPE_GET(types, 0) != TEE_PARAM_TYPE_MEMREF_INOUT ||
	    (TEE_PARAM_TYPE_GET(types, 1) != TEE_PARAM_TYPE_NONE &&
	     TEE_PARAM_TYPE_GET(types, 1) != TEE_PARAM_TYPE_VALUE_INPUT) ||
	    (types >> 8))
		return TEE_ERROR_BAD_PARAMETERS;
	for (size_t i = 0; i < p[0].memref.size; i++)
		b[i] ^= 0x5A;
	if (TEE_PARAM_TYPE_GET(types, 1) == TEE_PARAM_TYPE_VALUE_INPUT &&
	    p[1].value.a <= p[0].memref.size)
		p[0].memref.size = p[1].value.a;
	return TEE_SUCCESS;
}

static TEE_Result short_buffer(uint32_t types, TEE_Param p[TEE_NUM_PARAMS])
{
	uint8_t *b = p[0].memref.buffer;
	uint32_t need = p[1].value.a;

	if (types != TEE_PARAM_TYPES(TEE_PARAM_TYPE_MEMREF_OUTPUT,
				     TEE_PARAM_TYPE_VALUE_INPUT,
				     TEE_PARAM_TYPE_NONE,
				     TEE_PARAM_TYPE_NONE))
		return TEE_ERROR_BAD_PARAMETERS;
	if (!b || p[0].memref.size < need) {
		p[0].memref.size = need;
		return TEE_ERROR_SHORT_BUFFER;
	}
	for (uint32_t i = 0; i < need; i++)
		b[i] = (uint8_t)(i * 7 + 1);
	p[0].memref.size = need;
	return TEE_SUCCESS;
}

static void crash_segv(void)
{
	/* A real fault, not a sanitizer-visible null dereference. */
	volatile uint8_t *page = mmap(NULL, 4096, PROT_NONE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (page == MAP_FAILED)
		abort();
	page[0] = 1;
	abort();
}

TEE_Result TA_InvokeCommandEntryPoint(void *session, uint32_t cmd,
				      uint32_t types,
				      TEE_Param p[TEE_NUM_PARAMS])
{
	struct timespec ts;

	(*(uint32_t *)session)++;
	switch (cmd) {
	case CMD_VALUE_ADD:
		return value_add(types, p);
	case CMD_ECHO:
		return echo(types, p);
	case CMD_TRANSFORM:
		return transform(types, p);
	case CMD_SHORT:
		return short_buffer(types, p);
	case CMD_PANIC:
		TEE_Panic(0xDEAD);
	case CMD_SEGV:
		crash_segv();
		break;
	case CMD_ABORT:
		abort();
	case CMD_SLEEP:
		if (TEE_PARAM_TYPE_GET(types, 0) != TEE_PARAM_TYPE_VALUE_INPUT)
			return TEE_ERROR_BAD_PARAMETERS;
		ts.tv_sec = p[0].value.a / 1000;
		ts.tv_nsec = (long)(p[0].value.a % 1000) * 1000000L;
		while (nanosleep(&ts, &ts))
			;
		return TEE_SUCCESS;
	case CMD_GETPID:
		if (TEE_PARAM_TYPE_GET(types, 0) != TEE_PARAM_TYPE_VALUE_OUTPUT)
			return TEE_ERROR_BAD_PARAMETERS;
		p[0].value.a = (uint32_t)getpid();
		return TEE_SUCCESS;
	case CMD_COUNTER:
		if (TEE_PARAM_TYPE_GET(types, 0) != TEE_PARAM_TYPE_VALUE_OUTPUT)
			return TEE_ERROR_BAD_PARAMETERS;
		p[0].value.a = ++counter;
		p[0].value.b = instances;
		return TEE_SUCCESS;
	case CMD_RETURN:
		if (TEE_PARAM_TYPE_GET(types, 0) != TEE_PARAM_TYPE_VALUE_INPUT)
			return TEE_ERROR_BAD_PARAMETERS;
		return p[0].value.a;
	case CMD_OVERSIZE:
		if (TEE_PARAM_TYPE_GET(types, 0) != TEE_PARAM_TYPE_MEMREF_OUTPUT)
			return TEE_ERROR_BAD_PARAMETERS;
		if (p[0].memref.size)
			((uint8_t *)p[0].memref.buffer)[0] = 0x77;
		p[0].memref.size += 100;
		return TEE_SUCCESS;
	default:
		break;
	}
	return TEE_ERROR_NOT_SUPPORTED;
}
