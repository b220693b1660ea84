"""Reading one process's TOML configuration: every table, key and value checked one way.

Each process (daemon, aggregator) has one TOML file parsed into frozen dataclasses.
:class:`Table` gives typed access to one table's keys, refuses keys it does not know
and words every error the same way, naming ``table.key``; :func:`load` reads the file
and adds its name to any error, so a refusal says what to fix and where.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from edge.errors import ConfigError

T = TypeVar("T")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def _got(value: Any) -> str:
    return f", got {value!r}"


class Table:
    """One TOML table (``name``) whose keys must be among ``keys``; missing counts as empty."""

    def __init__(self, data: Any, name: str, keys: Iterable[str], base: Path) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{name}: must be a table")
        self.data = data
        self.name = name
        self.keys = tuple(keys)
        self.base = base
        unknown = sorted(set(data) - set(self.keys))
        if unknown:
            raise self.error(unknown[0], f"unknown key (known: {', '.join(self.keys)})")

    def error(self, key: str, message: str) -> ConfigError:
        """The one wording of a bad value: ``table.key: message``."""
        return ConfigError(f"{self.where(key)}: {message}")

    def where(self, key: str) -> str:
        """``table.key``."""
        return f"{self.name}.{key}" if self.name else key

    def has(self, key: str) -> bool:
        """Whether ``key`` is set."""
        return self.data.get(key) is not None

    def table(self, key: str, keys: Iterable[str]) -> Table:
        """The sub-table ``key`` (empty when missing)."""
        return Table(self.data.get(key), self.where(key), keys, self.base)

    def raw(self, key: str, default: Any = REQUIRED) -> Any:
        """The value as TOML gave it, the default, or ``table.key: required``."""
        value = self.data.get(key)
        if value is None:
            if default is REQUIRED:
                raise self.error(key, "required")
            return default
        return value

    def string(self, key: str, default: Any = REQUIRED) -> Any:
        """A non-empty string (or the default when absent)."""
        if not self.has(key):
            return self.raw(key, default)
        value = self.data[key]
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a non-empty string" + _got(value))
        return value

    def choice(self, key: str, choices: Iterable[str], default: Any = REQUIRED) -> Any:
        """One of ``choices``."""
        options = tuple(choices)
        value = self.string(key, default)
        if value not in options:
            raise self.error(key, "must be " + " or ".join(f'"{c}"' for c in options)
                             + _got(value))
        return value

    def boolean(self, key: str, default: Any = REQUIRED) -> Any:
        """A TOML boolean."""
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false" + _got(value))
        return value

    def integer(self, key: str, default: Any = REQUIRED, *, lo: int, hi: int) -> int:
        """An integer in lo..hi."""
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(key, f"must be an integer in {lo}..{hi}" + _got(value))
        return value

    def number(self, key: str, default: Any = REQUIRED, *, positive: bool = False,
               hi: float) -> float:
        """A finite number in [0, hi] (or (0, hi] with ``positive``)."""
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0 or (positive and value == 0) \
                or value > hi:
            low = "(0" if positive else "[0"
            raise self.error(key, f"must be a number in {low}, {hi:g}]" + _got(value))
        return float(value)

    def mapping(self, key: str) -> dict[str, Any]:
        """A table of free-form string values (e.g. delegate options)."""
        value = self.raw(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, "must be a table" + _got(value))
        return dict(value)

    def path(self, key: str, *, required: bool = True, folder: bool = False,
             must_exist: bool = True) -> Any:
        """A path (relative ones under the configuration's folder), None when optional and
        absent. A file must exist unless ``must_exist=False`` (then its folder must); a
        folder may be created later. What exists as the wrong kind (a folder where a file
        goes) is refused now rather than failing mid-round."""
        value = self.raw(key, REQUIRED if required else None)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a path string" + _got(value))
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.base / path
        shown = repr(str(path))
        try:
            wrong_kind = path.exists() and not (path.is_dir() if folder else path.is_file())
        except OSError as exc:
            raise self.error(key, f"{shown}: {exc.strerror}") from None
        if wrong_kind:
            raise self.error(key, f"{shown} is not a {'folder' if folder else 'regular file'}")
        if folder:
            return path
        if must_exist and not path.is_file():
            raise self.error(key, f"no such file {shown}")
        if not must_exist and not path.parent.is_dir():
            what = "is not a folder" if path.parent.exists() else "does not exist"
            raise self.error(key, f"folder {str(path.parent)!r} {what}")
        return path

    def only_with(self, key: str, condition: str) -> ConfigError:
        """``table.key: only applies to <condition>`` (a key the other settings rule out)."""
        return self.error(key, f"only applies to {condition}")


def root(data: Any, tables: Iterable[str], base: Path | None = None) -> Table:
    """The top level of a configuration: only ``tables`` may appear, each a table."""
    names = tuple(tables)
    if not isinstance(data, Mapping):
        raise ConfigError("configuration must be a table")
    for key in data:
        if key not in names:
            raise ConfigError(f"{key}: unknown table (known: {', '.join(names)})")
        if not isinstance(data[key], Mapping):
            raise ConfigError(f"{key}: must be a table")
    return Table(data, "", names, base or Path.cwd())


def load(path: str | Path, parse: Callable[[Mapping[str, Any], Path], T]) -> T:
    """Read a TOML file and ``parse(table, its folder)``; any ConfigError names the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    try:
        return parse(data, path.resolve().parent)
    except ConfigError as exc:
        raise type(exc)(f"{exc} (in {path})") from None
