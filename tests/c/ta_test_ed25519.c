// SPDX-License-Identifier: BSD-2-Clause
/*
 * The TA's strict Ed25519 checks (ta/ed25519_strict.c) against
 * tests/vectors/ed25519_points.tsv, which Python's twin
 * (edge/formats/ed25519_strict.py) wrote: every point of small order,
 * every non-canonical y, encodings off the curve, real public keys. Then
 * the signature form: S = L and S = L - 1 + 2^255-ish values, R of small
 * order, and a real signature.
 *
 * Usage: ta_test_ed25519 <tests/vectors>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <gp_sim.h>

#include "ed25519_strict.h"
#include "edge_ta.h"
#include "harness.h"

static int unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int b = 0;

		if (sscanf(s + 2 * i, "%2x", &b) != 1)
			return -1;
		out[i] = (uint8_t)b;
	}
	return s[2 * n] == '\0' ? 0 : -1;
}

static enum ed25519_point_class class_of(const char *name)
{
	if (!strcmp(name, "ok"))
		return ED25519_POINT_OK;
	if (!strcmp(name, "small-order"))
		return ED25519_POINT_SMALL_ORDER;
	if (!strcmp(name, "non-canonical"))
		return ED25519_POINT_NON_CANONICAL;
	if (!strcmp(name, "off-curve"))
		return ED25519_POINT_OFF_CURVE;
	return (enum ed25519_point_class)-1;
}

/* L, little-endian (RFC 8032, 5.1). */
static const uint8_t order_l[32] = {
	0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
	0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	[31] = 0x10,
};

int main(int argc, char **argv)
{
	char path[4096], line[512];
	uint8_t enc[32], sig[64], good_r[32] = { 0 }, small_r[32] = { 0 };
	int rows = 0, small = 0, ok = 0;
	FILE *fp = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <tests/vectors>\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/ed25519_points.tsv", argv[1]);
	fp = fopen(path, "r");
	if (!fp)
		harness_die("cannot read ed25519_points.tsv");
	while (fgets(line, sizeof(line), fp)) {
		char *hex = strtok(line, "\t\n");
		char *cls = strtok(NULL, "\t\n");
		char *note = strtok(NULL, "\n");

		if (!hex || hex[0] == '#')
			continue;
		rows++;
		CHECK(cls && unhex(hex, enc, 32) == 0, "row %d parses", rows);
		if (!cls)
			continue;
		CHECK_EQ(ed25519_classify_point(enc), class_of(cls), "%s (%s)",
			 note ? note : "", hex);
		CHECK_RES(ed25519_check_pub(enc),
			  class_of(cls) == ED25519_POINT_OK ? TEE_SUCCESS :
			  EDGE_ERR_WEAK_KEY, "%s", note ? note : "");
		if (class_of(cls) == ED25519_POINT_SMALL_ORDER && !small++)
			memcpy(small_r, enc, 32);
		if (class_of(cls) == ED25519_POINT_OK && !ok++)
			memcpy(good_r, enc, 32);
	}
	fclose(fp);
	CHECK(rows >= 40 && small == 8 && ok > 0, "%d rows, %d small-order", rows,
	      small);

	/* Signature form: R must pass the point check, S must be below L. */
	memcpy(sig, good_r, 32);
	memset(sig + 32, 0, 32);
	CHECK_RES(ed25519_check_sig(sig), TEE_SUCCESS, "S = 0, good R");
	memcpy(sig + 32, order_l, 32);
	CHECK_RES(ed25519_check_sig(sig), TEE_ERROR_SIGNATURE_INVALID, "S = L");
	sig[32] = 0xec;	/* L - 1 */
	CHECK_RES(ed25519_check_sig(sig), TEE_SUCCESS, "S = L - 1");
	memset(sig + 32, 0xff, 32);
	CHECK_RES(ed25519_check_sig(sig), TEE_ERROR_SIGNATURE_INVALID, "S = 2^256 - 1");
	memset(sig + 32, 0, 32);
	sig[63] = 0x10;
	sig[47] = 0x15;	/* above L in byte 15 */
	CHECK_RES(ed25519_check_sig(sig), TEE_ERROR_SIGNATURE_INVALID, "S > L");
	memset(sig + 32, 0, 32);
	memcpy(sig, small_r, 32);
	CHECK_RES(ed25519_check_sig(sig), TEE_ERROR_SIGNATURE_INVALID,
		  "R of small order (the identity forgery's R)");
	return harness_summary();
}
