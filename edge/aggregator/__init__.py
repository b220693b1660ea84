"""The federation's aggregator: enrollment, rounds over MQTT, FedAvg / DP-FedAvg, SQLite state."""

from __future__ import annotations

from .config import AggregatorConfig, DpSettings, RoundSettings
from .metrics import RoundMetrics

__all__ = ["Aggregator", "AggregatorConfig", "DpSettings", "RoundMetrics", "RoundSettings"]


def __getattr__(name: str) -> object:
    """Import the MQTT side lazily (the pure parts need no paho)."""
    if name == "Aggregator":
        from .service import Aggregator

        return Aggregator
    raise AttributeError(name)
