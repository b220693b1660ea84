/* SPDX-License-Identifier: BSD-2-Clause */
/* TA flag values as OP-TEE defines them, for user_ta_header_defines.h. */
#ifndef EDGE_SIM_USER_TA_HEADER_H
#define EDGE_SIM_USER_TA_HEADER_H
#define TA_FLAG_SINGLE_INSTANCE		(1u << 2)
#define TA_FLAG_MULTI_SESSION		(1u << 3)
#define TA_FLAG_INSTANCE_KEEP_ALIVE	(1u << 4)
#endif
