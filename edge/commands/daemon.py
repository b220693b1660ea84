"""``edge daemon --config FILE``: run one board's federation daemon until SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.cli_options import add_log_format
from edge.logformat import setup_logging
from edge.stopping import stop_on_signals


def cmd_daemon(args: argparse.Namespace) -> int:
    """Load the config, open the TA, serve rounds until SIGTERM or SIGINT."""
    from edge.daemon import Daemon, DaemonConfig
    from edge.sdnotify import Notifier

    config = DaemonConfig.from_toml(args.config)
    setup_logging(getattr(args, "log_format", None), verbose=args.verbose)
    with stop_on_signals() as stop, Daemon(config) as daemon:
        daemon.run(stop, Notifier())
    return 0


def register(nouns: Any) -> None:
    """Add ``edge daemon``."""
    p = nouns.add_parser("daemon", help="run a board's federation daemon (until SIGTERM)")
    p.add_argument("--config", type=Path, required=True, metavar="FILE",
                   help="daemon configuration (TOML; see docs/daemon.md)")
    add_log_format(p)
    p.set_defaults(run=cmd_daemon)
