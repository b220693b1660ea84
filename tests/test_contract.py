"""The generated contract files match contract/spec.py, and every output follows a change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("ta/include/edge_ta.h", "host/edge_results.h", "edge/tee_abi.py",
             "edge/formats/layouts.py", "edge/errors.py", "docs/formats.md")


def _generate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "contract.generate", "--root", str(root), *args],
                          cwd=root, capture_output=True, text=True, check=False)


def _copy_tree(tmp: Path) -> Path:
    root = tmp / "tree"
    shutil.copytree(ROOT / "contract", root / "contract",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for rel in GENERATED:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    return root


def test_generated_files_are_current() -> None:
    """CI's drift check: run `python -m contract.generate` and commit when this fails."""
    done = _generate(ROOT, "--check")
    assert done.returncode == 0, done.stderr


def test_check_mode_names_a_hand_edited_file(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    header = root / "ta/include/edge_ta.h"
    header.write_text(header.read_text().replace("0xED6E000C", "0xED6E00CC"))
    done = _generate(root, "--check")
    assert done.returncode == 1
    assert "stale ta/include/edge_ta.h" in done.stderr
    assert _generate(root).returncode == 0
    assert header.read_text() == (ROOT / "ta/include/edge_ta.h").read_text()


def test_one_field_change_reaches_c_python_and_docs(tmp_path: Path) -> None:
    """Widen the ticket's batch size from u16 to u32 in a copy: every output follows."""
    root = _copy_tree(tmp_path)
    spec = root / "contract/spec.py"
    text = spec.read_text()
    old = 'Field("batch_size", "u16",'
    assert text.count(old) == 1
    text = text.replace(old, 'Field("batch_size", "u32",')
    # Keep the body's size so only this field's facts (and those after it) move.
    old_reserved = ('Field("reserved", "reserved", "reserved", size=3),\n'
                    '        Field("fleet_id"')
    assert text.count(old_reserved) == 1
    text = text.replace(old_reserved, 'Field("reserved", "reserved", "reserved", size=1),\n'
                                      '        Field("fleet_id"')
    spec.write_text(text)
    before = {rel: (root / rel).read_text() for rel in GENERATED}
    assert _generate(root, "--check").returncode == 1
    assert _generate(root).returncode == 0
    after = {rel: (root / rel).read_text() for rel in GENERATED}

    header = after["ta/include/edge_ta.h"]
    assert "#define EDGE_TICKET_OFF_UPDATE_MODE\t\t86" in header
    assert "#define EDGE_TICKET_OFF_UPDATE_MODE\t\t84" in before["ta/include/edge_ta.h"]
    layouts = after["edge/formats/layouts.py"]
    assert "Field('batch_size', 'I', 82" in layouts
    assert "Field('batch_size', 'H', 82" in before["edge/formats/layouts.py"]
    docs = after["docs/formats.md"]
    assert "| 82 | 4 | batch size B" in docs
    assert "| 82 | 2 | batch size B" in before["docs/formats.md"]
    unchanged = {rel for rel in GENERATED if before[rel] == after[rel]}
    assert unchanged == {"host/edge_results.h", "edge/tee_abi.py", "edge/errors.py"}


def test_a_new_refusal_reaches_every_table(tmp_path: Path) -> None:
    """A result code added to the spec appears in the header, the client table, Python, docs."""
    root = _copy_tree(tmp_path)
    spec = root / "contract/spec.py"
    text = spec.read_text()
    anchor = '    # Wrong parameter types or sizes: the caller\'s input, so malformed.\n'
    assert anchor in text
    added = ('    Result("EDGE_ERR_TEST_ONLY", 0xED6E0099, "test only", "Replay",\n'
             '           "a code for this test", documented=True),\n')
    text = text.replace(anchor, added + anchor)
    spec.write_text(text)
    assert _generate(root).returncode == 0
    assert "EDGE_ERR_TEST_ONLY\t\t\t0xED6E0099" in (root / "ta/include/edge_ta.h").read_text()
    assert '{ 0xED6E0099u, "test only" }' in (root / "host/edge_results.h").read_text()
    abi = (root / "edge/tee_abi.py").read_text()
    assert "EDGE_ERR_TEST_ONLY = 0xED6E0099" in abi
    assert "Result.EDGE_ERR_TEST_ONLY: errors.Replay," in abi
    assert "`EDGE_ERR_TEST_ONLY` 0xED6E0099 | `Replay`" in (root / "docs/formats.md").read_text()


def test_contract_imports_nothing_of_edge() -> None:
    """The description stays dependency-free: only the standard library and itself."""
    for path in (ROOT / "contract").glob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")):
                module = line.split()[1].split(".")[0]
                assert module in {"__future__", "argparse", "sys", "pathlib", "dataclasses",
                                  "collections", "contract"}, (path.name, line)
