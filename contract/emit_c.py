"""The C the contract generates: the ABI header and the client's result-name table."""

from __future__ import annotations

from contract import spec
from contract.common import STAMP, layout_named, size_macro
from contract.model import SCALARS, Field


def _c_num(value: float, f: Field) -> str:
    if f.type in ("f32", "f64"):
        text = repr(float(value))
        return text + ("f" if f.type == "f32" else "")
    return f"{int(value)}" + ("ull" if f.type == "u64" else "u")


def _comment(lines: list[str], text: str, indent: str = " * ") -> None:
    for line in text.splitlines():
        lines.append((indent + line).rstrip())


def _tab(name: str, value: str, comment: str = "") -> str:
    pad = "\t" * max(1, (40 - len(name) + 7) // 8)
    return f"#define {name}{pad}{value}" + (f"\t/* {comment} */" if comment else "")


def c_header() -> str:
    """ta/include/edge_ta.h."""
    u = spec.TA_UUID.replace("-", "")
    tail = ", ".join(f"0x{u[i:i + 2]}" for i in range(16, 32, 2))
    out = [
        "/* SPDX-License-Identifier: BSD-2-Clause */",
        "/*",
        " * The whole ABI between the normal world and the edge trusted application.",
        f" * {STAMP}",
        " *",
        " * Included by the TA (ta/) and by the client library (host/); the Python",
        " * side imports the same facts from edge/tee_abi.py and",
        " * edge/formats/layouts.py, generated from the same description. Byte",
        " * layouts of every artefact are also tabled in docs/formats.md.",
        " */",
        "#ifndef EDGE_TA_H",
        "#define EDGE_TA_H",
        "",
        f"/* {spec.TA_UUID} */",
        "#define TA_EDGE_UUID \\",
        f"\t{{ 0x{u[0:8]}, 0x{u[8:12]}, 0x{u[12:16]}, \\",
        f"\t\t{{ {tail} }} }}",
        "",
        "/* Bumped when a command's parameters or an output layout change. */",
        f"#define EDGE_TA_ABI_VERSION {spec.ABI_VERSION}",
        "",
        "/*",
        " * Commands. Each comment lists params[0..3]; unlisted parameters are NONE.",
        " */",
    ]
    for cmd in spec.COMMANDS:
        out.append("/*")
        first, *rest = cmd.text.splitlines()
        out.append(f" * {cmd.name}: {first}")
        _comment(out, "\n".join(rest), " *   ")
        for i, p in enumerate(cmd.params):
            head, *more = p.text.splitlines()
            out.append(f" *   [{i}] {p.kind:<14} {head}")
            for line in more:
                out.append(f" *   {'':<18} {line}")
        out.append(" */")
        out.append(_tab(f"TA_EDGE_CMD_{cmd.name}", str(cmd.id)))
    out.append(_tab("TA_EDGE_CMD_COUNT", str(len(spec.COMMANDS))))
    out += ["", "/*",
            " * TA-specific results (GlobalPlatform leaves 0x00000001..0xEFFFFFFF to TAs);",
            " * generic classes use the GP codes (docs/formats.md, refusal table).",
            " */"]
    for r in spec.RESULTS:
        if r.name.startswith("EDGE_ERR_"):
            out.append(_tab(r.name, f"0x{r.value:08X}", r.comment))
    out += ["", "/* Sizes and limits (docs/formats.md explains each). */"]
    for c in spec.CONSTANTS:
        out.append(_tab(f"EDGE_{c.name}", c.expr or str(c.value), c.comment))
    out.append(_tab("EDGE_MAGIC", '"' + spec.MAGIC.decode() + '"'))
    out.append(_tab("EDGE_FORMAT_VERSION", str(spec.FORMAT_VERSION)))
    kinds = {m.name: m.value for e in spec.ENUMS if e.py_name == "Kind" for m in e.members}
    chain = "EDGE_FORMAT_VERSION"
    for name, version in spec.KIND_FORMAT_VERSIONS.items():
        out.append(_tab(f"EDGE_FORMAT_VERSION_{name}", str(version)))
        chain = f"(k) == {kinds[name]} ? EDGE_FORMAT_VERSION_{name} : {chain}"
    out.append(_tab("EDGE_FORMAT_VERSION_OF(k)", f"({chain})", "the version of kind k"))
    for name, key in spec.ARTEFACT_SIZES:
        out.append(_tab(f"EDGE_{name}", f"(EDGE_ENVELOPE_HEADER_SIZE + "
                                         f"{size_macro(layout_named(key))} + EDGE_SIG_SIZE)"))
    for e in spec.ENUMS:
        out += ["", f"/* {e.doc} */"]
        for m in e.members:
            out.append(_tab(f"{e.c_prefix}{m.name}", f"0x{m.value:x}" if e.flag else str(m.value),
                            m.comment))
        if e.flag:
            out.append(_tab(f"{e.c_prefix}ALL",
                            f"0x{sum(m.value for m in e.members):x}", "every known bit"))
    for lay in spec.LAYOUTS:
        out += ["", f"/* {lay.title}: offsets and sizes, little-endian. */"]
        out.append(_tab(size_macro(lay), str(lay.size)))
        for f, off in lay.offsets():
            kind = f.type if f.type in SCALARS else f"{f.nbytes} bytes"
            out.append(_tab(f"EDGE_{lay.c_prefix}_OFF_{f.name.upper()}", str(off), kind))
            if f.type in ("bytes", "reserved"):
                out.append(_tab(f"EDGE_{lay.c_prefix}_LEN_{f.name.upper()}", str(f.nbytes)))
            for bound, suffix in ((f.lo, "MIN"), (f.hi, "MAX")):
                if bound is not None:
                    out.append(_tab(f"EDGE_{lay.c_prefix}_{f.name.upper()}_{suffix}",
                                    _c_num(bound, f),
                                    "exclusive" if suffix == "MIN" and f.lo_open else ""))
    out += ["", "#endif /* EDGE_TA_H */", ""]
    return "\n".join(out)


def c_results() -> str:
    """host/edge_results.h: the client's table of result names."""
    out = [
        "/* SPDX-License-Identifier: BSD-2-Clause */",
        f"/* {STAMP} */",
        "/* Names of every result the TA or the client returns, for edge_result_name(). */",
        "#ifndef EDGE_RESULTS_H",
        "#define EDGE_RESULTS_H",
        "",
        "#include <stdint.h>",
        "",
        "static const struct edge_result_name {",
        "\tuint32_t code;",
        "\tconst char *name;",
        "} edge_result_names[] = {",
    ]
    for r in spec.RESULTS:
        out.append(f'\t{{ 0x{r.value:08X}u, "{r.text}" }},\t/* {r.name} */')
    out += ["};", "", "#endif /* EDGE_RESULTS_H */", ""]
    return "\n".join(out)
