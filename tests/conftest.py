"""Shared fixtures: role keys, simulated secure worlds (plain and sanitized)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.broker import BrokerError, MosquittoBroker
from edge.formats.device import DeviceRecord
from edge.formats.keys import ed25519_raw_public
from edge.formats.manifest import InferPolicy, InferRelease
from edge.formats.package_builder import build_package
from edge.tee import LoadedModel, TrustedApp

ROOT = Path(__file__).resolve().parent.parent
BUILDS = {"host": ROOT / "build" / "host", "host-asan": ROOT / "build" / "host-asan"}


def require_native(build: str) -> Path:
    """The build directory, or a loud failure saying how to make it."""
    path = BUILDS[build]
    if not (path / "edge-sim-tee").exists():
        pytest.fail(
            f"{path}/edge-sim-tee is missing: run scripts/setup.sh --with-sanitizers "
            f"(or `make` / `make SAN=1`)"
        )
    return path


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real Mosquitto on a free loopback port, stopped after the test."""
    require_native("host")
    try:
        broker = MosquittoBroker(tmp_path / "mosquitto")
    except BrokerError as exc:
        pytest.fail(f"{exc} -- these tests need a real Mosquitto: run scripts/setup.sh")
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Roles:
    """The release engineer's keys for one test."""

    signer: Ed25519PrivateKey
    aggregator: Ed25519PrivateKey

    @property
    def signer_pub(self) -> bytes:
        return ed25519_raw_public(self.signer)

    @property
    def aggregator_pub(self) -> bytes:
        return ed25519_raw_public(self.aggregator)


@pytest.fixture
def roles() -> Roles:
    return Roles(Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())


@pytest.fixture(params=["host", "host-asan"])
def secure_world(request: pytest.FixtureRequest, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Selects the secure-world binary (plain or ASan+UBSan); yields a state dir.

    Under the sanitizers every report goes to a log file; the test fails if
    any was written, including LeakSanitizer's at process exit.
    """
    build = require_native(request.param)
    monkeypatch.setenv("EDGE_SIM_TEE", str(build / "edge-sim-tee"))
    logs = tmp_path / "sanitizer-logs"
    logs.mkdir()
    monkeypatch.setenv("ASAN_OPTIONS", f"log_path={logs}/asan:detect_leaks=1")
    monkeypatch.setenv("UBSAN_OPTIONS", f"log_path={logs}/ubsan:print_stacktrace=1")
    yield tmp_path / "tee-state"
    reports = sorted(logs.iterdir())
    assert not reports, "sanitizer reports:\n" + "\n".join(p.read_text() for p in reports)


@pytest.fixture
def ta(secure_world: Path) -> Iterator[TrustedApp]:
    """An unprovisioned TA session on a fresh simulated secure world."""
    with TrustedApp("sim", secure_world) as app:
        yield app


@pytest.fixture
def provisioned(ta: TrustedApp, roles: Roles) -> TrustedApp:
    ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
    return ta


def head(rng_seed: int, head_in: int = 16, head_out: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A reproducible head (W, b)."""
    rng = np.random.default_rng(rng_seed)
    return (rng.normal(size=(head_in, head_out)).astype(np.float32),
            rng.normal(size=head_out).astype(np.float32))


def package_id(version: int) -> bytes:
    """The package id ``make_package`` gives ``version`` unless told otherwise, so tests can
    name it in tickets and updates (the aggregator's packages draw theirs at random)."""
    return hashlib.sha256(b"edge tests package %d" % version).digest()[:16]


def make_package(
    signer: Ed25519PrivateKey,
    recipients: list[DeviceRecord],
    *,
    version: int,
    w: np.ndarray | None = None,
    b: np.ndarray | None = None,
    backbone: bytes | None = None,
    encrypt: bool = False,
    chunk_log2: int = 12,
    enforce_limits: bool = True,
    infer: InferPolicy | None = None,
    pkg_id: bytes | None = None,
) -> Built:
    """A package with a key wrap for each of ``recipients``, built by the release tool
    (releasing every score to INFER unless ``infer`` says otherwise, so tests can
    compare with numpy); its id is ``package_id(version)`` unless ``pkg_id`` is given."""
    if w is None or b is None:
        w, b = head(version)
    out = io.BytesIO()
    release = build_package(out, signer=signer, version=version, W=w, b=b,
                            recipients=recipients,
                            package_id=pkg_id if pkg_id is not None else package_id(version),
                            backbone=backbone,
                            encrypt_backbone=encrypt, chunk_log2=chunk_log2,
                            enforce_limits=enforce_limits,
                            infer=infer if infer is not None else InferPolicy(InferRelease.SCORES))
    return Built(out.getvalue(), release.wraps)


class Built(bytes):
    """Package bytes with the key wraps made for its recipients (by device id)."""

    wraps: dict[bytes, bytes]

    def __new__(cls, data: bytes, wraps: dict[bytes, bytes]) -> Built:
        obj = super().__new__(cls, data)
        obj.wraps = dict(wraps)
        return obj

    @property
    def wrap(self) -> bytes:
        """The wrap of the last recipient (the device under test, by convention)."""
        return list(self.wraps.values())[-1]


def rebind_wrap(wrap: bytes, package: bytes, signer: Ed25519PrivateKey) -> bytes:
    """``wrap`` bound again to ``package`` (after its manifest was edited and re-signed)."""
    from edge.formats.keywrap import build_key_wrap, manifest_digest, parse_key_wrap

    old = parse_key_wrap(wrap, signer_pub=ed25519_raw_public(signer))
    return build_key_wrap(signer, type(old)(old.device_id, old.package_id,
                                            manifest_digest(package), old.wrapped_key))


def load(ta: TrustedApp, pkg: Built, package: object = None, **kw: object) -> LoadedModel:
    """Load ``pkg`` (or ``package``, a path holding it) with its last recipient's wrap."""
    return ta.load_model(pkg if package is None else package, wrap=pkg.wrap,  # type: ignore[arg-type]
                         **kw)  # type: ignore[arg-type]


def state_files(state: Path) -> dict[str, bytes]:
    """Every file of a simulated secure world's storage."""
    skip = ("lock", "secure.log")
    return {str(p.relative_to(state)): p.read_bytes()
            for p in sorted(state.rglob("*")) if p.is_file() and p.name not in skip}


def env_without_sim() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SIM_")}
