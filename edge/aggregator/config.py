"""The aggregator's TOML configuration, parsed into a frozen dataclass that names bad keys."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.mqtt import BROKER_KEYS, BrokerSettings
from edge.protocol import check_fleet
from edge.secagg.quantize import MAX_SCALE_LOG2, MIN_SCALE_LOG2
from edge.secagg.server import SecAggParams
from edge.toml_config import Table, load, root

# The cohort deploy/mosquitto's queue limits are sized for (docs/broker.md): not a cap
# of the fleet or of the cohort, a figure to scale max_queued_bytes by.
BROKER_SIZED_COHORT = 256
# The bound of counts (cohort, quorum): finite for the SQLite integers, no fleet cap.
MAX_COUNT = 2**31 - 1
# Finite bounds of every number, so that a value accepted at start cannot fail later (a
# ticket's deadline is a u64 of seconds and its DP fields are float32).
MAX_TIMEOUT_S = 7 * 86400.0
MAX_DP_VALUE = 1e6
MAX_MODEL_VERSION = 2**63  # far below the u64 of the formats: versions never wrap
_KEYS: dict[str, tuple[str, ...]] = {
    "aggregator": ("fleet", "state", "metrics", "aggregator_key", "model_signer_key",
                   "initial_head", "backbone", "backbone_metadata", "encrypt_backbone",
                   "fleet_version"),
    "rounds": ("cohort_size", "quorum", "min_updates", "timeout_s", "rounds", "seed", "secagg"),
    "dp": ("example_clip", "noise_multiplier", "update_clip", "learning_rate", "local_epochs",
           "batch_size", "central_noise_multiplier", "central_target_epsilon", "delta",
           "device_policy"),
    "eval": ("holdout",),
    "audit": ("rows_per_source", "rows_per_round"),
    "metrics": ("prometheus_textfile", "prometheus_port", "prometheus_address"),
    "workers": ("key",),
    "broker": BROKER_KEYS,
    "secagg": ("threshold", "neighbours", "registrar", "certificates", "stage_timeout_s",
               "scale_log2"),
}
SECAGG_MODES = ("off", "secagg+")


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
    central_target_epsilon: float | None = None  # the target z was solved for, if any


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
class SecAggSettings:
    """[rounds] secagg = "secagg+" and [secagg]: secure aggregation of every round.

    ``params`` carries t and k (validated by SecAggParams, Bell et al.'s defaults for the
    cohort size unless set); ``registrar`` is the registrar's public key file and
    ``certificates`` the folder of the fleet's enrollment certificates (``*.cert``).
    """

    params: SecAggParams
    registrar: Path
    certificates: Path
    stage_timeout_s: float


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
    # The newest model version a board of the fleet may hold: a fresh or restored database
    # publishes above it, so the boards do not refuse its packages as rollbacks.
    fleet_version: int = 0
    audit: AuditSettings = AuditSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    # [workers] key: with it, this process is a root: cohort workers verify and sum the
    # updates (edge aggregator worker), it combines their sums (docs/scale-out.md).
    workers_key: Path | None = None
    secagg: SecAggSettings | None = None

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> AggregatorConfig:
        """Read and validate a TOML file; relative paths are relative to its folder."""
        return load(path, lambda table, base: cls.from_mapping(table, base=base))

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, base: Path | None = None)\
            -> AggregatorConfig:
        """Validate a parsed configuration; ConfigError names the first bad key."""
        top = root(table, _KEYS, base)
        t = {name: top.table(name, keys) for name, keys in _KEYS.items()}
        agg = t["aggregator"]
        fleet = agg.string("fleet")
        try:
            check_fleet(fleet)
        except ConfigError as exc:
            raise agg.error("fleet", str(exc)) from None
        rounds = _rounds(t["rounds"])
        dp = _dp(t["dp"], rounds)
        secagg = _secagg(t["rounds"], t["secagg"], rounds, dp)
        if not top.has("broker"):
            raise ConfigError("broker: missing table (needs at least broker.url)")
        audit = t["audit"]
        return cls(
            fleet=fleet,
            state=agg.path("state", must_exist=False),
            metrics=agg.path("metrics", must_exist=False),
            audit=AuditSettings(
                rows_per_source=audit.integer("rows_per_source", 100, lo=0, hi=10**6),
                rows_per_round=audit.integer("rows_per_round", 10_000, lo=0, hi=10**7)),
            aggregator_key=agg.path("aggregator_key"),
            model_signer_key=agg.path("model_signer_key"),
            initial_head=agg.path("initial_head"),
            backbone=agg.path("backbone", required=False),
            backbone_metadata=agg.path("backbone_metadata", required=False),
            encrypt_backbone=agg.boolean("encrypt_backbone", False),
            fleet_version=agg.integer("fleet_version", 0, lo=0, hi=MAX_MODEL_VERSION - 1),
            holdout=t["eval"].path("holdout", required=False),
            prometheus=_prometheus(t["metrics"]),
            workers_key=t["workers"].path("key", required=False),
            rounds=rounds,
            dp=dp,
            broker=BrokerSettings.from_table(t["broker"]),
            secagg=secagg,
        )


def _rounds(r: Table) -> RoundSettings:
    """Validate [rounds]."""
    cohort = r.integer("cohort_size", lo=1, hi=MAX_COUNT)
    quorum = r.integer("quorum", cohort, lo=1, hi=cohort)
    min_updates = r.integer("min_updates", 1, lo=1, hi=quorum)
    timeout = r.number("timeout_s", 60.0, positive=True, hi=MAX_TIMEOUT_S)
    return RoundSettings(cohort, quorum, min_updates, timeout,
                         r.integer("rounds", 0, lo=0, hi=2**62),
                         r.integer("seed", 0, lo=0, hi=2**63 - 1))


def _central_noise(r: Table, rounds: RoundSettings, delta: float) -> tuple[float, float | None]:
    """dp.central_noise_multiplier z, or z solved for dp.central_target_epsilon over
    rounds.rounds rounds (accounted at sampling rate 1, which any cohort smaller than the
    fleet only improves on; the per-round report uses the real rate)."""
    if not r.has("central_target_epsilon"):
        return r.number("central_noise_multiplier", 0.0, hi=MAX_DP_VALUE), None
    if r.has("central_noise_multiplier"):
        raise r.error("central_target_epsilon",
                      "give central_noise_multiplier or central_target_epsilon, not both")
    target = r.number("central_target_epsilon", positive=True, hi=MAX_DP_VALUE)
    if rounds.rounds < 1:
        raise r.error("central_target_epsilon",
                      "needs rounds.rounds (the number of rounds the target covers)")
    from edge import calibration  # imports dp_accounting: only when asked for

    solved = calibration.noise_for_target(target, delta, 1.0, rounds.rounds)
    return solved.noise_multiplier, target


def _dp(r: Table, rounds: RoundSettings) -> DpSettings:
    """Validate [dp]."""
    delta = r.number("delta", 1e-5, positive=True, hi=1.0)
    if delta >= 1.0:
        raise r.error("delta", f"must be in (0, 1), got {delta!r}")
    hi = MAX_DP_VALUE
    central, central_target = _central_noise(r, rounds, delta)
    return DpSettings(
        example_clip=r.number("example_clip", positive=True, hi=hi),
        noise_multiplier=r.number("noise_multiplier", hi=hi),
        update_clip=r.number("update_clip", positive=True, hi=hi),
        learning_rate=r.number("learning_rate", positive=True, hi=hi),
        local_epochs=r.integer("local_epochs", 1, lo=1, hi=65535),
        batch_size=r.integer("batch_size", 1, lo=1, hi=65535),
        central_noise_multiplier=central,
        delta=delta,
        device_policy=r.path("device_policy", required=False),
        central_target_epsilon=central_target,
    )


def _secagg(r: Table, s: Table, rounds: RoundSettings, dp: DpSettings) -> SecAggSettings | None:
    """Validate [rounds] secagg and [secagg]; None when secure aggregation is off."""
    mode = r.choice("secagg", SECAGG_MODES, "off")
    if mode == "off":
        for key in s.keys:
            if s.has(key):
                raise s.only_with(key, 'rounds.secagg = "secagg+"')
        return None
    cohort = rounds.cohort_size
    if cohort < 2:
        raise r.error("secagg", f"needs rounds.cohort_size >= 2, got {cohort}")
    try:
        default = SecAggParams.for_cohort(cohort, dp.update_clip)
    except ConfigError as exc:
        raise r.error("secagg", str(exc)) from None
    k = s.integer("neighbours", default.k, lo=1, hi=cohort - 1)
    # t defaults to the smallest majority of the neighbourhood actually configured
    t_default = default.t if k == default.k else k // 2 + 1
    t = s.integer("threshold", t_default, lo=1, hi=k + 1)
    # The finest scale unless set: distributed DP needs a coarser one, leaving the 32-bit
    # sum room for the policy's noise share (checked at start, edge.aggregator.device_budget).
    scale = (s.integer("scale_log2", lo=MIN_SCALE_LOG2, hi=MAX_SCALE_LOG2)
             if s.has("scale_log2") else None)
    try:
        params = SecAggParams(t, k, cohort, dp.update_clip, scale)
    except ConfigError as exc:
        key = ("scale_log2" if "scale" in str(exc) else
               "threshold" if " t " in str(exc) else "neighbours")
        raise s.error(key, str(exc)) from None
    stage = s.number("stage_timeout_s", rounds.timeout_s / 4, positive=True, hi=MAX_TIMEOUT_S)
    return SecAggSettings(params, s.path("registrar"), s.path("certificates", folder=True),
                          stage)


def _prometheus(r: Table) -> PrometheusSettings:
    """Validate [metrics]."""
    textfile = r.path("prometheus_textfile", required=False, must_exist=False)
    if textfile is not None and textfile.suffix != ".prom":
        # node_exporter's textfile collector reads *.prom only: another name is never scraped
        raise r.error("prometheus_textfile", f"{str(textfile)!r} must end in .prom")
    port = r.integer("prometheus_port", None, lo=0, hi=65535) \
        if r.has("prometheus_port") else None
    address = r.string("prometheus_address", "127.0.0.1")
    return PrometheusSettings(textfile, port, address)
