"""Write every file derived from contract.spec; ``--check`` fails on drift.

    python -m contract.generate            # rewrite the generated files
    python -m contract.generate --check    # exit 1 and name each stale file

``--root DIR`` works on another tree (the tests use a temporary copy).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from contract.emit_c import c_header, c_results
from contract.emit_docs import doc_blocks
from contract.emit_py import py_abi, py_errors_block, py_layouts

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "BEGIN GENERATED"
END = "END GENERATED"


def splice(text: str, blocks: dict[str, str], comment: Callable[[str], str], path: str) -> str:
    """Replace the text between each pair of markers with its block."""
    for name, body in blocks.items():
        begin, end = comment(f"{BEGIN} {name}"), comment(f"{END} {name}")
        start = text.find(begin)
        stop = text.find(end)
        if start < 0 or stop < start:
            raise SystemExit(f"{path}: markers for {name!r} are missing")
        text = text[:start + len(begin)] + "\n" + body.strip("\n") + "\n" + text[stop:]
    return text


def outputs(root: Path) -> dict[Path, str]:
    """Every generated file and its content under ``root``."""
    docs = root / "docs" / "formats.md"
    errors = root / "edge" / "errors.py"
    return {
        root / "ta" / "include" / "edge_ta.h": c_header(),
        root / "host" / "edge_results.h": c_results(),
        root / "edge" / "tee_abi.py": py_abi(),
        root / "edge" / "formats" / "layouts.py": py_layouts(),
        errors: splice(errors.read_text(), {"exceptions": py_errors_block()},
                       lambda s: f"# {s}", str(errors)),
        docs: splice(docs.read_text(), doc_blocks(), lambda s: f"<!-- {s} -->", str(docs)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contract.generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    ap.add_argument("--root", type=Path, default=ROOT, help="tree to work on")
    args = ap.parse_args(argv)
    stale = []
    for path, text in outputs(args.root).items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
    for path in stale:
        verb = "stale" if args.check else "wrote"
        print(f"contract: {verb} {path.relative_to(args.root)}", file=sys.stderr)
    if args.check and stale:
        print("contract: run `python -m contract.generate` and commit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
