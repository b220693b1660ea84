"""A cohort of simulated secure worlds running secure-aggregation rounds (tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from conftest import Roles, head, make_package, package_id
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reference_dpsgd import FIXED, Round, dpsgd_round
from training_helpers import NOW, data, policy

from edge.formats.device import DeviceRecord, parse_device_record
from edge.formats.keys import ed25519_raw_public
from edge.formats.secagg import build_cert, fleet_id
from edge.formats.ticket import build_ticket
from edge.secagg.server import SecAggParams, SecAggRound
from edge.tee import TrustedApp

FLEET = "secagg-test"
NONCE = bytes(range(16, 32))
HEAD_IN, HEAD_OUT = 16, 4
LR, CLIP, U = 0.5, 1.0, 1.0
STAGES = ("advert", "share", "masked", "unmask")


@dataclass
class Device:
    """One simulated device: its TA, record, data and the reference of its update."""

    ta: TrustedApp
    record: DeviceRecord
    x: np.ndarray
    y: np.ndarray
    cert: bytes

    @property
    def id(self) -> bytes:
        return self.record.device_id


@dataclass
class Cohort:
    """n provisioned TAs with a registrar, one model and a permissive policy."""

    roles: Roles
    registrar: Ed25519PrivateKey
    devices: list[Device]
    w: np.ndarray
    b: np.ndarray
    states: list[Path] = field(default_factory=list)

    @property
    def enrolled(self) -> dict[bytes, bytes]:
        return {d.id: d.cert for d in self.devices}

    def by_id(self, dev: bytes) -> Device:
        return next(d for d in self.devices if d.id == dev)

    def reference(self, d: Device) -> np.ndarray:
        """The update a float32 round would release for d (numpy DP-SGD, sigma 0)."""
        return dpsgd_round(self.w, self.b, d.x, d.y,
                           Round(lr=LR, clip=CLIP, sigma=0.0, update_clip=U, epochs=1,
                                 batch=len(d.y), q=1.0, sampling=FIXED))

    def ticket(self, params: SecAggParams, round_id: int = 1, **over: object) -> bytes:
        fields: dict[str, object] = dict(
            round_id=round_id, model_version=1, package_id=package_id(1), nonce=NONCE,
            issued_at=NOW - 10,
            deadline=NOW + 3600, example_clip=CLIP, noise_multiplier=0.0,
            learning_rate=LR, epochs=1, batch_size=8, **params.ticket_fields(fleet_id(FLEET)))
        fields.update(over)
        return build_ticket(self.roles.aggregator, **fields)  # type: ignore[arg-type]

    def round(self, params: SecAggParams, round_id: int = 1) -> SecAggRound:
        return SecAggRound(params, FLEET, round_id, NONCE, 1, self.enrolled,
                           self.roles.aggregator,
                           registrar_pub=ed25519_raw_public(self.registrar))


@contextmanager
def cohort(tmp_path: Path, roles: Roles, n: int, *,
           policy_kw: dict[str, object] | None = None) -> Iterator[Cohort]:
    """n simulated TAs, provisioned with anchors and the registrar, a model and a policy."""
    registrar = Ed25519PrivateKey.generate()
    tas: list[TrustedApp] = []
    states = [tmp_path / f"dev{i}" for i in range(n)]
    try:
        for s in states:
            tas.append(TrustedApp("sim", s))
        records = []
        for ta in tas:
            ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
            ta.install_registrar(ed25519_raw_public(registrar))
            records.append(parse_device_record(ta.identity()))
        w, b = head(7, HEAD_IN, HEAD_OUT)
        pkg = make_package(roles.signer, records, version=1, w=w, b=b)
        devices = []
        for i, (ta, rec) in enumerate(zip(tas, records, strict=True)):
            ta.load_model(pkg, wrap=pkg.wraps[rec.device_id])
            ta.install_policy(policy(roles.signer, **(policy_kw or {})))
            x, y = data(100 + i, 8, HEAD_IN, HEAD_OUT)
            cert = build_cert(registrar, rec.ed25519_pub, fleet_id(FLEET))
            devices.append(Device(ta, rec, x, y, cert))
        yield Cohort(roles, registrar, devices, w, b, states)
    finally:
        for ta in tas:
            ta.close()


Drop = Callable[[str, list[Device]], list[Device]]


def keep_all(_stage: str, devs: list[Device]) -> list[Device]:
    return devs


def drop_at(stage: str, count: int) -> Drop:
    """Drop the last ``count`` devices still present when ``stage`` starts."""
    def drop(at: str, devs: list[Device]) -> list[Device]:
        return devs[:len(devs) - count] if at == stage else devs
    return drop


def run_round(c: Cohort, params: SecAggParams, drop: Drop = keep_all, round_id: int = 1,
              ) -> tuple[SecAggRound, list[Device]]:
    """One round through every stage, ``drop`` removing devices before each stage.

    Returns the server round (``result()`` not yet called) and the devices whose masked
    update was summed.
    """
    srv = c.round(params, round_id)
    ticket = c.ticket(params, round_id)
    live = drop("advert", list(c.devices))
    for d in live:
        srv.add_advert(d.ta.secagg_advertise(ticket, ree_time=NOW))
    roster = srv.roster()
    live = drop("share", live)
    for d in live:
        srv.add_shares(d.ta.secagg_share(roster))
    inboxes = {d.id: srv.inbox_for(d.id) for d in live}
    for d in live:
        d.ta.secagg_receive(inboxes[d.id])
    live = drop("masked", live)
    for d in live:
        d.ta.verify_ticket(ticket, ree_time=NOW)
        srv.add_masked(d.ta.train_and_seal(d.x, d.y))
    summed = list(live)
    survivors = srv.survivors()
    live = drop("unmask", live)
    for d in live:
        srv.add_reveal(d.ta.secagg_unmask(survivors))
    return srv, summed


@dataclass(frozen=True)
class StoredRound:
    """The TA's stored secure-aggregation round (ta/secagg_round.c's layout), read from a
    simulated secure world's storage: white-box checks of what it keeps."""

    stage: int
    c_sk: bytes
    s_sk: bytes
    b: bytes
    peers: dict[bytes, tuple[int, bytes]]  # id -> (has_share, seed share || s-key share)


def stored_round(state: Path) -> StoredRound:
    """Decrypt ``state``'s ``edge.secagg`` object (host/sim/gp/gp_storage.c's file format:
    "EGPO" | version | nonce | AES-256-GCM(object) | tag, under state/storage.key)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    oid = b"edge.secagg"
    raw = (state / "objects" / oid.hex()).read_bytes()
    aad = raw[:5] + bytes([len(oid)]) + oid
    plain = AESGCM((state / "storage.key").read_bytes()).decrypt(raw[5:17], raw[17:], aad)
    n_attrs = int.from_bytes(plain[16:20], "little")
    assert n_attrs == 0, "a data object has no attributes"
    data = plain[28:28 + int.from_bytes(plain[20:28], "little")]
    p = 8  # edge storage header: tag, layout
    stage = data[p]
    p += 1 + 48 + 8 + 6 + 1  # stage, binding, round id, t k cohort, scale
    c_sk, s_sk, b = data[p:p + 32], data[p + 64:p + 96], data[p + 128:p + 144]
    p += 4 * 32 + 16 + 1 + 16 + 32 + 32  # keys, b, self x, self share, two digests
    npeers = int.from_bytes(data[p:p + 2], "little")
    p += 2
    peers = {}
    for _ in range(npeers):
        peers[data[p:p + 16]] = (data[p + 81], data[p + 82:p + 130])
        p += 130
    assert p == len(data), "the stored round's layout changed: update stored_round"
    return StoredRound(stage, c_sk, s_sk, b, peers)
