"""The options every command line of ours shares, defined once.

``--verbose`` works at every level (``edge --verbose tee info`` and
``edge tee info --verbose``): the top level sets its default, the lower levels
add it with ``default=SUPPRESS`` so an unset flag below never overwrites one
given above (argparse copies a sub-parser's defaults over the parent's
namespace otherwise). ``--json``, ``--tee``/``--state`` and ``--log-format``
belong to the verbs that print, touch a TEE or log: given elsewhere they are a
usage error naming the option.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

from edge.logformat import LOG_FORMAT_ENV, LOG_FORMATS
from edge.tee import BACKENDS, DEFAULT_BACKEND

SIM_STATE_ENV = "EDGE_SIM_STATE"  # docs/simulator.md: the simulated TEE's default folder


def add_verbose(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--verbose``/``-v``: more output; only the top level sets its default (False)."""
    p.add_argument("--verbose", "-v", action="store_true",
                   default=False if top else argparse.SUPPRESS,
                   help="more output (debug logging); accepted at every level of the command")


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json``: print one JSON object instead of text."""
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout instead of text")


def add_tee(p: argparse.ArgumentParser, *, default: str = DEFAULT_BACKEND) -> None:
    """``--tee`` and ``--state``: which TEE a command talks to."""
    p.add_argument("--tee", choices=BACKENDS, default=default,
                   help=f"TEE backend: optee (/dev/tee0) or sim (simulated; default {default})")
    p.add_argument("--state", type=Path, metavar="DIR",
                   help=f"state directory of the simulated TEE (with --tee sim; default "
                        f"${SIM_STATE_ENV})")


def add_log_format(p: argparse.ArgumentParser) -> None:
    """``--log-format``: kv (key=value) or json lines on stderr (edge/logformat.py)."""
    # SUPPRESS: given at a noun and at its verb (``edge aggregator --log-format json run``),
    # the verb's unset flag must not clear the noun's; read it with getattr(args, ..., None).
    p.add_argument("--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS,
                   help=f"log lines on stderr: kv (ts=... level=... msg=\"...\", the default) "
                        f"or json (one object per line); default ${LOG_FORMAT_ENV} or kv")


def _parent(add: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add(p)
    return p


def verbose_parent(*, top: bool = False) -> argparse.ArgumentParser:
    """A parent parser holding ``--verbose``."""
    return _parent(lambda p: add_verbose(p, top=top))


def json_parent() -> argparse.ArgumentParser:
    """A parent parser holding ``--json``."""
    return _parent(add_json)


def tee_parent(*, default: str = DEFAULT_BACKEND) -> argparse.ArgumentParser:
    """A parent parser holding ``--tee`` and ``--state``."""
    return _parent(lambda p: add_tee(p, default=default))


def log_format_parent() -> argparse.ArgumentParser:
    """A parent parser holding ``--log-format``."""
    return _parent(add_log_format)


def add_verbose_below(parser: argparse.ArgumentParser) -> None:
    """Give every sub-parser under ``parser`` the shared ``--verbose`` (not the top one)."""
    for _, sub in walk(parser):
        if sub is parser or "--verbose" in sub._option_string_actions:
            continue
        add_verbose(sub)


def subparser_actions(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:  # type: ignore[type-arg]
    """The sub-command actions of one parser (none for a leaf)."""
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def walk(parser: argparse.ArgumentParser, path: str = "") -> Iterator[
        tuple[str, argparse.ArgumentParser]]:
    """Every parser in the tree with its command path (``"tee info"``), this one first."""
    yield path, parser
    for action in subparser_actions(parser):
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias
                continue
            seen.add(id(sub))
            yield from walk(sub, f"{path} {name}".strip())
