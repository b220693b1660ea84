"""`edge board provision/status` against a fake console (a real shell behind a login).

The board side is the real `edge` CLI on the simulated TEE; the console drops
and corrupts bytes on request. Fast; the same flow against the QEMU board's
console is tests/qemu/test_qemu_board.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Roles, require_native
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fake_console import FakeBoard

from edge import errors
from edge.aggregator.store import Store
from edge.board.agent import bundle_version
from edge.board.provision import BoardAccess, provision, status
from edge.formats.device import DeviceRecord
from edge.formats.keys import key_id
from edge.formats.policy import SAMPLING_POISSON, build_policy, policy_id

PASSWORD = "secret"


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _policy(signer: Ed25519PrivateKey, version: int = 1) -> bytes:
    return build_policy(signer, version=version, noise_multiplier_min=1.1,
                        max_example_clip=1.0, max_update_clip=5.0, sampling_rate=0.01,
                        sampling=SAMPLING_POISSON, max_steps_per_round=200, step_budget=3132,
                        target_epsilon=3.0, delta=1e-5)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[FakeBoard]:
    build = require_native("host")
    home = tmp_path / "board"
    home.mkdir()
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home),
           "EDGE_NATIVE_DIR": str(build), "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    b = FakeBoard(home, env, password=PASSWORD)
    try:
        yield b
    finally:
        b.close()


def access(board: FakeBoard, tmp_path: Path, **kw: object) -> BoardAccess:
    fields: dict[str, object] = dict(
        url=board.url, password=PASSWORD, edge=f"{sys.executable} -m edge.cli", tee="sim",
        state=str(tmp_path / "board" / "tee"), staging=str(tmp_path / "board" / "staging"))
    fields.update(kw)
    return BoardAccess(**fields)  # type: ignore[arg-type]


def _run(a: BoardAccess, roles: Roles, policy: bytes | None, retries: int = 0,
         registrar: Ed25519PrivateKey | None = None) -> object:
    return provision(a, signer=_pem(roles.signer), aggregator=_pem(roles.aggregator),
                     policy=policy, expect_version=bundle_version(), retries=retries,
                     registrar=_pem(registrar) if registrar is not None else None)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)


def test_provision_then_status_then_again(board: FakeBoard, tmp_path: Path,
                                          roles: Roles) -> None:
    a = access(board, tmp_path)
    assert status(a)["provisioned"] is False
    policy = _policy(roles.signer)
    result = _run(a, roles, policy)
    assert result.board["actions"] == ["anchors-installed", "policy-installed"]
    assert result.transfer.sent >= 4 and result.transfer.reused == 0
    device = DeviceRecord.parse(result.record)
    report = status(a)
    assert report["provisioned"] is True and report["bundle_version"] == bundle_version()
    # No registrar given: provisioned, but not for secure aggregation.
    assert report["secagg_ready"] is False and report["tee"]["registrar_key_id"] is None
    assert report["tee"]["device_id"] == device.device_id.hex()
    assert report["tee"]["identity_public_key"] == device.ed25519_pub.hex()
    assert report["policy_id"] == policy_id(policy).hex()
    # The same job again: nothing re-sent, nothing re-done, the same record.
    again = _run(a, roles, policy)
    assert again.record == result.record and again.transfer.sent == 0
    # A newer policy is a new job on the same anchors.
    newer = _run(a, roles, _policy(roles.signer, version=2))
    assert newer.board["actions"] == ["anchors-kept", "policy-installed"]


def test_console_dropped_mid_transfer_resumes(board: FakeBoard, tmp_path: Path,
                                             roles: Roles) -> None:
    a = access(board, tmp_path)
    policy = _policy(roles.signer)
    board.drop_after = 3000  # inside the second file's chunk line
    with pytest.raises(errors.ConsoleLost, match="run the same command again"):
        _run(a, roles, policy, retries=0)
    assert board.drops == 1
    assert status(a)["provisioned"] is False  # never half-provisioned
    staged = list((tmp_path / "board" / "staging").iterdir())
    assert len(staged) == 1 and not (staged[0] / "job.json").exists()
    result = _run(a, roles, policy)
    assert result.transfer.reused + result.transfer.sent >= 1
    assert status(a)["provisioned"] is True
    assert result.device.device_id.hex() == status(a)["tee"]["device_id"]


def test_drop_during_policy_transfer_retries_on_its_own(board: FakeBoard, tmp_path: Path,
                                                       roles: Roles) -> None:
    a = access(board, tmp_path)
    board.drop_after = 6000
    result = _run(a, roles, _policy(roles.signer), retries=2)
    assert result.attempts == 2 and board.drops == 1
    assert result.transfer.reused >= 1  # chunks from before the drop were kept
    assert status(a)["provisioned"] is True


def test_corrupted_chunk_is_refused_and_resent(board: FakeBoard, tmp_path: Path,
                                              roles: Roles) -> None:
    a = access(board, tmp_path)
    board.corrupt_next_chunk = True  # one base64 character of the first chunk sent
    with pytest.raises(errors.TransferCorrupt, match="SHA-256"):
        _run(a, roles, _policy(roles.signer))
    assert status(a)["provisioned"] is False
    assert _run(a, roles, _policy(roles.signer)).board["actions"][0] == "anchors-installed"


def test_wrong_password_is_refused(board: FakeBoard, tmp_path: Path, roles: Roles) -> None:
    with pytest.raises(errors.ConsoleError, match="refused"):
        status(access(board, tmp_path, password="wrong"))


def test_board_without_edge_or_with_another_version(board: FakeBoard, tmp_path: Path,
                                                    roles: Roles) -> None:
    with pytest.raises(errors.BoardMismatch, match="not installed"):
        _run(access(board, tmp_path, edge="edge-not-here"), roles, None)
    with pytest.raises(errors.BoardMismatch, match=r"0\.0\.1"):
        provision(access(board, tmp_path), signer=_pem(roles.signer),
                  aggregator=_pem(roles.aggregator), policy=None, expect_version="0.0.1")


def test_other_anchors_are_refused(board: FakeBoard, tmp_path: Path, roles: Roles) -> None:
    a = access(board, tmp_path)
    _run(a, roles, None)
    other = Roles(Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())
    with pytest.raises(errors.ConsoleError, match="other anchors"):
        _run(a, other, None)


def test_cli_provision_and_enroll(board: FakeBoard, tmp_path: Path, roles: Roles) -> None:
    (tmp_path / "signer.pub").write_bytes(_pem(roles.signer))
    (tmp_path / "aggregator.pub").write_bytes(_pem(roles.aggregator))
    registrar = Ed25519PrivateKey.generate()
    (tmp_path / "registrar.pub").write_bytes(_pem(registrar))
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "policy.bin").write_bytes(_policy(roles.signer))
    common = ["--port", board.url, "--password-file", str(tmp_path / "pw"),
              "--remote-edge", f"{sys.executable} -m edge.cli", "--board-tee", "sim",
              "--board-state", str(tmp_path / "board" / "tee"),
              "--board-staging", str(tmp_path / "board" / "staging"), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    db = tmp_path / "aggregator.sqlite"
    out = subprocess.run(
        [sys.executable, "-m", "edge.cli", "board", "provision", *common,
         "--model-signer", str(tmp_path / "signer.pub"),
         "--aggregator", str(tmp_path / "aggregator.pub"), "--policy", str(tmp_path / "policy.bin"),
         "--registrar", str(tmp_path / "registrar.pub"),
         "--out", str(tmp_path / "board.pub"), "--enroll", str(db)],
        env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    device = DeviceRecord.parse((tmp_path / "board.pub").read_bytes())
    assert summary["device_id"] == device.device_id.hex() and summary["enrolled"] is True
    with Store(db) as store, store.transaction() as db:
        rows = db.execute("SELECT device_id FROM devices").fetchall()
    assert [bytes(r[0]) for r in rows] == [device.device_id]
    out = subprocess.run([sys.executable, "-m", "edge.cli", "board", "status", *common],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["tee"]["device_id"] == device.device_id.hex() and report["secagg_ready"] is True
    assert report["tee"]["registrar_key_id"] == key_id(_raw(registrar)).hex()


def test_apply_refuses_an_incomplete_or_altered_job(tmp_path: Path, roles: Roles) -> None:
    """The board side on its own: no job.json, a file missing, a file changed."""
    from edge.board.agent import apply

    job = tmp_path / "job"
    job.mkdir()
    state = tmp_path / "tee"
    with pytest.raises(errors.TransferCorrupt, match="not complete"):
        apply(job, "sim", state)
    (job / "model-signer.pub").write_bytes(_pem(roles.signer))
    digests = {"model-signer.pub": hashlib.sha256(_pem(roles.signer)).hexdigest(),
               "aggregator.pub": hashlib.sha256(_pem(roles.aggregator)).hexdigest()}
    (job / "job.json").write_text(json.dumps({"format": 1, "files": digests}))
    with pytest.raises(errors.TransferCorrupt, match="missing"):
        apply(job, "sim", state)
    (job / "aggregator.pub").write_bytes(_pem(roles.signer))  # not what job.json says
    with pytest.raises(errors.TransferCorrupt, match="SHA-256"):
        apply(job, "sim", state)
    assert not (job / "done.json").exists() and not (job / "device.pub").exists()


def test_anchors_without_the_policy_are_not_provisioned(board: FakeBoard, tmp_path: Path,
                                                        roles: Roles) -> None:
    # The console went away between the two TA commands of `apply`: anchors in, no policy.
    from edge.tee import TrustedApp

    a = access(board, tmp_path)
    with TrustedApp("sim", tmp_path / "board" / "tee") as ta:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
    report = status(a)
    assert report["tee"]["model_signer_key_id"] and report["provisioned"] is False, report
    assert _run(a, roles, _policy(roles.signer)).board["actions"] == [
        "anchors-kept", "policy-installed"]
    assert status(a)["provisioned"] is True


def test_registrar_installed_kept_and_reported(board: FakeBoard, tmp_path: Path,
                                               roles: Roles) -> None:
    a = access(board, tmp_path)
    registrar = Ed25519PrivateKey.generate()
    policy = _policy(roles.signer)
    result = _run(a, roles, policy, registrar=registrar)
    assert result.board["actions"] == ["anchors-installed", "registrar-installed",
                                       "policy-installed"]
    report = status(a)
    assert report["secagg_ready"] is True and report["provisioned"] is True
    # The key id comes from the TA's status block, not from the staged file.
    assert report["tee"]["registrar_key_id"] == key_id(_raw(registrar)).hex()
    assert report["tee"]["registrar_epoch"] == 0
    assert _run(a, roles, policy, registrar=registrar).transfer.sent == 0  # same job: done
    again = _run(a, roles, _policy(roles.signer, version=2), registrar=registrar)
    assert again.board["actions"] == ["anchors-kept", "registrar-kept", "policy-installed"]
    with pytest.raises(errors.ConsoleError, match="another registrar"):
        _run(a, roles, policy, registrar=Ed25519PrivateKey.generate())
    assert status(a)["tee"]["registrar_key_id"] == key_id(_raw(registrar)).hex()


def test_registrar_added_to_a_board_provisioned_without_one(board: FakeBoard, tmp_path: Path,
                                                            roles: Roles) -> None:
    a = access(board, tmp_path)
    policy = _policy(roles.signer)
    _run(a, roles, policy)
    assert status(a)["secagg_ready"] is False
    registrar = Ed25519PrivateKey.generate()
    result = _run(a, roles, policy, registrar=registrar)
    assert result.board["actions"] == ["anchors-kept", "registrar-installed", "policy-kept"]
    assert status(a)["secagg_ready"] is True


def test_registrar_without_the_policy_is_not_ready(board: FakeBoard, tmp_path: Path,
                                                   roles: Roles) -> None:
    a = access(board, tmp_path)
    _run(a, roles, None, registrar=Ed25519PrivateKey.generate())
    report = status(a)
    assert report["tee"]["registrar_key_id"] is not None
    assert report["provisioned"] is False and report["secagg_ready"] is False


def test_apply_refuses_a_bad_registrar_key(tmp_path: Path, roles: Roles) -> None:
    from edge.board.agent import apply

    job = tmp_path / "job"
    job.mkdir()
    files = {"model-signer.pub": _pem(roles.signer), "aggregator.pub": _pem(roles.aggregator),
             "registrar.pub": b"not a key"}
    for name, data in files.items():
        (job / name).write_bytes(data)
    (job / "job.json").write_text(json.dumps(
        {"format": 1, "files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}}))
    with pytest.raises(errors.ConfigError, match=r"registrar\.pub"):
        apply(job, "sim", tmp_path / "tee")
    assert not (job / "done.json").exists()
