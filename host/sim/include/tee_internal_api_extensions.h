/* SPDX-License-Identifier: BSD-2-Clause */
/* OP-TEE's extensions header; the edge TA uses none of its calls. */
#ifndef EDGE_SIM_TEE_INTERNAL_API_EXTENSIONS_H
#define EDGE_SIM_TEE_INTERNAL_API_EXTENSIONS_H
#include <tee_internal_api.h>
#endif
