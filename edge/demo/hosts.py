"""Device host processes: a simulated fleet split into slices, each slice's daemons in one
process, so no process runs past paho's ``select()`` limit (descriptors >= 1024).

A device costs a process about 7 descriptors (its MQTT socket, paho's wake-up pair, the
socket to its ``edge-sim-tee``, files), so one process hosts at most ~137; a slice is
``DEVICES_PER_PROCESS``. The parent runs ``python -m edge.demo.hosts SLICE.json``, waits for
its ``ready`` line (every daemon subscribed), and stops it by closing its stdin (SIGTERM
works too). Each daemon still has its own simulated secure world (one ``edge-sim-tee``
process per device).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

DEVICES_PER_PROCESS = 100
# Daemons of one process that handle a job (a model, a ticket) at the same time. Each job
# is mostly a wait on its secure world; many at once only fight over the GIL: 100 daemons
# loading a model together starved their network threads past the broker's keepalive.
WORKING_DAEMONS = 4
READY = "ready"
READY_TIMEOUT_S = 300.0  # 100 daemons: each opens its secure world and loads its backbone
STOP_TIMEOUT_S = 60.0


class DeviceHost:
    """One host process running the daemons of ``configs`` (each a daemon config table)."""

    def __init__(self, configs: list[dict[str, Any]], folder: Path, index: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name = f"host-{index}"
        self.slice = folder / f"{self.name}.json"
        self.slice.write_text(json.dumps(configs), encoding="utf-8")
        self.log = folder / f"{self.name}.log"
        self.ready = threading.Event()
        self.count = len(configs)
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge.demo.hosts",
                                          str(self.slice)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        threading.Thread(target=self._read, name=f"{self.name}-stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == READY:
                self.ready.set()

    def failure(self) -> str | None:
        """Why the host is unusable (exited), with the end of its log; None while it runs."""
        code = self.proc.poll()
        if code is None:
            return None
        tail = self.log.read_text(encoding="utf-8", errors="replace")[-2000:]
        return f"{self.name} ({self.count} devices) exited with status {code}: {tail.strip()}"

    def stop(self) -> str | None:
        """Ask the host to stop (stdin closed) and reap it; what went wrong, if anything."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()
                self.proc.wait(STOP_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
                return f"{self.name} did not stop within {STOP_TIMEOUT_S:.0f} s (killed)"
        return None if self.proc.returncode == 0 else self.failure()


def slices(configs: list[dict[str, Any]], per_process: int) -> list[list[dict[str, Any]]]:
    """``configs`` cut into consecutive slices of at most ``per_process``."""
    return [configs[i:i + per_process] for i in range(0, len(configs), per_process)]


def serve(configs: list[dict[str, Any]]) -> int:
    """Run the daemons until stdin closes; 0 when every one ran and stopped cleanly."""
    from edge.daemon import Daemon, DaemonConfig

    stop = threading.Event()
    errors: list[str] = []
    daemons: list[Any] = []
    threads: list[threading.Thread] = []

    def run(d: Any) -> None:
        try:
            d.run(stop)
        except BaseException as exc:  # reported through the exit status and the log
            errors.append(f"{d.config.name}: {type(exc).__name__}: {exc}")
            logging.getLogger("edge.demo").exception("%s failed", d.config.name)
            stop.set()

    try:
        gate = threading.BoundedSemaphore(WORKING_DAEMONS)
        for cfg in configs:
            daemons.append(Daemon(DaemonConfig.from_mapping(cfg), gate=gate))
        for d in daemons:
            t = threading.Thread(target=run, args=(d,), name=f"daemon-{d.config.name}",
                                 daemon=True)
            t.start()
            threads.append(t)
        for d in daemons:
            while not d.subscribed.wait(0.5):
                if stop.is_set():
                    raise EdgeError(f"{d.config.name} failed before it subscribed: {errors}")
        print(READY, flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for d in daemons:
            d.close()
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


def main() -> int:
    """``python -m edge.demo.hosts SLICE.json``."""
    from edge.demo.settings import quiet_absl

    quiet_absl()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configs = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    try:
        return serve(configs)
    except EdgeError as exc:
        print(f"{exc.refusal}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
