"""The demo's per-round table, its progress bar and the JSON report."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from edge.state_files import write_durably

BAR = 20
HEADER = (f"{'round':>5}  {'progress':<{BAR + 2}}  {'part.':>5}  {'refusals':<18}  "
          f"{'test acc':>8}  {'fleet eps':>9}  {'device eps':>10}  {'time s':>6}")


def bar(done: int, total: int) -> str:
    """``[#####.....]`` for done of total."""
    filled = BAR if total <= 0 else min(BAR, round(BAR * done / total))
    return "[" + "#" * filled + "." * (BAR - filled) + "]"


def fmt_eps(eps: float | None) -> str:
    """ε for the table: '-' when not reported (no central noise)."""
    if eps is None:
        return "-"
    return "inf" if math.isinf(eps) else f"{eps:.3g}"


def row_dict(m: Any, device_eps: float | None) -> dict[str, Any]:
    """A JSON-ready per-round row from the aggregator's RoundMetrics."""
    eps = m.epsilon if m.epsilon is None or math.isfinite(m.epsilon) else None
    return {"round": m.round, "participants": m.participants, "refused": dict(m.refused),
            "accuracy": m.accuracy, "fleet_epsilon": eps, "delta": m.delta,
            "device_epsilon": device_eps, "seconds": round(m.seconds, 3),
            "model_version": m.model_version, "failed": m.failed}


class Table:
    """Prints rows as rounds close; on a TTY, a status line ticks while a round runs."""

    def __init__(self, total: int, out: TextIO | None = None):
        self.total, self.out = total, out or sys.stdout
        self.tty = self.out.isatty()
        self.done = 0
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        """Print the header; start the ticking status line on a TTY."""
        print(HEADER, file=self.out, flush=True)
        self._since = time.monotonic()
        if self.tty:
            self._ticker = threading.Thread(target=self._tick, name="demo-progress", daemon=True)
            self._ticker.start()

    def _status(self) -> str:
        return (f"{'':>5}  {bar(self.done, self.total)}  round {self.done + 1}/{self.total} "
                f"running {time.monotonic() - self._since:5.1f} s")

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                if self.done < self.total:
                    self.out.write("\r\x1b[2K" + self._status())
                    self.out.flush()

    def row(self, m: Any, device_eps: float | None) -> None:
        """One closed round."""
        refused = ",".join(f"{k}={v}" for k, v in sorted(m.refused.items())) or "0"
        acc = "failed" if m.failed else ("-" if m.accuracy is None else f"{m.accuracy:.4f}")
        with self._lock:
            self.done += 1
            line = (f"{m.round:>5}  {bar(self.done, self.total)}  {m.participants:>5}  "
                    f"{refused:<18}  {acc:>8}  {fmt_eps(m.epsilon):>9}  "
                    f"{fmt_eps(device_eps):>10}  {m.seconds:>6.2f}")
            self.out.write(("\r\x1b[2K" if self.tty else "") + line + "\n")
            self.out.flush()
            self._since = time.monotonic()

    def close(self) -> None:
        """Stop the status line and clear it."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(1.0)
            with self._lock:
                self.out.write("\r\x1b[2K")
                self.out.flush()


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the JSON report atomically."""
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    write_durably(path, text.encode("utf-8"), mode=0o644)


def write_html_report(path: Path, state: Path, fleet: str) -> None:
    """The aggregator's HTML report of the run (docs/aggregator.md, "Views")."""
    from edge.aggregator.report import from_store, write_html
    from edge.aggregator.store import Store

    with Store(state) as store:
        write_html(path, from_store(store, fleet))
