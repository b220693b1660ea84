// SPDX-License-Identifier: BSD-2-Clause
/*
 * Shared setup of the fuzz harnesses (see fuzz_common.h).
 */
/* nftw() is X/Open. */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tee_internal_api.h>
#include <edge_ta.h>
#include <gp_sim.h>
#include <user_ta_header_defines.h>

#include "bytes.h"
#include "crypto.h"
#include "fuzz_common.h"

#ifndef EDGE_FUZZ_VECTORS
#define EDGE_FUZZ_VECTORS "tests/vectors"
#endif

struct fuzz_ed_key fuzz_signer;
struct fuzz_ed_key fuzz_aggregator;
struct fuzz_ed_key fuzz_device;
TEE_ObjectHandle fuzz_device_kex;

static char state_dir[256];

void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz harness invariant violated: %s\n", what);
	abort();
}

const char *fuzz_vectors_dir(void)
{
	const char *dir = getenv("EDGE_FUZZ_VECTORS");

	return dir && *dir ? dir : EDGE_FUZZ_VECTORS;
}

uint8_t *fuzz_read_vector(const char *name, size_t *len)
{
	char path[4096];
	FILE *f = NULL;
	uint8_t *buf = NULL;
	long n = 0;

	snprintf(path, sizeof(path), "%s/%s", fuzz_vectors_dir(), name);
	f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET))
		fuzz_fail(path);
	buf = malloc((size_t)n);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		fuzz_fail(path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

uint8_t *fuzz_dup(const uint8_t *data, size_t len)
{
	/* malloc(0) may return NULL; a parser must not touch it then. */
	uint8_t *p = malloc(len ? len : 1);

	if (!p)
		fuzz_fail("out of memory");
	if (len)
		memcpy(p, data, len);
	return p;
}

bool fuzz_resign(uint8_t *buf, size_t len, const struct fuzz_ed_key *key)
{
	size_t signed_len = 0;
	uint8_t digest[EDGE_SHA256_SIZE] = { 0 };

	if (len < EDGE_ENVELOPE_HEADER_SIZE + EDGE_SIG_SIZE ||
	    len - EDGE_ENVELOPE_HEADER_SIZE - EDGE_SIG_SIZE > UINT32_MAX)
		return false;
	signed_len = len - EDGE_SIG_SIZE;
	put_le32(buf + 8, (uint32_t)(signed_len - EDGE_ENVELOPE_HEADER_SIZE));
	memcpy(buf + 12, key->id, EDGE_KEY_ID_SIZE);
	if (edge_sha256(buf, signed_len, digest) ||
	    edge_ed25519_sign(key->pair, digest, buf + signed_len))
		fuzz_fail("cannot sign");
	return true;
}

void fuzz_rebind_wrap(uint8_t *wrap, const uint8_t *manifest,
		      size_t manifest_len)
{
	if (manifest_len < EDGE_ENVELOPE_HEADER_SIZE + EDGE_SIG_SIZE)
		return;
	if (edge_sha256(manifest, manifest_len - EDGE_SIG_SIZE,
			wrap + EDGE_ENVELOPE_HEADER_SIZE +
				EDGE_KEY_WRAP_OFF_MANIFEST_DIGEST))
		fuzz_fail("cannot hash");
	(void)fuzz_resign(wrap, EDGE_KEY_WRAP_SIZE, &fuzz_signer);
}

void fuzz_body(const uint8_t *data, size_t len, const uint8_t **body,
	       size_t *body_len)
{
	if (len < EDGE_ENVELOPE_HEADER_SIZE + EDGE_SIG_SIZE) {
		*body = data;
		*body_len = len;
		return;
	}
	*body = data + EDGE_ENVELOPE_HEADER_SIZE;
	*body_len = len - EDGE_ENVELOPE_HEADER_SIZE - EDGE_SIG_SIZE;
}

/* ---- keys.tsv ----------------------------------------------------------- */

static bool key_bytes(const char *name, uint8_t *out, size_t want)
{
	char path[4096];
	char line[1024];
	char *tab = NULL;
	FILE *f = NULL;
	bool found = false;
	size_t i = 0;
	unsigned int byte = 0;

	snprintf(path, sizeof(path), "%s/keys.tsv", fuzz_vectors_dir());
	f = fopen(path, "r");
	if (!f)
		fuzz_fail(path);
	while (!found && fgets(line, sizeof(line), f)) {
		tab = strchr(line, '\t');
		if (!tab)
			continue;
		*tab++ = 0;
		if (strcmp(line, name) || strspn(tab, "0123456789abcdef") !=
					  2 * want)
			continue;
		for (i = 0; i < want; i++) {
			if (sscanf(tab + 2 * i, "%2x", &byte) != 1)
				break;
			out[i] = (uint8_t)byte;
		}
		found = i == want;
	}
	fclose(f);
	return found;
}

static void load_pair(const char *name, uint32_t type, uint32_t priv_attr,
		      uint32_t pub_attr, TEE_ObjectHandle *pair,
		      uint8_t pub[EDGE_PUBKEY_SIZE])
{
	char pub_name[64];
	char priv_name[64];
	uint8_t priv[32] = { 0 };
	TEE_Attribute a[2];

	snprintf(pub_name, sizeof(pub_name), "%s_pub", name);
	snprintf(priv_name, sizeof(priv_name), "%s_priv", name);
	if (!key_bytes(pub_name, pub, EDGE_PUBKEY_SIZE) ||
	    !key_bytes(priv_name, priv, sizeof(priv)))
		fuzz_fail("keys.tsv lacks a key");
	TEE_InitRefAttribute(&a[0], priv_attr, priv, sizeof(priv));
	TEE_InitRefAttribute(&a[1], pub_attr, pub, EDGE_PUBKEY_SIZE);
	if (TEE_AllocateTransientObject(type, 256, pair) ||
	    TEE_PopulateTransientObject(*pair, a, 2))
		fuzz_fail("cannot make a key object");
}

static void load_ed(const char *name, struct fuzz_ed_key *k)
{
	load_pair(name, TEE_TYPE_ED25519_KEYPAIR, TEE_ATTR_ED25519_PRIVATE_VALUE,
		  TEE_ATTR_ED25519_PUBLIC_VALUE, &k->pair, k->pub);
	if (edge_key_id(k->pub, k->id))
		fuzz_fail("key id");
}

/* ---- Process setup ------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_state_dir(void)
{
	if (state_dir[0])
		nftw(state_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t x_pub[EDGE_PUBKEY_SIZE] = { 0 };
	const char *tmp = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	/* The TA logs every refusal; at millions of inputs that is noise. */
	setenv("EDGE_SIM_TA_LOG_LEVEL", "0", 0);
	/* Secure storage is rewritten on every input of fuzz_storage: keep it
	 * in memory where there is a tmpfs. */
	if (!access("/dev/shm", W_OK))
		tmp = "/dev/shm";
	else if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(state_dir, sizeof(state_dir), "%s/edge-fuzz.XXXXXX", tmp);
	if (!mkdtemp(state_dir) || edge_sim_gp_init(state_dir))
		fuzz_fail("cannot set up the simulated secure storage");
	atexit(remove_state_dir);
	edge_sim_gp_set_heap_limit(TA_DATA_SIZE);

	load_ed("model_signer", &fuzz_signer);
	load_ed("aggregator", &fuzz_aggregator);
	load_ed("device_ed25519", &fuzz_device);
	load_pair("device_x25519", TEE_TYPE_X25519_KEYPAIR,
		  TEE_ATTR_X25519_PRIVATE_VALUE, TEE_ATTR_X25519_PUBLIC_VALUE,
		  &fuzz_device_kex, x_pub);
	return 0;
}
