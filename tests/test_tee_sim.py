"""Every TA command through the simulated secure world, from Python.

Each test runs twice: against the plain secure-world process and against the
one built with AddressSanitizer + UBSan (see ``secure_world`` in conftest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, head, load, make_package, rebind_wrap, state_files
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from vectors.generate import flip, manifest_offsets, resign

from edge import errors
from edge.formats.anchors import Role, build_anchor_statement
from edge.formats.device import DeviceRecord, parse_device_record
from edge.formats.envelope import HEADER_SIZE, SIG_SIZE
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.layouts import KEY_WRAP_BODY, MANIFEST_FIXED
from edge.tee import TrustedApp


def _device(ta: TrustedApp) -> DeviceRecord:
    return parse_device_record(ta.identity())


def _envelope_len(pkg: bytes) -> int:
    return HEADER_SIZE + int.from_bytes(pkg[8:12], "little") + SIG_SIZE


# -- identity and status -----------------------------------------------------

def test_status_of_a_fresh_ta_creates_nothing(ta: TrustedApp, secure_world: Path) -> None:
    status = ta.status()
    assert (status.has_identity, status.has_anchors, status.has_model) == (False, False, False)
    assert status.model_version == 0 and status.device_id == bytes(16)
    assert ta.status() == status, "GET_STATUS must be read-only"


def test_identity_is_created_once_and_persists(secure_world: Path) -> None:
    with TrustedApp("sim", secure_world) as ta:
        first = ta.identity()
        assert ta.identity() == first
        status = ta.status()
    with TrustedApp("sim", secure_world) as ta:
        assert ta.identity() == first, "identity must survive a new session"
    record = parse_device_record(first)  # self-signature verifies
    assert record.device_id == key_id(record.ed25519_pub) == status.device_id
    assert status.has_identity and not status.has_anchors


def test_private_keys_are_stored_encrypted(provisioned: TrustedApp, roles: Roles,
                                           secure_world: Path) -> None:
    dev = _device(provisioned)
    w, b = head(3)
    load(provisioned, make_package(roles.signer, [dev], version=1, w=w, b=b))
    blob = b"".join(state_files(secure_world).values())
    assert w.tobytes()[:64] not in blob, "the head is stored in clear"
    assert dev.ed25519_pub not in blob and dev.x25519_pub not in blob


def test_second_session_on_same_storage_is_refused_while_first_is_open(
        ta: TrustedApp, secure_world: Path) -> None:
    with pytest.raises(errors.TeeUnavailable, match="another process"):
        TrustedApp("sim", secure_world)


# -- trust anchors -------------------------------------------------------------

def test_anchors_install_once(provisioned: TrustedApp, roles: Roles) -> None:
    status = provisioned.status()
    assert status.has_anchors
    assert status.signer_key_id == key_id(roles.signer_pub)
    assert status.aggregator_key_id == key_id(roles.aggregator_pub)
    with pytest.raises(errors.AlreadyProvisioned):
        provisioned.install_anchors(roles.aggregator_pub, roles.signer_pub)
    assert provisioned.status() == status


def test_load_before_provisioning_is_refused(ta: TrustedApp, roles: Roles) -> None:
    pkg = make_package(roles.signer, [_device(ta)], version=1)
    with pytest.raises(errors.NotProvisioned):
        load(ta, pkg)


def test_replace_anchor_with_statement_then_replay_refused(provisioned: TrustedApp,
                                                           roles: Roles) -> None:
    dev = _device(provisioned)
    new_signer = Ed25519PrivateKey.generate()
    stmt = build_anchor_statement(roles.signer, Role.MODEL_SIGNER, 1,
                                  ed25519_raw_public(new_signer))
    provisioned.replace_anchor(stmt)
    status = provisioned.status()
    assert status.signer_epoch == 1
    assert status.signer_key_id == key_id(ed25519_raw_public(new_signer))
    with pytest.raises(errors.UnknownSigner):
        load(provisioned, make_package(roles.signer, [dev], version=1))
    assert load(provisioned, make_package(new_signer, [dev], version=1)).version == 1
    # Swap back, then the first statement (epoch 1) is stale.
    back = build_anchor_statement(new_signer, Role.MODEL_SIGNER, 2, roles.signer_pub)
    provisioned.replace_anchor(back)
    with pytest.raises(errors.StaleStatement):
        provisioned.replace_anchor(stmt)
    assert provisioned.status().signer_epoch == 2


@pytest.mark.parametrize("defect", ["wrong-signer", "bad-signature", "skipped-epoch",
                                    "truncated"])
def test_replace_anchor_refusals_change_nothing(provisioned: TrustedApp, roles: Roles,
                                                defect: str) -> None:
    before = provisioned.status()
    new = ed25519_raw_public(Ed25519PrivateKey.generate())
    signer = Ed25519PrivateKey.generate() if defect == "wrong-signer" else roles.aggregator
    epoch = 2 if defect == "skipped-epoch" else 1
    stmt = build_anchor_statement(signer, Role.AGGREGATOR, epoch, new)
    expected: type[errors.EdgeError] = {
        "wrong-signer": errors.UnknownSigner,
        "bad-signature": errors.SignatureInvalid,
        "skipped-epoch": errors.StaleStatement,
        "truncated": errors.Malformed,
    }[defect]
    if defect == "bad-signature":
        stmt = flip(stmt, len(stmt) - 1)
    if defect == "truncated":
        stmt = stmt[:-1]
    with pytest.raises(expected):
        provisioned.replace_anchor(stmt)
    assert provisioned.status() == before


# -- model packages --------------------------------------------------------------

@pytest.mark.parametrize("encrypt", [False, True], ids=["public", "encrypted"])
def test_load_package_returns_verified_backbone_and_head_infers(
        provisioned: TrustedApp, roles: Roles, encrypt: bool) -> None:
    others = [parse_device_record(r) for r in _other_devices(2)]
    dev = _device(provisioned)
    backbone = np.random.default_rng(1).bytes(3 * 4096 + 123)
    w, b = head(5, 32, 7)
    pkg = make_package(roles.signer, [*others, dev], version=3, w=w, b=b,
                       backbone=backbone, encrypt=encrypt)
    loaded = load(provisioned, pkg)
    assert loaded.version == 3 and loaded.backbone == backbone
    status = provisioned.status()
    assert (status.model_version, status.head_in, status.head_out) == (3, 32, 7)
    x = np.random.default_rng(2).normal(size=(9, 32)).astype(np.float32)
    np.testing.assert_allclose(provisioned.infer(x).scores, x @ w + b, rtol=1e-5, atol=1e-5)


def test_head_survives_a_new_session(secure_world: Path, roles: Roles) -> None:
    w, b = head(8)
    with TrustedApp("sim", secure_world) as ta:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
        load(ta, make_package(roles.signer, [_device(ta)], version=4, w=w, b=b))
    with TrustedApp("sim", secure_world) as ta:
        x = np.ones((2, 16), np.float32)
        np.testing.assert_allclose(ta.infer(x).scores, x @ w + b, rtol=1e-5)
        assert ta.status().model_version == 4


def test_large_backbone_streams_from_file(provisioned: TrustedApp, roles: Roles,
                                          tmp_path: Path) -> None:
    """32 MiB, eight times the TA's heap (TA_DATA_SIZE, enforced by the simulator)."""
    backbone = np.random.default_rng(9).bytes(32 * 1024 * 1024)
    pkg = tmp_path / "big.pkg"
    built = make_package(roles.signer, [_device(provisioned)], version=2,
                         backbone=backbone, encrypt=True, chunk_log2=20)
    pkg.write_bytes(built)
    out = tmp_path / "backbone.tflite"
    loaded = load(provisioned, built, pkg, backbone_out=out)
    assert loaded.backbone_len == len(backbone)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(backbone).digest()


def test_refused_streamed_load_writes_no_backbone(provisioned: TrustedApp, roles: Roles,
                                                  tmp_path: Path) -> None:
    pkg = make_package(roles.signer, [_device(provisioned)], version=2,
                       backbone=b"x" * 10000, encrypt=True)
    path = tmp_path / "bad.pkg"
    path.write_bytes(flip(pkg, len(pkg) - 3))
    out = tmp_path / "backbone.bin"
    with pytest.raises(errors.ChunkDigestMismatch):
        load(provisioned, pkg, path, backbone_out=out)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_planted_partial_symlink_is_not_followed(provisioned: TrustedApp, roles: Roles,
                                                 tmp_path: Path) -> None:
    # A symlink planted at <out>.partial used to make the decrypted backbone
    # overwrite its target (issue 10, item 3).
    backbone = b"plaintext backbone " * 500
    pkg = make_package(roles.signer, [_device(provisioned)], version=2,
                       backbone=backbone, encrypt=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    out = tmp_path / "backbone.tflite"
    (tmp_path / "backbone.tflite.partial").symlink_to(victim)
    (tmp_path / "p.pkg").write_bytes(pkg)
    loaded = load(provisioned, pkg, tmp_path / "p.pkg", backbone_out=out)
    assert loaded.version == 2 and out.read_bytes() == backbone
    assert victim.read_bytes() == b"keep me"
    assert out.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "backbone.tflite.partial").exists()


def test_backbone_that_cannot_be_put_in_place_after_commit_is_kept(
        provisioned: TrustedApp, roles: Roles, tmp_path: Path) -> None:
    # The TA commits at LOAD_FINISH; a failure to move the file into place
    # after that used to delete the backbone of the committed version.
    backbone = b"committed backbone " * 500
    pkg = make_package(roles.signer, [_device(provisioned)], version=2,
                       backbone=backbone, encrypt=True)
    out = tmp_path / "backbone.tflite"
    out.mkdir()
    (out / "occupied").write_text("a directory is in the way")
    (tmp_path / "p.pkg").write_bytes(pkg)
    with pytest.raises(errors.BackboneNotPublished, match=r"committed version 2, but") as info:
        load(provisioned, pkg, tmp_path / "p.pkg", backbone_out=out)
    assert info.value.partial == tmp_path / "backbone.tflite.partial"
    assert info.value.partial.read_bytes() == backbone
    assert provisioned.status().model_version == 2


def test_refused_load_does_not_create_the_identity(provisioned: TrustedApp, roles: Roles,
                                                  tmp_path: Path) -> None:
    # A refused artefact changes nothing, the device identity included
    # (issue 10, item 4: LOAD_BEGIN created it before checking the envelope).
    stranger = parse_device_record(_other_devices(1)[0])
    assert not provisioned.status().has_identity
    refusals = {errors.Malformed: b"\x00" * 64,
                errors.UnknownSigner: make_package(Ed25519PrivateKey.generate(), [stranger],
                                                   version=2),
                errors.NotForThisDevice: make_package(roles.signer, [stranger], version=2)}
    for cls, pkg in refusals.items():
        with pytest.raises(cls):
            provisioned.load_model(pkg, wrap=getattr(pkg, "wrap", b"\x00" * 204))
        assert not provisioned.status().has_identity, cls


def _other_devices(n: int) -> list[bytes]:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge.formats.device import build_device_record
    return [build_device_record(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
            for _ in range(n)]


def _defective(defect: str, roles: Roles, dev: DeviceRecord) -> tuple[bytes, bytes, int]:
    """A package and key wrap with one defect, and the stored version to load them against."""
    backbone = bytes(range(256)) * 40  # 10240 bytes: 3 chunks of 4096
    ok = make_package(roles.signer, [dev], version=7, backbone=backbone, encrypt=True)
    wrap = ok.wrap
    env = _envelope_len(ok)
    signer = roles.signer

    def edit_head(_h: bytearray, body: bytearray) -> None:
        body[manifest_offsets(body)[1]] ^= 1

    def edit_wrapped_key(_h: bytearray, body: bytearray) -> None:
        body[KEY_WRAP_BODY.offset("wrapped_key")] ^= 1

    def edit_reserved(_h: bytearray, body: bytearray) -> None:
        body[MANIFEST_FIXED.offset("reserved1")] = 1

    def version(v: int) -> Callable[[bytearray, bytearray], None]:
        return lambda h, _b: h.__setitem__(4, v)

    if defect == "bad-signature":
        return flip(ok, env - 1), wrap, 0
    if defect == "body-flipped":
        return flip(ok, HEADER_SIZE + 30), wrap, 0
    if defect == "tampered-head":
        edited = resign(ok, edit_head, signer)
        return edited, rebind_wrap(wrap, edited, signer), 0
    if defect == "tampered-wrap":
        return ok, resign(wrap, edit_wrapped_key, signer), 0
    if defect == "wrap-bad-signature":
        return ok, flip(wrap, HEADER_SIZE + 40), 0
    if defect == "wrap-other-package":
        return ok, make_package(signer, [dev], version=7).wrap, 0
    if defect == "wrap-other-manifest":
        return resign(ok, edit_head, signer), wrap, 0
    if defect == "wrap-unknown-signer":
        other = Ed25519PrivateKey.generate()
        other_id = key_id(ed25519_raw_public(other))
        return ok, resign(wrap, lambda h, _b: h.__setitem__(slice(12, 28), other_id), other), 0
    if defect == "wrap-truncated":
        return ok, wrap[:-1], 0
    if defect == "wrap-wrong-kind":
        return ok, dev_record_bytes(dev, roles), 0
    if defect == "reserved-byte":
        return resign(ok, edit_reserved, signer), wrap, 0
    if defect == "chunk-flipped":
        return flip(ok, env + 5000), wrap, 0
    if defect == "trailing-byte":
        return ok + b"\0", wrap, 0
    if defect == "bad-magic":
        return flip(ok, 0), wrap, 0
    if defect == "format-version":
        return resign(ok, version(3), signer), wrap, 0
    if defect == "format-1-retired":
        return resign(ok, version(1), signer), wrap, 0
    if defect == "wrong-kind":
        return dev_record_bytes(dev, roles), wrap, 0
    if defect == "unknown-signer":
        other = Ed25519PrivateKey.generate()
        return make_package(other, [dev], version=7), wrap, 0
    if defect == "not-for-device":
        pkg = make_package(signer, [parse_device_record(r) for r in _other_devices(2)],
                           version=7)
        return pkg, pkg.wrap, 0
    if defect == "rollback-older":
        return ok, wrap, 9
    if defect == "rollback-equal":
        return ok, wrap, 7
    if defect == "head-too-large":
        w = np.zeros((4096, 32), np.float32)
        pkg = make_package(signer, [dev], version=7, w=w, b=np.zeros(32, np.float32),
                           enforce_limits=False)
        return pkg, pkg.wrap, 0
    if defect.startswith("cut-"):
        cut = {"cut-header": 20, "cut-body": HEADER_SIZE + 50, "cut-signature": env - 10,
               "cut-payload": env + 4096 + 100, "cut-last-chunk": len(ok) - 1}[defect]
        return ok[:cut], wrap, 0
    raise AssertionError(defect)


def dev_record_bytes(dev: DeviceRecord, roles: Roles) -> bytes:
    """Any well-formed artefact of another kind: an anchor statement."""
    return build_anchor_statement(roles.signer, Role.MODEL_SIGNER, 1, dev.ed25519_pub)


DEFECTS = {
    "bad-signature": errors.SignatureInvalid,
    "body-flipped": errors.SignatureInvalid,
    "tampered-head": errors.Tampered,
    "tampered-wrap": errors.Tampered,
    "wrap-bad-signature": errors.SignatureInvalid,
    "wrap-other-package": errors.WrongPackage,
    "wrap-other-manifest": errors.WrongPackage,
    "wrap-unknown-signer": errors.UnknownSigner,
    "wrap-truncated": errors.Malformed,
    "wrap-wrong-kind": errors.WrongKind,
    "reserved-byte": errors.Malformed,
    "chunk-flipped": errors.ChunkDigestMismatch,
    "trailing-byte": errors.Malformed,
    "bad-magic": errors.Malformed,
    "format-version": errors.UnsupportedVersion,
    "format-1-retired": errors.RetiredFormat,
    "wrong-kind": errors.WrongKind,
    "unknown-signer": errors.UnknownSigner,
    "not-for-device": errors.NotForThisDevice,
    "rollback-older": errors.Rollback,
    "rollback-equal": errors.Rollback,
    "head-too-large": errors.Oversized,
    "cut-header": errors.Malformed,
    "cut-body": errors.Malformed,
    "cut-signature": errors.Malformed,
    "cut-payload": errors.Malformed,
    "cut-last-chunk": errors.Malformed,
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_is_refused_and_nothing_is_half_applied(
        provisioned: TrustedApp, roles: Roles, secure_world: Path, defect: str) -> None:
    dev = _device(provisioned)
    pkg, wrap, stored = _defective(defect, roles, dev)
    w, b = head(stored + 100)
    if stored:
        load(provisioned, make_package(roles.signer, [dev], version=stored, w=w, b=b))
    before = provisioned.status()
    files_before = state_files(secure_world)
    expected = DEFECTS[defect]
    with pytest.raises(expected) as info:
        provisioned.load_model(pkg, wrap=wrap)
    assert type(info.value) is expected, f"{type(info.value).__name__}: {info.value}"
    assert provisioned.status() == before
    assert state_files(secure_world) == files_before, "secure storage changed on refusal"
    if stored:
        x = np.ones((1, 16), np.float32)
        np.testing.assert_allclose(provisioned.infer(x).scores, x @ w + b, rtol=1e-5)
    # The TA is still usable after the refusal.
    again = make_package(roles.signer, [dev], version=stored + 50)
    assert load(provisioned, again).version == stored + 50


# -- inference ---------------------------------------------------------------------

def test_infer_without_model_and_with_bad_shapes(provisioned: TrustedApp, roles: Roles) -> None:
    with pytest.raises(errors.NoModel):
        provisioned.infer(np.ones((1, 16), np.float32))
    load(provisioned, make_package(roles.signer, [_device(provisioned)], version=1))
    with pytest.raises(errors.Malformed):
        provisioned.infer(np.ones((1, 15), np.float32))
    with pytest.raises(errors.Oversized):
        provisioned.infer(np.ones((1025, 16), np.float32))


def test_infer_1024_by_100_head_batch_256(provisioned: TrustedApp, roles: Roles) -> None:
    w, b = head(11, 1024, 100)
    load(provisioned, make_package(roles.signer, [_device(provisioned)], version=1,
                                        w=w, b=b))
    x = np.random.default_rng(3).normal(size=(256, 1024)).astype(np.float32)
    np.testing.assert_allclose(provisioned.infer(x).scores, x @ w + b, rtol=1e-4, atol=1e-3)


# -- crashes -----------------------------------------------------------------------

def test_crash_before_commit_loses_the_load_not_the_caller(
        secure_world: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch) -> None:
    with TrustedApp("sim", secure_world) as ta:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
        dev = _device(ta)
    monkeypatch.setenv("EDGE_SIM_CRASH_ON_CMD", "6")  # LOAD_FINISH
    with TrustedApp("sim", secure_world) as ta:
        with pytest.raises(errors.TeeDead):
            load(ta, make_package(roles.signer, [dev], version=5))
        with pytest.raises(errors.TeeDead):
            ta.status()
    monkeypatch.delenv("EDGE_SIM_CRASH_ON_CMD")
    with TrustedApp("sim", secure_world) as ta:
        assert ta.status().model_version == 0


def test_crash_after_commit_keeps_the_committed_model(
        secure_world: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch) -> None:
    with TrustedApp("sim", secure_world) as ta:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
        dev = _device(ta)
    monkeypatch.setenv("EDGE_SIM_CRASH_AFTER_CMD", "6")
    with TrustedApp("sim", secure_world) as ta, pytest.raises(errors.TeeDead):
        load(ta, make_package(roles.signer, [dev], version=5))
    monkeypatch.delenv("EDGE_SIM_CRASH_AFTER_CMD")
    with TrustedApp("sim", secure_world) as ta:
        assert ta.status().model_version == 5
        with pytest.raises(errors.Rollback):
            load(ta, make_package(roles.signer, [dev], version=5))
