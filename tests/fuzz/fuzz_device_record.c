// SPDX-License-Identifier: BSD-2-Clause
/*
 * Device records (ta/identity.c): identity_device_record_open(), which
 * takes its signer from the record itself, as is (any key in the body goes
 * through the strict Ed25519 checks) and re-signed after putting keys.tsv's
 * device key in the body, so that the fields behind the signature are
 * reached; an accepted record must give back what it holds.
 */
#include <stdlib.h>
#include <string.h>

#include <tee_internal_api.h>
#include <edge_ta.h>

#include "bytes.h"
#include "crypto.h"
#include "envelope.h"
#include "fuzz_common.h"
#include "identity.h"

static void open_record(const uint8_t *rec, size_t len)
{
	uint8_t sign_pub[EDGE_PUBKEY_SIZE] = { 0 };
	uint8_t kex_pub[EDGE_PUBKEY_SIZE] = { 0 };
	uint8_t device_id[EDGE_KEY_ID_SIZE] = { 0 };
	uint8_t id[EDGE_KEY_ID_SIZE] = { 0 };
	uint32_t abi = 0;
	const uint8_t *body = rec + EDGE_ENVELOPE_HEADER_SIZE;

	if (identity_device_record_open(rec, len, sign_pub, kex_pub,
					device_id, &abi))
		return;
	FUZZ_ASSERT(len == EDGE_DEVICE_RECORD_SIZE);
	FUZZ_ASSERT(!memcmp(sign_pub, body, EDGE_PUBKEY_SIZE));
	FUZZ_ASSERT(!memcmp(kex_pub, body + 32, EDGE_PUBKEY_SIZE));
	FUZZ_ASSERT(abi == get_le32(body + 64));
	FUZZ_ASSERT(!edge_key_id(sign_pub, id) &&
		    !memcmp(id, device_id, sizeof(id)));
	/* All outputs optional. */
	FUZZ_ASSERT(!identity_device_record_open(rec, len, NULL, NULL, NULL,
						 NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t *copy = NULL;

	open_record(data, len);

	copy = fuzz_dup(data, len);
	if (len >= EDGE_ENVELOPE_HEADER_SIZE + EDGE_PUBKEY_SIZE +
		   EDGE_SIG_SIZE) {
		memcpy(copy + EDGE_ENVELOPE_HEADER_SIZE, fuzz_device.pub,
		       EDGE_PUBKEY_SIZE);
		if (fuzz_resign(copy, len, &fuzz_device))
			open_record(copy, len);
	}
	free(copy);
	return 0;
}
