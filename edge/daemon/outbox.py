"""The daemon's outbox: sealed updates (and signed skip reports) kept on disk until their
round has closed.

A sealed update has spent privacy budget in the TA, so losing it (a daemon
crash before the PUBACK, a broker that loses an acknowledged message) costs
budget for nothing. Each one is written here, synced, before it is published,
and removed only once the aggregator has moved past its round (docs/daemon.md).
The file is the sealed update itself (kind 5, signed by the TA): it carries its
round id and model version, and nothing else is needed to publish it again. A skip
report (kind 12) is kept the same way, as ``round-<id>.skip``: it is the board's only word
on why it did not train, and a broker that is down when it is made must not lose it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError
from edge.formats.skip import parse_skip
from edge.formats.update import parse_any_update
from edge.logformat import kv_value
from edge.state_files import write_durably

log = logging.getLogger("edge.daemon")
SUFFIX = ".update"
SKIP_SUFFIX = ".skip"


def update_key(sealed: bytes) -> tuple[int, int]:
    """(round id, model version trained) of a sealed update; EdgeError if it is not one."""
    update = parse_any_update(sealed)
    return update.round_id, update.model_version


def skip_key(report: bytes) -> tuple[int, int]:
    """(round id, model version the TA held) of a skip report; EdgeError if it is not one."""
    skip = parse_skip(report)
    return skip.round_id, skip.model_version


@dataclass(frozen=True)
class Entry:
    """One kept sealed update."""

    round_id: int
    model_version: int
    sealed: bytes
    path: Path | None  # None: the disk refused it, so it is not kept


class Outbox:
    """Sealed updates in ``directory/round-<id>.update`` (0600), one per round; with
    ``suffix=SKIP_SUFFIX, key=skip_key``, the skip reports beside them."""

    def __init__(self, directory: Path, suffix: str = SUFFIX,
                 key: Callable[[bytes], tuple[int, int]] = update_key) -> None:
        """Open (creating, mode 0700) the folder; leftover temporary files are removed."""
        self.directory = Path(directory)
        self.suffix = suffix
        self.key = key
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in self.directory.glob("*.tmp"):
            # A crash while writing: the rename never happened, so nothing was published.
            stale.unlink(missing_ok=True)
        # What the folder holds, read once: this process is its only writer (one daemon
        # per work_dir), and a round asked for it six times.
        self._entries: dict[int, Entry] | None = None

    def _path(self, round_id: int) -> Path:
        return self.directory / f"round-{round_id:020d}{self.suffix}"

    def put(self, sealed: bytes) -> Entry:
        """Keep a sealed update durably (written, fsync'd, renamed, folder fsync'd)."""
        round_id, model_version = self.key(sealed)
        final = self._path(round_id)
        write_durably(final, sealed, mode=0o600)
        entry = Entry(round_id, model_version, sealed, final)
        if self._entries is not None:
            self._entries[round_id] = entry
        return entry

    def get(self, round_id: int) -> Entry | None:
        """The kept update of a round, if any."""
        return next((e for e in self.entries() if e.round_id == round_id), None)

    def entries(self) -> list[Entry]:
        """Every kept update, oldest round first; unreadable files are set aside as .bad
        (when the folder is first read)."""
        if self._entries is None:
            self._entries = {e.round_id: e for e in self._read()}
        return sorted(self._entries.values(), key=lambda e: e.round_id)

    def _read(self) -> list[Entry]:
        out = []
        for path in sorted(self.directory.glob(f"*{self.suffix}")):
            try:
                sealed = path.read_bytes()
                round_id, model_version = self.key(sealed)
            except (OSError, EdgeError) as exc:
                log.warning("step=outbox result=unreadable file=%s reason=%s", path.name,
                            kv_value(exc))
                with contextlib.suppress(OSError):
                    path.replace(path.with_suffix(".bad"))
                continue
            out.append(Entry(round_id, model_version, sealed, path))
        return out

    def remove(self, entry: Entry) -> None:
        """Drop a kept update (its round has closed).

        Not synced: an entry a crash brings back is of a round that is over. At start the
        daemon drops it again if the TA holds a newer model; otherwise (a failed round
        reopened on the same model) it is published once more and the aggregator refuses
        it as wrong-round, counting nothing. The sync was a disk flush on every model load.
        """
        if entry.path is None:
            return
        entry.path.unlink(missing_ok=True)
        if self._entries is not None:
            self._entries.pop(entry.round_id, None)
