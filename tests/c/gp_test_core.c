// SPDX-License-Identifier: BSD-2-Clause
/*
 * Tests of the simulated GP Internal Core API basics: TA heap and its limit,
 * memory helpers, random numbers, time, the secure log and TEE_Panic.
 *
 * Usage: gp_test_core [vectors-dir]   (the directory is not used)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tee_internal_api.h>
#include <tee_internal_api_extensions.h>

#include "gp_sim.h"
#include "harness.h"

/*
 * Runs fn in a child process; returns its stderr (NUL-terminated, caller
 * frees) and whether it died of SIGABRT (TEE_Panic).
 */
static char *run_child(void (*fn)(void *), void *arg, bool *aborted)
{
	char *out = calloc(1, 8192);
	size_t len = 0;
	int pfd[2];
	int status = 0;
	pid_t pid;

	*aborted = false;
	if (!out || pipe(pfd) != 0)
		return out;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], STDERR_FILENO);
		fn(arg);
		_exit(0);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t n = read(pfd[0], out + len, 8191 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pfd[0]);
	waitpid(pid, &status, 0);
	*aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
	return out;
}

/* ---- Heap -------------------------------------------------------------- */

static void test_heap(void)
{
	uint8_t *a;
	uint8_t *b;
	uint8_t *c;
	size_t i;
	bool zero = true;

	a = TEE_Malloc(100, TEE_MALLOC_FILL_ZERO);
	CHECK(a != NULL);
	for (i = 0; a && i < 100; i++)
		zero = zero && a[i] == 0;
	CHECK(zero);
	TEE_Free(a);
	TEE_Free(NULL);

	edge_sim_gp_set_heap_limit(1000);
	a = TEE_Malloc(600, TEE_USER_MEM_HINT_NO_FILL_ZERO);
	CHECK(a != NULL);
	CHECK(TEE_Malloc(401, TEE_MALLOC_FILL_ZERO) == NULL);
	b = TEE_Malloc(400, TEE_MALLOC_FILL_ZERO);
	CHECK(b != NULL);
	CHECK(TEE_Malloc(1, TEE_MALLOC_FILL_ZERO) == NULL);
	if (a) {
		memset(a, 0x5a, 600);
		/* A refused realloc leaves the old block alone. */
		CHECK(TEE_Realloc(a, 601) == NULL);
		CHECK(a[599] == 0x5a);
		c = TEE_Realloc(a, 300);
		CHECK(c != NULL);
		if (c) {
			CHECK(c[299] == 0x5a);
			a = c;
		}
		c = TEE_Realloc(a, 600);
		CHECK(c != NULL);
		if (c)
			a = c;
	}
	TEE_Free(b);
	c = TEE_Malloc(400, TEE_MALLOC_FILL_ZERO);
	CHECK(c != NULL);
	TEE_Free(c);
	TEE_Free(a);
	CHECK(TEE_Malloc(1001, TEE_MALLOC_FILL_ZERO) == NULL);
	a = TEE_Malloc(1000, TEE_MALLOC_FILL_ZERO);
	CHECK(a != NULL);
	TEE_Free(a);
	a = TEE_Realloc(NULL, 10);
	CHECK(a != NULL);
	TEE_Free(a);

	edge_sim_gp_set_heap_limit(0);
	a = TEE_Malloc(4 << 20, TEE_MALLOC_FILL_ZERO);
	CHECK(a != NULL);
	TEE_Free(a);
}

static void free_foreign(void *arg)
{
	uint8_t *p = arg;

	TEE_Free(p + 32);
}

/* ---- Memory, random, time ---------------------------------------------- */

static void test_mem(void)
{
	uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t r1[32];
	uint8_t r2[32];
	TEE_Time t1;
	TEE_Time t2;
	TEE_Time ree;
	time_t now;

	CHECK(TEE_MemCompare("abc", "abd", 3) < 0);
	CHECK(TEE_MemCompare("abd", "abc", 3) > 0);
	CHECK(TEE_MemCompare("abc", "abc", 3) == 0);
	CHECK(TEE_MemCompare("b\x00", "a\xff", 2) > 0);
	CHECK(TEE_MemCompare("a\xff", "b\x00", 2) < 0);
	CHECK(TEE_MemCompare(NULL, NULL, 0) == 0);

	TEE_MemMove(buf + 1, buf, 4);
	CHECK(buf[1] == 1 && buf[4] == 4 && buf[5] == 6);
	TEE_MemFill(buf, 0x1ab, sizeof(buf));
	CHECK(buf[0] == 0xab && buf[7] == 0xab);

	TEE_GenerateRandom(r1, sizeof(r1));
	TEE_GenerateRandom(r2, sizeof(r2));
	CHECK(memcmp(r1, r2, sizeof(r1)) != 0);
	TEE_GenerateRandom(NULL, 0);

	TEE_GetSystemTime(&t1);
	TEE_GetSystemTime(&t2);
	CHECK(t1.millis < 1000 && t2.millis < 1000);
	CHECK(t2.seconds > t1.seconds ||
	      (t2.seconds == t1.seconds && t2.millis >= t1.millis));
	TEE_GetREETime(&ree);
	now = time(NULL);
	CHECK(ree.millis < 1000);
	CHECK((time_t)ree.seconds >= now - 2 && (time_t)ree.seconds <= now + 2);
}

/* ---- Trace and panic --------------------------------------------------- */

static void malloc_hint(void *arg)
{
	(void)TEE_Malloc(10, *(uint32_t *)arg);
}

static void log_some(void *arg)
{
	setenv("EDGE_SIM_TA_LOG_LEVEL", (const char *)arg, 1);
	EMSG("error %d", 1);
	IMSG("info %s", "two");
	DMSG("debug\n");
}

static void panic_1234(void *arg)
{
	(void)arg;
	unsetenv("EDGE_SIM_TA_LOG_LEVEL");
	TEE_Panic(0x1234);
}

static void test_trace(void)
{
	bool aborted;
	char *out;

	out = run_child(log_some, "3", &aborted);
	CHECK(!aborted);
	CHECK(out && strstr(out, "[TA] E log_some:"));
	CHECK(out && strstr(out, " error 1\n"));
	CHECK(out && strstr(out, "[TA] I log_some:"));
	CHECK(out && strstr(out, " info two\n"));
	CHECK(out && strstr(out, "[TA] D log_some:"));
	CHECK(out && strstr(out, " debug\n") && !strstr(out, "debug\n\n"));
	free(out);

	out = run_child(log_some, "1", &aborted);
	CHECK(out && strstr(out, "error 1") && !strstr(out, "info two"));
	free(out);

	out = run_child(log_some, "0", &aborted);
	CHECK(out && out[0] == '\0');
	free(out);

	out = run_child(panic_1234, NULL, &aborted);
	CHECK(aborted);
	CHECK(out && strstr(out, "[TA] E ") && strstr(out, "0x00001234"));
	free(out);
}

int main(int argc, char **argv)
{
	uint8_t *foreign;

	(void)argc;
	(void)argv;
	if (edge_sim_gp_init(harness_tmpdir("gp_test_core")) != 0)
		harness_die("edge_sim_gp_init");
	test_heap();
	foreign = malloc(64);
	CHECK(foreign && harness_dies(free_foreign, foreign));
	{
		/* GP's NO_FILL (1), NO_SHARE (2), or junk: OP-TEE 4.5 panics. */
		uint32_t hints[] = { 1, 2, 3, 0x42 };

		for (size_t h = 0; h < sizeof(hints) / sizeof(hints[0]); h++)
			CHECK(harness_dies(malloc_hint, &hints[h]),
			      "TEE_Malloc hint 0x%x must panic",
			      (unsigned int)hints[h]);
	}
	free(foreign);
	test_mem();
	test_trace();

	return harness_summary();
}
