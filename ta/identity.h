/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The device identity: a persistent Ed25519 identity key pair and a
 * persistent X25519 key-agreement key pair in TEE_STORAGE_PRIVATE, created
 * inside the TA on first use; their private parts never leave the TA. The
 * device id is key_id(Ed25519 public key). The device record (kind 3) is the
 * self-signed envelope that publishes both public keys.
 */
#ifndef EDGE_IDENTITY_H
#define EDGE_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>
#include <tee_internal_api.h>
#include <edge_ta.h>

struct edge_identity {
	bool present;
	TEE_ObjectHandle sign_key;	/* open persistent Ed25519 key pair */
	TEE_ObjectHandle kex_key;	/* open persistent X25519 key pair */
	uint8_t sign_pub[EDGE_PUBKEY_SIZE];
	uint8_t kex_pub[EDGE_PUBKEY_SIZE];
	uint8_t device_id[EDGE_KEY_ID_SIZE];
};

/*
 * Opens the stored identity into id. TEE_ERROR_ITEM_NOT_FOUND if there is
 * none (nothing is created). Closes what id held before.
 */
TEE_Result identity_load(struct edge_identity *id);

/*
 * Opens the stored identity, creating it first if there is none: X25519 key
 * pair first, Ed25519 last, so a present Ed25519 object implies a complete
 * identity (an interrupted creation is redone).
 */
TEE_Result identity_load_or_create(struct edge_identity *id);

/* Closes the key handles and forgets id. */
void identity_close(struct edge_identity *id);

/*
 * Builds the self-signed device record (EDGE_DEVICE_RECORD_SIZE bytes) for
 * the given keys; sign_key signs it.
 */
TEE_Result identity_device_record(TEE_ObjectHandle sign_key,
				  const uint8_t sign_pub[EDGE_PUBKEY_SIZE],
				  const uint8_t kex_pub[EDGE_PUBKEY_SIZE],
				  uint8_t rec[EDGE_DEVICE_RECORD_SIZE]);

/*
 * Verifies a device record: envelope checks (kind 3, exact size), signer key
 * id = key_id of the record's Ed25519 key, signature by that key, reserved
 * zero. Outputs the keys, device id and ABI version; any output may be NULL.
 */
TEE_Result identity_device_record_open(const uint8_t *buf, size_t len,
				       uint8_t sign_pub[EDGE_PUBKEY_SIZE],
				       uint8_t kex_pub[EDGE_PUBKEY_SIZE],
				       uint8_t device_id[EDGE_KEY_ID_SIZE],
				       uint32_t *abi_version);

#endif /* EDGE_IDENTITY_H */
