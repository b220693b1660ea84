"""What every firmware-sign command shares: its usage error and how it writes a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from edge.errors import ConfigError
from edge.state_files import durable_file

T = TypeVar("T")


class UsageError(Exception):
    """A combination of options argparse cannot express."""


def write_output(path: Path, write: Callable[[BinaryIO], T]) -> T:
    """Stream an artefact into ``path`` durably: readers see the old file or the whole new one."""
    try:
        with durable_file(path, mode=0o644) as fh:
            return write(fh)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
