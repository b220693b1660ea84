"""The board's side of ``edge board``: apply a staged provisioning job, report state as JSON.

``edge board provision`` (on the operator's machine) stages files into a folder
on the board with :mod:`edge.board.transfer`, ``job.json`` last; ``edge board
apply`` (run on the board through its console) then checks every staged file
against the job's SHA-256, provisions the TA and writes the device record and
``done.json`` (each by rename, ``done.json`` last). It is idempotent: anchors
and policy already installed with the same key ids / policy id are kept, so an
apply cut short by a lost console is simply run again. Different anchors on a
provisioned board are refused (replace them with a signed statement instead).
The registrar key (secure aggregation, docs/secagg.md) is optional and follows
the same rule: installed once, kept when the TA already holds the same key id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from edge.errors import BoardMismatch, Malformed, TransferCorrupt
from edge.formats.device import DeviceRecord
from edge.formats.keys import key_id
from edge.formats.policy import policy_id
from edge.state_files import write_durably
from edge.tee import TrustedApp

JOB = "job.json"
DONE = "done.json"
RECORD = "device.pub"
SIGNER, AGGREGATOR, POLICY = "model-signer.pub", "aggregator.pub", "policy.bin"
REGISTRAR = "registrar.pub"
JOB_FORMAT = 1
MAX_JOB_FILE = 1 << 20


def bundle_version() -> str:
    """The installed edge-tee version (what a bundle installed)."""
    try:
        return metadata.version("edge-tee")
    except metadata.PackageNotFoundError:
        return "not-installed"


def read_job(folder: Path) -> dict[str, bytes]:
    """The staged files named by ``job.json``, each checked against its SHA-256."""
    try:
        job = json.loads((folder / JOB).read_text())
    except FileNotFoundError:
        raise TransferCorrupt(f"{folder}: no {JOB}: the transfer is not complete") from None
    except (OSError, ValueError) as exc:
        raise Malformed(f"{folder / JOB}: {exc}") from None
    if not isinstance(job, dict) or job.get("format") != JOB_FORMAT \
            or not isinstance(job.get("files"), dict):
        raise Malformed(f"{folder / JOB}: not a format-{JOB_FORMAT} provisioning job")
    files: dict[str, bytes] = {}
    for name, digest in job["files"].items():
        if name not in (SIGNER, AGGREGATOR, POLICY, REGISTRAR) or not isinstance(digest, str):
            raise Malformed(f"{folder / JOB}: unexpected file entry {name!r}")
        path = folder / name
        if not path.is_file():
            raise TransferCorrupt(f"{path}: named by {JOB} but missing")
        if path.stat().st_size > MAX_JOB_FILE:
            raise Malformed(f"{path}: larger than {MAX_JOB_FILE} bytes")
        data = path.read_bytes()
        if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), digest):
            raise TransferCorrupt(f"{path}: SHA-256 differs from {JOB}")
        files[name] = data
    if SIGNER not in files or AGGREGATOR not in files:
        raise Malformed(f"{folder / JOB}: needs {SIGNER} and {AGGREGATOR}")
    return files


def apply(folder: Path, backend: str, state: Path | None) -> dict[str, Any]:
    """Provision the TA from a staged job; idempotent. Returns what ``done.json`` holds."""
    from edge.keyfiles import load_public_key

    done = folder / DONE
    if done.exists():
        return dict(json.loads(done.read_text()))
    files = read_job(folder)
    signer = load_public_key(folder / SIGNER)
    aggregator = load_public_key(folder / AGGREGATOR)
    registrar = load_public_key(folder / REGISTRAR) if REGISTRAR in files else None
    actions = []
    with TrustedApp(backend, state) as ta:
        record = ta.identity()  # creates the device keys inside the TA on first use
        status = ta.status()
        if status.has_anchors:
            if status.signer_key_id != key_id(signer) \
                    or status.aggregator_key_id != key_id(aggregator):
                raise BoardMismatch(
                    "the board is provisioned with other anchors (model signer "
                    f"{status.signer_key_id.hex()}, aggregator {status.aggregator_key_id.hex()}); "
                    "replace them with `edge tee replace-anchor`")
            actions.append("anchors-kept")
        else:
            ta.install_anchors(signer, aggregator)
            actions.append("anchors-installed")
        if registrar is not None:
            if status.has_registrar:
                if status.registrar_key_id != key_id(registrar):
                    raise BoardMismatch(
                        "the board holds another registrar key (key id "
                        f"{status.registrar_key_id.hex()}); replace it with "
                        "`edge tee replace-anchor`")
                actions.append("registrar-kept")
            else:
                ta.install_registrar(registrar)
                actions.append("registrar-installed")
        if POLICY in files:
            budget = ta.budget()
            if budget.has_policy and budget.policy_id == policy_id(files[POLICY]):
                actions.append("policy-kept")
            else:
                ta.install_policy(files[POLICY])
                actions.append("policy-installed")
    device = DeviceRecord.parse(record)
    write_durably(folder / RECORD, record, mode=0o644)
    result = {"device_id": device.device_id.hex(), "record": RECORD, "actions": actions,
              "bundle_version": bundle_version()}
    write_durably(done, json.dumps(result).encode(), mode=0o644)
    return result


def report(backend: str, state: Path | None) -> dict[str, Any]:
    """What the board reports: bundle version, TEE backend, identity, anchors, registrar,
    model, budget, and whether it is ready for secure aggregation."""
    from edge.commands.tee import _info

    with TrustedApp(backend, state) as ta:
        status = ta.status()
        info = _info(ta, status)
        budget = ta.budget()
    return {
        "bundle_version": bundle_version(),
        "tee": info,
        "policy_id": budget.policy_id.hex() if budget.has_policy else None,
        "steps_spent": budget.steps_spent,
        "step_budget": budget.step_budget,
        # Anchors and policy go in as two TA commands: a board that lost its console
        # between them is not provisioned yet (a new `edge board provision` completes it).
        "provisioned": bool(status.has_anchors and budget.has_policy),
        # A secagg round needs the registrar key in the TA to check its neighbours'
        # enrollment certificates (docs/secagg.md); without it the board can only
        # take part in rounds with secagg = "off".
        "secagg_ready": bool(status.has_anchors and budget.has_policy
                             and status.has_registrar),
    }
