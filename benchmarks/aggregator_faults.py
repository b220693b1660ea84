"""Aggregator under faults: metrics.jsonl rows after SIGKILLs, round close behind a flood.

Runs the real ``edge aggregator`` CLI of a checkout (``--root``, default this one) against a
real Mosquitto with fake devices (``tests/ops_helpers.py``), so the same numbers can be taken
before and after a change:

    .venv/bin/python benchmarks/aggregator_faults.py --kills 30 --garbage 5000
    .venv/bin/python benchmarks/aggregator_faults.py --root /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ops_helpers import ROOT, flood_scenario, kill_scenario

from edge.broker import MosquittoBroker


def main() -> int:
    """Print the two tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose CLI is run")
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--garbage", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = MosquittoBroker(work / "mosquitto")
        try:
            if args.kills:
                c = kill_scenario(work / "kills", broker.url, args.kills, root=args.root,
                                  seed=args.seed)
                print(f"SIGKILLs {c['kills']}: finished rounds {c['rounds']}, rows "
                      f"{c['rows']}, lost {c['lost']}, duplicated {c['duplicated']}, "
                      f"torn {c['torn']}, stray {c['stray']}")
            for garbage in (0, args.garbage):
                f = flood_scenario(work / f"flood{garbage}", broker.url, garbage,
                                   root=args.root)
                print(f"garbage {garbage}: restart to round close {f['seconds_to_close']:.2f} "
                      f"s, refusals counted {f['refused']}, audit rows {f['audit_rows']}")
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
