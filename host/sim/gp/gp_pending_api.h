/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * GP Internal Core API calls that host/sim/gp implements but that
 * tee_internal_api.h does not declare (yet). They exist in OP-TEE 4.x with
 * exactly these signatures; once the header declares them this file can go.
 */
#ifndef EDGE_SIM_GP_PENDING_API_H
#define EDGE_SIM_GP_PENDING_API_H

#include <tee_internal_api.h>

/* Clears usage bits (objectUsage &= objectUsage argument); never sets any. */
TEE_Result TEE_RestrictObjectUsage1(TEE_ObjectHandle object,
				    uint32_t objectUsage);

#endif /* EDGE_SIM_GP_PENDING_API_H */
