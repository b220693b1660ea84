/* SPDX-License-Identifier: BSD-2-Clause */
/* The part of OP-TEE's extensions header the simulator knows. */
#ifndef EDGE_SIM_TEE_INTERNAL_API_EXTENSIONS_H
#define EDGE_SIM_TEE_INTERNAL_API_EXTENSIONS_H
#include <tee_internal_api.h>

/* OP-TEE's TEE_Malloc hint for "do not zero" (GP's NO_FILL panics there). */
#define TEE_USER_MEM_HINT_NO_FILL_ZERO	0x80000000
#endif
