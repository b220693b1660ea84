"""Boards' human names: given at enrollment, shown beside the short device id in every view."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from edge.errors import ConfigError

# The daemon's device.name pattern (docs/daemon.md), so a board's log and the aggregator's
# views can use the same name.
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
SHORT = 8  # hex digits of the id shown beside a name: enough to tell boards apart by eye


def check(name: str) -> str:
    """A valid board name, or ConfigError naming it."""
    if not NAME.fullmatch(name):
        raise ConfigError(f"--name {name!r}: a board name is 1..64 of A-Z a-z 0-9 . _ -")
    return name


def from_record_path(path: str | Path) -> str | None:
    """The default name of a device record file: its name without ``.pub`` (board-7.pub ->
    board-7), when that is a valid name."""
    stem = Path(path).name.removesuffix(".pub")
    return stem if NAME.fullmatch(stem) else None


def label(device_hex: str, name: str | None) -> str:
    """How views name a device: ``board-7 (3f2a9c1e)``, or ``device <32 hex>`` unnamed."""
    return f"{name} ({device_hex[:SHORT]})" if name else f"device {device_hex}"


def by_hex(names: Mapping[bytes, str]) -> dict[str, str]:
    """Names keyed by the hex device id the views print."""
    return {d.hex(): n for d, n in names.items()}
