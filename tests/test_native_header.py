"""edge/native.py loads libedge_client's declarations from the shipped C header itself."""

from __future__ import annotations

import re
from pathlib import Path

import cffi
import pytest
from pycparser import c_ast, c_generator, c_parser

from edge import native

HEADER = Path(__file__).resolve().parent.parent / "host" / "include" / "edge_client.h"
# Stand-ins for the fixed-width types, so pycparser can read a declaration list alone.
_PRELUDE = "typedef int uint8_t; typedef int uint32_t; typedef int uint64_t; typedef int size_t;\n"
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def declarations(source: str) -> dict[str, str]:
    """Each function prototype of ``source``, parameter names included, in one canonical form."""
    code = _COMMENT.sub("", source)
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("#"))
    code = code.replace('extern "C" {', "").replace("\n}\n", "\n")
    ast = c_parser.CParser().parse(_PRELUDE + code)
    gen = c_generator.CGenerator()
    return {node.name: gen.visit(node) for node in ast.ext
            if isinstance(node, c_ast.Decl) and isinstance(node.type, c_ast.FuncDecl)}


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> tuple[str, native.Native]:
    """Load the sim backend afresh, recording the text native.py handed to cffi's cdef."""
    seen: list[str] = []

    class RecordingFFI(cffi.FFI):
        def cdef(self, csource: str, *args: object, **kw: object) -> None:
            seen.append(csource)
            super().cdef(csource, *args, **kw)

    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native.cffi, "FFI", RecordingFFI)
    lib = native.load("sim")
    assert len(seen) == 1
    return seen[0], lib


def test_header_declares_the_client(loaded: tuple[str, native.Native]) -> None:
    header = declarations(HEADER.read_text())
    assert len(header) == 24 and "edge_verify_ticket" in header and "edge_sign_skip" in header
    assert {"edge_secagg_advertise", "edge_secagg_share", "edge_secagg_receive",
            "edge_secagg_unmask", "edge_install_registrar"} <= set(header)
    assert native.client_header().resolve() == HEADER.resolve()


def test_cffi_loaded_declarations_equal_the_header(loaded: tuple[str, native.Native]) -> None:
    source, lib = loaded
    header = declarations(HEADER.read_text())
    assert declarations(source) == header
    # And the functions cffi bound take as many arguments as the header says.
    for name, decl in header.items():
        bound = lib.ffi.typeof(getattr(lib.lib, name))
        assert bound.kind == "function", name
        params = decl.split("(", 1)[1].rsplit(")", 1)[0]
        assert len(bound.args) == len(params.split(",")), name


def test_swapped_out_parameters_are_caught(loaded: tuple[str, native.Native]) -> None:
    """The issue's case: steps_left and steps_per_round swapped in a copy must not compare equal."""
    source, _ = loaded
    good = "uint32_t *steps_left, uint32_t *steps_per_round"
    assert good in source
    swapped = source.replace(good, "uint32_t *steps_per_round, uint32_t *steps_left")
    assert declarations(swapped) != declarations(HEADER.read_text())
    assert set(declarations(swapped).items()) ^ set(declarations(source).items())


def test_header_is_found_beside_an_installed_library(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A board install (EDGE_NATIVE_DIR) ships the header next to libedge_client.so."""
    (tmp_path / "edge_client.h").write_text(HEADER.read_text())
    monkeypatch.setenv("EDGE_NATIVE_DIR", str(tmp_path))
    assert native.client_header() == tmp_path / "edge_client.h"
