"""The daemon's TOML configuration, parsed into a frozen dataclass that names bad keys."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.inference.backbone import InferenceConfig
from edge.mqtt import BrokerSettings
from edge.protocol import check_fleet

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TABLES = ("device", "tee", "broker", "data", "inference", "paths")
DEFAULT_MAX_SAMPLES = 10_000
MAX_MAX_SAMPLES = 10_000_000


@dataclass(frozen=True)
class DataConfig:
    """The ``[data]`` table: where local samples come from and where they are kept."""

    source: str
    store_dir: Path
    max_samples: int = DEFAULT_MAX_SAMPLES
    path: Path | None = None
    serial_url: str | None = None
    baudrate: int = 115200


@dataclass(frozen=True)
class DaemonConfig:
    """Everything one board daemon needs, validated."""

    name: str
    fleet: str
    tee_backend: str
    tee_state_dir: Path | None
    broker: BrokerSettings
    data: DataConfig
    inference: InferenceConfig
    work_dir: Path

    @classmethod
    def from_toml(cls, path: str | Path) -> DaemonConfig:
        """Read and validate a TOML file; relative paths are relative to its folder."""
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
        return cls.from_mapping(table, base=path.resolve().parent)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], base: Path | None = None) -> DaemonConfig:
        """Validate a parsed config; ConfigError names the offending key (``data.path``)."""
        if not isinstance(table, Mapping):
            raise ConfigError("config must be a table")
        for key in table:
            if key not in _TABLES:
                raise ConfigError(f"{key}: unknown table (known: {', '.join(_TABLES)})")
        base = base or Path.cwd()
        device = _table(table, "device", ("name", "fleet"))
        name = _str(device, "device.name", required=True)
        if not _NAME.match(name):
            raise ConfigError(f"device.name: {name!r} must match [A-Za-z0-9._-]{{1,64}}")
        fleet = _str(device, "device.fleet", required=True)
        try:
            check_fleet(fleet)
        except ConfigError as exc:
            raise ConfigError(f"device.fleet: {exc}") from None

        tee = _table(table, "tee", ("backend", "state_dir"))
        backend = _str(tee, "tee.backend", required=False) or "optee"
        if backend not in ("sim", "optee"):
            raise ConfigError(f"tee.backend: {backend!r} must be \"sim\" or \"optee\"")
        state = _path(tee, "tee.state_dir", base)
        if backend == "sim" and state is None:
            raise ConfigError("tee.state_dir: required with backend = \"sim\"")
        if backend == "optee" and state is not None:
            raise ConfigError("tee.state_dir: only applies to backend = \"sim\"")

        if "broker" not in table:
            raise ConfigError("broker: missing table (needs at least broker.url)")
        broker = BrokerSettings.from_mapping(table["broker"], "broker", base)

        paths = _table(table, "paths", ("work_dir",))
        work_dir = _path(paths, "paths.work_dir", base)
        if work_dir is None:
            raise ConfigError("paths.work_dir: required (a folder the daemon owns)")

        data = _data(_table(table, "data", ("source", "path", "serial_url", "baudrate",
                                             "store_dir", "max_samples")), base, work_dir)
        inf_table = table.get("inference", {})
        if not isinstance(inf_table, Mapping):
            raise ConfigError("inference: must be a table")
        inference = InferenceConfig.from_mapping(dict(inf_table))
        return cls(name=name, fleet=fleet, tee_backend=backend, tee_state_dir=state,
                   broker=broker, data=data, inference=inference, work_dir=work_dir)


def _table(table: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    """A sub-table with only known keys (missing counts as empty)."""
    sub = table.get(name, {})
    if not isinstance(sub, Mapping):
        raise ConfigError(f"{name}: must be a table")
    for key in sub:
        if key not in keys:
            raise ConfigError(f"{name}.{key}: unknown key (known: {', '.join(keys)})")
    return sub


def _str(table: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    """A non-empty string value, or None when optional and absent."""
    value = table.get(key.rsplit(".", 1)[1])
    if value is None:
        if required:
            raise ConfigError(f"{key}: required")
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: must be a non-empty string, got {value!r}")
    return value


def _path(table: Mapping[str, Any], key: str, base: Path, *, folder: bool = True) \
        -> Path | None:
    """An optional path, made absolute against ``base``; a folder (the default) unless said.

    A path that exists as the wrong kind (a file where the daemon needs a folder) is
    refused here, at start, rather than when the daemon first writes there.
    """
    value = _str(table, key, required=False)
    if value is None:
        return None
    p = Path(value).expanduser()
    p = p if p.is_absolute() else base / p
    try:
        wrong = p.exists() and (p.is_dir() != folder)
    except OSError as exc:
        raise ConfigError(f"{key}: {str(p)!r}: {exc.strerror}") from None
    if wrong:
        raise ConfigError(f"{key}: {str(p)!r} is not a {'folder' if folder else 'file'}")
    return p


def _int(table: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    """An integer within [lo, hi]."""
    value = table.get(key.rsplit(".", 1)[1], default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{key}: must be an integer {lo}..{hi}, got {value!r}")
    return value


def _data(table: Mapping[str, Any], base: Path, work_dir: Path) -> DataConfig:
    """Validate ``[data]``: exactly the keys its source needs."""
    source = _str(table, "data.source", required=True)
    if source not in ("directory", "serial"):
        raise ConfigError(f"data.source: {source!r} must be \"directory\" or \"serial\"")
    path = _path(table, "data.path", base)
    serial_url = _str(table, "data.serial_url", required=False)
    if source == "directory":
        if path is None:
            raise ConfigError("data.path: required with source = \"directory\"")
        if serial_url is not None:
            raise ConfigError("data.serial_url: only applies to source = \"serial\"")
    else:
        if serial_url is None:
            raise ConfigError("data.serial_url: required with source = \"serial\" "
                              "(a pyserial URL: /dev/ttyUSB0, socket://host:port, loop://)")
        if path is not None:
            raise ConfigError("data.path: only applies to source = \"directory\"")
    baudrate = _int(table, "data.baudrate", 115200, 50, 4_000_000)
    max_samples = _int(table, "data.max_samples", DEFAULT_MAX_SAMPLES, 1, MAX_MAX_SAMPLES)
    store_dir = _path(table, "data.store_dir", base) or work_dir / "samples"
    return DataConfig(source=source, store_dir=store_dir, max_samples=max_samples, path=path,
                      serial_url=serial_url, baudrate=baudrate)
