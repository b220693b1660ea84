"""The ``edge`` command line: ``edge <noun> <verb>``, like git and mosquitto.

Errors go to stderr as one line that starts with the refusal class
(``rollback: load model: ...``); the exit status is 0 only on success,
1 for a refusal or failure (``io: PATH: reason`` for a file that cannot be
read or written), 2 for bad usage, 141 when the reader of stdout went away
(``| head``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from edge.cli_options import add_verbose_below, verbose_parent
from edge.commands import aggregator as aggregator_commands
from edge.commands import board as board_commands
from edge.commands import daemon as daemon_commands
from edge.commands import demo as demo_commands
from edge.commands import info as info_commands
from edge.commands import model as model_commands
from edge.commands import runtime as runtime_commands
from edge.commands import tee as tee_commands
from edge.errors import EdgeError


def _version() -> str:
    try:
        return metadata.version("edge-tee")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser, one sub-parser per noun."""
    parser = argparse.ArgumentParser(
        prog="edge", description="Private on-device learning with an OP-TEE secure world.",
        parents=[verbose_parent(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"edge {_version()}",
                        help="print the version of edge and exit")
    nouns = parser.add_subparsers(dest="noun", required=True, metavar="NOUN")
    tee_commands.register(nouns)
    runtime_commands.register(nouns)
    info_commands.register(nouns)
    model_commands.register(nouns)
    aggregator_commands.register(nouns)
    daemon_commands.register(nouns)
    demo_commands.register(nouns)
    board_commands.register(nouns)
    add_verbose_below(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EdgeError as exc:
        print(f"{exc.refusal}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `edge ... | head` closed our stdout: nothing more to say, and Python's
        # final flush must not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        if exc.filename is None:
            raise
        # A file the user named cannot be read or written: one line, no traceback.
        print(f"io: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
