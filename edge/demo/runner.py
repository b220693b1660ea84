"""Runs the demo's federation in one process: broker, aggregator and daemons as threads."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edge.demo.fleet import Fleet
from edge.errors import EdgeError

log = logging.getLogger("edge.demo")
JOIN_TIMEOUT_S = 15.0


@dataclass
class FederationResult:
    """What the run produced: the aggregator's per-round metrics and the run's health."""

    rounds: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


@contextlib.contextmanager
def broker_url(choice: str) -> Iterator[str]:
    """``embedded``: an in-process amqtt broker for the duration; else the URL as given."""
    if choice != "embedded":
        yield choice
        return
    from edge.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.url


class _Worker(threading.Thread):
    """A thread that records the exception it died of."""

    def __init__(self, name: str, target: Callable[[], None], errors: list[str]):
        super().__init__(name=name, daemon=True)
        self._job, self._errors = target, errors

    def run(self) -> None:
        try:
            self._job()
        except BaseException as exc:  # reported by the caller, never lost
            self._errors.append(f"{self.name}: {type(exc).__name__}: {exc}")
            log.exception("%s failed", self.name)


def run_federation(fleet: Fleet, rounds: int, *, on_round: Callable[[Any], None] | None = None,
                   stop: threading.Event | None = None) -> FederationResult:
    """Enroll the devices, start N daemons and the aggregator, run ``rounds`` rounds, stop all.

    Every thread is stopped and joined and every TA session closed on success, on error and
    on KeyboardInterrupt (re-raised after the clean-up).
    """
    from edge.aggregator import Aggregator, AggregatorConfig
    from edge.daemon import Daemon, DaemonConfig

    stop = stop or threading.Event()
    result = FederationResult()
    daemons: list[Any] = []
    threads: list[_Worker] = []
    agg: Any = None
    started = time.monotonic()

    def record(m: Any) -> None:
        result.rounds.append(m)
        if on_round is not None:
            on_round(m)

    try:
        agg = Aggregator(AggregatorConfig.from_mapping(fleet.aggregator), on_round=record)
        for rec in fleet.records:
            agg.enroll(rec)
        for cfg in fleet.devices:
            daemons.append(Daemon(DaemonConfig.from_mapping(cfg)))
        for d in daemons:
            threads.append(_Worker(f"daemon-{d.config.name}",
                                   lambda d=d: d.run(stop), result.errors))
        for t in threads:
            t.start()
        for d in daemons:  # subscribed before the first (not retained) ticket goes out
            if not d.subscribed.wait(JOIN_TIMEOUT_S):
                raise EdgeError(f"daemon {d.config.name} did not subscribe within "
                                f"{JOIN_TIMEOUT_S:.0f} s")
        agg_thread = _Worker("aggregator", lambda: agg.run(stop, rounds=rounds), result.errors)
        threads.append(agg_thread)
        agg_thread.start()
        while agg_thread.is_alive() and not stop.is_set():
            agg_thread.join(0.2)
            if result.errors:
                break
    finally:
        stop.set()
        for t in threads:
            t.join(JOIN_TIMEOUT_S)
            if t.is_alive():
                result.errors.append(f"{t.name} did not stop within {JOIN_TIMEOUT_S:.0f} s")
        for d in daemons:
            d.close()
        if agg is not None:
            agg.close()
        result.seconds = time.monotonic() - started
    return result
