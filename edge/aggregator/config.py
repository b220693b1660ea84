"""The aggregator's TOML configuration, parsed into a frozen dataclass that names bad keys."""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.mqtt import BrokerSettings
from edge.protocol import check_fleet

MAX_FLEET = 256
# Finite bounds of every number, so that a value accepted at start cannot fail later (a
# ticket's deadline is a u64 of seconds and its DP fields are float32).
MAX_TIMEOUT_S = 7 * 86400.0
MAX_DP_VALUE = 1e6
_SECTIONS = ("aggregator", "rounds", "dp", "eval", "audit", "metrics", "broker")
_KEYS: dict[str, tuple[str, ...]] = {
    "aggregator": ("fleet", "state", "metrics", "aggregator_key", "model_signer_key",
                   "initial_head", "backbone", "backbone_metadata", "encrypt_backbone"),
    "rounds": ("cohort_size", "quorum", "min_updates", "timeout_s", "rounds", "seed"),
    "dp": ("example_clip", "noise_multiplier", "update_clip", "learning_rate", "local_epochs",
           "batch_size", "central_noise_multiplier", "delta", "device_policy"),
    "eval": ("holdout",),
    "audit": ("rows_per_source", "rows_per_round"),
    "metrics": ("prometheus_textfile", "prometheus_port", "prometheus_address"),
}


@dataclass(frozen=True)
class RoundSettings:
    """[rounds]: cohort, quorum and deadline of every round."""

    cohort_size: int
    quorum: int
    min_updates: int
    timeout_s: float
    rounds: int
    seed: int


@dataclass(frozen=True)
class DpSettings:
    """[dp]: the DP-SGD parameters put in tickets, and central noise (DP-FedAvg)."""

    example_clip: float
    noise_multiplier: float
    update_clip: float
    learning_rate: float
    local_epochs: int
    batch_size: int
    central_noise_multiplier: float
    delta: float
    device_policy: Path | None = None


@dataclass(frozen=True)
class AuditSettings:
    """[audit]: audit rows kept per round; refusals past the bounds are only counted."""

    rows_per_source: int = 100
    rows_per_round: int = 10_000


@dataclass(frozen=True)
class PrometheusSettings:
    """[metrics]: the Prometheus textfile (node_exporter) and HTTP endpoint, both optional."""

    textfile: Path | None = None
    port: int | None = None
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class AggregatorConfig:
    """One aggregator process: fleet, files, rounds, DP parameters, broker."""

    fleet: str
    state: Path
    metrics: Path
    aggregator_key: Path
    model_signer_key: Path
    initial_head: Path
    rounds: RoundSettings
    dp: DpSettings
    broker: BrokerSettings
    backbone: Path | None = None
    backbone_metadata: Path | None = None
    encrypt_backbone: bool = False
    holdout: Path | None = None
    audit: AuditSettings = AuditSettings()
    prometheus: PrometheusSettings = PrometheusSettings()

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> AggregatorConfig:
        """Read and validate a TOML file; relative paths are relative to its folder."""
        p = Path(path)
        try:
            with open(p, "rb") as fh:
                table = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {p}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"configuration {p}: not valid TOML ({exc})") from None
        return cls.from_mapping(table, base=p.resolve().parent)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, base: Path | None = None)\
            -> AggregatorConfig:
        """Validate a parsed configuration; ConfigError names the first bad key."""
        if not isinstance(table, Mapping):
            raise ConfigError("configuration must be a table")
        unknown = sorted(set(table) - set(_SECTIONS))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown section (known: {', '.join(_SECTIONS)})")
        r = _Reader(table, base or Path.cwd())
        fleet = r.string("aggregator", "fleet")
        try:
            check_fleet(fleet)
        except ConfigError as exc:
            raise ConfigError(f"aggregator.fleet: {exc}") from None
        rounds = _rounds(r)
        dp = _dp(r)
        if "broker" not in table:
            raise ConfigError("broker: required section (at least url = \"mqtt://host:port\")")
        return cls(
            fleet=fleet,
            state=r.path("aggregator", "state", must_exist=False),
            metrics=r.path("aggregator", "metrics", must_exist=False),
            audit=AuditSettings(
                rows_per_source=r.integer("audit", "rows_per_source", 100, lo=0, hi=10**6),
                rows_per_round=r.integer("audit", "rows_per_round", 10_000, lo=0, hi=10**7)),
            aggregator_key=r.path("aggregator", "aggregator_key"),
            model_signer_key=r.path("aggregator", "model_signer_key"),
            initial_head=r.path("aggregator", "initial_head"),
            backbone=r.path("aggregator", "backbone", required=False),
            backbone_metadata=r.path("aggregator", "backbone_metadata", required=False),
            encrypt_backbone=r.boolean("aggregator", "encrypt_backbone", False),
            holdout=r.path("eval", "holdout", required=False),
            prometheus=_prometheus(r),
            rounds=rounds,
            dp=dp,
            broker=BrokerSettings.from_mapping(table["broker"], "broker", r.base),
        )


def _rounds(r: _Reader) -> RoundSettings:
    """Validate [rounds]."""
    cohort = r.integer("rounds", "cohort_size", lo=1, hi=MAX_FLEET)
    quorum = r.integer("rounds", "quorum", cohort, lo=1, hi=cohort)
    min_updates = r.integer("rounds", "min_updates", 1, lo=1, hi=quorum)
    timeout = r.number("rounds", "timeout_s", 60.0, positive=True, hi=MAX_TIMEOUT_S)
    return RoundSettings(cohort, quorum, min_updates, timeout,
                         r.integer("rounds", "rounds", 0, lo=0, hi=2**62),
                         r.integer("rounds", "seed", 0, lo=0, hi=2**63 - 1))


def _dp(r: _Reader) -> DpSettings:
    """Validate [dp]."""
    delta = r.number("dp", "delta", 1e-5, positive=True, hi=1.0)
    if delta >= 1.0:
        raise ConfigError(f"dp.delta: {delta} must be in (0, 1)")
    hi = MAX_DP_VALUE
    return DpSettings(
        example_clip=r.number("dp", "example_clip", positive=True, hi=hi),
        noise_multiplier=r.number("dp", "noise_multiplier", hi=hi),
        update_clip=r.number("dp", "update_clip", positive=True, hi=hi),
        learning_rate=r.number("dp", "learning_rate", positive=True, hi=hi),
        local_epochs=r.integer("dp", "local_epochs", 1, lo=1, hi=65535),
        batch_size=r.integer("dp", "batch_size", 1, lo=1, hi=65535),
        central_noise_multiplier=r.number("dp", "central_noise_multiplier", 0.0, hi=hi),
        delta=delta,
        device_policy=r.path("dp", "device_policy", required=False),
    )


def _prometheus(r: _Reader) -> PrometheusSettings:
    """Validate [metrics]."""
    textfile = r.path("metrics", "prometheus_textfile", required=False, must_exist=False)
    if textfile is not None and textfile.suffix != ".prom":
        # node_exporter's textfile collector reads *.prom only: another name is never scraped
        raise ConfigError(f"metrics.prometheus_textfile: {str(textfile)!r} must end in .prom")
    port = r.get("metrics", "prometheus_port", None)
    if port is not None:
        port = r.integer("metrics", "prometheus_port", lo=0, hi=65535)
    address = r.get("metrics", "prometheus_address", "127.0.0.1")
    if not isinstance(address, str) or not address:
        raise ConfigError("metrics.prometheus_address: must be a non-empty string")
    return PrometheusSettings(textfile, port, address)


class _Reader:
    """Typed access to one section's keys, each error naming ``section.key``."""

    _MISSING = object()

    def __init__(self, table: Mapping[str, Any], base: Path):
        self.table = table
        self.base = base
        for section, keys in _KEYS.items():
            sub = table.get(section, {})
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{section}: must be a table")
            extra = sorted(set(sub) - set(keys))
            if extra:
                raise ConfigError(f"{section}.{extra[0]}: unknown key (known: {', '.join(keys)})")

    def get(self, section: str, key: str, default: Any = _MISSING) -> Any:
        """The raw value, the default, or ConfigError when required and missing."""
        value = self.table.get(section, {}).get(key, default)
        if value is self._MISSING:
            raise ConfigError(f"{section}.{key}: required")
        return value

    def string(self, section: str, key: str) -> str:
        """A non-empty string."""
        value = self.get(section, key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{section}.{key}: must be a non-empty string")
        return value

    def boolean(self, section: str, key: str, default: bool) -> bool:
        """A TOML boolean."""
        value = self.get(section, key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{section}.{key}: must be true or false")
        return value

    def integer(self, section: str, key: str, default: Any = _MISSING, *, lo: int, hi: int) -> int:
        """An integer in lo..hi."""
        value = self.get(section, key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{section}.{key}: must be an integer in {lo}..{hi}, got {value!r}")
        return value

    def number(self, section: str, key: str, default: Any = _MISSING, *,
               positive: bool = False, hi: float) -> float:
        """A finite number in [0, hi] (or (0, hi] with ``positive``)."""
        value = self.get(section, key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0 or (positive and value == 0) \
                or value > hi:
            lo = "(0" if positive else "[0"
            raise ConfigError(f"{section}.{key}: must be a number in {lo}, {hi:g}], "
                              f"got {value!r}")
        return float(value)

    def path(self, section: str, key: str, *, required: bool = True,
             must_exist: bool = True) -> Path:
        """A file path (relative to the configuration's folder); must exist unless said."""
        value = self.get(section, key) if required else self.get(section, key, None)
        if value is None:
            return None  # type: ignore[return-value]
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{section}.{key}: must be a file path string")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.base / path
        try:
            wrong_kind = path.exists() and not path.is_file()
        except OSError as exc:
            raise ConfigError(f"{section}.{key}: {str(path)!r}: {exc.strerror}") from None
        if wrong_kind:
            # A folder (or a device) where a file goes fails only later, mid-round.
            raise ConfigError(f"{section}.{key}: {str(path)!r} is not a regular file")
        if must_exist and not path.is_file():
            raise ConfigError(f"{section}.{key}: no such file {str(path)!r}")
        if not must_exist and not path.parent.is_dir():
            what = "is not a folder" if path.parent.exists() else "does not exist"
            raise ConfigError(f"{section}.{key}: folder {str(path.parent)!r} {what}")
        return path
