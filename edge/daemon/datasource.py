"""Local sample sources: a directory of .npz/.csv files, or a serial sensor (pyserial URL).

Serial line protocol (docs/daemon.md): one sample per line, ``S <label> <f1>,<f2>,...``;
blank lines and lines starting with ``#`` are ignored; anything else is rejected
and counted.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.daemon.store import SampleStore, check_sample
from edge.errors import EdgeError, Malformed, StateError
from edge.logformat import kv_value

log = logging.getLogger("edge.daemon")
MAX_LINE = 1 << 20
_WARN_FIRST = 5
# np.load parses each array header with ast.literal_eval, and CPython 3.11's AST
# constructor keeps its recursion depth in state shared by threads: daemons of one
# device host scanning their data at the same moment raised "SystemError: AST
# constructor recursion depth mismatch" (python/cpython#106905). One parse at a time.
_NPZ_PARSE = threading.Lock()


@dataclass
class SourceStats:
    """Samples accepted and rejected by a source since it was opened."""

    accepted: int = 0
    rejected: int = 0


def parse_line(line: str) -> tuple[np.ndarray, int] | None:
    """One serial line as (features, label); None for blanks and comments; Malformed else."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split(None, 2)
    if parts[0] != "S":
        raise Malformed(f"line does not start with 'S ' or '#': {text[:40]!r}")
    if len(parts) != 3:
        raise Malformed("line needs 'S <label> <f1>,<f2>,...'")
    try:
        label = int(parts[1], 10)
    except ValueError:
        raise Malformed(f"label {parts[1][:20]!r} is not an integer") from None
    try:
        features = np.array([float(v) for v in parts[2].replace(" ", "").split(",")],
                            dtype=np.float32)
    except ValueError:
        raise Malformed("a feature is not a number") from None
    return check_sample(features, label), label


def load_file(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Samples of one .npz (X, y) or .csv (label last) file: (X, y, rejected rows)."""
    if path.suffix == ".npz":
        try:
            with _NPZ_PARSE, np.load(path, allow_pickle=False) as f:
                x, y = np.asarray(f["X"], np.float32), np.asarray(f["y"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise Malformed(f"{path.name}: not an .npz with arrays X and y ({exc})") from None
        if x.ndim < 2 or y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
            raise Malformed(f"{path.name}: X must be (n, ...) and y (n,) integers, got "
                            f"{x.shape} and {y.shape} {y.dtype}")
        return x.reshape(len(x), -1), y.astype(np.int64), 0
    rows: list[np.ndarray] = []
    labels: list[int] = []
    rejected = 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                values = [float(v) for v in text.split(",")]
                label = int(values[-1])
                if len(values) < 2 or label != values[-1]:
                    raise ValueError("label is not an integer")
                rows.append(check_sample(np.array(values[:-1], np.float32), label))
                labels.append(label)
            except (ValueError, Malformed) as exc:
                if number > 1 or rows:  # a header line is not an error
                    rejected += 1
                    log.debug("step=data file=%s line=%d rejected reason=%s", path.name,
                              number, kv_value(exc))
    x = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
    return x, np.array(labels, np.int64), rejected


class DirectorySource:
    """Ingests new or changed .npz/.csv files of a folder into the store."""

    def __init__(self, directory: Path, store: SampleStore, device: str = "-") -> None:
        """Watch ``directory`` (scanned by ``scan()``); ``device`` names the board in logs."""
        self.device = device
        self.directory = Path(directory)
        self.store = store
        self.stats = SourceStats()

    def scan(self) -> SourceStats:
        """Ingest every file not yet ingested in its current size and mtime; returns totals."""
        if not self.directory.is_dir():
            log.warning("device=%s step=data source=directory path=%s missing", self.device,
                        self.directory)
            return self.stats
        for path in sorted(self.directory.iterdir()):
            if path.suffix not in (".npz", ".csv") or not path.is_file():
                continue
            st = path.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
            if self.store.was_ingested(path.name, stamp):
                continue
            try:
                x, y, rejected = load_file(path)
                added = self.store.add_many(zip(x, y.tolist(), strict=True))
            except EdgeError as exc:
                log.warning("device=%s step=data file=%s rejected refusal=%s reason=%s",
                            self.device, path.name, exc.refusal, kv_value(exc))
                self.stats.rejected += 1
            else:
                self.stats.accepted += added
                self.stats.rejected += rejected
                log.info("device=%s step=data file=%s samples=%d rejected_rows=%d", self.device,
                         path.name, added, rejected)
            self.store.mark_ingested(path.name, stamp)
        return self.stats

    def start(self) -> None:
        """Ingest what is there now."""
        self.scan()

    def close(self) -> None:
        """Nothing to release."""


class SerialSource:
    """Reads the line protocol from a pyserial URL in a thread and stores each sample."""

    def __init__(self, url: str, store: SampleStore, baudrate: int = 115200,
                 device: str = "-") -> None:
        """Prepare; ``start()`` opens the port; ``device`` names the board in logs."""
        self.device = device
        self.url = url
        self.baudrate = baudrate
        self.store = store
        self.stats = SourceStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: object | None = None
        self.opened = threading.Event()

    def scan(self) -> SourceStats:
        """Samples arrive continuously; returns the totals so far."""
        return self.stats

    def start(self) -> None:
        """Start the reader thread."""
        self._thread = threading.Thread(target=self._run, name="serial-source", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import serial

        delay = 0.5
        while not self._stop.is_set():
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.2)
            except (serial.SerialException, ValueError, OSError) as exc:
                log.warning("device=%s step=data source=serial url=%s open failed reason=%s "
                            "retry_s=%.1f", self.device, self.url, kv_value(exc), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 0.5
            self._port = port
            self.opened.set()
            log.info("device=%s step=data source=serial url=%s opened", self.device, self.url)
            try:
                self._read(port)
            except (serial.SerialException, OSError) as exc:
                log.warning("device=%s step=data source=serial url=%s lost reason=%s",
                            self.device, self.url, kv_value(exc))
            finally:
                self.opened.clear()
                port.close()

    def _read(self, port: object) -> None:
        """Read lines until stopped; a partial line waits for its newline."""
        pending = b""
        while not self._stop.is_set():
            chunk = port.read(4096)  # type: ignore[attr-defined]
            if not chunk:
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > MAX_LINE:
                self._reject(f"line longer than {MAX_LINE} bytes")
                pending = b""
            for raw in lines:
                self._line(raw.decode("utf-8", errors="replace"))

    def _line(self, text: str) -> None:
        try:
            sample = parse_line(text)
            if sample is None:
                return
            self.store.add(*sample)
        except Malformed as exc:
            self._reject(str(exc))
        except StateError as exc:  # the store, not the line: one line, and keep reading
            log.error("device=%s step=data source=serial result=failed reason=%s detail=%s",
                      self.device, exc.refusal, kv_value(exc))
        else:
            self.stats.accepted += 1

    def _reject(self, reason: str) -> None:
        self.stats.rejected += 1
        level = logging.WARNING if self.stats.rejected <= _WARN_FIRST else logging.DEBUG
        log.log(level, "device=%s step=data source=serial rejected=%d reason=%s", self.device,
                self.stats.rejected, kv_value(reason))

    def close(self) -> None:
        """Stop the reader and close the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        log.info("device=%s step=data source=serial accepted=%d rejected=%d", self.device,
                 self.stats.accepted, self.stats.rejected)


def open_source(source: str, store: SampleStore, *, path: Path | None = None,
                serial_url: str | None = None, baudrate: int = 115200,
                device: str = "-") -> DirectorySource | SerialSource:
    """The configured source (not started)."""
    if source == "directory":
        assert path is not None
        return DirectorySource(path, store, device)
    assert serial_url is not None
    return SerialSource(serial_url, store, baudrate, device)
