"""OP-TEE's signed TA image format (``struct shdr`` and the bootstrap/encrypted TA headers).

The layout is the one OP-TEE OS checks when it loads a TA (``core/crypto/signed_hdr.c``)
and its dev kit's ``scripts/sign_encrypt.py`` writes, all integers little-endian:

    shdr          magic u32 | img_type u32 | img_size u32 | algo u32 | hash_size u16 | sig_size u16
    hash          hash_size bytes: SHA-256 over everything signed (below)
    signature     sig_size bytes: RSA over ``hash`` (PKCS#1 v1.5 or PSS, salt = 32)
    ta header     uuid 16 bytes (RFC 4122 byte order) | ta_version u32
    [encrypted]   enc_algo u32 | flags u32 | iv_size u16 | tag_size u16 | iv | tag
    image         img_size bytes: the stripped ELF (or its AES-GCM ciphertext)

``hash = SHA-256(shdr | ta header | [encrypted header, iv, tag] | plaintext ELF)``.
Only RSA keys are used by OP-TEE for TAs; subkey chains (img_type 3) are not written
or read here. Pure format code: no I/O, only ``cryptography``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import uuid as uuidlib
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import ConfigError, Malformed, Oversized, SignatureInvalid, Tampered

SHDR_MAGIC = 0x4F545348  # "HSTO" little-endian
SHDR = struct.Struct("<IIIIHH")
TA_HDR = struct.Struct("<16sI")
ENC_HDR = struct.Struct("<IIHH")
HASH_SIZE = 32
IV_SIZE = 12
TAG_SIZE = 16
TEE_ALG_AES_GCM = 0x40000810
# OP-TEE maps a TA into a few MiB of secure memory; anything near this is not a TA.
MAX_IMAGE_SIZE = 16 << 20
MIN_RSA_BITS, MAX_RSA_BITS = 2048, 4096
ELF_MAGIC = b"\x7fELF"


class ImageType(IntEnum):
    """``shdr.img_type``."""

    BOOTSTRAP_TA = 1
    ENCRYPTED_TA = 2
    SUBKEY = 3


class SigAlgo(IntEnum):
    """``shdr.algo``: the GP algorithm ids OP-TEE accepts for a TA signature."""

    RSASSA_PKCS1_PSS_MGF1_SHA256 = 0x70414930
    RSASSA_PKCS1_V1_5_SHA256 = 0x70004830


class EncKeyType(IntEnum):
    """``flags`` of the encrypted-TA header: which key OP-TEE derives to decrypt."""

    DEV_SPECIFIC = 0
    CLASS_WIDE = 1


ALGO_NAMES = {
    "pkcs1v15": SigAlgo.RSASSA_PKCS1_V1_5_SHA256,
    "pss": SigAlgo.RSASSA_PKCS1_PSS_MGF1_SHA256,
}


@dataclass(frozen=True)
class Encryption:
    """The encrypted-TA header: key type, IV and GCM tag."""

    key_type: EncKeyType
    iv: bytes
    tag: bytes


@dataclass(frozen=True)
class TaImage:
    """A parsed signed TA; ``payload`` is the ELF, or its ciphertext when ``enc`` is set."""

    img_type: ImageType
    algo: SigAlgo
    img_size: int
    digest: bytes
    signature: bytes
    uuid: uuidlib.UUID
    ta_version: int
    enc: Encryption | None
    payload: bytes

    def signed_prefix(self) -> bytes:
        """The headers the digest covers, in order, before the plaintext image."""
        return _signed_prefix(
            self.img_type, self.img_size, self.algo, len(self.signature),
            self.uuid, self.ta_version, self.enc,
        )


def _signed_prefix(
    img_type: ImageType, img_size: int, algo: SigAlgo, sig_size: int,
    uuid: uuidlib.UUID, ta_version: int, enc: Encryption | None,
) -> bytes:
    out = SHDR.pack(SHDR_MAGIC, img_type, img_size, algo, HASH_SIZE, sig_size)
    out += TA_HDR.pack(uuid.bytes, ta_version)
    if enc is not None:
        out += ENC_HDR.pack(TEE_ALG_AES_GCM, enc.key_type, IV_SIZE, TAG_SIZE) + enc.iv + enc.tag
    return out


def _padding(algo: SigAlgo) -> padding.AsymmetricPadding:
    if algo == SigAlgo.RSASSA_PKCS1_PSS_MGF1_SHA256:
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=HASH_SIZE)
    return padding.PKCS1v15()


def _check_rsa(key: rsa.RSAPublicKey, what: str) -> None:
    if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        raise ConfigError(f"{what}: RSA-{key.key_size}; OP-TEE TA keys are RSA "
                          f"{MIN_RSA_BITS}..{MAX_RSA_BITS} bits")


def sign_ta(
    elf: bytes,
    key: rsa.RSAPrivateKey,
    uuid: uuidlib.UUID,
    *,
    ta_version: int = 0,
    algo: SigAlgo = SigAlgo.RSASSA_PKCS1_V1_5_SHA256,
    enc_key: bytes | None = None,
    enc_key_type: EncKeyType = EncKeyType.DEV_SPECIFIC,
    iv: bytes | None = None,
) -> bytes:
    """Return the signed (and, with ``enc_key``, AES-GCM encrypted) TA image of a stripped ELF.

    PKCS#1 v1.5 (the default) is deterministic, so an unencrypted image is reproducible;
    PSS draws a salt and encryption an IV for every image.
    """
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("a TA signing key must be an RSA private key")
    _check_rsa(key.public_key(), "TA signing key")
    if not elf.startswith(ELF_MAGIC):
        raise Malformed("TA image: the input is not an ELF file (sign the stripped ELF)")
    if len(elf) > MAX_IMAGE_SIZE:
        raise Oversized(f"TA image: {len(elf)} bytes, over the {MAX_IMAGE_SIZE}-byte limit")
    if not 0 <= ta_version < 2**32:
        raise ConfigError(f"TA version {ta_version} is not in 0..2^32-1")
    enc = None
    payload = elf
    if enc_key is not None:
        if len(enc_key) not in (16, 24, 32):
            raise ConfigError(f"TA encryption key: {len(enc_key)} bytes, expected 16, 24 or 32")
        iv = os.urandom(IV_SIZE) if iv is None else iv
        if len(iv) != IV_SIZE:
            raise ConfigError(f"TA encryption IV: {len(iv)} bytes, expected {IV_SIZE}")
        sealed = AESGCM(enc_key).encrypt(iv, elf, None)
        payload = sealed[:-TAG_SIZE]
        enc = Encryption(EncKeyType(enc_key_type), iv, sealed[-TAG_SIZE:])
    sig_size = (key.key_size + 7) // 8
    img_type = ImageType.BOOTSTRAP_TA if enc is None else ImageType.ENCRYPTED_TA
    prefix = _signed_prefix(img_type, len(elf), algo, sig_size, uuid, ta_version, enc)
    digest = hashlib.sha256(prefix + elf).digest()
    signature = key.sign(digest, _padding(algo), utils.Prehashed(hashes.SHA256()))
    shdr_len = SHDR.size
    return prefix[:shdr_len] + digest + signature + prefix[shdr_len:] + payload


def parse_ta(data: bytes) -> TaImage:
    """Parse a signed TA image's structure, every length checked (no signature check)."""
    if len(data) > MAX_IMAGE_SIZE + 4096 + SHDR.size:
        raise Oversized(f"TA image: {len(data)} bytes, over the {MAX_IMAGE_SIZE}-byte limit")
    if len(data) < SHDR.size:
        raise Malformed(f"TA image: truncated: {len(data)} bytes, shorter than its "
                        f"{SHDR.size}-byte header")
    magic, img_type, img_size, algo, hash_size, sig_size = SHDR.unpack_from(data)
    if magic != SHDR_MAGIC:
        raise Malformed(f"TA image: bad magic 0x{magic:08x} (expected 0x{SHDR_MAGIC:08x})")
    if img_type == ImageType.SUBKEY:
        raise Malformed("TA image: a subkey chain (img_type 3) is not supported here")
    if img_type not in (ImageType.BOOTSTRAP_TA, ImageType.ENCRYPTED_TA):
        raise Malformed(f"TA image: unknown img_type {img_type}")
    if algo not in SigAlgo.__members__.values():
        raise Malformed(f"TA image: unknown signature algorithm 0x{algo:08x}")
    if hash_size != HASH_SIZE:
        raise Malformed(f"TA image: hash_size {hash_size}, expected {HASH_SIZE} (SHA-256)")
    if not MIN_RSA_BITS // 8 <= sig_size <= MAX_RSA_BITS // 8:
        raise Malformed(f"TA image: sig_size {sig_size} is not an RSA "
                        f"{MIN_RSA_BITS}..{MAX_RSA_BITS}-bit signature")
    if img_size > MAX_IMAGE_SIZE:
        raise Oversized(f"TA image: img_size {img_size}, over the {MAX_IMAGE_SIZE}-byte limit")
    off = SHDR.size
    need = off + hash_size + sig_size + TA_HDR.size
    if len(data) < need:
        raise Malformed(f"TA image: truncated: {len(data)} bytes, headers need {need}")
    digest = data[off:off + hash_size]
    off += hash_size
    signature = data[off:off + sig_size]
    off += sig_size
    raw_uuid, ta_version = TA_HDR.unpack_from(data, off)
    off += TA_HDR.size
    enc = None
    if img_type == ImageType.ENCRYPTED_TA:
        if len(data) < off + ENC_HDR.size:
            raise Malformed("TA image: truncated in the encryption header")
        enc_algo, flags, iv_size, tag_size = ENC_HDR.unpack_from(data, off)
        off += ENC_HDR.size
        if enc_algo != TEE_ALG_AES_GCM:
            raise Malformed(f"TA image: unknown encryption algorithm 0x{enc_algo:08x}")
        if flags not in EncKeyType.__members__.values():
            raise Malformed(f"TA image: unknown encryption key type {flags}")
        if iv_size != IV_SIZE or tag_size != TAG_SIZE:
            raise Malformed(f"TA image: iv/tag sizes {iv_size}/{tag_size}, expected "
                            f"{IV_SIZE}/{TAG_SIZE}")
        if len(data) < off + iv_size + tag_size:
            raise Malformed("TA image: truncated in the IV or tag")
        enc = Encryption(EncKeyType(flags), data[off:off + iv_size],
                         data[off + iv_size:off + iv_size + tag_size])
        off += iv_size + tag_size
    left = len(data) - off
    if left != img_size:
        kind = "truncated" if left < img_size else "trailing bytes"
        raise Malformed(f"TA image: {kind}: {left} image bytes after the headers, "
                        f"img_size says {img_size}")
    return TaImage(ImageType(img_type), SigAlgo(algo), img_size, digest, signature,
                   uuidlib.UUID(bytes=raw_uuid), ta_version, enc, data[off:])


def verify_ta(
    data: bytes,
    pub: rsa.RSAPublicKey,
    *,
    uuid: uuidlib.UUID | None = None,
    enc_key: bytes | None = None,
) -> TaImage:
    """Check a TA image as OP-TEE does: signature over the digest, digest over the image.

    ``SignatureInvalid`` when another key signed it, ``Tampered`` when the image or a
    header no longer matches the signed digest (or an encrypted image fails its tag),
    ``Malformed`` for a structural fault or another TA's UUID.
    """
    if not isinstance(pub, rsa.RSAPublicKey):
        raise ConfigError("a TA verification key must be an RSA public key")
    _check_rsa(pub, "TA verification key")
    image = parse_ta(data)
    if len(image.signature) != (pub.key_size + 7) // 8:
        raise SignatureInvalid(f"TA image: a {len(image.signature) * 8}-bit signature, the "
                               f"key is RSA-{pub.key_size}: signed by another key")
    try:
        pub.verify(image.signature, image.digest, _padding(image.algo),
                   utils.Prehashed(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureInvalid("TA image: the signature does not verify under this key "
                               "(signed by another key, or the hash field was altered)") from None
    elf = image.payload
    if image.enc is not None:
        if enc_key is None:
            raise ConfigError("TA image is encrypted: its digest covers the plaintext, "
                              "give the encryption key to verify it")
        try:
            elf = AESGCM(enc_key).decrypt(image.enc.iv, image.payload + image.enc.tag, None)
        except (InvalidTag, ValueError):
            raise Tampered("TA image: the encrypted image fails its GCM tag "
                           "(tampered, or another encryption key)") from None
    if not hmac.compare_digest(hashlib.sha256(image.signed_prefix() + elf).digest(),
                               image.digest):
        raise Tampered("TA image: the image or its headers do not match the signed hash")
    if uuid is not None and image.uuid != uuid:
        raise Malformed(f"TA image: it is TA {image.uuid}, expected {uuid}")
    return image


def describe_ta(image: TaImage) -> dict[str, object]:
    """The fields of a TA image for ``firmware-sign inspect``."""
    info: dict[str, object] = {
        "kind": "op-tee signed TA",
        "img_type": image.img_type.name.lower(),
        "uuid": str(image.uuid),
        "ta_version": image.ta_version,
        "algo": image.algo.name,
        "signature_bits": len(image.signature) * 8,
        "img_size": image.img_size,
        "hash": image.digest.hex(),
    }
    if image.enc is not None:
        info.update(enc_key_type=image.enc.key_type.name.lower(), iv=image.enc.iv.hex(),
                    tag=image.enc.tag.hex())
    return info


def is_ta_image(head: bytes) -> bool:
    """True when ``head`` starts with OP-TEE's signed-header magic."""
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] == SHDR_MAGIC
