/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * OP-TEE's TA trace macros for the simulated secure world. Messages go to the
 * secure-world process's stderr (the "secure log"), at the level given by
 * EDGE_SIM_TA_LOG_LEVEL (0 none, 1 errors as in Debian's OP-TEE build, 2 info,
 * 3 debug). Never pass secrets to them: OP-TEE prints these on a console.
 */
#ifndef EDGE_SIM_TRACE_H
#define EDGE_SIM_TRACE_H

void edge_sim_trace(int level, const char *func, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define EMSG(...) edge_sim_trace(1, __func__, __LINE__, __VA_ARGS__)
#define IMSG(...) edge_sim_trace(2, __func__, __LINE__, __VA_ARGS__)
#define DMSG(...) edge_sim_trace(3, __func__, __LINE__, __VA_ARGS__)
#define FMSG(...) edge_sim_trace(4, __func__, __LINE__, __VA_ARGS__)

#endif /* EDGE_SIM_TRACE_H */
