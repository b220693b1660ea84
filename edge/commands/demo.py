"""``edge demo``: provision a simulated fleet, federate over MQTT, print the per-round table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo with the flags; exit status 0 when every round closed."""
    from edge.demo.app import DemoOptions, run_demo

    run_demo(DemoOptions(devices=args.devices, rounds=args.rounds, broker=args.broker,
                         tee=args.tee, dp=args.dp, seed=args.seed, alpha=args.alpha,
                         report=args.report, workdir=args.workdir, fleet=args.fleet,
                         secagg=args.secagg,
                         verbose=args.verbose))
    return 0


def register(nouns: Any) -> None:
    """Add ``edge demo``."""
    p = nouns.add_parser(
        "demo", help="run a whole private federation on this machine",
        description="Provision N simulated devices (each its own simulated secure world), "
        "partition scikit-learn's digits non-IID, train an int8 TFLite backbone on a public "
        "split, then federate the head for R rounds over MQTT and print a per-round table "
        "next to the centralised non-private reference. --verbose logs the daemons' and the "
        "aggregator's steps to stderr. See docs/demo.md.")
    p.add_argument("--devices", type=int, default=10, metavar="N",
                   help="devices, 1 or more (default 10; past 100, in device host processes of "
                   "100; past the ~780 private samples, drawn with replacement)")
    p.add_argument("--fleet", default="demo", metavar="NAME",
                   help="fleet name, [a-z0-9-]{1,32} (default demo): several demos can share "
                   "a broker")
    p.add_argument("--rounds", type=int, default=20, metavar="R", help="rounds (default 20)")
    p.add_argument("--broker", default="embedded", metavar="embedded|URL",
                   help="embedded amqtt broker (default) or mqtt://host:port of a running one")
    p.add_argument("--tee", choices=("sim", "optee"), default="sim",
                   help="simulated secure worlds (default) or this board's OP-TEE (1 device)")
    p.add_argument("--dp", choices=("off", "preset", "distributed"), default="off",
                   help="off: local DP-SGD sigma=6, C=1, q=1, 4 epochs, no central noise "
                   "(device epsilon ~7.5 at delta 1e-5 over 20 rounds); preset: plus DP-FedAvg "
                   "central noise z=1 with update clip U=0.5 (fleet epsilon reported); "
                   "distributed: secure aggregation, each TA adding its noise share, beside a "
                   "non-private and a local-DP run (one table of accuracy and epsilon)")
    p.add_argument("--secagg", action="store_true",
                   help="secure aggregation (SecAgg+, device side in the TA): the aggregator "
                   "learns only each round's sum; runs the same federation without it first "
                   "and prints both accuracies and the quantization bound (docs/secagg.md)")
    p.add_argument("--seed", type=int, default=0, help="data split, partition and cohort seed")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet alpha (default 0.5)")
    p.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="keep keys, secure worlds, data and state here (default: a temporary "
                   "folder removed at the end)")
    p.set_defaults(run=cmd_demo)
