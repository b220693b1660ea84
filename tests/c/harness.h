/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The small harness every C test program shares: pass/fail counters, the
 * CHECK macros, a temporary directory removed at the end, the "did it
 * panic?" helper and the summary line.
 *
 *   CHECK(cond)                       FAIL file:line: cond
 *   CHECK(cond, fmt, ...)             FAIL file:line: <message>
 *   CHECK_RES(expr, want[, fmt, ...]) 32-bit result codes, printed in hex
 *   CHECK_EQ(a, b[, fmt, ...])        any two integers, printed in hex
 *
 * Every macro evaluates each of its arguments exactly once. The message, if
 * any, must be a string literal (it is checked as a printf format).
 * Failures go to stdout, flushed at once; harness_summary() prints
 * "N passed, M failed" as the last line and returns the exit status.
 */
#ifndef EDGE_TESTS_HARNESS_H
#define EDGE_TESTS_HARNESS_H

#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int harness_passed;
static int harness_failed;

/*
 * Counts one result; a failure prints "FAIL file:line: " and the message,
 * or `what` if there is none, then `tail` and a newline. The message
 * arrives with one leading space (" " fmt), so that a check without one
 * still has a non-empty format: fmt[1] == '\0' then.
 */
static inline void harness_vcheck(bool ok, const char *file, int line,
				  const char *what, const char *tail,
				  const char *fmt, va_list ap)
{
	if (ok) {
		harness_passed++;
		return;
	}
	harness_failed++;
	printf("FAIL %s:%d: ", file, line);
	if (fmt[1])
		vprintf(fmt + 1, ap);
	else
		fputs(what, stdout);
	printf("%s\n", tail);
	fflush(stdout);
}

/* For checks made on behalf of a caller's line: fmt starts with one space. */
static inline void harness_check(bool ok, const char *file, int line,
				 const char *what, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static inline void harness_check(bool ok, const char *file, int line,
				 const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	harness_vcheck(ok, file, line, what, "", fmt, ap);
	va_end(ap);
}

static inline void harness_check_eq(unsigned long long got,
				    unsigned long long want, const char *file,
				    int line, const char *what,
				    const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static inline void harness_check_eq(unsigned long long got,
				    unsigned long long want, const char *file,
				    int line, const char *what,
				    const char *fmt, ...)
{
	char tail[64];
	va_list ap;

	if (got == want) {
		harness_passed++;
		return;
	}
	snprintf(tail, sizeof(tail), ": got 0x%08llx, want 0x%08llx", got,
		 want);
	va_start(ap, fmt);
	harness_vcheck(false, file, line, what, tail, fmt, ap);
	va_end(ap);
}

#define CHECK(cond, ...)                                                      \
	harness_check(!!(cond), __FILE__, __LINE__, #cond, " " __VA_ARGS__)

#define CHECK_RES(expr, want, ...)                                            \
	harness_check_eq((uint32_t)(expr), (uint32_t)(want), __FILE__,        \
			 __LINE__, #expr " == " #want, " " __VA_ARGS__)

#define CHECK_EQ(a, b, ...)                                                   \
	harness_check_eq((unsigned long long)(a), (unsigned long long)(b),    \
			 __FILE__, __LINE__, #a " == " #b, " " __VA_ARGS__)

/* ---- Temporary directory ------------------------------------------------ */

static char harness_dir[512];

static inline void harness_rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char sub[1024];

	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode) && (d = opendir(path))) {
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (snprintf(sub, sizeof(sub), "%s/%s", path,
				     e->d_name) < (int)sizeof(sub))
				harness_rm_rf(sub);
		}
		closedir(d);
	}
	if (remove(path) != 0)
		printf("note: could not remove %s\n", path);
}

/* Prints the summary line, removes the temporary directory, returns the
 * exit status: 0 if nothing failed and something passed. */
static inline int harness_summary(void)
{
	if (harness_dir[0])
		harness_rm_rf(harness_dir);
	harness_dir[0] = '\0';
	printf("%d passed, %d failed\n", harness_passed, harness_failed);
	fflush(stdout);
	return harness_failed || !harness_passed ? 1 : 0;
}

/* A setup step failed: counts it, prints the summary, exits with 2. */
static inline void harness_die(const char *what) __attribute__((noreturn));
static inline void harness_die(const char *what)
{
	printf("setup failed: %s\n", what);
	harness_failed++;
	harness_summary();
	exit(2);
}

/*
 * Creates the program's fresh directory $TMPDIR/<name>.XXXXXX (TMPDIR
 * defaults to /tmp); harness_summary() removes it.
 */
static inline const char *harness_tmpdir(const char *name)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(harness_dir, sizeof(harness_dir), "%s/%s.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp", name);
	if (!mkdtemp(harness_dir)) {
		perror(harness_dir);
		harness_dir[0] = '\0';
		harness_die("mkdtemp");
	}
	return harness_dir;
}

/* Runs fn(arg) in a child with stderr silenced; true if it panicked
 * (TEE_Panic aborts). */
static inline bool harness_dies(void (*fn)(void *), void *arg)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stderr))
			_exit(3);
		fn(arg);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return false;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

/*
 * ---- Helpers of the TA command tests ------------------------------------
 * (#define HARNESS_TA before including): TEE_Param setup, test-held Ed25519
 * keys, envelope signing and AES-GCM encryption; a failing setup step ends
 * the program through harness_die().
 */
#ifdef HARNESS_TA
#include <tee_internal_api.h>

#include "crypto.h"

static inline void p_clear(TEE_Param p[TEE_NUM_PARAMS])
{
	memset(p, 0, sizeof(TEE_Param) * TEE_NUM_PARAMS);
}

static inline void p_mem(TEE_Param *p, const void *buf, size_t size)
{
	p->memref.buffer = (void *)buf;
	p->memref.size = size;
}

/* A signing key held by the test: pair, public key and key id. */
struct ed_key {
	TEE_ObjectHandle pair;
	uint8_t pub[32];
	uint8_t id[16];
};

static inline void ed_generate(struct ed_key *k)
{
	size_t len = 32;

	if (TEE_AllocateTransientObject(TEE_TYPE_ED25519_KEYPAIR, 256,
					&k->pair) ||
	    TEE_GenerateKey(k->pair, 256, NULL, 0) ||
	    TEE_GetObjectBufferAttribute(k->pair,
					 TEE_ATTR_ED25519_PUBLIC_VALUE,
					 k->pub, &len) ||
	    edge_key_id(k->pub, k->id))
		harness_die("Ed25519 key");
}

static inline void sign_envelope(uint8_t *env, size_t signed_len,
				 TEE_ObjectHandle signer)
{
	uint8_t digest[32];

	if (edge_sha256(env, signed_len, digest) ||
	    edge_ed25519_sign(signer, digest, env + signed_len))
		harness_die("sign");
}

static inline void gcm_encrypt(const uint8_t key[32],
			       const uint8_t nonce[12], const void *aad,
			       size_t aad_len, const void *pt, size_t len,
			       uint8_t *ct_tag)
{
	TEE_ObjectHandle k = TEE_HANDLE_NULL;
	TEE_OperationHandle op = TEE_HANDLE_NULL;
	TEE_Attribute a;
	size_t out_len = len;
	size_t tag_len = 16;

	TEE_InitRefAttribute(&a, TEE_ATTR_SECRET_VALUE, key, 32);
	if (TEE_AllocateTransientObject(TEE_TYPE_AES, 256, &k) ||
	    TEE_PopulateTransientObject(k, &a, 1) ||
	    TEE_AllocateOperation(&op, TEE_ALG_AES_GCM, TEE_MODE_ENCRYPT,
				  256) ||
	    TEE_SetOperationKey(op, k) ||
	    TEE_AEInit(op, nonce, 12, 128, aad_len, len))
		harness_die("AES-GCM setup");
	TEE_AEUpdateAAD(op, aad, aad_len);
	if (TEE_AEEncryptFinal(op, pt, len, ct_tag, &out_len, ct_tag + len,
			       &tag_len) || out_len != len || tag_len != 16)
		harness_die("AES-GCM");
	TEE_FreeOperation(op);
	TEE_FreeTransientObject(k);
}
#endif /* HARNESS_TA */

#endif /* EDGE_TESTS_HARNESS_H */
