"""``edge model build``: train a demo backbone in numpy and write a full-integer int8 .tflite."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.cli_options import add_json
from edge.errors import ConfigError
from edge.state_files import write_durably


def cmd_build(args: argparse.Namespace) -> int:
    """Build the backbone and its metadata, print a summary."""
    from edge.inference.demo import build_demo

    for path in (args.out, args.metadata):
        if path is not None and not path.parent.is_dir():
            raise ConfigError(f"cannot write {path}: no folder {str(path.parent)!r}")
    built = build_demo(args.arch, image_size=args.image_size, epochs=args.epochs, seed=args.seed)
    out: Path = args.out
    write_durably(out, built.tflite, mode=0o644)
    meta_path = args.metadata or out.with_suffix(".json")
    write_durably(meta_path, (json.dumps(built.metadata, indent=2) + "\n").encode(), mode=0o644)
    summary: dict[str, Any] = {"model": str(out), "metadata": str(meta_path),
                               "bytes": len(built.tflite), "arch": args.arch,
                               "float_accuracy": round(built.float_accuracy, 4),
                               "int8_accuracy": round(built.int8_accuracy, 4), **built.metadata}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {out} ({len(built.tflite)} bytes, int8 {args.arch}) and {meta_path}; "
              f"held-out accuracy float {built.float_accuracy:.3f}, "
              f"int8 {built.int8_accuracy:.3f}")
    return 0


def register(nouns: Any) -> None:
    """Add ``edge model ...``."""
    noun = nouns.add_parser("model", help="build quantized backbones")
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("build", help="train the digits demo backbone and write an int8 .tflite")
    p.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                   help="dense 64->32->10 MLP, or conv 3x3 + max pool + dense")
    p.add_argument("--image-size", type=int, choices=(28, 32), default=28,
                   help="input size of the conv net (digits upscaled)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs")
    p.add_argument("--seed", type=int, default=0,
                 help="training seed (default 0)")
    p.add_argument("--out", "-o", type=Path, required=True, help="the .tflite to write")
    p.add_argument("--metadata", type=Path, default=None,
                   help="metadata JSON to write (default: OUT with .json)")
    add_json(p)
    p.set_defaults(run=cmd_build)
