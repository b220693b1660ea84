"""``edge info``: the old name of ``edge runtime info``, kept as a documented alias."""

from __future__ import annotations

from typing import Any

from edge.commands.runtime import add_info_arguments


def register(nouns: Any) -> None:
    """Add ``edge info`` (alias of ``edge runtime info``; docs/inference.md)."""
    p = nouns.add_parser("info", help="alias of `edge runtime info`")
    add_info_arguments(p)
