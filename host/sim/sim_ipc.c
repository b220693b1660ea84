/* SPDX-License-Identifier: BSD-2-Clause */
/* Framing helpers shared by libteec_sim.so and edge-sim-tee. */
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sim_ipc.h"

int edge_sim_ipc_is_memref(uint32_t type)
{
	return type >= SIM_PT_MEMREF_INPUT && type <= SIM_PT_MEMREF_INOUT;
}

int edge_sim_ipc_is_input(uint32_t type)
{
	return type == SIM_PT_VALUE_INPUT || type == SIM_PT_VALUE_INOUT ||
	       type == SIM_PT_MEMREF_INPUT || type == SIM_PT_MEMREF_INOUT;
}

int edge_sim_ipc_is_output(uint32_t type)
{
	return type == SIM_PT_VALUE_OUTPUT || type == SIM_PT_VALUE_INOUT ||
	       type == SIM_PT_MEMREF_OUTPUT || type == SIM_PT_MEMREF_INOUT;
}

int edge_sim_ipc_types_valid(uint32_t types)
{
	if (types >> (4 * SIM_IPC_NUM_PARAMS))
		return 0;
	for (int i = 0; i < SIM_IPC_NUM_PARAMS; i++) {
		uint32_t t = SIM_PT_GET(types, i);

		if (t == 4 || t > SIM_PT_MEMREF_INOUT)
			return 0;
	}
	return 1;
}

int edge_sim_ipc_send_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int edge_sim_ipc_recv_all(int fd, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			/* A short message means the peer died mid-reply. */
			errno = ECONNRESET;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int edge_sim_ipc_discard(int fd, uint64_t len)
{
	unsigned char sink[4096];

	while (len) {
		size_t chunk = len < sizeof(sink) ? (size_t)len : sizeof(sink);

		if (edge_sim_ipc_recv_all(fd, sink, chunk))
			return -1;
		len -= chunk;
	}
	return 0;
}
