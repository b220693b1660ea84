"""The extras split: a board's daemon imports only what ``edge-tee[board]`` installs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata

from conftest import ROOT

# Importing the daemon's whole path (the CLI, the daemon command, the daemon, the TA
# binding, inference, serial sources), then listing the top-level modules loaded.
PROBE = """
import json, sys
startup = set(sys.modules)  # the interpreter's and site's own (.pth hooks)
import edge.cli, edge.commands.daemon, edge.daemon, edge.daemon.daemon, edge.daemon.datasource
import edge.tee, edge.inference, edge.sdnotify, edge.board
edge.cli.build_parser()
from edge.daemon import DaemonConfig
print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - startup})))
"""
NEVER_ON_A_BOARD = {"amqtt", "dp_accounting", "scipy", "sklearn", "prometheus_client", "pytest"}


def _extras() -> tuple[list[str], dict[str, list[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"], project["optional-dependencies"]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _resolve(extras: list[str]) -> set[str]:
    """Distribution names of base + the given extras (self-references followed)."""
    base, optional = _extras()
    names, todo = {_name(r) for r in base}, list(extras)
    while todo:
        for req in optional[todo.pop()]:
            m = re.match(r"edge-tee\[([a-z0-9,-]+)\]", req)
            if m:
                todo.extend(m.group(1).split(","))
            else:
                names.add(_name(req))
    return names


def _closure(names: set[str]) -> set[str]:
    """The installed distributions ``names`` pull in (their non-extra requirements)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in requires if "extra ==" not in r)
    return seen


def test_daemon_path_imports_no_aggregator_or_demo_module() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    loaded = set(json.loads(out.stdout))
    assert not loaded & NEVER_ON_A_BOARD, loaded & NEVER_ON_A_BOARD
    # Every third-party module the daemon loaded comes with edge-tee[board].
    dists = metadata.packages_distributions()
    board = _closure(_resolve(["board"]))
    third_party = {m for m in loaded if m in dists and m not in ("edge", "firmware_sign")}
    missing = {m for m in third_party
               if not {_name(d) for d in dists[m]} & board}
    assert not missing, f"the daemon imports {missing}, which edge-tee[board] does not install"


def test_board_extra_leaves_out_the_aggregator_and_demo() -> None:
    board = _resolve(["board"])
    assert {"cffi", "cryptography", "numpy", "paho-mqtt", "pyserial", "ai-edge-litert"} <= board
    assert not board & {"amqtt", "dp-accounting", "scipy", "scikit-learn"}
    base, _ = _extras()
    assert {_name(r) for r in base} == {"cffi", "cryptography", "numpy"}
    assert "dp-accounting" in _resolve(["aggregator"]) and "amqtt" in _resolve(["demo"])


def test_test_extra_pulls_every_other_extra() -> None:
    everything = _resolve(["test"])
    for extra in ("board", "aggregator", "sign", "demo", "operator", "models"):
        assert _resolve([extra]) <= everything, extra
