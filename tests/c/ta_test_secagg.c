// SPDX-License-Identifier: BSD-2-Clause
/*
 * The TA's secure-aggregation primitives (ta/shamir.c, ta/prg.c,
 * ta/quantize.c) against tests/vectors/secagg.tsv, which Python's twins in
 * edge/secagg wrote: the same shares, masks and words, byte for byte. Then
 * the refusals, and the GF(2^8) multiplication against the textbook one.
 *
 * Usage: ta_test_secagg <tests/vectors>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <gp_sim.h>

#include "bytes.h"
#include "harness.h"
#include "prg.h"
#include "quantize.h"
#include "secagg_round.h"
#include "shamir.h"
#include "ticket.h"

#define MAX_FIELD	(1 << 17)

/* Decodes a hex field ("-" for none) into a new buffer; its length in *len. */
static uint8_t *unhex(const char *s, size_t *len)
{
	size_t n = strcmp(s, "-") ? strlen(s) : 0;
	uint8_t *out = NULL;

	if (n % 2)
		harness_die("odd hex length");
	out = malloc(n / 2 + 1);
	if (!out)
		harness_die("out of memory");
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int b = 0;

		if (sscanf(s + 2 * i, "%2x", &b) != 1)
			harness_die("bad hex");
		out[i] = (uint8_t)b;
	}
	*len = n / 2;
	return out;
}

static double f64(uint64_t bits)
{
	double d = 0;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

static uint8_t slow_mul(uint8_t a, uint8_t b)
{
	uint8_t out = 0;

	while (b) {
		if (b & 1)
			out ^= a;
		a = (uint8_t)((a & 0x80) ? (a << 1) ^ 0x1b : a << 1);
		b >>= 1;
	}
	return out;
}

static void check_shamir(char **f, int row)
{
	size_t slen = 0, clen = 0, xlen = 0, shlen = 0;
	uint8_t *secret = unhex(f[1], &slen);
	uint32_t t = (uint32_t)strtoul(f[2], NULL, 10);
	uint8_t *coeffs = unhex(f[3], &clen);
	uint8_t *xs = unhex(f[4], &xlen);
	uint8_t *want = unhex(f[5], &shlen);
	uint8_t *got = calloc(1, shlen + 1);

	CHECK(got && clen == (t - 1) * slen && shlen == xlen * slen,
	      "row %d sizes", row);
	CHECK_RES(shamir_split(secret, slen, t, xs, xlen, coeffs, got),
		  TEE_SUCCESS, "row %d split", row);
	CHECK(!memcmp(got, want, shlen), "row %d: shares (t=%u, n=%zu)", row,
	      (unsigned int)t, xlen);
	/* Random coefficients: the shares must differ from the fixed ones. */
	if (t > 1) {
		CHECK_RES(shamir_split(secret, slen, t, xs, xlen, NULL, got),
			  TEE_SUCCESS, "row %d random split", row);
		CHECK(memcmp(got, want, shlen), "row %d: fresh coefficients", row);
	}
	free(secret);
	free(coeffs);
	free(xs);
	free(want);
	free(got);
}

static void check_prg(char **f, int row)
{
	size_t slen = 0, blen = 0, alen = 0;
	uint8_t *seed = unhex(f[1], &slen);
	int sign = atoi(f[2]);
	uint8_t *before = unhex(f[3], &blen);
	uint8_t *after = unhex(f[4], &alen);
	size_t n = blen / 4;
	uint32_t *words = calloc(n + 1, 4);

	CHECK(words && slen == PRG_SEED_SIZE && alen == blen, "row %d sizes", row);
	for (size_t i = 0; i < n; i++)
		words[i] = get_le32(before + 4 * i);
	CHECK_RES(prg_apply(seed, sign, words, n), TEE_SUCCESS, "row %d", row);
	for (size_t i = 0; i < n; i++)
		if (words[i] != get_le32(after + 4 * i)) {
			CHECK(false, "row %d: word %zu of %zu", row, i, n);
			break;
		}
	free(seed);
	free(before);
	free(after);
	free(words);
}

static void check_quant(char **f, int row)
{
	size_t clen = 0, xlen = 0, rlen = 0, wlen = 0;
	uint8_t *clip_le = unhex(f[1], &clen);
	uint32_t k = (uint32_t)strtoul(f[2], NULL, 10);
	uint8_t *xb = unhex(f[3], &xlen);
	uint8_t *rb = unhex(f[4], &rlen);
	uint8_t *wb = unhex(f[5], &wlen);
	size_t n = rlen / 4;
	double clip = 0, *x = calloc(n + 1, sizeof(double));
	uint32_t *r = calloc(n + 1, 4), *got = calloc(n + 1, 4);

	CHECK(x && r && got && clen == 8 && xlen == 8 * n && wlen == rlen,
	      "row %d sizes", row);
	clip = f64(get_le64(clip_le));
	for (size_t i = 0; i < n; i++) {
		x[i] = f64(get_le64(xb + 8 * i));
		r[i] = get_le32(rb + 4 * i);
	}
	CHECK_RES(quantize_words(x, r, n, clip, k, got), TEE_SUCCESS, "row %d", row);
	for (size_t i = 0; i < n; i++)
		if (got[i] != get_le32(wb + 4 * i)) {
			CHECK(false, "row %d: word %zu: %08x, want %08x", row, i,
			      (unsigned int)got[i], (unsigned int)get_le32(wb + 4 * i));
			break;
		}
	/* Out of range, NaN: refused, nothing written. */
	memset(got, 0xAA, 4 * n);
	x[n / 2] = clip * 1.0000001;
	CHECK_RES(quantize_words(x, r, n, clip, k, got), TEE_ERROR_BAD_PARAMETERS,
		  "row %d: above the clip", row);
	x[n / 2] = f64(0x7ff8000000000000ull);
	CHECK_RES(quantize_words(x, r, n, clip, k, got), TEE_ERROR_BAD_PARAMETERS,
		  "row %d: NaN", row);
	CHECK(got[0] == 0xAAAAAAAAu, "row %d: nothing written", row);
	free(clip_le);
	free(xb);
	free(rb);
	free(wb);
	free(x);
	free(r);
	free(got);
}

/* The neighbour graph: secagg_order + secagg_neighbours against graph.py. */
static void check_graph(char **f, int row)
{
	size_t slen = 0, flen = 0, at = 0;
	uint8_t *seed = unhex(f[1], &slen);
	uint32_t n = (uint32_t)atoi(f[2]), k = (uint32_t)atoi(f[3]);
	uint8_t *flat = unhex(f[4], &flen);
	uint32_t *order = calloc(n, 4), *inv = calloc(n, 4), *nb = calloc(n, 4);

	CHECK(slen == 16 && order && inv && nb, "row %d sizes", row);
	CHECK_RES(secagg_order(n, seed, order), TEE_SUCCESS, "row %d", row);
	for (uint32_t i = 0; i < n; i++)
		inv[order[i]] = i;
	for (uint32_t r = 0; r < n; r++) {
		uint32_t m = secagg_neighbours(order, inv, n, k, r, nb);

		for (uint32_t j = 0; j < m; j++, at += 2)
			if (at + 2 > flen || nb[j] != get_le16(flat + at)) {
				CHECK(false, "row %d: device %u neighbour %u", row, r, j);
				r = n;
				break;
			}
		/* Each device holds a share of its own secret, at x = its rank + 1. */
		if (r < n)
			CHECK(secagg_holder_x(r, nb, m, r) >= 1, "row %d: own x", row);
	}
	CHECK(at == flen, "row %d: %zu of %zu neighbour bytes", row, at, flen);
	free(seed);
	free(flat);
	free(order);
	free(inv);
	free(nb);
}

static void check_pair(char **f, int row)
{
	size_t blen = 0, zlen = 0, slen = 0;
	uint8_t *binding = unhex(f[1], &blen);
	uint8_t *z = unhex(f[2], &zlen);
	uint8_t *want = unhex(f[3], &slen);
	uint8_t got[EDGE_SECAGG_SEED_SIZE] = { 0 };

	CHECK(blen == SECAGG_BINDING_SIZE && zlen == 32 && slen == 16, "row %d", row);
	CHECK_RES(secagg_pair_seed(binding, z, got), TEE_SUCCESS, "row %d", row);
	CHECK(!memcmp(got, want, 16), "row %d: pair seed", row);
	free(binding);
	free(z);
	free(want);
}

static void check_sharekey(char **f, int row)
{
	size_t len[7] = { 0 };
	uint8_t *v[7] = { NULL };
	struct secagg_round *r = calloc(1, sizeof(*r));
	uint8_t key[32] = { 0 };

	for (int i = 0; i < 7; i++)
		v[i] = unhex(f[i + 1], &len[i]);
	CHECK(r && len[0] == 48 && len[3] == 32 && len[4] == 32 && len[6] == 32,
	      "row %d sizes", row);
	memcpy(r->binding, v[0], 48);
	memcpy(r->c_sk, v[3], 32);
	memcpy(r->c_pub, v[4], 32);
	CHECK_RES(secagg_share_key(r, v[5], v[1], v[2], key), TEE_SUCCESS,
		  "row %d", row);
	CHECK(!memcmp(key, v[6], 32), "row %d: share key", row);
	for (int i = 0; i < 7; i++)
		free(v[i]);
	free(r);
}

/* The secure-aggregation rules of a ticket body (ta/ticket.c). */
static void check_ticket_rules(void)
{
	static const struct {
		uint8_t mode;
		uint16_t t, k, cohort;
		uint8_t scale;
		float u;
		uint32_t want;
		const char *what;
	} cases[] = {
		{ 2, 3, 4, 5, 28, 1.0f, TEE_SUCCESS, "complete graph of 5" },
		{ 2, 8, 14, 100, 24, 1.0f, TEE_SUCCESS, "k = 14 of 100" },
		{ 2, 2, 4, 5, 28, 1.0f, TEE_ERROR_BAD_FORMAT, "t <= k/2" },
		{ 2, 6, 4, 5, 28, 1.0f, TEE_ERROR_BAD_FORMAT, "t > k + 1" },
		{ 2, 3, 5, 9, 20, 1.0f, TEE_ERROR_BAD_FORMAT, "odd k, sparse" },
		{ 2, 3, 4, 5, 29, 1.0f, TEE_ERROR_BAD_FORMAT, "overflow" },
		{ 2, 3, 0, 5, 20, 1.0f, TEE_ERROR_BAD_FORMAT, "k = 0" },
		{ 2, 3, 4, 1025, 10, 1.0f, TEE_ERROR_BAD_FORMAT, "cohort" },
		{ 2, 3, 4, 5, 31, 1.0f, TEE_ERROR_BAD_FORMAT, "scale" },
		{ 1, 3, 4, 5, 28, 1.0f, TEE_ERROR_BAD_FORMAT, "float32 with fields" },
		{ 3, 0, 0, 0, 0, 1.0f, TEE_ERROR_BAD_FORMAT, "mode 3" },
	};
	uint8_t body[EDGE_TICKET_BODY_SIZE];
	struct edge_ticket t;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(body, 0, sizeof(body));
		put_le64(body + EDGE_TICKET_OFF_ROUND_ID, 1);
		put_le32(body + EDGE_TICKET_OFF_EXAMPLE_CLIP, flt_bits(1.0f));
		put_le32(body + EDGE_TICKET_OFF_UPDATE_CLIP, flt_bits(cases[i].u));
		put_le32(body + EDGE_TICKET_OFF_LEARNING_RATE, flt_bits(0.1f));
		put_le16(body + EDGE_TICKET_OFF_EPOCHS, 1);
		put_le16(body + EDGE_TICKET_OFF_BATCH_SIZE, 1);
		body[EDGE_TICKET_OFF_UPDATE_MODE] = cases[i].mode;
		put_le16(body + EDGE_TICKET_OFF_SECAGG_THRESHOLD, cases[i].t);
		put_le16(body + EDGE_TICKET_OFF_SECAGG_NEIGHBOURS, cases[i].k);
		put_le16(body + EDGE_TICKET_OFF_SECAGG_COHORT, cases[i].cohort);
		body[EDGE_TICKET_OFF_SECAGG_SCALE_LOG2] = cases[i].scale;
		CHECK_RES(ticket_parse_body(body, sizeof(body), &t), cases[i].want,
			  "%s", cases[i].what);
	}
}

int main(int argc, char **argv)
{
	static char line[MAX_FIELD * 4];
	char path[4096];
	int rows[6] = { 0 }, n = 0;
	uint8_t secret[16] = { 1 }, xs[3] = { 1, 2, 3 }, shares[48];
	uint32_t w = 0;
	FILE *fp = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <tests/vectors>\n", argv[0]);
		return 2;
	}
	for (unsigned int a = 0; a < 256; a++)
		for (unsigned int b = 0; b < 256; b++)
			if (shamir_gf_mul((uint8_t)a, (uint8_t)b) !=
			    slow_mul((uint8_t)a, (uint8_t)b)) {
				CHECK(false, "gf_mul(%u, %u)", a, b);
				a = 256;
				break;
			}
	CHECK(shamir_gf_mul(0x57, 0x83) == 0xc1, "FIPS-197 4.2's example");

	snprintf(path, sizeof(path), "%s/secagg.tsv", argv[1]);
	fp = fopen(path, "r");
	if (!fp)
		harness_die("cannot read secagg.tsv");
	while (fgets(line, sizeof(line), fp)) {
		char *f[8] = { NULL };
		int nf = 0;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		for (char *tok = strtok(line, "\t\n"); tok && nf < 8;
		     tok = strtok(NULL, "\t\n"))
			f[nf++] = tok;
		n++;
		if (nf == 6 && !strcmp(f[0], "shamir")) {
			rows[0]++;
			check_shamir(f, n);
		} else if (nf == 5 && !strcmp(f[0], "prg")) {
			rows[1]++;
			check_prg(f, n);
		} else if (nf == 6 && !strcmp(f[0], "quant")) {
			rows[2]++;
			check_quant(f, n);
		} else if (nf == 5 && !strcmp(f[0], "graph")) {
			rows[3]++;
			check_graph(f, n);
		} else if (nf == 4 && !strcmp(f[0], "pair")) {
			rows[4]++;
			check_pair(f, n);
		} else if (nf == 8 && !strcmp(f[0], "sharekey")) {
			rows[5]++;
			check_sharekey(f, n);
		} else {
			CHECK(false, "row %d: unknown or short (%s, %d fields)", n,
			      f[0] ? f[0] : "", nf);
		}
	}
	fclose(fp);
	CHECK(rows[0] >= 5 && rows[1] >= 4 && rows[2] >= 3,
	      "%d shamir, %d prg, %d quant rows", rows[0], rows[1], rows[2]);
	CHECK(rows[3] >= 5 && rows[4] >= 3 && rows[5] >= 3,
	      "%d graph, %d pair, %d sharekey rows", rows[3], rows[4], rows[5]);
	check_ticket_rules();

	/* Refusals: bad thresholds, repeated or zero points, long secrets. */
	CHECK_RES(shamir_split(secret, 16, 0, xs, 3, NULL, shares),
		  TEE_ERROR_BAD_PARAMETERS, "t = 0");
	CHECK_RES(shamir_split(secret, 16, 4, xs, 3, NULL, shares),
		  TEE_ERROR_BAD_PARAMETERS, "t > n");
	xs[2] = 2;
	CHECK_RES(shamir_split(secret, 16, 2, xs, 3, NULL, shares),
		  TEE_ERROR_BAD_PARAMETERS, "a repeated point");
	xs[2] = 0;
	CHECK_RES(shamir_split(secret, 16, 2, xs, 3, NULL, shares),
		  TEE_ERROR_BAD_PARAMETERS, "point 0 (the secret itself)");
	CHECK_RES(shamir_split(secret, SHAMIR_MAX_SECRET + 1, 2, xs, 2, NULL,
			       shares),
		  TEE_ERROR_BAD_PARAMETERS, "a secret longer than the maximum");
	CHECK_RES(prg_apply(secret, 0, &w, 1), TEE_ERROR_BAD_PARAMETERS, "sign 0");
	CHECK_RES(quantize_words(NULL, NULL, 0, 1.0, QUANTIZE_MAX_SCALE_LOG2 + 1,
				 NULL),
		  TEE_ERROR_BAD_PARAMETERS, "scale out of range");
	return harness_summary();
}
