"""Local samples: the bounded store, the directory source, the serial line protocol."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.daemon.datasource import DirectorySource, SerialSource, parse_line
from edge.daemon.store import SampleStore
from edge.errors import Malformed


def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- store ---------------------------------------------------------------------------

def test_store_evicts_oldest_and_survives_reopen(tmp_path: Path) -> None:
    with SampleStore(tmp_path, max_samples=5) as store:
        store.add_many((np.full(3, i, np.float32), i) for i in range(8))
        assert len(store) == 5 and store.dim == 3
        x, y = store.latest(100)
        assert y.tolist() == [3, 4, 5, 6, 7] and x[:, 0].tolist() == [3, 4, 5, 6, 7]
        assert store.latest(2)[1].tolist() == [6, 7]
    with SampleStore(tmp_path, max_samples=3) as store:  # a smaller bound applies on open
        assert store.latest(10)[1].tolist() == [5, 6, 7]
        store.add(np.zeros(3), 9)
        assert store.latest(10)[1].tolist() == [6, 7, 9]


def test_store_refuses_bad_samples_whole(tmp_path: Path) -> None:
    with SampleStore(tmp_path, max_samples=10) as store:
        store.add(np.zeros(4), 1)
        with pytest.raises(Malformed, match="features"):
            store.add(np.zeros(5), 1)
        with pytest.raises(Malformed, match="non-finite"):
            store.add(np.array([1, np.nan, 0, 0]), 1)
        with pytest.raises(Malformed, match="label"):
            store.add(np.zeros(4), -1)
        with pytest.raises(Malformed):
            store.add_many([(np.zeros(4), 1), (np.zeros(3), 2)])
        assert len(store) == 1


# -- directory source ------------------------------------------------------------------

def test_directory_source_reads_npz_and_csv_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "a.npz", X=np.ones((4, 2, 2), np.float32), y=np.array([0, 1, 2, 3]))
    (data / "b.csv").write_text("f1,f2,f3,f4,label\n1,2,3,4,1\n# note\n5,6,7,8,2\n"
                                "1,2,x,4,0\n1,2,3,4,0.5\n")
    (data / "ignored.txt").write_text("nothing")
    (data / "bad.npz").write_bytes(b"not a zip")
    store = SampleStore(tmp_path / "store", 100)
    src = DirectorySource(data, store)
    stats = src.scan()
    assert len(store) == 6 and stats.accepted == 6
    assert stats.rejected == 3  # two bad csv rows, one bad file
    src.scan()
    assert len(store) == 6
    store.close()
    store = SampleStore(tmp_path / "store", 100)  # a restart does not ingest twice
    DirectorySource(data, store).scan()
    assert len(store) == 6
    assert sorted(store.latest(10)[1].tolist()) == [0, 1, 1, 2, 2, 3]
    store.close()


# -- serial line protocol --------------------------------------------------------------

@pytest.mark.parametrize("line", ["", "   ", "# comment", "#S 1 2,3"])
def test_blank_and_comment_lines_are_skipped(line: str) -> None:
    assert parse_line(line) is None


def test_sample_line_parses() -> None:
    x, y = parse_line("S 3 0.5,-1,2e3\r\n")  # type: ignore[misc]
    assert y == 3 and x.tolist() == [0.5, -1.0, 2000.0]


@pytest.mark.parametrize("line", ["X 1 2,3", "S 1", "S a 1,2", "S -1 1,2", "S 1 1,,2",
                                  "S 1 1,nan", "S 1.5 1,2"])
def test_bad_lines_are_malformed(line: str) -> None:
    with pytest.raises(Malformed):
        parse_line(line)


def test_serial_source_over_loop_url(tmp_path: Path) -> None:
    store = SampleStore(tmp_path, 100)
    src = SerialSource("loop://", store)
    src.start()
    try:
        wait_for(src.opened.is_set)
        port = src._port
        port.write(b"# sensor v1\nS 1 1,2,3\nS 2 4,5")  # type: ignore[attr-defined]
        port.write(b",6\ngarbage\nS 1 1,2\n")  # type: ignore[attr-defined]
        wait_for(lambda: src.stats.accepted + src.stats.rejected == 4)
    finally:
        src.close()
    assert (src.stats.accepted, src.stats.rejected) == (2, 2)
    assert store.latest(10)[1].tolist() == [1, 2]
    store.close()


@pytest.fixture
def sensor_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server standing in for a serial sensor (socket:// URL)."""
    server = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conns.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], conns
    server.close()
    for c in conns:
        c.close()


def test_serial_source_over_socket_url_reconnects(
        tmp_path: Path, sensor_server: tuple[int, list[socket.socket]]) -> None:
    port, conns = sensor_server
    store = SampleStore(tmp_path, 100)
    src = SerialSource(f"socket://127.0.0.1:{port}", store)
    src.start()
    try:
        # pyserial discards input that arrives while it opens the port: wait until open.
        wait_for(lambda: len(conns) == 1 and src.opened.is_set())
        conns[0].sendall(b"S 0 1,1\nS 1 2,2\nS 2 3\n")
        wait_for(lambda: src.stats.accepted + src.stats.rejected == 3)
        assert (src.stats.accepted, src.stats.rejected) == (2, 1)  # wrong feature count
        conns[0].close()  # the sensor goes away and comes back
        wait_for(lambda: len(conns) == 2 and src.opened.is_set(), timeout=15)
        conns[1].sendall(b"S 3 4,4\n")
        wait_for(lambda: src.stats.accepted == 3)
    finally:
        src.close()
    assert store.latest(10)[1].tolist() == [0, 1, 3]
    store.close()

