"""Key files: Ed25519 role keys as PKCS8 PEM private (0600) and SPKI PEM (or raw) public.

The release tool writes them; the aggregator, the demo and ``edge tee`` read them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import ConfigError
from edge.formats.keys import PUBKEY_SIZE, ed25519_public_from_raw, ed25519_raw_public
from edge.state_files import write_durably

T = TypeVar("T")

ROLES = ("model-signer", "aggregator", "registrar")
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
MAX_KEY_FILE = 64 * 1024


def key_paths(prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Return (PREFIX.key, PREFIX.pub)."""
    base = os.fspath(prefix)
    return Path(base + PRIVATE_SUFFIX), Path(base + PUBLIC_SUFFIX)


def write_new_file(path: Path, data: bytes, *, mode: int, force: bool) -> None:
    """Write ``data`` durably, created with ``mode``; refuse to replace unless ``force``."""
    try:
        write_durably(path, data, mode=mode, replace=force)
    except FileExistsError as exc:
        raise ConfigError(f"{path} exists; refusing to overwrite it (use --force)") from exc
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """Return the unencrypted PKCS8 PEM of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(pub: Ed25519PublicKey | bytes) -> bytes:
    """Return the SubjectPublicKeyInfo PEM of a public key (object or raw 32 bytes)."""
    if isinstance(pub, bytes | bytearray):
        pub = ed25519_public_from_raw(bytes(pub))
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_private_key(path: Path, key: Ed25519PrivateKey, *, force: bool = False) -> None:
    """Write a private key as PKCS8 PEM, readable by its owner only (0600)."""
    write_new_file(path, private_pem(key), mode=0o600, force=force)


def generate_role_key(
    prefix: str | os.PathLike[str], *, force: bool = False
) -> tuple[Path, Path, Ed25519PrivateKey]:
    """Generate an Ed25519 key and write PREFIX.key (0600) and PREFIX.pub."""
    priv_path, pub_path = key_paths(prefix)
    if not force:
        for path in (priv_path, pub_path):
            if path.exists() or path.is_symlink():
                raise ConfigError(f"{path} exists; refusing to overwrite it (use --force)")
    key = Ed25519PrivateKey.generate()
    write_private_key(priv_path, key, force=force)
    write_new_file(pub_path, public_pem(key.public_key()), mode=0o644, force=force)
    return priv_path, pub_path, key


def _read_key_file(path: str | os.PathLike[str], what: str) -> bytes:
    """Read a key file, bounded, with an error that names it."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {os.fspath(path)}: {exc.strerror}") from exc
    if len(data) > MAX_KEY_FILE:
        raise ConfigError(f"{what} {os.fspath(path)}: file too large for a key")
    return data


def _load_pem(path: str | os.PathLike[str], what: str, data: bytes,
              load: Callable[[bytes], object], kind: type[T], form: str) -> T:
    """Parse a PEM key file of the given Ed25519 ``kind``, errors naming the file."""
    try:
        key = load(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} {os.fspath(path)}: not {form}") from exc
    if not isinstance(key, kind):
        raise ConfigError(f"{what} {os.fspath(path)}: not an Ed25519 key")
    return key


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load an Ed25519 PKCS8 PEM private key."""
    data = _read_key_file(path, "private key")
    return _load_pem(path, "private key", data,
                     lambda d: serialization.load_pem_private_key(d, password=None),
                     Ed25519PrivateKey, "an unencrypted PKCS8 PEM private key")


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """Load an Ed25519 public key (SPKI PEM, or a raw 32-byte file) as raw bytes;
    ``WeakKey`` for a key off the curve, non-canonical or of small order."""
    what = f"public key {os.fspath(path)}"
    data = _read_key_file(path, "public key")
    if len(data) == PUBKEY_SIZE and not data.startswith(b"-----"):
        ed25519_public_from_raw(data, what)
        return data
    key = _load_pem(path, "public key", data, serialization.load_pem_public_key,
                    Ed25519PublicKey, "a SubjectPublicKeyInfo PEM public key")
    raw = ed25519_raw_public(key)
    ed25519_public_from_raw(raw, what)
    return raw
