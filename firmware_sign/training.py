"""``firmware-sign policy make`` and ``ticket make``: privacy policies and round tickets."""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge import calibration, privacy
from edge.errors import ConfigError
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.policy import (
    ACCOUNTANT_PLD,
    ACCOUNTANT_RDP,
    MAX_STEPS_PER_ROUND,
    SAMPLING_FIXED,
    SAMPLING_POISSON,
    build_policy,
    parse_policy,
)
from edge.formats.ticket import NONCE_SIZE, build_ticket, parse_ticket
from edge.keyfiles import load_private_key
from firmware_sign.outputs import UsageError, write_output

SAMPLING_BY_NAME = {"poisson": SAMPLING_POISSON, "fixed": SAMPLING_FIXED}
NO_DP_BANNER = "*** NO-DP TEST POLICY: noise may be 0, this policy gives NO privacy ***"


def _number(kind: type, low: float, low_open: bool, high: float | None = None
            ) -> Callable[[str], Any]:
    """argparse type: a finite number of ``kind`` above ``low`` (and at most ``high``)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or (value <= low if low_open else value < low) or (
                high is not None and value > high):
            bound = f"{'>' if low_open else '≥'} {low}" + (f" and ≤ {high}" if high else "")
            raise argparse.ArgumentTypeError(f"{text} is not {bound}")
        return value
    return parse


def _budget_by_sigma(args: argparse.Namespace, sampling: int) -> tuple[float, int, float]:
    """--noise-multiplier Z --epsilon E: the step budget at Z (RDP accountant)."""
    if args.epsilon is None:
        raise UsageError("--epsilon is required with --noise-multiplier (the target the "
                         "budget is computed for); or give --target-epsilon, --rounds and "
                         "--steps-per-round to solve for the noise")
    if args.noise_multiplier == 0.0:
        raise ConfigError("noise multiplier 0 gives no privacy; use --no-dp-test-only "
                          "for a test policy")
    # Account with the float32 values the policy stores and the TA enforces.
    q32 = float(np.float32(args.sampling_rate))
    sigma32 = float(np.float32(args.noise_multiplier))
    budget = privacy.max_steps(q32, sigma32, args.epsilon, args.delta, sampling)
    if budget == 0:
        raise ConfigError(
            f"target epsilon {args.epsilon} at delta {args.delta} does not allow one step "
            f"at noise multiplier {args.noise_multiplier} and rate {args.sampling_rate}")
    return args.noise_multiplier, budget, args.epsilon


def _budget_by_target(args: argparse.Namespace, sampling: int) -> calibration.Calibration:
    """--target-epsilon E --rounds R --steps-per-round S: solve for the noise multiplier."""
    missing = [flag for flag, value in (("--rounds", args.rounds),
                                        ("--steps-per-round", args.steps_per_round))
               if value is None]
    if missing:
        raise UsageError(f"--target-epsilon needs {' and '.join(missing)}")
    if args.noise_multiplier is not None or args.epsilon is not None:
        raise UsageError("--target-epsilon solves for the noise: drop --noise-multiplier "
                         "and --epsilon")
    q32 = float(np.float32(args.sampling_rate))
    return calibration.noise_for_target(args.target_epsilon, args.delta, q32,
                                        args.rounds * args.steps_per_round, sampling,
                                        args.accountant)


def cmd_policy_make(args: argparse.Namespace) -> int:
    """policy make: a step budget at a given noise, or the noise for a target ε over the
    planned steps (dp-accounting), then sign the policy."""
    sampling = SAMPLING_BY_NAME[args.sampling]
    solved: calibration.Calibration | None = None
    accountant = ACCOUNTANT_RDP
    if args.no_dp_test_only:
        if args.steps is None:
            raise UsageError("--no-dp-test-only needs --steps N (the step budget to grant)")
        if args.noise_multiplier is None:
            raise UsageError("--no-dp-test-only needs --noise-multiplier (0 allows no noise)")
        sigma, budget = args.noise_multiplier, args.steps
        target = args.epsilon if args.epsilon is not None else 0.0
    elif args.steps is not None:
        raise UsageError("--steps is for --no-dp-test-only; the budget comes from --epsilon "
                         "or --target-epsilon")
    elif args.target_epsilon is not None:
        solved = _budget_by_target(args, sampling)
        sigma, budget, target = solved.noise_multiplier, solved.steps, solved.target_epsilon
        accountant = ACCOUNTANT_PLD if solved.accountant == calibration.PLD else ACCOUNTANT_RDP
    elif args.noise_multiplier is None:
        raise UsageError("give --noise-multiplier Z with --epsilon E, or --target-epsilon E "
                         "with --rounds R and --steps-per-round S")
    else:
        sigma, budget, target = _budget_by_sigma(args, sampling)
    per_round = args.max_steps_per_round
    if per_round is None:
        if args.steps_per_round is None:
            raise UsageError("--max-steps-per-round is required (or --steps-per-round)")
        per_round = args.steps_per_round
    if args.steps_per_round is not None and per_round < args.steps_per_round:
        raise UsageError(f"--max-steps-per-round {per_round} is below --steps-per-round "
                         f"{args.steps_per_round}")
    signer = load_private_key(args.signer)
    data = build_policy(
        signer, version=args.version, noise_multiplier_min=sigma,
        max_example_clip=args.max_example_clip, max_update_clip=args.max_update_clip,
        sampling_rate=args.sampling_rate, sampling=sampling,
        max_steps_per_round=per_round, step_budget=budget,
        target_epsilon=target, delta=args.delta, no_dp=args.no_dp_test_only,
        accountant=accountant)
    p = parse_policy(data)
    write_output(Path(args.out), lambda fh: fh.write(data))
    if p.no_dp:
        print(NO_DP_BANNER, file=sys.stderr)
    if solved is not None:
        pld = ("n/a (fixed-size sampling)" if solved.epsilon_pld is None
               else f"{solved.epsilon_pld:.6g}")
        implied = (f"solved sigma_min={p.noise_multiplier_min:.6g} for target epsilon="
                   f"{target:g} at delta={p.delta:.3g} over {args.rounds} rounds x "
                   f"{args.steps_per_round} steps ({solved.accountant.upper()}); epsilon at "
                   f"the whole budget: RDP {solved.epsilon_rdp:.6g}, PLD {pld}")
    else:
        eps = privacy.implied_epsilon(p)
        implied = ("implies NO PRIVACY (no-DP test policy)" if math.isinf(eps) else
                   f"implies epsilon={eps:.6g} at delta={p.delta:.3g} (RDP accountant)")
    print(f"wrote {args.out}: privacy policy version {p.version}, step budget {p.step_budget} "
          f"steps ({args.sampling} sampling, q={p.sampling_rate:.6g}, "
          f"sigma_min={p.noise_multiplier_min:.6g}) {implied}, signed by key id "
          f"{key_id(ed25519_raw_public(signer)).hex()}")
    return 0


def cmd_ticket_make(args: argparse.Namespace) -> int:
    """ticket make: sign a round ticket with the aggregator key (manual tests)."""
    nonce = secrets.token_bytes(NONCE_SIZE) if args.nonce is None else args.nonce
    issued = int(time.time()) if args.issued_at is None else args.issued_at
    deadline = issued + args.ttl if args.deadline is None else args.deadline
    agg = load_private_key(args.aggregator)
    data = build_ticket(
        agg, round_id=args.round, model_version=args.model_version,
        package_id=args.package_id, nonce=nonce,
        issued_at=issued, deadline=deadline, example_clip=args.clip,
        noise_multiplier=args.noise_multiplier, update_clip=args.update_clip,
        learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size)
    t = parse_ticket(data)
    write_output(Path(args.out), lambda fh: fh.write(data))
    print(f"wrote {args.out}: round ticket round {t.round_id} for model version "
          f"{t.model_version} (package {t.package_id.hex()}), deadline {t.deadline}, nonce "
          f"{t.nonce.hex()}, signed by key id "
          f"{key_id(ed25519_raw_public(agg)).hex()}")
    return 0


def _hex16(what: str) -> Callable[[str], bytes]:
    """argparse type: 16 bytes as 32 hex digits; errors name ``what``."""
    def parse(text: str) -> bytes:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not hex") from None
        if len(raw) != NONCE_SIZE:
            raise argparse.ArgumentTypeError(f"{what} is {len(raw)} bytes, expected "
                                             f"{NONCE_SIZE}")
        return raw
    return parse


def register(sub: argparse._SubParsersAction, u64: Callable[[str], int]) -> None:  # type: ignore[type-arg]
    """Add ``policy make`` and ``ticket make``."""
    pos = _number(float, 0.0, True)
    per_round = _number(int, 1, False, MAX_STEPS_PER_ROUND)
    u16 = _number(int, 1, False, 0xFFFF)
    policy = sub.add_parser("policy", help="privacy policies").add_subparsers(
        dest="policy_command", required=True, metavar="COMMAND")
    mk = policy.add_parser(
        "make", help="compute a step budget (or the noise for a target epsilon) and sign a "
        "privacy policy")
    mk.add_argument("--signer", required=True, metavar="KEY", help="model-signer private key")
    mk.add_argument("--version", required=True, type=u64, metavar="N")
    mk.add_argument("--epsilon", type=pos, metavar="E",
                    help="target epsilon of the budget at --noise-multiplier")
    mk.add_argument("--target-epsilon", type=pos, metavar="E",
                    help="solve for the noise multiplier meeting epsilon E over --rounds x "
                    "--steps-per-round steps (the step budget)")
    mk.add_argument("--rounds", type=_number(int, 1, False, 2**32), metavar="R",
                    help="rounds the budget covers (with --target-epsilon)")
    mk.add_argument("--steps-per-round", type=per_round, metavar="S",
                    help="DP-SGD steps per round (with --target-epsilon; E*ceil(1/q) for "
                    "Poisson sampling)")
    mk.add_argument("--accountant", choices=calibration.ACCOUNTANTS, default=calibration.RDP,
                    help="accountant to calibrate with (pld: tighter, slower, Poisson only)")
    mk.add_argument("--delta", required=True, type=_number(float, 0.0, True, 0.5), metavar="D")
    mk.add_argument("--noise-multiplier", type=_number(float, 0.0, False),
                    metavar="Z", help="minimum noise multiplier sigma_min a ticket may use")
    mk.add_argument("--sampling-rate", required=True, type=_number(float, 0.0, True, 1.0),
                    metavar="Q")
    mk.add_argument("--sampling", choices=sorted(SAMPLING_BY_NAME), default="poisson")
    mk.add_argument("--max-example-clip", required=True, type=pos, metavar="C")
    mk.add_argument("--max-update-clip", required=True, type=pos, metavar="U")
    mk.add_argument("--max-steps-per-round", type=per_round, metavar="S",
                    help="per-round step limit (default: --steps-per-round)")
    mk.add_argument("--out", required=True, metavar="POLICY")
    mk.add_argument("--no-dp-test-only", action="store_true",
                    help="TEST ONLY: allow noise 0; the budget is --steps, no privacy")
    mk.add_argument("--steps", type=_number(int, 1, False, 2**64 - 1), metavar="N",
                    help="step budget of a --no-dp-test-only policy")
    mk.set_defaults(func=cmd_policy_make)

    ticket = sub.add_parser("ticket", help="round tickets (manual tests)").add_subparsers(
        dest="ticket_command", required=True, metavar="COMMAND")
    tk = ticket.add_parser("make", help="sign a round ticket with the aggregator key")
    tk.add_argument("--aggregator", required=True, metavar="KEY")
    tk.add_argument("--round", required=True, type=u64, metavar="N")
    tk.add_argument("--model-version", required=True, type=u64, metavar="V")
    tk.add_argument("--package-id", required=True, type=_hex16("package id"), metavar="HEX",
                    help="package id of the model the round trains, 32 hex digits (`edge tee "
                    "info` shows the loaded one; `firmware-sign inspect` a package's)")
    tk.add_argument("--nonce", type=_hex16("nonce"), metavar="HEX",
                    help="16 bytes (default random)")
    tk.add_argument("--issued-at", type=_number(int, 0, False), metavar="UNIX")
    tk.add_argument("--deadline", type=_number(int, 0, False), metavar="UNIX")
    tk.add_argument("--ttl", type=_number(int, 1, False), default=3600, metavar="SECONDS")
    tk.add_argument("--clip", required=True, type=pos, metavar="C")
    tk.add_argument("--noise-multiplier", required=True, type=_number(float, 0.0, False),
                    metavar="Z")
    tk.add_argument("--update-clip", required=True, type=pos, metavar="U")
    tk.add_argument("--learning-rate", required=True, type=pos, metavar="LR")
    tk.add_argument("--epochs", type=u16, default=1, metavar="E")
    tk.add_argument("--batch-size", type=u16, default=1, metavar="B")
    tk.add_argument("--out", required=True, metavar="TICKET")
    tk.set_defaults(func=cmd_ticket_make)
