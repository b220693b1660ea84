"""The Python the contract generates: tee_abi, the layouts and the exception classes."""

from __future__ import annotations

from contract import spec
from contract.common import STAMP, layout_named, size_macro
from contract.model import SCALARS, Field


def py_abi() -> str:
    """edge/tee_abi.py."""
    kinds = {m.name: m.value for e in spec.ENUMS if e.py_name == "Kind" for m in e.members}
    out = [
        '"""The TA\'s command ABI, results and enums as Python; mirrors ta/include/edge_ta.h.',
        "",
        f"{STAMP}",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from enum import IntEnum, IntFlag",
        "",
        "from edge import errors",
        "",
        f'TA_UUID = "{spec.TA_UUID}"',
        f"ABI_VERSION = {spec.ABI_VERSION}",
        f"MAGIC = {spec.MAGIC!r}",
        f"FORMAT_VERSION = {spec.FORMAT_VERSION}",
        "# Kinds whose layout moved past FORMAT_VERSION (kind -> its format version).",
        "KIND_FORMAT_VERSIONS: dict[int, int] = {"
        + ", ".join(f"{kinds[name]}: {version}"
                    for name, version in spec.KIND_FORMAT_VERSIONS.items()) + "}",
        "",
        "",
        "class Command(IntEnum):",
        '    """TA command ids."""',
        "",
    ]
    out += [f"    {c.name} = {c.id}" for c in spec.COMMANDS]
    out += ["", ""]
    out += [f"CMD_{c.name} = Command.{c.name}" for c in spec.COMMANDS]
    out += ["", "", "class Result(IntEnum):",
            '    """Every TEE result the TA or the client returns."""', ""]
    out += [f"    {r.name} = 0x{r.value:08X}" for r in spec.RESULTS]
    out += ["", ""]
    out += [f"{r.name} = Result.{r.name}" for r in spec.RESULTS]
    out += ["", "# Human names of the results (the client's edge_result_name says the same).",
            "RESULT_TEXT: dict[int, str] = {"]
    out += [_entry(f"Result.{r.name}", repr(r.text)) for r in spec.RESULTS]
    out += ["}", "", "# The exception a refusal of the TA (or the client) raises in Python.",
            "REFUSALS: dict[int, type[errors.EdgeError]] = {"]
    out += [f"    Result.{r.name}: errors.{r.exception}," for r in spec.RESULTS if r.exception]
    out += ["}", "", "", "class Origin(IntEnum):", '    """TEEC_ORIGIN_* of a result."""', ""]
    out += [f"    {m.name} = {m.value}" for m in spec.ORIGINS]
    out += ["", ""]
    out += [f"ORIGIN_{m.name} = Origin.{m.name}" for m in spec.ORIGINS]
    out += ["", "ORIGIN_TEXT: dict[int, str] = {"]
    out += [f"    Origin.{m.name}: {m.comment!r}," for m in spec.ORIGINS]
    out += ["}", ""]
    for c in spec.CONSTANTS:
        out.append(f"{c.name} = {c.value}" + (f"  # {c.comment}" if c.comment else ""))
    for lay in spec.LAYOUTS:
        out.append(f"{size_macro(lay)[len('EDGE_'):]} = {lay.size}")
    for name, key in spec.ARTEFACT_SIZES:
        body = layout_named(key).size
        out.append(f"{name} = {spec.ENVELOPE_HEADER_SIZE + body + spec.SIG_SIZE}")
    for e in spec.ENUMS:
        base = "IntFlag" if e.flag else "IntEnum"
        out += ["", "", f"class {e.py_name}({base}):", f'    """{e.doc}"""', ""]
        for m in e.members:
            out.append(f"    {m.name} = {m.value}" + (f"  # {m.comment}" if m.comment else ""))
    out.append("")
    # The flat names the code base has always used (C macro without EDGE_).
    for e in spec.ENUMS:
        short = e.c_prefix[len("EDGE_"):]
        for m in e.members:
            out.append(f"{short}{m.name} = {e.py_name}.{m.name}")
    for key in ("status", "budget"):
        lay = layout_named(key)
        for f, off in lay.offsets():
            out.append(f"{lay.c_prefix}_OFF_{f.name.upper()} = {off}")
    out.append("")
    return "\n".join(out)


def _entry(key: str, value: str) -> str:
    """A dict entry, its value on the next line when one line would pass 100 columns."""
    line = f"    {key}: {value},"
    return line if len(line) <= 100 else f"    {key}:\n        {value},"


def _struct_code(f: Field) -> str:
    return SCALARS[f.type][0] if f.type in SCALARS else f"{f.nbytes}s"


def py_layouts() -> str:
    """edge/formats/layouts.py."""
    out = [
        '"""Byte layouts of every fixed-size artefact body and status block.',
        "",
        f"{STAMP}",
        "The checks they run are in edge/formats/layout.py; parsers keep only",
        "cross-field rules.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from edge import errors",
        "from edge.formats.layout import Field, Layout",
        "from edge.tee_abi import (",
    ]
    used = sorted({f.enum for lay in spec.LAYOUTS for f in lay.fields if f.enum})
    out += [f"    {name}," for name in used]
    out += [")"]
    for lay in spec.LAYOUTS:
        out += ["", f"{lay.py_name} = Layout({lay.title!r}, ("]
        for f, off in lay.offsets():
            args = [repr(f.name), repr(_struct_code(f)), str(off), repr(_label(f))]
            if f.type == "reserved":
                args.append("reserved=True")
            if f.lo is not None:
                args.append(f"lo={f.lo!r}")
            if f.hi is not None:
                args.append(f"hi={f.hi!r}")
            if f.lo_open:
                args.append("lo_open=True")
            if f.posinf_ok:
                args.append("posinf_ok=True")
            if f.enum:
                args.append(f"enum={f.enum}")
            if f.refusal != "malformed":
                args.append(f"refusal=errors.{_exception_of(f.refusal)}")
            out.append(f"    Field({', '.join(args)}),")
        out.append(f"), size={lay.size})")
    out.append("")
    return "\n".join(out)


def _label(f: Field) -> str:
    """The human name of a field: its doc up to the first parenthesis, colon or comma."""
    text = f.doc
    for stop in (" (", ":", ","):
        text = text.split(stop)[0]
    return text.replace("`", "").strip()


def _exception_of(refusal: str) -> str:
    return next(r.exception for r in spec.REFUSALS if r.refusal == refusal)


def py_errors_block() -> str:
    """The exception classes of edge/errors.py."""
    out: list[str] = []
    for r in spec.REFUSALS:
        out += ["", "", f"class {r.exception}({r.base}):", f'    """{r.doc}"""', "",
                f'    refusal = "{r.refusal}"']
        if r.attrs:
            params = ", ".join(f"{n}: {t}" for n, t in r.attrs)
            out += ["", f"    def __init__(self, message: str, *, {params},",
                    "                 code: int | None = None, origin: int | None = None) -> None:",
                    "        super().__init__(message, code=code, origin=origin)"]
            out += [f"        self.{n} = {n}" for n, _ in r.attrs]
    out.append("")
    return "\n".join(out)
