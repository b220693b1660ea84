"""``edge aggregator [run|worker|enroll|revoke]``: the fleet's aggregator and its registry;
the read-only views (status, devices, audit, report) are in aggregator_views."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from edge.cli_options import add_json, add_log_format
from edge.commands.aggregator_views import (
    cmd_audit,
    cmd_devices,
    cmd_report,
    cmd_status,
    existing_state,
    load_config,
    status,
)
from edge.errors import ConfigError
from edge.logformat import setup_logging
from edge.stopping import stop_on_signals, stop_requested

__all__ = ["register", "status"]  # status: the tests read the state as `status --json` does

HEADER = f"{'round':>5}  {'part.':>5}  {'refused':<24}  {'accuracy':>8}  {'epsilon':>8}  " \
         f"{'seconds':>7}  model"


def _row(m: Any) -> str:
    refused = ",".join(f"{k}={v}" for k, v in sorted(m.refused.items())) or "0"
    acc = "-" if m.accuracy is None else f"{m.accuracy:.4f}"
    eps = "-" if m.epsilon is None else f"{m.epsilon:.3g}"
    model = "failed" if m.failed else f"v{m.model_version}"
    return (f"{m.round:>5}  {m.participants:>5}  {refused:<24}  {acc:>8}  {eps:>8}  "
            f"{m.seconds:>7.2f}  {model}")


def cmd_run(args: argparse.Namespace) -> int:
    """Run rounds until the configured count, --rounds more, or SIGTERM/SIGINT."""
    from edge.aggregator import Aggregator
    from edge.sdnotify import Notifier

    # The per-round table is on stdout; stderr holds warnings (every connect failure) and,
    # with --verbose, the aggregator's steps.
    setup_logging(getattr(args, "log_format", None), verbose=args.verbose,
                  edge_level=logging.INFO if args.verbose else logging.WARNING)
    config = load_config(args)
    rounds = getattr(args, "rounds", None)
    if rounds is None:
        rounds = getattr(args, "noun_rounds", None)
    print(HEADER, flush=True)
    outcomes: list[bool] = []

    def on_round(m: Any) -> None:
        outcomes.append(bool(m.failed))
        print(_row(m), flush=True)

    with stop_on_signals() as stop, Aggregator(config, on_round=on_round) as agg:
        agg.run(stop, rounds=rounds, notifier=Notifier())
        if (name := stop_requested(stop)) is not None:
            logging.getLogger("edge.aggregator").info("stopped by %s", name)
    if outcomes and all(outcomes):
        # A scheduler or script must see that the fleet produced nothing.
        print(f"rounds-failed: all {len(outcomes)} round(s) of this run failed (too few "
              "valid updates); see `edge aggregator audit` and the boards' logs",
              file=sys.stderr)
        return 1
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one cohort worker of the fleet until SIGTERM/SIGINT (docs/scale-out.md)."""
    from edge.aggregator.cohort import load_cohort_key
    from edge.aggregator.worker import CohortWorker

    setup_logging(getattr(args, "log_format", None), verbose=args.verbose,
                  edge_level=logging.INFO if args.verbose else logging.WARNING)
    config = load_config(args)
    if config.workers_key is None:
        raise ConfigError("workers.key: missing; workers and their root share a cohort key "
                          "(64 hex digits, e.g. `openssl rand -hex 32 > cohort.key`)")
    worker = CohortWorker(config, args.id, args.state, load_cohort_key(config.workers_key))
    with stop_on_signals() as stop:
        worker.run(stop)
        if (name := stop_requested(stop)) is not None:
            logging.getLogger("edge.aggregator.worker").info("stopped by %s", name)
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    """Enroll device records (DEVICE.pub files written by ``edge tee provision``)."""
    from edge.aggregator import names
    from edge.aggregator.registry import Registry
    from edge.aggregator.store import Store

    config = load_config(args)
    if args.name is not None:
        names.check(args.name)
        if len(args.records) != 1:
            raise ConfigError(f"--name names one board: give one record, not "
                              f"{len(args.records)}")
    records = []
    for path in args.records:
        try:
            records.append((path, Path(path).read_bytes()))
        except OSError as exc:
            raise ConfigError(f"cannot read device record {path}: {exc.strerror}") from None
    with Store(config.state) as store:
        registry = Registry(store)
        for path, record in records:
            name = args.name or names.from_record_path(path)
            device = registry.enroll(record, readmit=args.readmit, name=name)
            print(f"enrolled device {device.device_id.hex()} "
                  + (f"as {name} " if name else "")
                  + f"from {path}"
                  + ("" if name else f" (no name: {Path(path).name} is not one; --name NAME)"))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Remove enrolled devices: no tickets from the next round, left out of the next package."""
    from edge.aggregator.registry import Registry
    from edge.aggregator.store import Store

    config = load_config(args)
    state = existing_state(config)
    with Store(state) as store:
        by_name = {n: d for d, n in store.names().items()}
        ids = []
        for text in args.devices:
            if text in by_name:
                ids.append(by_name[text])
                continue
            try:
                ids.append(bytes.fromhex(text))
            except ValueError:
                ids.append(b"")
            if len(ids[-1]) != 16:
                raise ConfigError(f"device {text!r} is neither a board name nor 32 hex digits "
                                  "(edge aggregator devices lists both)")
        registry = Registry(store)
        for device_id in ids:
            registry.revoke(device_id)
            print(f"revoked device {device_id.hex()}")
    return 0


def register(nouns: Any) -> None:
    """Add ``edge aggregator ...`` (bare ``edge aggregator --config FILE`` means run)."""
    noun = nouns.add_parser("aggregator", help="run the fleet's aggregator, enroll devices")
    noun.add_argument("--config", dest="noun_config", type=Path, metavar="FILE",
                      help="aggregator TOML configuration (bare form: run)")
    noun.add_argument("--rounds", dest="noun_rounds", type=int, metavar="N",
                      help="stop after N more rounds (bare form: run)")
    add_log_format(noun)
    noun.set_defaults(run=cmd_run)
    verbs = noun.add_subparsers(dest="verb", required=False, metavar="VERB")
    p = verbs.add_parser("run", help="run rounds over MQTT until done or SIGTERM")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("--rounds", type=int, metavar="N", help="stop after N more rounds")
    add_log_format(p)
    p.set_defaults(run=cmd_run)
    p = verbs.add_parser("worker", help="one cohort worker: verify and sum a share of the "
                         "updates for the root (docs/scale-out.md)")
    p.add_argument("--config", type=Path, metavar="FILE", help="the root's TOML configuration "
                   "(its [workers] key, fleet and broker)")
    p.add_argument("--id", required=True, metavar="WORKER",
                   help="worker id, [a-z0-9-]{1,32}; keep it across restarts (its session)")
    p.add_argument("--state", required=True, type=Path, metavar="FILE",
                   help="this worker's SQLite database")
    add_log_format(p)
    p.set_defaults(run=cmd_worker)
    p = verbs.add_parser("enroll", help="enroll device records (DEVICE.pub)")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("records", nargs="+", type=Path, metavar="DEVICE.pub",
                   help="device records written by `edge tee provision`")
    p.add_argument("--readmit", action="store_true",
                   help="enroll a device that was revoked (it is refused otherwise)")
    p.add_argument("--name", metavar="NAME",
                   help="the board's name in every view, [A-Za-z0-9._-]{1,64} (one record "
                   "only; default: the record's file name without .pub); again to rename")
    p.set_defaults(run=cmd_enroll)
    p = verbs.add_parser("status", help="rounds, devices and refusals from the state database")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    add_json(p)
    p.set_defaults(run=cmd_status)
    p = verbs.add_parser("devices", help="per device: last seen, rounds joined, steps spent, "
                         "last refusal")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    add_json(p)
    p.set_defaults(run=cmd_devices)
    p = verbs.add_parser("revoke", help="remove enrolled devices (no more tickets or models)")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("devices", nargs="+", metavar="DEVICE",
                   help="board name or device id (32 hex digits)")
    p.set_defaults(run=cmd_revoke)
    p = verbs.add_parser("report", help="write an HTML report with charts of every round")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("--html", type=Path, metavar="OUT.html", required=True,
                   help="the HTML file to write (self-contained)")
    p.set_defaults(run=cmd_report)
    p = verbs.add_parser("audit", help="refusals by round, topic and class; audit rows")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("--rows", action="store_true", help="also print the newest audit rows")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N of each")
    add_json(p)
    p.set_defaults(run=cmd_audit)
