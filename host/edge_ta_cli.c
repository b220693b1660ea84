// SPDX-License-Identifier: BSD-2-Clause
/*
 * edge-ta-cli: drives every command of the edge TA from C, through
 * libedge_client and whichever libteec it is linked with. For boards and
 * images without Python, and for the C round-trip tests.
 *
 *   edge-ta-cli [-t TEE_NAME] identity OUT
 *   edge-ta-cli [-t TEE_NAME] status
 *   edge-ta-cli [-t TEE_NAME] anchors SIGNER_PUB_HEX AGGREGATOR_PUB_HEX
 *   edge-ta-cli [-t TEE_NAME] replace-anchor STATEMENT
 *   edge-ta-cli [-t TEE_NAME] load PACKAGE [BACKBONE_OUT]
 *   edge-ta-cli [-t TEE_NAME] infer N FEATURES_F32 SCORES_OUT
 *
 * Exit status 0 on success, 1 when the TEE refused or failed (one line on
 * stderr naming the result and which side produced it), 2 on bad usage.
 */
#include <edge_client.h>
#include <edge_ta.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *origin_name(uint32_t origin)
{
	switch (origin) {
	case 1: return "client";
	case 2: return "transport";
	case 3: return "tee";
	case 4: return "ta";
	default: return "unknown";
	}
}

static int report(const char *what, uint32_t res, uint32_t origin)
{
	if (res == 0)
		return 0;
	fprintf(stderr, "edge-ta-cli: %s: %s (0x%08" PRIx32 ", from %s)\n",
		what, edge_result_name(res), res, origin_name(origin));
	return 1;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: edge-ta-cli [-t TEE_NAME] identity OUT | status | "
		"anchors SIGNER_HEX AGG_HEX | replace-anchor FILE | "
		"load PKG [BACKBONE_OUT] | infer N FEATURES SCORES_OUT\n");
	return 2;
}

static int parse_hex32(const char *hex, uint8_t out[32])
{
	if (strlen(hex) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		unsigned int v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	FILE *f = fopen(path, "rb");
	long size;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(size ? (size_t)size : 1);
		if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)size;
	}
	fclose(f);
	return buf;
}

static int write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int bad;

	if (!f)
		return -1;
	bad = fwrite(buf, 1, len, f) != len;
	return fclose(f) || bad ? -1 : 0;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void print_hex(const char *label, const uint8_t *p, size_t n)
{
	printf("%s: ", label);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static int cmd_status(edge_client *c)
{
	uint8_t st[EDGE_STATUS_SIZE];
	size_t len = sizeof(st);
	uint32_t origin, res = edge_get_status(c, st, &len, &origin);

	if (report("status", res, origin))
		return 1;
	printf("abi_version: %" PRIu32 "\n", rd32(st + EDGE_STATUS_OFF_ABI_VERSION));
	printf("flags: 0x%" PRIx32 "\n", rd32(st + EDGE_STATUS_OFF_FLAGS));
	printf("model_version: %" PRIu64 "\n",
	       rd64(st + EDGE_STATUS_OFF_MODEL_VERSION));
	print_hex("device_id", st + EDGE_STATUS_OFF_DEVICE_ID, EDGE_KEY_ID_SIZE);
	printf("head: %" PRIu32 "x%" PRIu32 "\n",
	       rd32(st + EDGE_STATUS_OFF_HEAD_IN),
	       rd32(st + EDGE_STATUS_OFF_HEAD_OUT));
	return 0;
}

static int cmd_infer(edge_client *c, const char *n_str, const char *in_path,
		     const char *out_path)
{
	char *end = NULL;
	unsigned long n = strtoul(n_str, &end, 10);
	size_t in_len = 0, out_len;
	uint8_t *in;
	float *out;
	uint32_t origin = 0, res;
	int rc;

	if (!end || *end || n == 0 || n > UINT32_MAX)
		return usage();
	in = read_file(in_path, &in_len);
	if (!in) {
		fprintf(stderr, "edge-ta-cli: cannot read %s: %s\n", in_path,
			strerror(errno));
		return 1;
	}
	out_len = (size_t)n * EDGE_MAX_HEAD_OUT * sizeof(float);
	out = malloc(out_len);
	if (!out) {
		free(in);
		return 1;
	}
	res = edge_infer(c, (const float *)(void *)in, (uint32_t)n, in_len,
			 out, &out_len, &origin);
	rc = report("infer", res, origin);
	if (!rc && write_file(out_path, out, out_len)) {
		fprintf(stderr, "edge-ta-cli: cannot write %s\n", out_path);
		rc = 1;
	}
	free(in);
	free(out);
	return rc;
}

static int run(edge_client *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	uint32_t origin = 0, res;

	if (!strcmp(cmd, "identity") && argc == 2) {
		uint8_t rec[EDGE_DEVICE_RECORD_SIZE];
		size_t len = sizeof(rec);

		res = edge_get_identity(c, rec, &len, &origin);
		if (report("identity", res, origin))
			return 1;
		if (write_file(argv[1], rec, len)) {
			fprintf(stderr, "edge-ta-cli: cannot write %s\n", argv[1]);
			return 1;
		}
		print_hex("device_id", rec + 12, EDGE_KEY_ID_SIZE);
		return 0;
	}
	if (!strcmp(cmd, "status") && argc == 1)
		return cmd_status(c);
	if (!strcmp(cmd, "anchors") && argc == 3) {
		uint8_t signer[32], agg[32];

		if (parse_hex32(argv[1], signer) || parse_hex32(argv[2], agg))
			return usage();
		res = edge_install_anchors(c, signer, agg, &origin);
		return report("anchors", res, origin);
	}
	if (!strcmp(cmd, "replace-anchor") && argc == 2) {
		size_t len = 0;
		uint8_t *stmt = read_file(argv[1], &len);

		if (!stmt) {
			fprintf(stderr, "edge-ta-cli: cannot read %s\n", argv[1]);
			return 1;
		}
		res = edge_replace_anchor(c, stmt, len, &origin);
		free(stmt);
		return report("replace-anchor", res, origin);
	}
	if (!strcmp(cmd, "load") && (argc == 2 || argc == 3)) {
		uint64_t version = 0, backbone_len = 0;

		res = edge_load_model_file(c, argv[1], argc == 3 ? argv[2] : NULL,
					   &backbone_len, &version, &origin);
		if (report("load", res, origin))
			return 1;
		printf("version: %" PRIu64 "\nbackbone_bytes: %" PRIu64 "\n",
		       version, backbone_len);
		return 0;
	}
	if (!strcmp(cmd, "infer") && argc == 4)
		return cmd_infer(c, argv[1], argv[2], argv[3]);
	return usage();
}

int main(int argc, char **argv)
{
	const char *tee_name = NULL;
	edge_client *c = NULL;
	uint32_t origin = 0, res;
	int rc;

	if (argc >= 3 && !strcmp(argv[1], "-t")) {
		tee_name = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc < 2)
		return usage();
	res = edge_client_open(tee_name, &c, &origin);
	if (report("open", res, origin))
		return 1;
	rc = run(c, argc - 1, argv + 1);
	edge_client_close(c);
	return rc;
}
