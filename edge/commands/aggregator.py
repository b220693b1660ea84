"""``edge aggregator [run|enroll|status]``: the fleet's aggregator and its registry."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, StateError
from edge.stopping import stop_on_signals, stop_requested

HEADER = f"{'round':>5}  {'part.':>5}  {'refused':<24}  {'accuracy':>8}  {'epsilon':>8}  " \
         f"{'seconds':>7}  model"


def _config_path(args: argparse.Namespace) -> Path:
    path = getattr(args, "config", None) or getattr(args, "noun_config", None)
    if path is None:
        raise ConfigError("--config FILE is required (the aggregator's TOML configuration)")
    return Path(path)


def _load(args: argparse.Namespace) -> Any:
    from edge.aggregator.config import AggregatorConfig

    return AggregatorConfig.from_toml(_config_path(args))


def _existing_state(config: Any) -> Path:
    """The aggregator's database, which a read command must not create by accident."""
    path = Path(config.state)
    if not path.exists():
        raise StateError(f"no aggregator database at {path} (check --config and its [state] "
                         "path; `edge aggregator enroll` or `run` creates it)")
    return path


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

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    config = _load(args)
    rounds = getattr(args, "rounds", None)
    if rounds is None:
        rounds = getattr(args, "noun_rounds", None)
    print(HEADER, flush=True)
    outcomes: list[bool] = []

    def on_round(m: Any) -> None:
        outcomes.append(bool(m.failed))
        print(_row(m), flush=True)

    with stop_on_signals() as stop, Aggregator(config, on_round=on_round) as agg:
        agg.run(stop, rounds=rounds)
        if (name := stop_requested(stop)) is not None:
            logging.getLogger("edge.aggregator").info("stopped by %s", name)
    if outcomes and all(outcomes):
        # A scheduler or script must see that the fleet produced nothing.
        print(f"rounds-failed: all {len(outcomes)} round(s) of this run failed (too few "
              "valid updates); see `edge aggregator audit` and the boards' logs",
              file=sys.stderr)
        return 1
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    """Enroll device records (DEVICE.pub files written by ``edge tee provision``)."""
    from edge.aggregator.registry import Registry
    from edge.aggregator.store import Store

    config = _load(args)
    records = []
    for path in args.records:
        try:
            records.append((path, Path(path).read_bytes()))
        except OSError as exc:
            raise ConfigError(f"cannot read device record {path}: {exc.strerror}") from None
    with Store(config.state) as store:
        registry = Registry(store)
        for path, record in records:
            device = registry.enroll(record)
            print(f"enrolled device {device.device_id.hex()} from {path}")
    return 0


def status(config: Any) -> dict[str, Any]:
    """Rounds, enrolled devices, model version, fleet ε and refusals by reason."""
    from edge.aggregator.fedavg import ACCOUNTANT, fleet_epsilon
    from edge.aggregator.registry import Registry
    from edge.aggregator.store import Store

    with Store(_existing_state(config)) as store:
        open_round = store.open_round()
        cp = store.latest_checkpoint()
        metrics = store.metrics_rows()
        epsilon = fleet_epsilon(store.round_privacy(), config.dp.delta)
        return {
            "fleet": config.fleet,
            "rounds": store.round_counts(),
            "open_round": None if open_round is None else {
                "round": open_round.round_id, "model_version": open_round.model_version,
                "accepted": open_round.count, "deadline": open_round.deadline},
            "model_version": None if cp is None else cp.version,
            "model_published": None if cp is None else cp.published is not None,
            "devices": sorted(d.hex() for d in Registry(store).devices()),
            "refusals": store.refusals(),
            "refusal_sources": store.refusal_sources(20),
            "epsilon": epsilon, "delta": config.dp.delta, "accountant": ACCOUNTANT,
            "last_round": metrics[-1] if metrics else None,
        }


def cmd_status(args: argparse.Namespace) -> int:
    """Print the aggregator's state from its database."""
    info = status(_load(args))
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    rounds = info["rounds"]
    print(f"fleet {info['fleet']}: {len(info['devices'])} enrolled devices, model "
          f"v{info['model_version']}, rounds closed {rounds.get('closed', 0)}, failed "
          f"{rounds.get('failed', 0)}, open {rounds.get('open', 0)}")
    if info["open_round"]:
        o = info["open_round"]
        print(f"open round {o['round']}: {o['accepted']} accepted, deadline {o['deadline']}")
    eps = "not reported (no central noise)" if info["epsilon"] is None \
        else f"{info['epsilon']:.4g} at delta {info['delta']:g}"
    print(f"fleet epsilon: {eps}")
    refusals = ", ".join(f"{k} {v}" for k, v in sorted(info["refusals"].items())) or "none"
    print(f"refusals: {refusals}")
    for src in info["refusal_sources"]:
        if src["counted"]:
            print(f"  round {src['round']}: {src['refusal']} {src['total']} from {src['topic']} "
                  f"({src['stored']} in the audit log, {src['counted']} counted only)")
    for device in info["devices"]:
        print(f"  device {device}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Print refusals by round, topic and class (stored rows and counted-only), then rows."""
    from edge.aggregator.store import Store

    config = _load(args)
    with Store(_existing_state(config)) as store:
        sources = store.refusal_sources(args.limit)
        rows = store.audit_rows()[-args.limit:] if args.rows else []
    if args.json:
        print(json.dumps({"sources": sources, "rows": rows}, indent=2, sort_keys=True))
        return 0
    print(f"{'round':>5}  {'class':<20}  {'total':>8}  {'stored':>6}  {'counted':>8}  topic")
    for s in sources:
        print(f"{s['round'] or '-':>5}  {s['refusal']:<20}  {s['total']:>8}  {s['stored']:>6}  "
              f"{s['counted']:>8}  {s['topic']}")
    for r in rows:
        print(f"{r['at']:.3f} round {r['round']} {r['refusal']} {r['topic']}: {r['reason']}")
    return 0


def register(nouns: Any) -> None:
    """Add ``edge aggregator ...`` (bare ``edge aggregator --config FILE`` means run)."""
    noun = nouns.add_parser("aggregator", help="run the fleet's aggregator, enroll devices")
    noun.add_argument("--config", dest="noun_config", type=Path, metavar="FILE",
                      help="aggregator TOML configuration (bare form: run)")
    noun.add_argument("--rounds", dest="noun_rounds", type=int, metavar="N",
                      help="stop after N more rounds (bare form: run)")
    noun.set_defaults(run=cmd_run)
    verbs = noun.add_subparsers(dest="verb", required=False, metavar="VERB")
    p = verbs.add_parser("run", help="run rounds over MQTT until done or SIGTERM")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("--rounds", type=int, metavar="N", help="stop after N more rounds")
    p.set_defaults(run=cmd_run)
    p = verbs.add_parser("enroll", help="enroll device records (DEVICE.pub)")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("records", nargs="+", type=Path, metavar="DEVICE.pub")
    p.set_defaults(run=cmd_enroll)
    p = verbs.add_parser("status", help="rounds, devices and refusals from the state database")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_status)
    p = verbs.add_parser("audit", help="refusals by round, topic and class; audit rows")
    p.add_argument("--config", type=Path, metavar="FILE", help="aggregator TOML configuration")
    p.add_argument("--rows", action="store_true", help="also print the newest audit rows")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N of each")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_audit)
