"""The fleet report: one self-contained HTML page of inline SVG charts, built from what the
aggregator records (metrics rows and the steps its accepted updates carry).

Drawn by this module rather than a plotting library: five line charts need ~150 lines of
SVG, and matplotlib (the light-enough candidate) would add tens of megabytes to the
aggregator for them. The page fetches nothing at view time (no script, font or style
sheet from the network).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.state_files import write_durably

# The page's geometry: a header of HEADER_PX, then the charts stacked, each CHART_W x CHART_H
# CSS pixels at the left edge (tests find each chart's box in a screenshot from these).
HEADER_PX = 80
CHART_W, CHART_H = 720, 260
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 64, 150, 34, 36

# One colour per series over the whole page, so a pixel's colour names its series.
COLOURS = {"accuracy": "#1f77b4", "fleet_epsilon": "#d62728", "device_epsilon": "#ff7f0e",
           "participants": "#2ca02c", "refusals": "#9467bd", "seconds": "#8c564b"}
DEVICE_COLOURS = ("#17becf", "#bcbd22", "#e377c2", "#393b79", "#637939", "#8c6d31",
                  "#843c39", "#7b4173")
CHARTS = ("accuracy", "epsilon", "participants", "seconds", "budget")


@dataclass(frozen=True)
class Series:
    """One plotted line: (round, value) points, a legend label and a colour."""

    key: str
    label: str
    colour: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Chart:
    """One chart's title, y-axis label and series."""

    key: str
    title: str
    y_label: str
    series: tuple[Series, ...]
    note: str = ""


@dataclass(frozen=True)
class ReportData:
    """What the report plots, by round: rows as in metrics.jsonl (plus an optional
    ``device_epsilon``) and each device's cumulative DP-SGD steps from its sealed updates."""

    fleet: str
    rows: tuple[dict[str, Any], ...]
    steps: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # boards' names by hex device id


def from_store(store: Any, fleet: str) -> ReportData:
    """The report's data from an aggregator database (edge.aggregator.store.Store)."""
    rows = store.metrics_rows()
    times = store.round_times()
    for row in rows:  # rows written before timestamps were kept: take them from the rounds
        opened, closed = times.get(int(row["round"]), (None, None))
        row.setdefault("opened_at", opened)
        row.setdefault("closed_at", closed)
    steps: dict[str, list[tuple[int, int]]] = {}
    for round_id, device, total in store.steps_by_round():
        steps.setdefault(device, []).append((round_id, total))
    return ReportData(fleet, tuple(rows), {d: tuple(p) for d, p in steps.items()},
                      {d.hex(): n for d, n in store.names().items()})


def charts(data: ReportData) -> list[Chart]:
    """The five charts of the report, in page order (CHARTS)."""
    rows = data.rows

    def line(key: str, label: str, value: Any) -> Series:
        pts = []
        for r in rows:
            v = value(r)
            if v is not None and math.isfinite(float(v)):
                pts.append((float(r["round"]), float(v)))
        return Series(key, label, COLOURS[key], tuple(pts))

    eps = [line("fleet_epsilon", "fleet ε (DP-FedAvg)",
                lambda r: r.get("epsilon", r.get("fleet_epsilon"))),
           line("device_epsilon", "device ε (DP-SGD)", lambda r: r.get("device_epsilon"))]
    eps_note = "; ".join(
        n for s, n in zip(eps, ("no fleet ε (no central noise)",
                                "no device ε (set dp.device_policy)"),
                          strict=True) if not s.points)
    devices = sorted(data.steps)
    budget = tuple(Series(f"device:{d}", f"{data.names[d]} ({d[:8]})" if d in data.names
                          else d[:8], DEVICE_COLOURS[i % len(DEVICE_COLOURS)],
                          tuple((float(r), float(t)) for r, t in data.steps[d]))
                   for i, d in enumerate(devices))
    note = "" if len(devices) <= len(DEVICE_COLOURS) else \
        f"{len(devices)} devices: colours repeat every {len(DEVICE_COLOURS)}"
    return [
        Chart("accuracy", "Held-out accuracy per round", "accuracy",
              (line("accuracy", "accuracy", lambda r: r.get("accuracy")),),
              "" if any(r.get("accuracy") is not None for r in rows)
              else "no held-out set configured (eval.holdout)"),
        Chart("epsilon", "Privacy spent: ε per round", "ε", tuple(eps), eps_note),
        Chart("participants", "Participants and refusals per round", "updates",
              (line("participants", "participants", lambda r: r.get("participants")),
               line("refusals", "refusals", lambda r: sum((r.get("refused") or {}).values())))),
        Chart("seconds", "Round duration", "seconds",
              (line("seconds", "seconds", lambda r: r.get("seconds")),)),
        Chart("budget", "Per-device budget burn-down: DP-SGD steps spent", "steps",
              budget, note),
    ]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round-numbered ticks covering [lo, hi]."""
    span = hi - lo
    raw = span / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(math.ceil((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.6g}" if abs(v) < 1e5 else f"{v:.3g}"


def svg_chart(chart: Chart) -> str:
    """One chart as an inline SVG element of CHART_W x CHART_H."""
    pts = [p for s in chart.series for p in s.points]
    x0, x1 = _PAD_L, CHART_W - _PAD_R
    y0, y1 = CHART_H - _PAD_B, _PAD_T
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="chart-{chart.key}" width="{CHART_W}" '
           f'height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
           f'aria-label="{html.escape(chart.title)}">',
           f'<text x="{x0}" y="20" class="title">{html.escape(chart.title)}</text>',
           f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" class="frame"/>']
    if not pts:
        out.append(f'<text x="{x0 + 10}" y="{(y0 + y1) // 2}" class="note">no data yet'
                   f'{": " + html.escape(chart.note) if chart.note else ""}</text></svg>')
        return "\n".join(out)
    rx = [p[0] for p in pts]
    ry = [p[1] for p in pts]
    xlo, xhi = min(rx), max(rx)
    if xhi == xlo:
        xlo, xhi = xlo - 1, xhi + 1
    ylo, yhi = min(0.0, min(ry)), max(ry)
    if yhi == ylo:
        yhi = ylo + 1
    yt = _ticks(ylo, yhi)
    ylo, yhi = min(ylo, yt[0]), max(yhi, yt[-1])

    def sx(v: float) -> float:
        return x0 + (v - xlo) / (xhi - xlo) * (x1 - x0)

    def sy(v: float) -> float:
        return y0 - (v - ylo) / (yhi - ylo) * (y0 - y1)

    for t in yt:
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" class="grid"/>'
                   f'<text x="{x0 - 6}" y="{sy(t) + 4:.1f}" class="ytick">{_fmt(t)}</text>')
    for t in _ticks(xlo, xhi, 8):
        if xlo <= t <= xhi and float(t).is_integer():
            out.append(f'<text x="{sx(t):.1f}" y="{y0 + 16}" class="xtick">{int(t)}</text>')
    out.append(f'<text x="{(x0 + x1) // 2}" y="{CHART_H - 4}" class="xtick">round</text>'
               f'<text x="14" y="{(y0 + y1) // 2}" class="ylabel" transform="rotate(-90 14 '
               f'{(y0 + y1) // 2})">{html.escape(chart.y_label)}</text>')
    for i, s in enumerate(chart.series):
        if s.points:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
            out.append(f'<polyline points="{path}" stroke="{s.colour}" class="series" '
                       f'data-series="{html.escape(s.key)}"/>')
            out += [f'<rect x="{sx(x) - 3:.1f}" y="{sy(y) - 3:.1f}" width="6" height="6" '
                    f'fill="{s.colour}" class="mark"/>' for x, y in s.points]
        ly = y1 + 6 + 16 * i
        if ly < y0:
            out.append(f'<rect x="{x1 + 10}" y="{ly}" width="14" height="8" fill="{s.colour}" '
                       f'class="mark"/><text x="{x1 + 30}" y="{ly + 8}" class="legend">'
                       f'{html.escape(s.label)}</text>')
    if chart.note:
        out.append(f'<text x="{x0 + 8}" y="{y1 + 14}" class="note">'
                   f'{html.escape(chart.note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


_STYLE = f"""
body {{ margin: 0; font-family: sans-serif; background: #ffffff; color: #222222; }}
header {{ height: {HEADER_PX}px; box-sizing: border-box; padding: 10px 16px; margin: 0; }}
header h1 {{ font-size: 20px; margin: 0 0 6px 0; }}
svg {{ display: block; }}
.title {{ font-size: 14px; font-weight: bold; fill: #222222; }}
.frame {{ fill: none; stroke: #cccccc; }}
.grid {{ stroke: #eeeeee; }}
.ytick {{ font-size: 11px; text-anchor: end; fill: #555555; }}
.xtick {{ font-size: 11px; text-anchor: middle; fill: #555555; }}
.ylabel, .legend, .note {{ font-size: 12px; fill: #555555; }}
.series {{ fill: none; stroke-width: 3; shape-rendering: crispEdges; }}
.mark {{ shape-rendering: crispEdges; }}
table {{ border-collapse: collapse; margin: 16px; font-size: 12px; }}
td, th {{ border: 1px solid #dddddd; padding: 2px 8px; text-align: right; }}
"""


def _when(t: Any) -> str:
    return "-" if t is None else datetime.fromtimestamp(float(t), UTC).strftime(
        "%Y-%m-%d %H:%M:%S")


def _table(rows: Sequence[dict[str, Any]]) -> str:
    head = ("round", "closed (UTC)", "participants", "refused", "accuracy", "fleet ε",
            "device ε", "seconds", "model")
    body = []
    for r in rows:
        refused = ", ".join(f"{k} {v}" for k, v in sorted((r.get("refused") or {}).items()))
        cells = (r["round"], _when(r.get("closed_at")), r.get("participants"), refused or "0",
                 *("-" if r.get(k) is None else f"{float(r[k]):.4g}"
                   for k in ("accuracy", "epsilon", "device_epsilon", "seconds")),
                 "failed" if r.get("failed") else f"v{r.get('model_version')}")
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>\n"
            + "\n".join(body) + "</table>")


def render_html(data: ReportData) -> str:
    """The whole report page (self-contained HTML)."""
    rows = data.rows
    closed = sum(1 for r in rows if not r.get("failed"))
    span = ""
    if rows and rows[0].get("opened_at") and rows[-1].get("closed_at"):
        span = f", {_when(rows[0]['opened_at'])} to {_when(rows[-1]['closed_at'])} UTC"
    summary = (f"{len(rows)} rounds ({closed} closed, {len(rows) - closed} failed){span}; "
               f"{len(data.steps)} devices sent accepted updates")
    body = "\n".join(svg_chart(c) for c in charts(data))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>edge fleet {html.escape(data.fleet)}</title><style>{_STYLE}</style>"
            f"</head><body>\n<header><h1>edge fleet {html.escape(data.fleet)}</h1>"
            f"<div>{html.escape(summary)}</div></header>\n{body}\n{_table(rows)}\n"
            f"</body></html>\n")


def write_html(path: Path, data: ReportData) -> None:
    """Write the report atomically (temp file, fsync, rename)."""
    write_durably(path, render_html(data).encode("utf-8"), mode=0o644)
