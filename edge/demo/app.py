"""``edge demo``: a whole private federation on this machine, from data to per-round table."""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edge.demo import data as demo_data
from edge.demo.fleet import FLEET, enable_secagg, write_fleet
from edge.demo.output import Table, fmt_eps, row_dict, write_html_report, write_report
from edge.demo.runner import broker_url, run_federation
from edge.demo.settings import DEFAULT, NON_PRIVATE, PRESETS, quiet_absl, with_noise_share
from edge.errors import ConfigError, EdgeError
from edge.protocol import check_fleet
from edge.secagg import distributed_dp

TARGET_POINTS = 3.0


@dataclass(frozen=True)
class DemoOptions:
    """The command line's choices."""

    devices: int = 10
    rounds: int = 20
    broker: str = "embedded"
    tee: str = "sim"
    dp: str = "off"
    seed: int = 0
    alpha: float = 0.5
    report: Path | None = None
    workdir: Path | None = None
    verbose: bool = False
    timeout_s: float = 30.0
    fleet: str = FLEET
    secagg: bool = False


def _check(opts: DemoOptions) -> None:
    """Refuse options the demo cannot run, naming the flag."""
    if opts.devices < 1:
        raise ConfigError(f"--devices {opts.devices}: must be at least 1")
    try:
        check_fleet(opts.fleet)
    except ConfigError as exc:
        raise ConfigError(f"--fleet: {exc}") from None
    if opts.rounds < 1:
        raise ConfigError(f"--rounds {opts.rounds}: must be ≥ 1")
    if opts.dp not in PRESETS:
        raise ConfigError(f"--dp {opts.dp}: must be one of {', '.join(PRESETS)}")
    if (opts.secagg or opts.dp == "distributed") and (opts.tee != "sim" or opts.devices < 2):
        flag = "--secagg" if opts.secagg else "--dp distributed"
        raise ConfigError(f"{flag}: secure aggregation needs at least 2 devices (--devices) "
                          "in simulated secure worlds (--tee sim)")
    if opts.tee == "optee" and opts.devices != 1:
        raise ConfigError("--tee optee: this machine has one secure world, so one device "
                          "(--devices 1); simulated devices use --tee sim")


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def run_demo(opts: DemoOptions, out: TextIO | None = None,
             stop: threading.Event | None = None) -> dict[str, Any]:
    """Prepare everything, federate, print the table; returns the report (also written)."""
    out = out or sys.stdout
    _check(opts)
    quiet_absl()
    logging.basicConfig(level=logging.INFO if opts.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # Quiet by default, but a failure (a broker that cannot be reached, a refused
    # update) is never silent.
    logging.getLogger("edge").setLevel(logging.INFO if opts.verbose else logging.WARNING)
    dp = PRESETS[opts.dp]
    distributed = opts.dp == "distributed"
    secagg = opts.secagg or distributed
    if distributed:
        # The fleet's ε after the run matches the local-DP run's device ε (docs/demo.md).
        dp = with_noise_share(dp, opts.devices, opts.rounds, DEFAULT.device_epsilon(opts.rounds))
    t0 = time.monotonic()
    owned = opts.workdir is None
    root = Path(tempfile.mkdtemp(prefix="edge-demo.")) if owned else Path(opts.workdir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        split = demo_data.split_digits(opts.devices, opts.alpha, opts.seed)
        sizes = [len(y) for _, y in split.devices]
        _say(out, f"data: digits, {len(split.public_y)} public (backbone), {len(split.test_y)} "
                  f"held-out test, {split.private_count} private on {opts.devices} devices "
                  f"(Dirichlet alpha={opts.alpha:g}, {min(sizes)}..{max(sizes)} each"
                  + (", drawn with replacement: more devices than disjoint sets)"
                     if split.resampled else ")"))
        backbone = demo_data.build_backbone(split.public_x, split.public_y, seed=opts.seed)
        reference = _reference(split, backbone)
        _say(out, f"backbone: int8 TFLite 64->{demo_data.HIDDEN}->{demo_data.FEATURES} "
                  f"({len(backbone.tflite)} bytes), trained on the public split")
        _say(out, f"privacy: {dp.describe()}")
        with broker_url(opts.broker) as url:
            plain = None
            modes: dict[str, dict[str, Any]] = {}
            fleet_root = root
            if distributed:
                modes["non-private"] = _side_run(opts, out, root / "non-private", split, backbone,
                                                 NON_PRIVATE, url, stop, "nodp",
                                                 "non-private run, sigma 0, no noise")
                modes["local DP"] = _side_run(opts, out, root / "local-dp", split, backbone,
                                              DEFAULT, url, stop, "local",
                                              "local-DP run, the default demo")
                fleet_root = root / "distributed"
                _say(out, "distributed-DP run (secure aggregation, noise shares in the TAs):")
            elif opts.secagg:
                plain = _side_run(opts, out, root / "without-secagg", split, backbone, dp,
                                  url, stop, "plain", "without secure aggregation")
                _say(out, "with secure aggregation:")
                fleet_root = root / "secagg"
            fleet = write_fleet(fleet_root, split, backbone, dp, broker_url=url, rounds=opts.rounds,
                                seed=opts.seed, backend=opts.tee, timeout_s=opts.timeout_s,
                                fleet_name=opts.fleet)
            if secagg:
                enable_secagg(fleet, **_share_scale(dp, opts.devices))
                _say(out, "secure aggregation (secagg+): " + _secagg_bound(fleet))
            _say(out, f"fleet: {opts.devices} devices provisioned ({opts.tee} secure worlds, "
                      f"policy budget covers {opts.rounds} rounds, device epsilon <= "
                      f"{fleet.policy_epsilon:g} at delta {dp.delta:g}); broker {url}")
            table = Table(opts.rounds, out)
            rows: list[dict[str, Any]] = []

            def on_round(m: Any) -> None:
                eps = dp.device_epsilon(len(rows) + 1)
                rows.append(row_dict(m, eps))
                table.row(m, eps)

            table.start()
            try:
                result = run_federation(fleet, opts.rounds, on_round=on_round, stop=stop)
            finally:
                table.close()
        if distributed:
            modes["distributed"] = {"rows": rows, "fleet": opts.fleet}
        report = _finish(opts, out, rows, result, reference, dp, time.monotonic() - t0, root,
                         Path(fleet.aggregator["aggregator"]["state"]), plain, modes)
        return report
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def _secagg_bound(fleet: Any) -> str:
    """t, k and the quantization bound of the fleet's secure aggregation, in words."""
    from edge.aggregator.config import AggregatorConfig

    sa = AggregatorConfig.from_mapping(fleet.aggregator).secagg
    assert sa is not None
    q = sa.params.quantizer
    return (f"t={sa.params.t} of k+1={sa.params.k + 1} share holders, updates quantized at "
            f"2^-{q.scale_log2}: the unmasked mean differs from the float mean of the same "
            f"updates by less than 2^-{q.scale_log2} = {2.0 ** -q.scale_log2:.3g} per "
            f"coordinate (docs/secagg.md, quantization bound)")


def _share_scale(dp: Any, devices: int) -> dict[str, int]:
    """The [secagg] scale_log2 for a fleet with a noise share: the finest that leaves the
    32-bit sum room for the shares (the aggregator checks it at start); else the default."""
    if not dp.noise_share:
        return {}
    clip = float(np.float32(dp.update_clip))
    scale = distributed_dp.finest_fitting_scale(dp.noise_share, clip, demo_data.PARAMS, devices)
    if scale is None:
        raise ConfigError(f"--dp distributed: the noise share {dp.noise_share:g} of "
                          f"{devices} devices does not fit a 32-bit sum at any scale")
    return {"scale_log2": scale}


def _side_run(opts: DemoOptions, out: TextIO, root: Path, split: demo_data.Split,
              backbone: demo_data.DemoBackbone, dp: Any, url: str,
              stop: threading.Event | None, suffix: str, title: str) -> dict[str, Any]:
    """The same federation (same data, head and seed) under other settings, for a
    comparison; its own fleet name (``-suffix``), so the runs share no topic."""
    name = f"{opts.fleet[:26]}-{suffix}"
    fleet = write_fleet(root, split, backbone, dp, broker_url=url, rounds=opts.rounds,
                        seed=opts.seed, backend=opts.tee, timeout_s=opts.timeout_s,
                        fleet_name=name)
    _say(out, f"{title} (fleet {name}):")
    table = Table(opts.rounds, out)
    rows: list[dict[str, Any]] = []

    def on_round(m: Any) -> None:
        eps = dp.device_epsilon(len(rows) + 1)
        rows.append(row_dict(m, eps))
        table.row(m, eps)

    table.start()
    try:
        result = run_federation(fleet, opts.rounds, on_round=on_round, stop=stop)
    finally:
        table.close()
    if result.errors:
        raise EdgeError(f"{title}: federation failed: " + "; ".join(result.errors))
    final = _final(rows)
    return {"rows": rows, "final_accuracy": final, "fleet": name}


def _reference(split: demo_data.Split, backbone: demo_data.DemoBackbone) -> float:
    """Centralised non-private accuracy: same backbone, head trained on all device data."""
    x = np.concatenate([backbone.features(x) for x, _ in split.devices])
    y = np.concatenate([y for _, y in split.devices])
    w, b = demo_data.softmax_regression(x, y)
    return demo_data.head_accuracy(w, b, backbone.features(split.test_x), split.test_y)


def _finish(opts: DemoOptions, out: TextIO, rows: list[dict[str, Any]], result: Any,
            reference: float, dp: Any, seconds: float, root: Path,
            state: Path, plain: dict[str, Any] | None = None,
            modes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Print the summary lines, write the report, raise if the federation broke."""
    final = _final(rows)
    met = final is not None and (reference - final) * 100 <= TARGET_POINTS
    last = rows[-1] if rows else {}
    _say(out, f"reference: centralised non-private accuracy (same backbone, head on all device "
              f"data) {reference:.4f}")
    if final is not None:
        target = (f"target within {TARGET_POINTS:g} points: {'met' if met else 'NOT met'}"
                  if opts.dp == "off" else
                  f"(the {TARGET_POINTS:g}-point target applies to --dp off; this preset "
                  f"trades accuracy for fleet-level privacy)")
        _say(out, f"federated: final test accuracy {final:.4f} ({(final - reference) * 100:+.1f}"
                  f" points); {target}")
    if plain is not None and final is not None and plain["final_accuracy"] is not None:
        _say(out, f"secure aggregation: final accuracy {final:.4f} with, "
                  f"{plain['final_accuracy']:.4f} without "
                  f"({(final - plain['final_accuracy']) * 100:+.1f} points; the two runs draw "
                  f"their local DP noise independently, the aggregation itself adds less than "
                  f"the quantization bound above)")
    comparison = _compare_modes(out, modes) if modes else None
    fleet_eps = last.get("fleet_epsilon")
    _say(out, f"privacy: device-level epsilon {last.get('device_epsilon', 0.0):.3g} at delta "
              f"{dp.delta:g} (local DP-SGD); fleet-level epsilon "
              + ("not reported (no central noise)" if fleet_eps is None
                 else f"{fleet_eps:.3g} at delta {dp.delta:g} ("
                 + ("distributed DP, accounted with each round's survivors"
                    if dp.noise_share else "DP-FedAvg") + ")"))
    _say(out, f"wall time {seconds:.1f} s for {len(rows)} rounds of {opts.devices} devices")
    report = {"devices": opts.devices, "fleet": opts.fleet, "rounds": opts.rounds, "dp": opts.dp,
              "dp_settings": dp.describe(), "seed": opts.seed, "alpha": opts.alpha,
              "broker": opts.broker, "tee": opts.tee, "rows": rows, "reference": reference,
              "final_accuracy": final, "target_points": TARGET_POINTS, "target_met": met,
              "delta": dp.delta, "seconds": round(seconds, 2), "errors": result.errors,
              "secagg": opts.secagg or bool(modes), "without_secagg": plain,
              "noise_share": dp.noise_share, "privacy_modes": comparison}
    if opts.report is not None:
        write_report(opts.report, report)
        html = opts.report.with_suffix(".html")
        write_html_report(html, state, opts.fleet)
        _say(out, f"report written to {opts.report} and {html}")
    if result.errors:
        raise EdgeError("federation failed: " + "; ".join(result.errors))
    if len(rows) < opts.rounds:
        raise EdgeError(f"federation stopped after {len(rows)} of {opts.rounds} rounds "
                        f"(work folder {root})")
    return report


def _compare_modes(out: TextIO, modes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The three privacy modes' final accuracy and ε side by side; returns the rows."""
    table: list[dict[str, Any]] = []
    base = _final(modes["non-private"]["rows"])
    for name, run in modes.items():
        final, last = _final(run["rows"]), (run["rows"][-1] if run["rows"] else {})
        cost = None if final is None or base is None else round((final - base) * 100, 2)
        table.append({"mode": name, "fleet": run["fleet"], "final_accuracy": final,
                      "points_vs_non_private": cost, "fleet_epsilon": last.get("fleet_epsilon"),
                      "device_epsilon": last.get("device_epsilon")})
    _say(out, f"{'privacy mode':<14}  {'test acc':>8}  {'vs non-private':>14}  "
              f"{'fleet eps':>9}  {'device eps':>10}")
    for r in table:
        acc = "-" if r["final_accuracy"] is None else f"{r['final_accuracy']:.4f}"
        cost = "-" if r["points_vs_non_private"] is None else f"{r['points_vs_non_private']:+.1f}"
        _say(out, f"{r['mode']:<14}  {acc:>8}  {cost:>14}  {fmt_eps(r['fleet_epsilon']):>9}  "
                  f"{fmt_eps(r['device_epsilon']):>10}")
    return table


def _final(rows: list[dict[str, Any]]) -> float | None:
    """The last accuracy a run measured."""
    return next((r["accuracy"] for r in reversed(rows) if r["accuracy"] is not None), None)
