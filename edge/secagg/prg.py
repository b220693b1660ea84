"""The mask generator: a 128-bit seed expanded into 32-bit words by AES-128-CTR.

Bonawitz et al. (CCS 2017) expand seeds with AES in counter mode; the TA does
the same with GP's TEE_ALG_AES_CTR (``ta/prg.c``), so a mask the TA added and
the one the aggregator removes are the same words. The counter block starts
at zero: every seed is fresh (a new key pair per round) and expands once.
"""

from __future__ import annotations

import hashlib

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEED_SIZE = 16
PAIR_LABEL = b"edge/v1 secagg pairwise seed\x00"
SHARE_SALT = hashlib.sha256(b"edge/v1 secagg share").digest()
SHARE_INFO = b"edge/v1 secagg share key"


def expand(seed: bytes, words: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """``words`` uint32 words of AES-128-CTR keystream under ``seed`` (little-endian).

    With ``out`` (a C-contiguous uint32 array of ``words``) the keystream is written into
    it and it is returned: the aggregator expands a hundred masks into one buffer.
    """
    if len(seed) != SEED_SIZE:
        raise ValueError(f"a mask seed is {SEED_SIZE} bytes, got {len(seed)}")
    if words < 0:
        raise ValueError("negative length")
    if out is None:
        out = np.empty(words, np.uint32)
    elif out.dtype != np.uint32 or out.shape != (words,) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous uint32 array of {words} words")
    enc = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    np.copyto(out, np.frombuffer(enc.update(bytes(4 * words)), "<u4"))
    return out

def pair_seed(shared_secret: bytes, binding: bytes) -> bytes:
    """The seed two devices derive from their X25519 shared secret for one round.

    ``binding`` names the round (fleet, round id, model version, ticket nonce), so
    the same key pair can never yield the same mask in two rounds.
    """
    if len(shared_secret) != 32:
        raise ValueError("an X25519 shared secret is 32 bytes")
    return hashlib.sha256(PAIR_LABEL + binding + shared_secret).digest()[:SEED_SIZE]


def share_key(shared_secret: bytes, binding: bytes, sender: bytes, recipient: bytes) -> bytes:
    """The AES-256-GCM key of the share pair ``sender`` sends ``recipient`` (the TA's
    ``secagg_share_key``; the info names the direction, so each key encrypts once)."""
    if len(shared_secret) != 32:
        raise ValueError("an X25519 shared secret is 32 bytes")
    info = SHARE_INFO + binding + sender + recipient
    return HKDF(hashes.SHA256(), 32, SHARE_SALT, info).derive(shared_secret)
