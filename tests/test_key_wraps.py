"""Releases without a recipient cap: one package for the fleet, one key wrap per device.

A 600-device release is built, a sample of simulated secure worlds among its
devices loads it, every wrap refusal class is named, and what a device downloads
is the same number of bytes whatever the fleet's size (sizes from the layout).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, head
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge import errors, tee_abi
from edge.aggregator.config import AggregatorConfig
from edge.aggregator.registry import Registry
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, config_mapping
from edge.aggregator.store import Store
from edge.formats.device import DeviceRecord, build_device_record, parse_device_record
from edge.formats.envelope import HEADER_SIZE, SIG_SIZE
from edge.formats.keys import ed25519_raw_public
from edge.formats.keywrap import KEY_WRAP_SIZE, parse_key_wrap
from edge.formats.layouts import KEY_WRAP_BODY, MANIFEST_FIXED
from edge.formats.manifest import InferPolicy, InferRelease
from edge.formats.package_builder import Release, build_package
from edge.tee import TrustedApp

FLEET = 600
SAMPLE = (0, 299, 599)  # where the simulated secure worlds sit in the fleet


def strangers(n: int) -> list[DeviceRecord]:
    """Device records of boards that are not simulated here (keys made in Python)."""
    return [parse_device_record(build_device_record(Ed25519PrivateKey.generate(),
                                                    X25519PrivateKey.generate()))
            for _ in range(n)]


def release(signer: Ed25519PrivateKey, devices: list[DeviceRecord], *, version: int = 1,
            w: np.ndarray | None = None, b: np.ndarray | None = None,
            backbone: bytes | None = None) -> tuple[bytes, Release]:
    if w is None or b is None:
        w, b = head(version, 16, 4)
    out = io.BytesIO()
    built = build_package(out, signer=signer, version=version, W=w, b=b, recipients=devices,
                          backbone=backbone, encrypt_backbone=backbone is not None,
                          infer=InferPolicy(InferRelease.SCORES))
    return out.getvalue(), built


def test_a_600_device_release_is_loaded_by_a_sample_of_secure_worlds(
        secure_world: Path, roles: Roles) -> None:
    tas = [TrustedApp("sim", secure_world / f"tee{i}") for i in range(len(SAMPLE))]
    try:
        for ta in tas:
            ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
        fleet = strangers(FLEET - len(SAMPLE))
        for ta, at in zip(tas, SAMPLE, strict=True):
            fleet.insert(at, parse_device_record(ta.identity()))
        w, b = head(3, 16, 4)
        backbone = np.random.default_rng(5).bytes(20_000)
        package, built = release(roles.signer, fleet, w=w, b=b, backbone=backbone)
        assert len(built.wraps) == FLEET == len({w for w in built.wraps.values()})
        x = np.random.default_rng(6).normal(size=(3, 16)).astype(np.float32)
        for ta, at in zip(tas, SAMPLE, strict=True):
            loaded = ta.load_model(package, wrap=built.wraps[fleet[at].device_id])
            assert loaded.version == 1 and loaded.backbone == backbone
            np.testing.assert_allclose(ta.infer(x).scores, x @ w + b, rtol=1e-5, atol=1e-5)

        # Every refusal class of a wrap, on a world that holds version 1: a version-2
        # release it could load, given the wrong wrap each time, changes nothing.
        ta, me = tas[0], fleet[SAMPLE[0]]
        v2, built2 = release(roles.signer, fleet, version=2)
        other_package = release(roles.signer, [me], version=2)[1].wraps[me.device_id]
        tampered = bytearray(built2.wraps[me.device_id])
        tampered[HEADER_SIZE + KEY_WRAP_BODY.offset("wrapped_key")] ^= 1
        refusals = {
            errors.NotForThisDevice: built2.wraps[fleet[SAMPLE[1]].device_id],
            errors.WrongPackage: other_package,
            errors.SignatureInvalid: bytes(tampered),
            errors.UnknownSigner: release(Ed25519PrivateKey.generate(), [me],
                                          version=2)[1].wraps[me.device_id],
            errors.Malformed: built2.wraps[me.device_id][:-1],
            errors.WrongKind: ta.identity(),
        }
        before = ta.status()
        for cls, wrap in refusals.items():
            with pytest.raises(cls) as info:
                ta.load_model(v2, wrap=wrap)
            assert type(info.value) is cls, info.value
            assert ta.status() == before
        assert ta.load_model(v2, wrap=built2.wraps[me.device_id]).version == 2
    finally:
        for ta in tas:
            ta.close()


def test_bytes_per_device_do_not_depend_on_the_fleet(roles: Roles) -> None:
    """Package and wrap sizes follow the layout exactly, and are the same for 1 and 600."""
    w, b = head(4, 16, 4)
    sizes = {}
    for n in (1, 10, FLEET):
        package, built = release(roles.signer, strangers(n), w=w, b=b)
        wraps = {len(x) for x in built.wraps.values()}
        assert len(built.wraps) == n and wraps == {KEY_WRAP_SIZE}
        sizes[n] = len(package) + KEY_WRAP_SIZE
    meta = 0  # no metadata, no backbone
    manifest = MANIFEST_FIXED.size + 4 * (16 * 4 + 4) + 16 + meta
    assert KEY_WRAP_SIZE == HEADER_SIZE + KEY_WRAP_BODY.size + SIG_SIZE == 204
    assert sizes == {n: HEADER_SIZE + manifest + SIG_SIZE + 204 for n in (1, 10, FLEET)}
    assert sizes[1] == 28 + 104 + 272 + 16 + 64 + 204 == 688


def test_the_aggregator_publishes_one_package_and_a_wrap_per_device(tmp_path: Path) -> None:
    """600 enrolled devices: one retained package, 600 wraps of 204 bytes, each on its
    device's topic and naming that device; a newcomer gets only its wrap."""
    config = AggregatorConfig.from_mapping(config_mapping(tmp_path, rounds={
        "cohort_size": FLEET, "quorum": FLEET, "min_updates": 1}))
    devices = [FakeDevice() for _ in range(FLEET)]
    with Store(config.state) as store:
        registry = Registry(store)
        for d in devices:
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry)
        pub = manager.pending_publication()
        assert pub is not None and pub.package is not None and len(pub.wraps) == FLEET
        signer = ed25519_raw_public(manager.signer_key)
        package = pub.package[1]
        for topic, wrap in pub.wraps:
            assert len(wrap) == KEY_WRAP_SIZE
            got = parse_key_wrap(wrap, signer_pub=signer)
            assert topic == f"edge/v1/test/devices/{got.device_id.hex()}/wrap"
            assert got.package_id == package[HEADER_SIZE + 8:HEADER_SIZE + 24]
        store.mark_published(pub.version, pub.recipients)
        late = FakeDevice()
        registry.enroll(late.record)
        pub = manager.pending_publication()
        assert pub is not None and pub.package is None
        assert [t for t, _ in pub.wraps] == [f"edge/v1/test/devices/{late.device_id.hex()}/wrap"]
        assert tee_abi.KEY_WRAP_SIZE == KEY_WRAP_SIZE
