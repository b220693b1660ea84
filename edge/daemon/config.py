"""The daemon's TOML configuration, parsed into a frozen dataclass that names bad keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.inference.backbone import INFERENCE_KEYS, InferenceConfig
from edge.mqtt import BROKER_KEYS, BrokerSettings
from edge.protocol import check_fleet
from edge.tee import BACKENDS, DEFAULT_BACKEND, check_backend_state
from edge.toml_config import Table, load, root

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TABLES = ("device", "tee", "broker", "data", "inference", "paths")
_DATA_KEYS = ("source", "path", "serial_url", "baudrate", "store_dir", "max_samples")
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
        return load(path, lambda table, base: cls.from_mapping(table, base=base))

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], base: Path | None = None) -> DaemonConfig:
        """Validate a parsed config; ConfigError names the offending key (``data.path``)."""
        top = root(table, _TABLES, base)
        device = top.table("device", ("name", "fleet"))
        name = device.string("name")
        if not _NAME.match(name):
            raise device.error("name", f"{name!r} must match [A-Za-z0-9._-]{{1,64}}")
        fleet = device.string("fleet")
        try:
            check_fleet(fleet)
        except ConfigError as exc:
            raise device.error("fleet", str(exc)) from None

        tee = top.table("tee", ("backend", "state_dir"))
        backend = tee.choice("backend", BACKENDS, DEFAULT_BACKEND)
        state = tee.path("state_dir", required=False, folder=True)
        try:
            check_backend_state(backend, state)
        except ConfigError as exc:
            raise tee.error("state_dir", str(exc)) from None

        if not top.has("broker"):
            raise ConfigError("broker: missing table (needs at least broker.url)")
        broker = BrokerSettings.from_table(top.table("broker", BROKER_KEYS))

        paths = top.table("paths", ("work_dir",))
        work_dir = paths.path("work_dir", required=False, folder=True)
        if work_dir is None:
            raise paths.error("work_dir", "required (a folder the daemon owns)")

        data = _data(top.table("data", _DATA_KEYS), work_dir)
        inference = InferenceConfig.from_table(top.table("inference", INFERENCE_KEYS))
        return cls(name=name, fleet=fleet, tee_backend=backend, tee_state_dir=state,
                   broker=broker, data=data, inference=inference, work_dir=work_dir)


def _data(table: Table, work_dir: Path) -> DataConfig:
    """Validate ``[data]``: exactly the keys its source needs."""
    source = table.choice("source", ("directory", "serial"))
    path = table.path("path", required=False, folder=True)
    serial_url = table.string("serial_url", None)
    if source == "directory":
        if path is None:
            raise table.error("path", "required with source = \"directory\"")
        if serial_url is not None:
            raise table.only_with("serial_url", "source = \"serial\"")
    else:
        if serial_url is None:
            raise table.error("serial_url", "required with source = \"serial\" (a pyserial "
                              "URL: /dev/ttyUSB0, socket://host:port, loop://)")
        if path is not None:
            raise table.only_with("path", "source = \"directory\"")
    baudrate = table.integer("baudrate", 115200, lo=50, hi=4_000_000)
    max_samples = table.integer("max_samples", DEFAULT_MAX_SAMPLES, lo=1, hi=MAX_MAX_SAMPLES)
    store_dir = table.path("store_dir", required=False, folder=True) or work_dir / "samples"
    return DataConfig(source=source, store_dir=store_dir, max_samples=max_samples, path=path,
                      serial_url=serial_url, baudrate=baudrate)
