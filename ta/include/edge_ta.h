/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The whole ABI between the normal world and the edge trusted application.
 *
 * Included by the TA (ta/), by the client library (host/) and mirrored by the
 * Python binding (edge/tee_abi.py, checked against this file by a test).
 * Byte layouts of every artefact passed in or out are in docs/formats.md.
 */
#ifndef EDGE_TA_H
#define EDGE_TA_H

/* 5441d9b6-a634-4050-9731-e70ae47dd281 */
#define TA_EDGE_UUID \
	{ 0x5441d9b6, 0xa634, 0x4050, \
		{ 0x97, 0x31, 0xe7, 0x0a, 0xe4, 0x7d, 0xd2, 0x81 } }

/* Bumped when a command's parameters or an output layout change. */
#define EDGE_TA_ABI_VERSION 1

/*
 * Commands. Each comment lists params[0..3]; unlisted parameters are NONE.
 *
 * GET_IDENTITY: creates the device identity (Ed25519) and key-agreement
 *   (X25519) key pairs in secure storage on first use.
 *   [0] MEMREF_OUTPUT  device record (docs/formats.md "Device record"),
 *                      EDGE_DEVICE_RECORD_SIZE bytes
 */
#define TA_EDGE_CMD_GET_IDENTITY	0
/*
 * GET_STATUS: read-only; never creates anything.
 *   [0] MEMREF_OUTPUT  status block, EDGE_STATUS_SIZE bytes (layout below)
 */
#define TA_EDGE_CMD_GET_STATUS		1
/*
 * INSTALL_ANCHORS: provisioning, allowed once.
 *   [0] MEMREF_INPUT   model-signer Ed25519 public key (32) ||
 *                      aggregator Ed25519 public key (32)
 */
#define TA_EDGE_CMD_INSTALL_ANCHORS	2
/*
 * REPLACE_ANCHOR: replaces one anchor under a statement signed by its
 * current key (docs/formats.md "Anchor statement").
 *   [0] MEMREF_INPUT   signed anchor statement
 */
#define TA_EDGE_CMD_REPLACE_ANCHOR	3
/*
 * LOAD_BEGIN: verifies a model package manifest (signature, anti-rollback,
 * recipient), unwraps the content key and decrypts the head into a pending
 * slot. Nothing is committed until LOAD_FINISH. Replaces any pending load.
 *   [0] MEMREF_INPUT   signed manifest (the package up to its backbone)
 *   [1] VALUE_OUTPUT   a = chunk count, b = manifest flags
 *   [2] VALUE_OUTPUT   a = chunk size in bytes (0 without backbone),
 *                      b = bytes of the last stored chunk
 */
#define TA_EDGE_CMD_LOAD_BEGIN		4
/*
 * LOAD_CHUNK: checks stored backbone chunk `index` (in order, from 0) against
 * the digest the signed manifest lists, then returns its plaintext.
 *   [0] VALUE_INPUT    a = chunk index
 *   [1] MEMREF_INPUT   stored chunk (ciphertext || tag when encrypted)
 *   [2] MEMREF_OUTPUT  verified plaintext chunk
 */
#define TA_EDGE_CMD_LOAD_CHUNK		5
/*
 * LOAD_FINISH: after every chunk passed, atomically records the new version
 * and head in secure storage and makes the head active.
 *   [0] VALUE_OUTPUT   a = version low 32 bits, b = version high 32 bits
 */
#define TA_EDGE_CMD_LOAD_FINISH		6
/* LOAD_ABORT: drops a pending load. No parameters. */
#define TA_EDGE_CMD_LOAD_ABORT		7
/*
 * INFER: what the active package lets the normal world see of
 * features . W + b (docs/formats.md "Inference release"): the scores, the
 * k best labels, or the label only; each row is charged to the model
 * version's query budget in secure storage before anything is released.
 *   [0] VALUE_INOUT    in: a = batch size n; out: a = release
 *                      (EDGE_INFER_*), b = rows left in the query budget
 *                      (0xFFFFFFFF: no budget)
 *   [1] MEMREF_INPUT   features, float32 little-endian, n x head_in
 *   [2] MEMREF_OUTPUT  scores: float32 little-endian, n x head_out;
 *                      top-k: uint32 LE labels, n x k, best first;
 *                      label: uint32 LE, n
 */
#define TA_EDGE_CMD_INFER		8
/*
 * VERIFY_TICKET: checks a round ticket (docs/formats.md "Round ticket")
 * against the aggregator anchor, the loaded model, the replay and time
 * floors and the privacy policy; on success the session holds it for one
 * TRAIN_AND_SEAL. Changes no stored state.
 *   [0] MEMREF_INPUT   signed round ticket
 *   [1] VALUE_INPUT    a = REE time (Unix seconds) low 32 bits, b = high
 *   [2] VALUE_OUTPUT   a = steps left in the budget (saturated to 2^32-1),
 *                      b = steps this ticket takes per example count
 *                          (Poisson sampling; 0 when it depends on n)
 */
#define TA_EDGE_CMD_VERIFY_TICKET	9
/*
 * TRAIN_AND_SEAL: DP-SGD on the head with the held ticket, budget spent in
 * secure storage before anything is released, returns the sealed update.
 *   [0] VALUE_INPUT    a = example count n
 *   [1] MEMREF_INPUT   features, float32 little-endian, n x head_in
 *   [2] MEMREF_INPUT   labels, uint32 little-endian, n (each < head_out)
 *   [3] MEMREF_OUTPUT  sealed update (docs/formats.md "Sealed update")
 */
#define TA_EDGE_CMD_TRAIN_AND_SEAL	10
/*
 * BUDGET_STATUS: read-only.
 *   [0] MEMREF_OUTPUT  budget block, EDGE_BUDGET_SIZE bytes (layout below)
 */
#define TA_EDGE_CMD_BUDGET_STATUS	11
/*
 * INSTALL_POLICY: installs or replaces the privacy policy; it must be signed
 * by the model-signer anchor and carry a policy version above the stored one.
 *   [0] MEMREF_INPUT   signed privacy policy (docs/formats.md "Privacy policy")
 */
#define TA_EDGE_CMD_INSTALL_POLICY	12
#define TA_EDGE_CMD_COUNT		13

/*
 * TA-specific results (GlobalPlatform leaves 0x00000001..0xEFFFFFFF to TAs).
 * Generic classes use the GP codes: TEE_ERROR_BAD_FORMAT (malformed or
 * truncated), TEE_ERROR_SIGNATURE_INVALID, TEE_ERROR_MAC_INVALID (tampered
 * ciphertext), TEE_ERROR_EXCESS_DATA (over a documented limit),
 * TEE_ERROR_BAD_PARAMETERS (wrong parameter types or sizes),
 * TEE_ERROR_BAD_STATE (command out of order), TEE_ERROR_SHORT_BUFFER.
 */
#define EDGE_ERR_ROLLBACK		0xED6E0001 /* version not above stored */
#define EDGE_ERR_NOT_FOR_DEVICE		0xED6E0002 /* no recipient entry for us */
#define EDGE_ERR_UNKNOWN_SIGNER		0xED6E0003 /* key id is not the anchor */
#define EDGE_ERR_NOT_PROVISIONED	0xED6E0004 /* no trust anchors yet */
#define EDGE_ERR_ALREADY_PROVISIONED	0xED6E0005 /* anchors already set */
#define EDGE_ERR_NO_MODEL		0xED6E0006 /* no head loaded */
#define EDGE_ERR_STALE_STATEMENT	0xED6E0007 /* statement epoch not next */
#define EDGE_ERR_UNSUPPORTED_VERSION	0xED6E0008 /* format version unknown */
#define EDGE_ERR_WRONG_KIND		0xED6E0009 /* artefact of another kind */
#define EDGE_ERR_CHUNK_DIGEST		0xED6E000A /* chunk differs from manifest */
#define EDGE_ERR_EXPIRED		0xED6E000B /* ticket deadline passed */
#define EDGE_ERR_REPLAY			0xED6E000C /* round not above last sealed */
#define EDGE_ERR_WRONG_MODEL		0xED6E000D /* ticket for another version */
#define EDGE_ERR_POLICY_VIOLATION	0xED6E000E /* weaker than the policy */
#define EDGE_ERR_BUDGET_EXHAUSTED	0xED6E000F /* steps exceed what is left */
#define EDGE_ERR_NO_POLICY		0xED6E0010 /* no privacy policy yet */
#define EDGE_ERR_WEAK_KEY		0xED6E0011 /* key off-curve/small order */
#define EDGE_ERR_INFER_DISABLED		0xED6E0012 /* package releases no INFER */

/* Sizes and limits (docs/formats.md explains each). */
#define EDGE_PUBKEY_SIZE		32
#define EDGE_KEY_ID_SIZE		16
#define EDGE_SIG_SIZE			64
#define EDGE_ENVELOPE_HEADER_SIZE	28
#define EDGE_DEVICE_RECORD_SIZE		(EDGE_ENVELOPE_HEADER_SIZE + 72 + EDGE_SIG_SIZE)
#define EDGE_ANCHOR_STATEMENT_SIZE	(EDGE_ENVELOPE_HEADER_SIZE + 48 + EDGE_SIG_SIZE)
#define EDGE_MAX_MANIFEST_SIZE		(1024 * 1024)
#define EDGE_MAX_RECIPIENTS		256
#define EDGE_MAX_CHUNKS			4096
#define EDGE_MIN_CHUNK_LOG2		12
#define EDGE_MAX_CHUNK_LOG2		20
#define EDGE_MAX_HEAD_IN		4096
#define EDGE_MAX_HEAD_OUT		1024
#define EDGE_MAX_HEAD_PARAMS		(128 * 1024)
#define EDGE_MAX_METADATA		4096
#define EDGE_MAX_INFER_BATCH		1024
#define EDGE_TICKET_SIZE		(EDGE_ENVELOPE_HEADER_SIZE + 72 + EDGE_SIG_SIZE)
#define EDGE_POLICY_SIZE		(EDGE_ENVELOPE_HEADER_SIZE + 64 + EDGE_SIG_SIZE)
#define EDGE_UPDATE_HEADER_SIZE		88	/* sealed update body before the delta */
#define EDGE_MAX_TRAIN_EXAMPLES		4096
#define EDGE_MAX_TRAIN_FEATURE_BYTES	(8 * 1024 * 1024)
#define EDGE_MAX_STEPS_PER_ROUND	100000

/* Manifest flags. */
/* Fixed part of a package manifest (docs/formats.md), recipients follow. */
#define EDGE_MANIFEST_FIXED_SIZE	104
/* Inference release of a package (manifest byte 92; INFER [0].a out). */
#define EDGE_INFER_NONE			0	/* INFER refused */
#define EDGE_INFER_LABEL		1	/* the best label */
#define EDGE_INFER_TOPK			2	/* the k best labels */
#define EDGE_INFER_SCORES		3	/* every score */
#define EDGE_INFER_UNLIMITED		0xFFFFFFFFu /* rows left, no budget */
/* Query budget rows reserved in secure storage per write. */
#define EDGE_INFER_RESERVE_ROWS		1024
#define EDGE_PKG_FLAG_BACKBONE		0x1
#define EDGE_PKG_FLAG_BACKBONE_ENCRYPTED 0x2

/* Status block returned by GET_STATUS, little-endian. */
#define EDGE_STATUS_SIZE		104
#define EDGE_STATUS_OFF_ABI_VERSION	0	/* u32 */
#define EDGE_STATUS_OFF_FLAGS		4	/* u32, EDGE_STATUS_F_* */
#define EDGE_STATUS_OFF_MODEL_VERSION	8	/* u64, 0 = none */
#define EDGE_STATUS_OFF_DEVICE_ID	16	/* 16 bytes, zero if none */
#define EDGE_STATUS_OFF_HEAD_IN		32	/* u32 */
#define EDGE_STATUS_OFF_HEAD_OUT	36	/* u32 */
#define EDGE_STATUS_OFF_SIGNER_EPOCH	40	/* u64 */
#define EDGE_STATUS_OFF_AGG_EPOCH	48	/* u64 */
#define EDGE_STATUS_OFF_SIGNER_KEY_ID	56	/* 16 bytes */
#define EDGE_STATUS_OFF_AGG_KEY_ID	72	/* 16 bytes */
#define EDGE_STATUS_OFF_PACKAGE_ID	88	/* 16 bytes */
#define EDGE_STATUS_F_IDENTITY		0x1
#define EDGE_STATUS_F_ANCHORS		0x2
#define EDGE_STATUS_F_MODEL		0x4

/* Ticket update modes. */
#define EDGE_UPDATE_MODE_FLOAT32	1	/* plain float32 delta */

/* Policy sampling modes and flags. */
#define EDGE_SAMPLING_POISSON		1
#define EDGE_SAMPLING_FIXED		2
#define EDGE_POLICY_F_NO_DP		0x1	/* test-only: noise may be 0 */

/* Budget block returned by BUDGET_STATUS, little-endian. */
#define EDGE_BUDGET_SIZE		64
#define EDGE_BUDGET_OFF_FLAGS		0	/* u32: bit 0 policy installed */
#define EDGE_BUDGET_OFF_RESERVED	4	/* u32 */
#define EDGE_BUDGET_OFF_STEPS_SPENT	8	/* u64 */
#define EDGE_BUDGET_OFF_STEP_BUDGET	16	/* u64, from the policy */
#define EDGE_BUDGET_OFF_POLICY_VERSION	24	/* u64 */
#define EDGE_BUDGET_OFF_ROUNDS_SEALED	32	/* u64 */
#define EDGE_BUDGET_OFF_LAST_ROUND	40	/* u64, 0 = none */
#define EDGE_BUDGET_OFF_TIME_FLOOR	48	/* u64 Unix seconds */
#define EDGE_BUDGET_OFF_POLICY_ID	56	/* 8 bytes: key id of policy digest */
#define EDGE_BUDGET_F_POLICY		0x1

#endif /* EDGE_TA_H */
