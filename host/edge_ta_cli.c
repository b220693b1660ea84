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
 *   edge-ta-cli [-t TEE_NAME] load PACKAGE WRAP [BACKBONE_OUT]
 *   edge-ta-cli [-t TEE_NAME] infer N FEATURES_F32 SCORES_OUT
 *   edge-ta-cli [-t TEE_NAME] policy FILE
 *   edge-ta-cli [-t TEE_NAME] budget
 *   edge-ta-cli [-t TEE_NAME] ticket FILE REE_TIME
 *   edge-ta-cli [-t TEE_NAME] train N FEATURES_F32 LABELS_U32 OUT
 *   edge-ta-cli [-t TEE_NAME] round TICKET REE_TIME N FEATURES_F32 LABELS_U32 OUT
 *
 * A verified ticket is held by the TA session, which ends with this
 * process: `ticket` only checks one, `train` alone is refused (bad state),
 * and `round` verifies and trains in one session.
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
		"load PKG WRAP [BACKBONE_OUT] | infer N FEATURES SCORES_OUT | "
		"policy FILE | budget | ticket FILE REE_TIME | "
		"train N FEATURES LABELS OUT | "
		"round TICKET REE_TIME N FEATURES LABELS OUT\n");
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
	uint32_t origin = 0, res, release = 0, left = 0;
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
			 out, &out_len, &release, &left, &origin);
	rc = report("infer", res, origin);
	if (!rc) {
		printf("release: %s\n",
		       release == EDGE_INFER_SCORES ? "scores (float32)" :
		       release == EDGE_INFER_TOPK ? "top-k labels (uint32)" :
		       "label (uint32)");
		if (left == EDGE_INFER_UNLIMITED)
			printf("rows left: unlimited\n");
		else
			printf("rows left: %" PRIu32 "\n", left);
	}
	if (!rc && write_file(out_path, out, out_len)) {
		fprintf(stderr, "edge-ta-cli: cannot write %s\n", out_path);
		rc = 1;
	}
	free(in);
	free(out);
	return rc;
}

static int cmd_budget(edge_client *c)
{
	uint8_t b[EDGE_BUDGET_SIZE];
	size_t len = sizeof(b);
	uint32_t origin = 0, res = edge_budget_status(c, b, &len, &origin);

	if (report("budget", res, origin))
		return 1;
	printf("flags: 0x%" PRIx32 "\n", rd32(b + EDGE_BUDGET_OFF_FLAGS));
	printf("steps_spent: %" PRIu64 "\n", rd64(b + EDGE_BUDGET_OFF_STEPS_SPENT));
	printf("step_budget: %" PRIu64 "\n", rd64(b + EDGE_BUDGET_OFF_STEP_BUDGET));
	printf("policy_version: %" PRIu64 "\n",
	       rd64(b + EDGE_BUDGET_OFF_POLICY_VERSION));
	printf("rounds_sealed: %" PRIu64 "\n",
	       rd64(b + EDGE_BUDGET_OFF_ROUNDS_SEALED));
	printf("last_round: %" PRIu64 "\n", rd64(b + EDGE_BUDGET_OFF_LAST_ROUND));
	printf("time_floor: %" PRIu64 "\n", rd64(b + EDGE_BUDGET_OFF_TIME_FLOOR));
	print_hex("policy_id", b + EDGE_BUDGET_OFF_POLICY_ID, 8);
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end = NULL;
	unsigned long long x;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || !end || *end)
		return -1;
	*v = x;
	return 0;
}

static int cmd_ticket(edge_client *c, const char *path, const char *ree_str)
{
	uint64_t ree = 0;
	size_t len = 0;
	uint8_t *ticket;
	uint32_t left = 0, per_round = 0, origin = 0, res;

	if (parse_u64(ree_str, &ree))
		return usage();
	ticket = read_file(path, &len);
	if (!ticket) {
		fprintf(stderr, "edge-ta-cli: cannot read %s\n", path);
		return 1;
	}
	res = edge_verify_ticket(c, ticket, len, ree, &left, &per_round,
				 &origin);
	free(ticket);
	if (report("ticket", res, origin))
		return 1;
	printf("steps_left: %" PRIu32 "\nsteps_per_round: %" PRIu32 "\n",
	       left, per_round);
	return 0;
}

static int cmd_train(edge_client *c, const char *n_str, const char *feat_path,
		     const char *label_path, const char *out_path)
{
	uint64_t n = 0;
	size_t feat_len = 0, label_len = 0, out_len = 0;
	uint8_t *feat = NULL, *labels = NULL, *out = NULL;
	uint32_t origin = 0, res;
	int rc = 1;

	if (parse_u64(n_str, &n) || n == 0 || n > UINT32_MAX)
		return usage();
	feat = read_file(feat_path, &feat_len);
	labels = read_file(label_path, &label_len);
	if (!feat || !labels) {
		fprintf(stderr, "edge-ta-cli: cannot read %s\n",
			feat ? label_path : feat_path);
		goto out;
	}
	/* Room for the largest head's update. */
	out_len = EDGE_ENVELOPE_HEADER_SIZE + EDGE_UPDATE_HEADER_SIZE +
		  4 * (size_t)EDGE_MAX_HEAD_PARAMS + EDGE_SIG_SIZE;
	out = malloc(out_len);
	if (!out)
		goto out;
	res = edge_train_and_seal(c, (const float *)(void *)feat, (uint32_t)n,
				  feat_len, (const uint32_t *)(void *)labels,
				  label_len, out, &out_len, &origin);
	if (report("train", res, origin))
		goto out;
	if (write_file(out_path, out, out_len)) {
		fprintf(stderr, "edge-ta-cli: cannot write %s\n", out_path);
		goto out;
	}
	printf("update_bytes: %zu\n", out_len);
	rc = 0;
out:
	free(feat);
	free(labels);
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
	if (!strcmp(cmd, "load") && (argc == 3 || argc == 4)) {
		uint64_t version = 0, backbone_len = 0;
		size_t wrap_len = 0;
		uint8_t *wrap = read_file(argv[2], &wrap_len);

		if (!wrap) {
			fprintf(stderr, "edge-ta-cli: cannot read %s\n", argv[2]);
			return 1;
		}
		res = edge_load_model_file(c, argv[1], wrap, wrap_len,
					   argc == 4 ? argv[3] : NULL,
					   &backbone_len, &version, &origin);
		free(wrap);
		if (report("load", res, origin))
			return 1;
		printf("version: %" PRIu64 "\nbackbone_bytes: %" PRIu64 "\n",
		       version, backbone_len);
		return 0;
	}
	if (!strcmp(cmd, "infer") && argc == 4)
		return cmd_infer(c, argv[1], argv[2], argv[3]);
	if (!strcmp(cmd, "policy") && argc == 2) {
		size_t len = 0;
		uint8_t *pol = read_file(argv[1], &len);

		if (!pol) {
			fprintf(stderr, "edge-ta-cli: cannot read %s\n", argv[1]);
			return 1;
		}
		res = edge_install_policy(c, pol, len, &origin);
		free(pol);
		return report("policy", res, origin);
	}
	if (!strcmp(cmd, "budget") && argc == 1)
		return cmd_budget(c);
	if (!strcmp(cmd, "ticket") && argc == 3)
		return cmd_ticket(c, argv[1], argv[2]);
	if (!strcmp(cmd, "train") && argc == 5)
		return cmd_train(c, argv[1], argv[2], argv[3], argv[4]);
	if (!strcmp(cmd, "round") && argc == 7) {
		int rc = cmd_ticket(c, argv[1], argv[2]);

		if (rc)
			return rc;
		return cmd_train(c, argv[3], argv[4], argv[5], argv[6]);
	}
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
