/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TA's properties for the simulated secure world, taken from the same
 * user_ta_header_defines.h that OP-TEE's TA dev kit builds into the TA
 * header, so that the simulator and the device agree on UUID, flags and
 * heap size. Compiled with -Ita, linked into edge-sim-tee only.
 */
#include <tee_internal_api.h>
#include <user_ta_header.h>

#include "user_ta_header_defines.h"

const TEE_UUID edge_sim_ta_uuid = TA_UUID;
const uint32_t edge_sim_ta_flags = TA_FLAGS;
const size_t edge_sim_ta_data_size = TA_DATA_SIZE;
