"""The Python mirror of the TA ABI must match ta/include/edge_ta.h exactly."""

from __future__ import annotations

import re
from pathlib import Path

from edge import tee_abi
from edge.formats.manifest import FIXED_SIZE, InferRelease

HEADER = Path(__file__).resolve().parent.parent / "ta" / "include" / "edge_ta.h"


def _defines() -> dict[str, str]:
    text = HEADER.read_text()
    return dict(re.findall(r"^#define\s+(\w+)\s+(\S[^/\n]*?)\s*(?:/\*.*)?$", text, re.M))


def test_command_ids_match_header() -> None:
    d = _defines()
    for name in ("GET_IDENTITY", "GET_STATUS", "INSTALL_ANCHORS", "REPLACE_ANCHOR",
                 "LOAD_BEGIN", "LOAD_CHUNK", "LOAD_FINISH", "LOAD_ABORT", "INFER"):
        assert int(d[f"TA_EDGE_CMD_{name}"]) == getattr(tee_abi, f"CMD_{name}"), name


def test_error_codes_match_header() -> None:
    d = _defines()
    ta_codes = {k: int(v, 16) for k, v in d.items() if k.startswith("EDGE_ERR_")}
    assert ta_codes, "no EDGE_ERR_ codes parsed from the header"
    for name, value in ta_codes.items():
        assert getattr(tee_abi, name) == value, name


def test_client_result_codes_match_client_header() -> None:
    text = (HEADER.parents[2] / "host" / "include" / "edge_client.h").read_text()
    codes = dict(re.findall(r"^#define\s+(EDGE_CLIENT_ERR_\w+)\s+(0x[0-9A-Fa-f]+)", text, re.M))
    assert codes, "no EDGE_CLIENT_ERR_ codes parsed from edge_client.h"
    for name, value in codes.items():
        assert getattr(tee_abi, name) == int(value, 16), name


def test_sizes_and_uuid_match_header() -> None:
    d = _defines()
    assert int(d["EDGE_TA_ABI_VERSION"]) == tee_abi.ABI_VERSION
    assert int(d["EDGE_STATUS_SIZE"]) == tee_abi.STATUS_SIZE
    assert int(d["EDGE_MAX_INFER_BATCH"]) == tee_abi.MAX_INFER_BATCH
    assert int(d["EDGE_MAX_HEAD_OUT"]) == tee_abi.MAX_HEAD_OUT
    assert int(d["EDGE_MANIFEST_FIXED_SIZE"]) == tee_abi.MANIFEST_FIXED_SIZE == FIXED_SIZE
    assert int(d["EDGE_INFER_UNLIMITED"].rstrip("u"), 16) == tee_abi.INFER_UNLIMITED
    for release in InferRelease:
        assert int(d[f"EDGE_INFER_{release.name}"]) == release
    assert tee_abi.TA_UUID in HEADER.read_text()
