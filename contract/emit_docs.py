"""The tables of docs/formats.md the contract generates."""

from __future__ import annotations

from contract import spec
from contract.common import enum_named
from contract.model import Layout


def _refusal_rows() -> str:
    rows = ["| class | TA result | Python |", "| --- | --- | --- |"]
    for r in spec.RESULTS:
        if r.documented:
            ref = next(x for x in spec.REFUSALS if x.exception == r.exception)
            rows.append(f"| `{ref.refusal}` | `{r.name}` 0x{r.value:08X} | `{r.exception}` |")
    return "\n".join(rows)


def _kind_rows() -> str:
    rows = ["| kind | artefact | C | Python | signed by |", "| --- | --- | --- | --- | --- |"]
    for m in enum_named("Kind").members:
        rows.append(f"| {m.value} | {m.comment} | `EDGE_KIND_{m.name}` | `Kind.{m.name}` "
                    f"| {spec.SIGNED_BY[m.name]} |")
    return "\n".join(rows)


def _layout_rows(lay: Layout) -> str:
    rows = ["| off | size | field | C offset |", "| --- | --- | --- | --- |"]
    for f, off in lay.offsets():
        doc = "reserved (zero)" if f.type == "reserved" else f.doc
        rows.append(f"| {off} | {f.nbytes} | {doc} | `EDGE_{lay.c_prefix}_OFF_{f.name.upper()}` |")
    for t in lay.tail:
        rows.append(f"| {t.offset} | {t.size} | {t.doc} | |")
    return "\n".join(rows)


def doc_blocks() -> dict[str, str]:
    """Each generated table of docs/formats.md by its marker name."""
    blocks = {"refusals": _refusal_rows(), "kinds": _kind_rows()}
    for lay in spec.LAYOUTS:
        blocks[f"layout {lay.key}"] = _layout_rows(lay)
    return blocks
