"""``edge runtime info``: the inference runtime, its version, NPU delegates found, numpy version."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edge.cli_options import add_json


def cmd_info(args: argparse.Namespace) -> int:
    """Print what this machine would run the backbone with (read-only)."""
    from edge.inference.runtime import runtime_info

    info = runtime_info(args.runtime)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    runtime = (f"{info['runtime']} {info['runtime_version']}" if info["runtime"]
               else f"none ({info['runtime_error']})")
    print(f"runtime:   {runtime}")
    print(f"numpy:     {info['numpy_version']}")
    print(f"delegates: {', '.join(info['delegates_found']) or 'none found'} "
          f"(probed {', '.join(info['delegates_probed'])})")
    print(f"cpu:       XNNPACK, {info['cpu_count']} cores")
    return 0


def add_info_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``edge runtime info`` (and of its alias ``edge info``)."""
    p.add_argument("--runtime", default="auto",
                   choices=("auto", "tflite-runtime", "ai-edge-litert"),
                   help="runtime setting to resolve (as the daemon's [inference] runtime)")
    add_json(p)
    p.set_defaults(run=cmd_info)


def register(nouns: Any) -> None:
    """Add ``edge runtime info``."""
    noun = nouns.add_parser("runtime", help="the inference runtime on this machine")
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("info", help="inference runtime, NPU delegates and versions")
    add_info_arguments(p)
