"""``edge daemon`` that holds its first round ticket until the test lets it go.

Run as ``python tests/hold_ticket.py GATE --config daemon.toml``: when the first ticket
arrives the daemon's worker writes ``GATE.arrived`` and waits until ``GATE.release``
exists, then handles the ticket as usual. The test kills the broker in between, so what
the daemon makes of the ticket (an update, a skip report) is made with the broker down.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edge.cli import main
from edge.daemon.daemon import Daemon

_handle = Daemon._handle_ticket
_gate = Path(sys.argv[1])
_held = False


def _held_ticket(self: Daemon, payload: bytes, arrived: float | None = None) -> None:
    global _held
    if not _held:
        _held = True
        _gate.with_suffix(".arrived").touch()
        while not _gate.with_suffix(".release").exists():
            time.sleep(0.02)
    _handle(self, payload, arrived)


Daemon._handle_ticket = _held_ticket  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(["daemon", *sys.argv[2:]]))
