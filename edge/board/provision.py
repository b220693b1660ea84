"""The operator's side of ``edge board provision`` and ``edge board status``.

Provisioning is a sequence of steps that are each safe to repeat, so a run cut
short by a lost console is resumed by running it again (or by ``retries``):
the staging folder on the board is named by a hash of what is provisioned,
chunks already there are kept, ``edge board apply`` keeps what it already did,
and the device record comes back checked against the board's own SHA-256 and
its self-signature before the operator's copy is written.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.board import agent
from edge.board.console import Console
from edge.board.transfer import TransferStats, fetch, push
from edge.errors import BoardMismatch, ConsoleError, ConsoleLost, Malformed
from edge.formats.device import DEVICE_RECORD_SIZE, DeviceRecord

STAGING = "/var/lib/edge/provision"


@dataclass(frozen=True)
class BoardAccess:
    """How to reach a board's shell and its ``edge``."""

    url: str
    user: str = "root"
    password: str | None = None
    baudrate: int = 115200
    edge: str = "edge"  # the command that runs the installed bundle's CLI on the board
    tee: str = "optee"
    state: str | None = None  # the simulated TEE's folder on the board (tee = "sim")
    staging: str = STAGING  # where provisioning jobs are staged on the board

    def tee_args(self) -> str:
        args = f"--tee {shlex.quote(self.tee)}"
        return args + (f" --state {shlex.quote(self.state)}" if self.state else "")


@dataclass
class ProvisionResult:
    """The verified device record and what the run did."""

    record: bytes
    device: DeviceRecord
    board: dict[str, Any]
    transfer: TransferStats = field(default_factory=TransferStats)
    attempts: int = 1


def _session(access: BoardAccess, log: bytearray | None) -> Console:
    console = Console(access.url, baudrate=access.baudrate, log=log)
    try:
        console.login(access.user, access.password)
    except BaseException:
        console.close()
        raise
    return console


def _json_line(out: str, what: str) -> dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                break
            if isinstance(value, dict):
                return value
    raise ConsoleError(f"board: {what} did not print a JSON object: {out.strip()[-300:]!r}")


def installed_version(console: Console, access: BoardAccess) -> str | None:
    """The board's edge-tee version, or None when edge is not installed there."""
    rc, out = console.run(f"{access.edge} --version")
    if rc == 127:
        return None
    if rc != 0:
        raise ConsoleError(f"board: `{access.edge} --version` exited {rc}: {out.strip()[-200:]}")
    words = out.split()
    return words[-1] if words else None


def status(access: BoardAccess, log: bytearray | None = None) -> dict[str, Any]:
    """What the board reports (``edge board report --json`` run on it)."""
    with _session(access, log) as console:
        rc, out = console.run(f"{access.edge} board report --json {access.tee_args()}")
    if rc != 0:
        raise ConsoleError(f"board: report exited {rc}: {out.strip()[-300:]}")
    return _json_line(out, "edge board report")


def _job(signer: bytes, aggregator: bytes, policy: bytes | None,
         registrar: bytes | None) -> tuple[str, dict[str, bytes]]:
    files = {agent.SIGNER: signer, agent.AGGREGATOR: aggregator}
    if policy is not None:
        files[agent.POLICY] = policy
    if registrar is not None:
        files[agent.REGISTRAR] = registrar
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()[:24], files


def _attempt(access: BoardAccess, expect_version: str, job_id: str, files: dict[str, bytes],
             stats: TransferStats, log: bytearray | None) -> tuple[bytes, dict[str, Any]]:
    with _session(access, log) as console:
        version = installed_version(console, access)
        if version is None:
            raise BoardMismatch(f"edge is not installed on the board (`{access.edge}` not "
                                f"found): install the board bundle first (docs/board.md)")
        if version != expect_version:
            raise BoardMismatch(f"the board runs edge-tee {version}, this machine "
                                f"{expect_version}: install the matching bundle")
        folder = f"{access.staging}/{job_id}"
        for name, data in files.items():
            push(console, folder, name, data, stats)
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        job = json.dumps({"format": agent.JOB_FORMAT, "files": digests}, sort_keys=True)
        # job.json last: its presence says every file it names is complete.
        push(console, folder, agent.JOB, job.encode(), stats)
        rc, out = console.run(f"{access.edge} board apply --dir {folder} "
                              f"{access.tee_args()} --json", timeout=300)
        if rc != 0:
            raise ConsoleError(f"board: apply exited {rc}: {out.strip()[-300:]}")
        result = _json_line(out, "edge board apply")
        record = fetch(console, f"{folder}/{agent.RECORD}", DEVICE_RECORD_SIZE)
        return record, result


def provision(access: BoardAccess, *, signer: bytes, aggregator: bytes,
              policy: bytes | None, expect_version: str, registrar: bytes | None = None,
              retries: int = 0,
              log: bytearray | None = None,
              on_retry: Callable[[int, ConsoleLost], None] | None = None) -> ProvisionResult:
    """Provision one board; resumes after a lost console up to ``retries`` times.

    ``registrar`` (a public key file's bytes) is installed for secure aggregation."""
    job_id, files = _job(signer, aggregator, policy, registrar)
    stats = TransferStats()
    attempt = 0
    while True:
        attempt += 1
        try:
            record, result = _attempt(access, expect_version, job_id, files, stats, log)
            break
        except ConsoleLost as exc:
            if attempt > retries:
                raise ConsoleLost(f"{exc} (after {attempt} attempt(s); run the same command "
                                  f"again to resume)") from None
            if on_retry:
                on_retry(attempt, exc)
            time.sleep(1.0)
    device = DeviceRecord.parse(record)  # the self-signature: proof of the TA's key
    if device.device_id.hex() != result.get("device_id"):
        raise Malformed(f"the record fetched is device {device.device_id.hex()}, the board "
                        f"reported {result.get('device_id')}")
    return ProvisionResult(record, device, result, stats, attempt)
