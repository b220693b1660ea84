"""``edge aggregator status|devices|audit|report``: the operator's views of the state database.

They read the database and never create it; each has ``--json`` where it prints a result.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, StateError


def _config_path(args: argparse.Namespace) -> Path:
    path = getattr(args, "config", None) or getattr(args, "noun_config", None)
    if path is None:
        raise ConfigError("--config FILE is required (the aggregator's TOML configuration)")
    return Path(path)


def load_config(args: argparse.Namespace) -> Any:
    """The aggregator configuration named by --config."""
    from edge.aggregator.config import AggregatorConfig

    return AggregatorConfig.from_toml(_config_path(args))


def existing_state(config: Any) -> Path:
    """The aggregator's database, which a read command must not create by accident."""
    path = Path(config.state)
    if not path.exists():
        raise StateError(f"no aggregator database at {path} (check --config and its [state] "
                         "path; `edge aggregator enroll` or `run` creates it)")
    return path


def status(config: Any) -> dict[str, Any]:
    """Rounds, enrolled devices, model version, fleet ε and refusals by reason."""
    from edge.aggregator import names
    from edge.aggregator.fedavg import ACCOUNTANT, fleet_epsilon
    from edge.aggregator.registry import Registry
    from edge.aggregator.store import Store

    with Store(existing_state(config)) as store:
        open_round = store.open_round()
        cp = store.latest_checkpoint()
        metrics = store.metrics_rows()
        epsilon = fleet_epsilon(store.round_privacy(), config.dp.delta)
        named = names.by_hex(store.names())
        skips = store.skips(limit=20)
        for skip in skips:
            skip["name"] = named.get(skip["device"])
        return {
            "fleet": config.fleet,
            "rounds": store.round_counts(),
            "open_round": None if open_round is None else {
                "round": open_round.round_id, "model_version": open_round.model_version,
                "accepted": open_round.count, "deadline": open_round.deadline},
            "model_version": None if cp is None else cp.version,
            "model_published": None if cp is None else cp.published is not None,
            "devices": sorted(d.hex() for d in Registry(store).devices()),
            "names": named,
            # boards on the broker the aggregator does not serve (never enrolled, revoked)
            "unenrolled": store.unenrolled_presence(),
            "refusals": store.refusals(),
            "refusal_sources": store.refusal_sources(20),
            # the boards' own word on why they did not train (signed skip reports)
            "skips": skips,
            "epsilon": epsilon, "delta": config.dp.delta, "accountant": ACCOUNTANT,
            "last_round": metrics[-1] if metrics else None,
        }


def human_time(t: float | None, now: float | None = None) -> str:
    """A Unix time as UTC with how long ago it was ('-' for none)."""
    if t is None:
        return "-"
    now = time.time() if now is None else now
    ago = now - float(t)
    when = datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if ago < 0:
        return f"{when} (in {_span(-ago)})"
    return f"{when} ({_span(ago)} ago)"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def cmd_status(args: argparse.Namespace) -> int:
    """Print the aggregator's state from its database."""
    from edge.aggregator.names import label

    info = status(load_config(args))
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    rounds = info["rounds"]
    model = "no model yet (the aggregator has not run)" if info["model_version"] is None \
        else f"model v{info['model_version']}" + ("" if info["model_published"]
                                                 else " (not published yet)")
    print(f"fleet {info['fleet']}: {len(info['devices'])} enrolled devices, {model}, rounds "
          f"closed {rounds.get('closed', 0)}, failed {rounds.get('failed', 0)}, open "
          f"{rounds.get('open', 0)}")
    if info["open_round"]:
        o = info["open_round"]
        print(f"open round {o['round']}: {o['accepted']} accepted, deadline "
              f"{human_time(o['deadline'])}")
    last = info["last_round"]
    if last:
        print(f"last round {last['round']}: "
              + (("failed" + (f" ({last['reason']})" if last.get("reason") else ""))
                 if last.get("failed") else f"model v{last.get('model_version')}")
              + ("" if last.get("accuracy") is None
                 else f", held-out accuracy {last['accuracy']:.4f}")
              + f", {last.get('participants')} participants, closed "
              + human_time(last.get("closed_at")))
    eps = "not reported (no central noise)" if info["epsilon"] is None \
        else f"{info['epsilon']:.4g} at delta {info['delta']:g}"
    print(f"fleet epsilon: {eps}")
    refusals = ", ".join(f"{k} {v}" for k, v in sorted(info["refusals"].items())) or "none"
    print(f"refusals: {refusals}")
    for src in info["refusal_sources"]:
        if src["counted"]:
            print(f"  round {src['round']}: {src['refusal']} {src['total']} from {src['topic']} "
                  f"({src['stored']} in the audit log, {src['counted']} counted only)")
    for skip in info["skips"]:
        print(f"{label(skip['device'], skip['name'])} skipped round {skip['round']}: "
              f"{skip['reason']}")
    for device in info["devices"]:
        print(f"  {label(device, info['names'].get(device))}")
    for u in info["unenrolled"]:
        if u["presence"] == "online":
            print(f"not enrolled: device {u['device']} is online since "
                  f"{human_time(u['since'])} and gets no model or tickets ("
                  + ("revoked; enroll --readmit to take it back)" if u["revoked"] else
                     "edge aggregator enroll --config FILE --name NAME DEVICE.pub)"))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    """Per enrolled device: last seen, rounds joined, steps spent, last refusal."""
    from edge.aggregator.store import Store

    config = load_config(args)
    with Store(existing_state(config)) as store:
        devices = store.device_activity()
    budget = _device_budget(config)
    width = max([len(d["name"] or "") for d in devices] + [4])
    for d in devices:
        steps = d["steps_spent"] or 0
        d["epsilon"] = None if budget is None else budget.epsilon(steps)
        d["budget_left"] = None if budget is None else budget.left(steps)
    if args.json:
        print(json.dumps({"fleet": config.fleet, "devices": devices}, indent=2,
                         sort_keys=True))
        return 0
    print(f"{'name':<{width}}  {'device':<32}  {'presence':<8}  {'tickets':>7}  {'joined':>6}  "
          f"{'steps':>6}  {'left':>6}  {'epsilon':>7}  last update")
    for d in devices:
        steps = "-" if d["steps_spent"] is None else d["steps_spent"]
        left = "-" if d["budget_left"] is None else d["budget_left"]
        eps = "-" if d["epsilon"] is None else f"{d['epsilon']:.3g}"
        print(f"{d['name'] or '-':<{width}}  {d['device']:<32}  {d['presence'] or '-':<8}  "
              f"{d['tickets']:>7}  {d['rounds_joined']:>6}  {steps:>6}  {left:>6}  {eps:>7}  "
              f"{human_time(d['last_update_at'])}")
        r = d["last_refusal"]
        if r is not None:
            print(f"  last refused in round {r['round']}, {human_time(r['at'])}: "
                  f"{r['refusal']}: {r['reason']}")
        s = d["last_skip"]
        if s is not None:
            print(f"  skipped round {s['round']} ({d['rounds_skipped']} in all), "
                  f"{human_time(s['at'])}: {s['reason']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report (charts of every round) from the state database."""
    from edge.aggregator.report import from_store, write_html
    from edge.aggregator.store import Store

    config = load_config(args)
    with Store(existing_state(config)) as store:
        data = from_store(store, config.fleet)
    try:
        write_html(args.html, data)
    except OSError as exc:
        raise ConfigError(f"--html: cannot write {args.html}: {exc.strerror}") from None
    print(f"report of {len(data.rows)} rounds written to {args.html}")
    return 0


def _device_budget(config: Any) -> Any:
    """The devices' policy budget (dp.device_policy), or None when not configured."""
    from edge.aggregator import device_budget
    from edge.keyfiles import load_private_key

    if config.dp.device_policy is None:
        return None
    return device_budget.load(config, load_private_key(config.model_signer_key))


def cmd_audit(args: argparse.Namespace) -> int:
    """Print refusals by round, topic and class (stored rows and counted-only), then rows."""
    from edge.aggregator.names import by_hex, label
    from edge.aggregator.store import Store

    config = load_config(args)
    with Store(existing_state(config)) as store:
        sources = store.refusal_sources(args.limit)
        rows = store.audit_rows()[-args.limit:] if args.rows else []
        named = by_hex(store.names())
    for row in rows:
        row["name"] = named.get(row["device"]) if row["device"] else None
    for src in sources:
        # the device of an update or skip topic (edge/v1/{fleet}/devices/{id}/...)
        parts = src["topic"].split("/")
        device = parts[4] if len(parts) > 4 and parts[3] == "devices" else None
        src["device"] = device if device in named else None
        src["name"] = named.get(device) if device else None
    if args.json:
        print(json.dumps({"sources": sources, "rows": rows}, indent=2, sort_keys=True))
        return 0
    print(f"{'round':>5}  {'class':<20}  {'total':>8}  {'stored':>6}  {'counted':>8}  topic")
    for s in sources:
        print(f"{s['round'] or '-':>5}  {s['refusal']:<20}  {s['total']:>8}  {s['stored']:>6}  "
              f"{s['counted']:>8}  {s['topic']}" + (f"  ({s['name']})" if s["name"] else ""))
    for r in rows:
        who = f" {label(r['device'], r['name'])}" if r["name"] else ""
        print(f"{r['at']:.3f} round {r['round']} {r['refusal']}{who} {r['topic']}: "
              f"{r['reason']}")
    return 0

