"""Files to and from a board over its console: base64 chunks, a SHA-256 per chunk, resumable.

A file goes into a staging folder on the board as numbered chunks; each chunk is
decoded into ``<name>.<i>.t``, checked against its SHA-256 by the board's own
``sha256sum`` and only then renamed to ``<name>.<i>``. A chunk that is there with
the right hash is not sent again, so a transfer cut by a dropped console resumes
where it stopped. The file itself appears (renamed from ``<name>.t`` after the
whole-file hash matched) only when complete: a reader never sees part of it.
Only busybox applets are used on the board (base64, sha256sum, cut, cat, mv).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from edge.board.console import Console
from edge.errors import TransferCorrupt

# Raw bytes per console line: 512 base64 characters, so the whole command stays
# under busybox ash's line editor limit (1024 by default) as well as the tty's 4095.
CHUNK = 384
_SAFE = re.compile(r"^[A-Za-z0-9._/-]+$")


@dataclass
class TransferStats:
    """What pushes did: chunks sent now, and chunks or whole files already on the board."""

    sent: int = 0
    reused: int = 0


def _path(path: str) -> str:
    if not _SAFE.match(path):
        raise ValueError(f"remote path {path!r}: only [A-Za-z0-9._/-]")
    return path


def remote_hashes(console: Console, folder: str) -> dict[str, str]:
    """SHA-256 of every file in ``folder`` on the board (empty if there is no folder)."""
    out = console.check(f"cd {_path(folder)} 2>/dev/null || exit 0; "
                        f"for f in *; do [ -f \"$f\" ] && sha256sum \"$f\"; done; true")
    hashes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            hashes[parts[1]] = parts[0]
    return hashes


def push(console: Console, folder: str, name: str, data: bytes,
         stats: TransferStats | None = None) -> None:
    """Put ``data`` at ``folder/name`` on the board, resuming a cut transfer."""
    stats = stats if stats is not None else TransferStats()
    folder, name = _path(folder), _path(name)
    whole = hashlib.sha256(data).hexdigest()
    have = remote_hashes(console, folder)
    if have.get(name) == whole:
        stats.reused += 1  # the whole file (its chunks are gone once assembled)
        return
    console.check(f"mkdir -p {folder}")
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    for i, chunk in enumerate(chunks):
        digest = hashlib.sha256(chunk).hexdigest()
        part = f"{name}.{i}"
        if have.get(part) == digest:
            stats.reused += 1
            continue
        text = base64.b64encode(chunk).decode()
        rc, out = console.run(
            f"cd {folder} && echo {text} | base64 -d > {part}.t && "
            f"[ \"$(sha256sum < {part}.t | cut -c1-64)\" = {digest} ] && mv {part}.t {part}")
        if rc != 0:
            raise TransferCorrupt(f"{name}: chunk {i} arrived with another SHA-256 than sent "
                                  f"(exit {rc}): {out.strip()[-200:]}; run again to resend it")
        stats.sent += 1
    n = len(chunks)
    rc, out = console.run(
        f"cd {folder} && : > {name}.t && i=0 && while [ $i -lt {n} ]; do "
        f"cat {name}.$i >> {name}.t || exit 1; i=$((i+1)); done && "
        f"[ \"$(sha256sum < {name}.t | cut -c1-64)\" = {whole} ] && mv {name}.t {name} "
        f"&& i=0 && while [ $i -lt {n} ]; do rm -f {name}.$i; i=$((i+1)); done")
    if rc != 0:
        raise TransferCorrupt(f"{name}: the assembled file has another SHA-256 than sent "
                              f"(exit {rc}): {out.strip()[-200:]}")


def fetch(console: Console, path: str, max_size: int) -> bytes:
    """Read a (small) file of the board, checked against the board's own SHA-256."""
    path = _path(path)
    out = console.check(f"wc -c < {path} && sha256sum < {path} | cut -c1-64 && base64 {path}")
    lines = out.split()
    if len(lines) < 2 or not lines[0].isdigit():
        raise TransferCorrupt(f"{path}: unexpected answer {out[:200]!r}")
    size = int(lines[0])
    if size > max_size:
        raise TransferCorrupt(f"{path}: {size} bytes, more than the {max_size} expected")
    try:
        data = base64.b64decode("".join(lines[2:]), validate=True)
    except ValueError:
        raise TransferCorrupt(f"{path}: the board's base64 did not decode") from None
    if len(data) != size or hashlib.sha256(data).hexdigest() != lines[1]:
        raise TransferCorrupt(f"{path}: {len(data)} bytes arrived with another SHA-256 "
                              f"than the board computed")
    return data
