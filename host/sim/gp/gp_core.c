// SPDX-License-Identifier: BSD-2-Clause
/*
 * Simulated GP Internal Core API: panics, trace, TA heap, memory helpers,
 * random numbers, time, and the registry of live handles.
 *
 * The secure-world process runs one TA instance and calls into it from one
 * thread at a time (as OP-TEE does for a single-instance TA), so none of this
 * state is locked.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <tee_internal_api_extensions.h>

#include "gp_internal.h"
#include "gp_sim.h"

/* ---- Trace ------------------------------------------------------------ */

static int trace_threshold(void)
{
	const char *s = getenv("EDGE_SIM_TA_LOG_LEVEL");
	char *end = NULL;
	long v;

	if (!s || !*s)
		return 1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0)
		return 1;
	return v > 4 ? 4 : (int)v;
}

void edge_sim_trace(int level, const char *func, int line, const char *fmt,
		    ...)
{
	static const char letters[] = "?EIDF";
	char msg[2048];
	char out[2304];
	va_list ap;
	int n;
	size_t len;

	if (level < 1 || level > trace_threshold())
		return;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	len = strlen(msg);
	while (len && msg[len - 1] == '\n')
		msg[--len] = '\0';

	/* One write per message keeps lines whole when processes share stderr. */
	n = snprintf(out, sizeof(out), "[TA] %c %s:%d %s\n",
		     letters[level > 4 ? 0 : level], func ? func : "?", line,
		     msg);
	if (n < 0)
		return;
	len = (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1;
	if (write(STDERR_FILENO, out, len) < 0) {
		/* Nowhere left to report a failing secure log. */
	}
}

/* ---- Panic ------------------------------------------------------------ */

void TEE_Panic(TEE_Result panicCode)
{
	edge_sim_trace(1, __func__, __LINE__, "TA panicked with code 0x%08x",
		       (unsigned int)panicCode);
	abort();
}

/* ---- Handle registry --------------------------------------------------- */

struct handle_entry {
	const void *h;
	enum gp_handle_kind kind;
};

static struct handle_entry *handles;
static size_t n_handles;
static size_t cap_handles;

bool gp_handle_add(const void *h, enum gp_handle_kind kind)
{
	if (n_handles == cap_handles) {
		size_t ncap = cap_handles ? cap_handles * 2 : 32;
		struct handle_entry *n = realloc(handles, ncap * sizeof(*n));

		if (!n)
			return false;
		handles = n;
		cap_handles = ncap;
	}
	handles[n_handles].h = h;
	handles[n_handles].kind = kind;
	n_handles++;
	return true;
}

void gp_handle_remove(const void *h)
{
	size_t i;

	for (i = 0; i < n_handles; i++) {
		if (handles[i].h == h) {
			handles[i] = handles[--n_handles];
			return;
		}
	}
}

bool gp_handle_live(const void *h, enum gp_handle_kind kind)
{
	size_t i;

	if (!h)
		return false;
	for (i = 0; i < n_handles; i++)
		if (handles[i].h == h)
			return handles[i].kind == kind;
	return false;
}

void gp_handle_foreach_object(void (*fn)(TEE_ObjectHandle o, void *arg),
			      void *arg)
{
	size_t i;

	for (i = 0; i < n_handles; i++)
		if (handles[i].kind == GP_HANDLE_OBJECT)
			fn((TEE_ObjectHandle)(uintptr_t)handles[i].h, arg);
}

/* ---- TA heap ----------------------------------------------------------- */

#define HEAP_MAGIC 0x45444745484541ULL /* "EDGEHEA" */

/* Each TA allocation carries its size so the heap limit can be enforced. */
union heap_hdr {
	struct {
		uint64_t magic;
		size_t size;
	} h;
	max_align_t align;
};

static size_t heap_limit;
static size_t heap_live;

void edge_sim_gp_set_heap_limit(size_t bytes)
{
	heap_limit = bytes;
}

static bool heap_fits(size_t old_size, size_t new_size)
{
	size_t others = heap_live - old_size;

	if (new_size > SIZE_MAX - sizeof(union heap_hdr))
		return false;
	if (!heap_limit)
		return true;
	return new_size <= heap_limit && others <= heap_limit - new_size;
}

static union heap_hdr *heap_hdr_of(void *p)
{
	union heap_hdr *hdr = (union heap_hdr *)p - 1;

	if (hdr->h.magic != HEAP_MAGIC)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS,
			 "%p was not allocated by TEE_Malloc", p);
	return hdr;
}

static void *heap_alloc(size_t size, bool zero);

void *TEE_Malloc(size_t size, uint32_t hint)
{
	/*
	 * OP-TEE 4.5's libutee panics on any hint but FILL_ZERO and its own
	 * TEE_USER_MEM_HINT_NO_FILL_ZERO, GP's TEE_MALLOC_NO_FILL included
	 * (seen in the QEMU image); do the same, or the simulator would pass a
	 * TA that dies on a board.
	 */
	if (hint != TEE_MALLOC_FILL_ZERO && hint != TEE_USER_MEM_HINT_NO_FILL_ZERO)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "TEE_Malloc hint 0x%x",
			 (unsigned int)hint);
	return heap_alloc(size, hint == TEE_MALLOC_FILL_ZERO);
}

static void *heap_alloc(size_t size, bool zero)
{
	union heap_hdr *hdr;

	if (!heap_fits(0, size))
		return NULL;
	hdr = malloc(sizeof(*hdr) + size);
	if (!hdr)
		return NULL;
	if (zero)
		memset(hdr + 1, 0, size);
	hdr->h.magic = HEAP_MAGIC;
	hdr->h.size = size;
	heap_live += size;
	return hdr + 1;
}

void *TEE_Realloc(void *buffer, size_t newSize)
{
	union heap_hdr *hdr;
	union heap_hdr *nhdr;
	size_t old;

	if (!buffer)
		return heap_alloc(newSize, false);
	hdr = heap_hdr_of(buffer);
	old = hdr->h.size;
	if (!heap_fits(old, newSize))
		return NULL;
	nhdr = realloc(hdr, sizeof(*nhdr) + newSize);
	if (!nhdr)
		return NULL;
	nhdr->h.size = newSize;
	heap_live = heap_live - old + newSize;
	return nhdr + 1;
}

void TEE_Free(void *buffer)
{
	union heap_hdr *hdr;

	if (!buffer)
		return;
	hdr = heap_hdr_of(buffer);
	heap_live -= hdr->h.size;
	hdr->h.magic = 0;
	free(hdr);
}

/* ---- Memory helpers ---------------------------------------------------- */

void TEE_MemMove(void *dest, const void *src, size_t size)
{
	if (size)
		memmove(dest, src, size);
}

/*
 * Constant time in the contents, as OP-TEE's: the TA compares MACs and
 * digests with it. The first differing byte decides the sign, like memcmp.
 */
int32_t TEE_MemCompare(const void *buffer1, const void *buffer2, size_t size)
{
	const volatile uint8_t *a = buffer1;
	const volatile uint8_t *b = buffer2;
	int32_t res = 0;
	size_t i;

	for (i = size; i > 0; i--) {
		int32_t d = (int32_t)a[i - 1] - (int32_t)b[i - 1];
		/* all ones when d != 0 */
		int32_t mask = -(int32_t)((uint32_t)(d | -d) >> 31);

		res = (res & ~mask) | (d & mask);
	}
	return (res > 0) - (res < 0);
}

void TEE_MemFill(void *buff, uint32_t x, size_t size)
{
	if (size)
		memset(buff, (int)(uint8_t)x, size);
}

/* ---- Random and time --------------------------------------------------- */

void TEE_GenerateRandom(void *randomBuffer, size_t randomBufferLen)
{
	uint8_t *p = randomBuffer;

	if (!p && randomBufferLen)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL random buffer");
	while (randomBufferLen) {
		int chunk = randomBufferLen > INT_MAX ? INT_MAX
						      : (int)randomBufferLen;

		if (RAND_bytes(p, chunk) != 1)
			GP_PANIC(TEE_ERROR_GENERIC, "RAND_bytes failed");
		p += chunk;
		randomBufferLen -= (size_t)chunk;
	}
}

static void clock_to_tee_time(clockid_t clk, TEE_Time *t)
{
	struct timespec ts;

	if (!t)
		GP_PANIC(TEE_ERROR_BAD_PARAMETERS, "NULL TEE_Time");
	if (clock_gettime(clk, &ts) != 0)
		GP_PANIC(TEE_ERROR_GENERIC, "clock_gettime failed");
	t->seconds = (uint32_t)ts.tv_sec;
	t->millis = (uint32_t)(ts.tv_nsec / 1000000);
}

void TEE_GetSystemTime(TEE_Time *time)
{
	clock_to_tee_time(CLOCK_MONOTONIC, time);
}

void TEE_GetREETime(TEE_Time *time)
{
	clock_to_tee_time(CLOCK_REALTIME, time);
}
