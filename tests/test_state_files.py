"""The one durable write (edge.state_files): whole new bytes or the old ones, nothing left over."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.state_files import durable_file, write_durably


def test_streamed_write_replaces_with_the_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with durable_file(path, mode=0o600) as fh:
        for part in (b"new ", b"bytes"):
            fh.write(part)
        assert path.read_bytes() == b"old"  # nothing visible before the block ends
    assert path.read_bytes() == b"new bytes"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_failure_inside_the_block_keeps_the_old_bytes(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), durable_file(path, mode=0o644) as fh:
        fh.write(b"half")
        raise RuntimeError("writer failed")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_no_clobber_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "role.key"
    write_durably(path, b"first", mode=0o600, replace=False)
    with pytest.raises(FileExistsError):
        write_durably(path, b"second", mode=0o600, replace=False)
    assert path.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["role.key"]
