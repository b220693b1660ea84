"""``edge board ...``: provision a board and read its state over its serial console.

On the operator's machine: ``provision`` and ``status`` (``--port /dev/ttyUSB0`` or
``socket://HOST:PORT``). On the board, run by those through the console:
``apply`` and ``report``. See docs/board.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edge import errors
from edge.cli_options import SIM_STATE_ENV, add_json, add_tee
from edge.state_files import write_durably


def _access(args: argparse.Namespace) -> Any:
    from edge.board.provision import BoardAccess

    password = None
    if args.password_file:
        try:
            password = args.password_file.read_text().splitlines()[0]
        except (OSError, IndexError) as exc:
            raise errors.ConfigError(f"--password-file {args.password_file}: cannot read a "
                                     f"first line: {exc}") from None
    if args.board_tee == "sim" and not args.board_state:
        raise errors.ConfigError("--board-tee sim needs --board-state DIR (on the board)")
    return BoardAccess(url=args.port, user=args.user, password=password,
                       baudrate=args.baudrate, edge=args.remote_edge, tee=args.board_tee,
                       state=args.board_state, staging=args.board_staging)


def cmd_provision(args: argparse.Namespace) -> int:
    """Provision a board over its console; write (and optionally enroll) its device record."""
    from edge.board.agent import bundle_version
    from edge.board.provision import provision
    from edge.keyfiles import load_public_key

    # Read and check the fleet's files before touching the board.
    signer = args.model_signer.read_bytes()
    aggregator = args.aggregator.read_bytes()
    load_public_key(args.model_signer)
    load_public_key(args.aggregator)
    registrar = None
    if args.registrar:
        registrar = args.registrar.read_bytes()
        load_public_key(args.registrar)
    policy = None
    if args.policy:
        from edge.formats.policy import parse_policy

        policy = args.policy.read_bytes()
        parse_policy(policy)
    result = provision(
        _access(args), signer=signer, aggregator=aggregator, policy=policy, registrar=registrar,
        expect_version=args.expect_version or bundle_version(), retries=args.retries,
        on_retry=lambda n, exc: print(f"console lost ({exc}); resuming (attempt {n + 1})",
                                      file=sys.stderr))
    write_durably(args.out, result.record, mode=0o644)
    enrolled = False
    if args.enroll:
        from edge.aggregator.registry import Registry
        from edge.aggregator.store import Store

        with Store(args.enroll) as store:
            Registry(store).enroll(result.record)
        enrolled = True
    summary = {"device_id": result.device.device_id.hex(), "record": str(args.out),
               "actions": result.board.get("actions", []), "enrolled": enrolled,
               "chunks_sent": result.transfer.sent, "chunks_reused": result.transfer.reused,
               "attempts": result.attempts}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"provisioned device {summary['device_id']} ({', '.join(summary['actions'])}); "
              f"record in {args.out}" + (f"; enrolled into {args.enroll}" if enrolled else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print what the board reports about itself."""
    from edge.board.provision import status

    report = status(_access(args))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    tee = report.get("tee", {})
    for key, value in [("bundle version", report.get("bundle_version")),
                       ("provisioned", report.get("provisioned")),
                       ("secagg ready", report.get("secagg_ready")),
                       ("registrar", tee.get("registrar_key_id")),
                       ("device id", tee.get("device_id")),
                       ("model version", tee.get("model_version")),
                       ("policy id", report.get("policy_id")),
                       ("steps spent", f"{report.get('steps_spent')} of "
                                       f"{report.get('step_budget')}")]:
        print(f"{key:<15} {'-' if value is None else value}")
    return 0


def _board_tee(args: argparse.Namespace) -> tuple[str, Path | None]:
    """The backend and simulated TEE folder: --state, else $EDGE_SIM_STATE (as `edge tee`)."""
    state = args.state
    if state is None and args.tee == "sim" and os.environ.get(SIM_STATE_ENV):
        state = Path(os.environ[SIM_STATE_ENV])
    if args.tee == "sim" and state is None:
        raise errors.ConfigError(f"--tee sim needs --state DIR (the simulated TEE's storage) "
                                 f"or ${SIM_STATE_ENV}")
    return args.tee, (state if args.tee == "sim" else None)


def cmd_apply(args: argparse.Namespace) -> int:
    """(On the board) provision the TA from a staged job folder."""
    from edge.board.agent import apply

    result = apply(args.dir, *_board_tee(args))
    print(json.dumps(result) if args.json else
          f"device {result['device_id']}: {', '.join(result['actions'])}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """(On the board) print this board's state."""
    from edge.board.agent import report

    print(json.dumps(report(*_board_tee(args)), separators=(",", ":")))
    return 0


def _console_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, metavar="URL",
                   help="the board's console: /dev/ttyUSB0, socket://HOST:PORT, rfc2217://...")
    p.add_argument("--baudrate", type=int, default=115200,
                 help="serial speed (default 115200)")
    p.add_argument("--user", default="root", help="login name on the console (default root)")
    p.add_argument("--password-file", type=Path, metavar="FILE",
                   help="first line: the login password, if the console asks for one")
    p.add_argument("--remote-edge", default="edge", metavar="CMD",
                   help="how to run the bundle's `edge` on the board (default: edge)")
    p.add_argument("--board-tee", choices=("optee", "sim"), default="optee",
                   help="the board's TEE backend (sim: a simulator bundle)")
    p.add_argument("--board-state", metavar="DIR", help="the board's simulated TEE folder")
    p.add_argument("--board-staging", default="/var/lib/edge/provision", metavar="DIR",
                   help="where jobs are staged on the board (default /var/lib/edge/provision)")
    add_json(p)


def _local_tee(p: argparse.ArgumentParser) -> None:
    add_tee(p, default="optee")
    add_json(p)


def register(nouns: Any) -> None:
    """Add ``edge board``."""
    board = nouns.add_parser("board", help="provision boards over their serial console")
    verbs = board.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("provision", help="provision a board over its console")
    _console_args(p)
    p.add_argument("--model-signer", type=Path, required=True, metavar="PUB",
                 help="the model signer's public key")
    p.add_argument("--aggregator", type=Path, required=True, metavar="PUB",
                 help="the aggregator's public key")
    p.add_argument("--policy", type=Path, metavar="FILE", help="signed privacy policy")
    p.add_argument("--registrar", type=Path, metavar="PUB",
                   help="the registrar key that signs enrollment certificates (secure "
                        "aggregation, docs/secagg.md)")
    p.add_argument("--out", type=Path, required=True, metavar="DEVICE.pub",
                   help="where the board's verified device record is written")
    p.add_argument("--enroll", type=Path, metavar="DB",
                   help="also enroll the record into this aggregator state database")
    p.add_argument("--retries", type=int, default=3, metavar="N",
                   help="reconnect and resume up to N times after a lost console")
    p.add_argument("--expect-version", metavar="V",
                   help="the bundle version the board must run (default: this edge's)")
    p.set_defaults(run=cmd_provision)

    p = verbs.add_parser("status", help="what the board reports (over its console)")
    _console_args(p)
    p.set_defaults(run=cmd_status)

    p = verbs.add_parser("apply", help="(on the board) provision from a staged job folder")
    p.add_argument("--dir", type=Path, required=True, metavar="DIR",
                 help="the staged job folder")
    _local_tee(p)
    p.set_defaults(run=cmd_apply)

    p = verbs.add_parser("report", help="(on the board) print this board's state as JSON")
    _local_tee(p)
    p.set_defaults(run=cmd_report)
