"""The aggregator's state in the Prometheus text format: a textfile for node_exporter's
textfile collector and/or an HTTP endpoint, both from one snapshot of the database.

The snapshot is taken in the aggregator's thread (at start, after every round and every
few seconds), so a scrape never touches the database; it only reads the last snapshot.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from edge.errors import ConfigError
from edge.state_files import write_durably

PREFIX = "edge_aggregator"


@dataclass(frozen=True)
class Snapshot:
    """What the metrics say, read from the aggregator's database at one moment."""

    fleet: str
    rounds: dict[str, int] = field(default_factory=dict)  # closed / failed / open
    refusals: dict[str, int] = field(default_factory=dict)
    participants_total: int = 0
    duration_sum: float = 0.0
    last: dict[str, Any] | None = None  # the newest metrics row
    open_accepted: int | None = None
    model_version: int | None = None
    devices: int = 0
    delta: float = 0.0
    # per enrolled device: (hex id, name or None, rounds joined, rounds skipped)
    boards: tuple[tuple[str, str | None, int, int], ...] = ()


def take_snapshot(store: Any, fleet: str, delta: float) -> Snapshot:
    """A Snapshot of ``store`` (edge.aggregator.store.Store)."""
    rows = store.metrics_rows()
    open_round = store.open_round()
    cp = store.latest_checkpoint()
    return Snapshot(
        fleet=fleet, rounds=store.round_counts(), refusals=store.refusals(),
        participants_total=sum(int(r.get("participants", 0)) for r in rows),
        duration_sum=sum(float(r.get("seconds", 0.0)) for r in rows),
        last=rows[-1] if rows else None,
        open_accepted=None if open_round is None else open_round.count,
        model_version=None if cp is None else cp.version, devices=store.device_count(),
        delta=delta, boards=tuple(store.device_counts()))


class FleetCollector:
    """A prometheus_client collector serving the last Snapshot."""

    def __init__(self, fleet: str):
        self._lock = threading.Lock()
        self._snap = Snapshot(fleet)

    def update(self, snap: Snapshot) -> None:
        """Serve ``snap`` from now on."""
        with self._lock:
            self._snap = snap

    def collect(self) -> Iterator[Metric]:
        """The metric families of the last snapshot (called by prometheus_client)."""
        with self._lock:
            s = self._snap
        fleet = [s.fleet]
        rounds = CounterMetricFamily(f"{PREFIX}_rounds", "Finished rounds by outcome",
                                     labels=["fleet", "state"])
        for state in ("closed", "failed"):
            rounds.add_metric([s.fleet, state], s.rounds.get(state, 0))
        yield rounds
        refused = CounterMetricFamily(f"{PREFIX}_refusals", "Refused updates by refusal class",
                                      labels=["fleet", "refusal"])
        for cls, n in sorted(s.refusals.items()):
            refused.add_metric([s.fleet, cls], n)
        yield refused
        yield _counter("participants", "Accepted updates in finished rounds", s.fleet,
                       s.participants_total)
        finished = s.rounds.get("closed", 0) + s.rounds.get("failed", 0)
        duration = SummaryMetricFamily(f"{PREFIX}_round_duration_seconds",
                                       "Seconds from a round's tickets to its close",
                                       labels=["fleet"])
        duration.add_metric(fleet, count_value=finished, sum_value=s.duration_sum)
        yield duration
        gauges: list[tuple[str, str, float | None]] = [
            ("round_open", "1 while a round is open", 1.0 if s.rounds.get("open") else 0.0),
            ("open_round_accepted", "Updates accepted so far in the open round",
             s.open_accepted),
            ("model_version", "Newest model version", s.model_version),
            ("devices_enrolled", "Enrolled devices", float(s.devices)),
        ]
        last = s.last or {}
        gauges += [
            ("last_round", "Id of the newest finished round", last.get("round")),
            ("last_round_participants", "Accepted updates in the newest finished round",
             last.get("participants")),
            ("last_round_refusals", "Refused updates in the newest finished round",
             sum((last.get("refused") or {}).values()) if last else None),
            ("last_round_duration_seconds", "Duration of the newest finished round",
             last.get("seconds")),
            ("last_round_timestamp_seconds", "Unix time the newest finished round closed",
             last.get("closed_at")),
            ("accuracy", "Held-out accuracy of the newest model", last.get("accuracy")),
            # absent without central noise: no fleet-level epsilon is reported then
            ("epsilon", f"Fleet-level epsilon at delta {s.delta:g} (DP-FedAvg)",
             last.get("epsilon")),
            ("delta", "Delta of the reported epsilon", s.delta),
            # absent without dp.device_policy
            ("device_epsilon_max", "Device-level epsilon of the device that spent the most "
             "DP-SGD steps (at the policy's delta)", last.get("device_epsilon")),
        ]
        for name, text, value in gauges:
            if value is not None and math.isfinite(float(value)):
                g = GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["fleet"])
                g.add_metric(fleet, float(value))
                yield g

        # Per board, named as at enrollment (the id for a board enrolled without a name).
        per_board = [("device_rounds_joined", "Rounds the board's update counted in", 2),
                     ("device_rounds_skipped", "Rounds the board reported skipping", 3)]
        for name, text, col in per_board:
            g = GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["fleet", "device", "name"])
            for board in s.boards:
                g.add_metric([s.fleet, board[0], board[1] or board[0]], float(board[col]))
            yield g

    def describe(self) -> list[Metric]:
        """No fixed description: the families depend on the snapshot."""
        return []


def _counter(name: str, text: str, fleet: str, value: float) -> CounterMetricFamily:
    c = CounterMetricFamily(f"{PREFIX}_{name}", text, labels=["fleet"])
    c.add_metric([fleet], value)
    return c


class Exporter:
    """Serves a fleet's snapshot on HTTP and/or writes it to a node_exporter textfile."""

    def __init__(self, fleet: str, *, textfile: Path | None = None, port: int | None = None,
                 address: str = "127.0.0.1"):
        self.collector = FleetCollector(fleet)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)  # type: ignore[arg-type]
        self.textfile = textfile
        self.port = port
        self.address = address
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the HTTP endpoint, if configured (port 0: a free port, see ``self.port``)."""
        if self.port is None or self._server is not None:
            return
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(self.port, self.address,
                                                           registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"metrics.prometheus_port: cannot listen on {self.address}:"
                              f"{self.port}: {exc.strerror}") from None
        self.port = int(self._server.server_port)

    def update(self, snap: Snapshot) -> None:
        """Serve ``snap``; rewrite the textfile (atomically) if configured."""
        self.collector.update(snap)
        if self.textfile is not None:
            write_durably(self.textfile, self.text(), mode=0o644)

    def text(self) -> bytes:
        """The current exposition in the Prometheus text format."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Stop the HTTP endpoint."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
