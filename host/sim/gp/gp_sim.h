/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Simulator-side control of the GP Internal Core API implementation, for the
 * simulated secure-world process (not visible to the TA).
 */
#ifndef EDGE_SIM_GP_SIM_H
#define EDGE_SIM_GP_SIM_H

#include <stddef.h>

/*
 * Selects the directory that plays the part of OP-TEE's secure storage.
 * Creates state_dir (0700) and state_dir/objects if needed, and the
 * per-installation storage key state_dir/storage.key (32 random bytes, 0600),
 * reused when present. May be called again (e.g. to simulate a restart) as
 * long as no persistent object is open; that call fails with EBUSY.
 * Returns 0, or -1 with errno set.
 */
int edge_sim_gp_init(const char *state_dir);

/*
 * Emulates TA_DATA_SIZE: TEE_Malloc/TEE_Realloc return NULL once the TA's
 * live allocations would exceed this many bytes. 0 = unlimited (default).
 */
void edge_sim_gp_set_heap_limit(size_t bytes);

#endif /* EDGE_SIM_GP_SIM_H */
