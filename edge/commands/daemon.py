"""``edge daemon --config FILE``: run one board's federation daemon until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from edge.stopping import stop_on_signals


def _setup_logging(verbose: bool) -> None:
    """key=value lines on stderr; --verbose adds debug lines (and the broker client's)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("edge").setLevel(logging.DEBUG if verbose else logging.INFO)


def cmd_daemon(args: argparse.Namespace) -> int:
    """Load the config, open the TA, serve rounds until SIGTERM or SIGINT."""
    from edge.daemon import Daemon, DaemonConfig
    from edge.sdnotify import Notifier

    config = DaemonConfig.from_toml(args.config)
    _setup_logging(args.verbose)
    with stop_on_signals() as stop, Daemon(config) as daemon:
        daemon.run(stop, Notifier())
    return 0


def register(nouns: Any) -> None:
    """Add ``edge daemon``."""
    p = nouns.add_parser("daemon", help="run a board's federation daemon (until SIGTERM)")
    p.add_argument("--config", type=Path, required=True, metavar="FILE",
                   help="daemon configuration (TOML; see docs/daemon.md)")
    p.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                   help="debug logging")
    p.set_defaults(run=cmd_daemon)
