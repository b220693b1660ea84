"""Runs the demo's federation: broker, aggregators and daemons as threads, or the daemons in
device host processes for large fleets (``edge.demo.hosts``)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edge.demo.fleet import Fleet
from edge.demo.hosts import (
    DEVICES_PER_PROCESS,
    READY_TIMEOUT_S,
    WORKING_DAEMONS,
    DeviceHost,
    slices,
)
from edge.errors import EdgeError

log = logging.getLogger("edge.demo")
JOIN_TIMEOUT_S = 15.0


@dataclass
class FederationResult:
    """What the run produced: the aggregator's per-round metrics and the run's health."""

    rounds: list[Any] = field(default_factory=list)
    by_fleet: dict[str, list[Any]] = field(default_factory=dict)
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
                   stop: threading.Event | None = None,
                   per_process: int = DEVICES_PER_PROCESS) -> FederationResult:
    """Enroll the devices, start N daemons and the aggregator, run ``rounds`` rounds, stop all.

    Up to ``per_process`` devices run as threads of this process; more run in device host
    processes of that many each (``edge.demo.hosts``). Every thread and host is stopped and
    every TA session closed on success, on error and on KeyboardInterrupt (re-raised after
    the clean-up).
    """
    return run_fleets([fleet], rounds, on_round=None if on_round is None
                      else (lambda _name, m: on_round(m)), stop=stop, per_process=per_process)


def run_fleets(fleets: list[Fleet], rounds: int, *,
               on_round: Callable[[str, Any], None] | None = None,
               stop: threading.Event | None = None,
               per_process: int = DEVICES_PER_PROCESS) -> FederationResult:
    """``run_federation`` for several fleets on one broker, one aggregator (thread) each;
    ``rounds`` rounds of every fleet. ``on_round`` gets the fleet's name and the metrics."""
    from edge.aggregator import Aggregator, AggregatorConfig
    from edge.daemon import Daemon, DaemonConfig

    stop = stop or threading.Event()
    result = FederationResult()
    daemons: list[Any] = []
    hosts: list[DeviceHost] = []
    threads: list[_Worker] = []
    aggs: list[Any] = []
    started = time.monotonic()
    lock = threading.Lock()

    def recorder(name: str) -> Callable[[Any], None]:
        def record(m: Any) -> None:
            with lock:
                result.rounds.append(m)
                result.by_fleet.setdefault(name, []).append(m)
            if on_round is not None:
                on_round(name, m)
        return record

    configs = [cfg for f in fleets for cfg in f.devices]
    try:
        for f in fleets:
            agg = Aggregator(AggregatorConfig.from_mapping(f.aggregator),
                             on_round=recorder(f.name))
            aggs.append(agg)
            for rec in f.records:
                agg.enroll(rec)
        if len(configs) <= per_process:
            gate = threading.BoundedSemaphore(WORKING_DAEMONS)
            for cfg in configs:
                daemons.append(Daemon(DaemonConfig.from_mapping(cfg), gate=gate))
            for d in daemons:
                threads.append(_Worker(f"daemon-{d.config.name}",
                                       lambda d=d: d.run(stop), result.errors))
            for t in threads:
                t.start()
            for d in daemons:  # subscribed before the first (not retained) ticket goes out
                if not d.subscribed.wait(JOIN_TIMEOUT_S):
                    raise EdgeError(f"daemon {d.config.name} did not subscribe within "
                                    f"{JOIN_TIMEOUT_S:.0f} s")
        else:
            folder = fleets[0].root / "hosts"
            hosts = [DeviceHost(part, folder, i)
                     for i, part in enumerate(slices(configs, per_process))]
            deadline = time.monotonic() + READY_TIMEOUT_S
            for h in hosts:
                while not h.ready.wait(0.2):
                    if (why := h.failure()) is not None:
                        raise EdgeError(why)
                    if stop.is_set():
                        return result
                    if time.monotonic() > deadline:
                        raise EdgeError(f"{h.name} was not ready within "
                                        f"{READY_TIMEOUT_S:.0f} s (log {h.log})")
        agg_threads = [_Worker(f"aggregator-{f.name}",
                               lambda a=a: a.run(stop, rounds=rounds), result.errors)
                       for f, a in zip(fleets, aggs, strict=True)]
        threads += agg_threads
        for t in agg_threads:
            t.start()
        while any(t.is_alive() for t in agg_threads) and not stop.is_set():
            for t in agg_threads:
                t.join(0.2 / len(agg_threads))
            if result.errors:
                break
            if (why := next((w for h in hosts if (w := h.failure()) is not None), None)):
                result.errors.append(why)
                break
    finally:
        stop.set()
        for t in threads:
            t.join(JOIN_TIMEOUT_S)
            if t.is_alive():
                result.errors.append(f"{t.name} did not stop within {JOIN_TIMEOUT_S:.0f} s")
        for h in hosts:
            if (why := h.stop()) is not None and why not in result.errors:
                result.errors.append(why)
        for d in daemons:
            d.close()
        for a in aggs:
            a.close()
        result.seconds = time.monotonic() - started
    return result
