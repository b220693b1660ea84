/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Properties of the edge TA, read by OP-TEE's dev kit (user_ta_header.c) and
 * by the simulated secure world.
 */
#ifndef USER_TA_HEADER_DEFINES_H
#define USER_TA_HEADER_DEFINES_H

#include <edge_ta.h>

#define TA_UUID				TA_EDGE_UUID

/*
 * One instance shared by all sessions, kept alive between them: the active
 * head and a pending load live in the instance.
 */
#define TA_FLAGS			(TA_FLAG_SINGLE_INSTANCE | \
					 TA_FLAG_MULTI_SESSION | \
					 TA_FLAG_INSTANCE_KEEP_ALIVE)

/* Big buffers are on the heap. */
#define TA_STACK_SIZE			(16 * 1024)
/* Heap: a 1 MiB manifest or two 1 MiB chunk buffers, two heads. */
#define TA_DATA_SIZE			(4 * 1024 * 1024)

#define TA_VERSION			"1.0"
#define TA_DESCRIPTION			"edge: private on-device learning"

#endif /* USER_TA_HEADER_DEFINES_H */
