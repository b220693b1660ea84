/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What every libFuzzer harness of the TA shares (tests/fuzz/fuzz_*.c,
 * docs/fuzzing.md): the simulated secure storage in a private directory,
 * the test keys of tests/vectors/keys.tsv loaded as GP key objects, and
 * re-signing, which lets a mutated envelope reach the code behind the
 * signature check.
 *
 * The harnesses link the TA's own objects (ta/sub.mk, entry.c only in
 * fuzz_commands, which includes it for its dispatch table) and
 * the simulator's GP Internal Core API over OpenSSL, built with
 * -fsanitize=fuzzer-no-link,address,undefined (make fuzz).
 */
#ifndef EDGE_FUZZ_COMMON_H
#define EDGE_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

/* An Ed25519 key of keys.tsv: key pair object, public key, key id. */
struct fuzz_ed_key {
	TEE_ObjectHandle pair;
	uint8_t pub[EDGE_PUBKEY_SIZE];
	uint8_t id[EDGE_KEY_ID_SIZE];
};

extern struct fuzz_ed_key fuzz_signer;		/* model_signer */
extern struct fuzz_ed_key fuzz_aggregator;	/* aggregator */
extern struct fuzz_ed_key fuzz_device;		/* device_ed25519 */
extern TEE_ObjectHandle fuzz_device_kex;	/* device_x25519 pair */

/*
 * The vectors directory: $EDGE_FUZZ_VECTORS, else the checkout's
 * tests/vectors as compiled in.
 */
const char *fuzz_vectors_dir(void);

/* Reads vectors/<name> into a new malloc'ed buffer; aborts if it cannot. */
uint8_t *fuzz_read_vector(const char *name, size_t *len);

/* A copy in a buffer of exactly len bytes (so ASan sees any overread). */
uint8_t *fuzz_dup(const uint8_t *data, size_t len);

/*
 * Makes buf (len bytes, at least header + signature) a correctly signed
 * envelope under key while keeping its magic, version and kind: body
 * length = len - 92, signer id = key's id, signature over header || body.
 * Returns false if buf is too short to hold an envelope.
 */
bool fuzz_resign(uint8_t *buf, size_t len, const struct fuzz_ed_key *key);

/*
 * Binds a key wrap (EDGE_KEY_WRAP_SIZE bytes) to the signed manifest
 * envelope at manifest (manifest_len bytes, at least header + signature):
 * its manifest digest becomes SHA-256 of the signed part, and it is
 * re-signed with the model signer, so that a re-signed manifest still gets
 * past the wrap's binding to the checks behind it.
 */
void fuzz_rebind_wrap(uint8_t *wrap, const uint8_t *manifest,
		      size_t manifest_len);

/*
 * The body of an input read as an envelope (bytes 28 .. len - 64), or the
 * whole input if it is too short: what a body parser gets to see.
 */
void fuzz_body(const uint8_t *data, size_t len, const uint8_t **body,
	       size_t *body_len);

/* Ends the run as a crash: a harness invariant does not hold. */
void fuzz_fail(const char *what) __attribute__((noreturn));
#define FUZZ_ASSERT(cond) \
	do { if (!(cond)) fuzz_fail(__FILE__ ": " #cond); } while (0)

#endif /* EDGE_FUZZ_COMMON_H */
