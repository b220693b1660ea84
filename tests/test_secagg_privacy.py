"""Secure aggregation's privacy rules, held by the TA and the server (simulated TEEs)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, require_native
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from secagg_helpers import FLEET, NONCE, Cohort, cohort, run_round, stored_round
from training_helpers import NOW

from edge import errors
from edge.formats import secagg as fmt
from edge.formats.envelope import HEADER_SIZE, parse_envelope
from edge.formats.keys import ed25519_raw_public, x25519_raw_public
from edge.formats.update import parse_masked_update_envelope
from edge.secagg.server import SecAggParams
from edge.tee import TrustedApp
from edge.tee_abi import Kind, SecAggStage

N = 5
# Complete graph for up to 6 devices, so a forged sixth entry is everyone's neighbour.
FULL = SecAggParams(t=3, k=5, cohort=N + 1, update_clip=1.0)


@pytest.fixture
def five(tmp_path: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch) -> Cohort:
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    with cohort(tmp_path, roles, N) as c:
        yield c  # type: ignore[misc]


def _close(values: np.ndarray, update: np.ndarray, tol: float) -> bool:
    """True if ``values`` is within ``tol`` of ``update`` in most coordinates."""
    return bool(np.mean(np.abs(values - update) <= tol) > 0.5)


def test_nothing_the_server_sees_is_near_one_update(five: Cohort) -> None:
    """Every masked update, every partial sum and every message stays far from each
    device's own update (its numpy reference)."""
    refs = {d.id: five.reference(d) for d in five.devices}
    q = FULL.quantizer
    tol = q.error_bound(N) + 1e-3 * max(float(np.abs(r).max()) for r in refs.values()) + 1e-5
    srv = five.round(FULL)
    ticket = five.ticket(FULL)
    seen: list[bytes] = []
    for d in five.devices:
        seen.append(d.ta.secagg_advertise(ticket, ree_time=NOW))
        srv.add_advert(seen[-1])
    roster = srv.roster()
    for d in five.devices:
        seen.append(d.ta.secagg_share(roster))
        srv.add_shares(seen[-1])
    for d in five.devices:
        d.ta.secagg_receive(srv.inbox_for(d.id))
    partials = []
    for d in five.devices:
        d.ta.verify_ticket(ticket, ree_time=NOW)
        seen.append(d.ta.train_and_seal(d.x, d.y))
        srv.add_masked(seen[-1])
        partials.append(q.dequantize(srv._sum))  # what the server stores
    survivors = srv.survivors()
    for d in five.devices:
        seen.append(d.ta.secagg_unmask(survivors))
        srv.add_reveal(seen[-1])
    masked = [q.dequantize(parse_masked_update_envelope(
        parse_envelope(m, kind=Kind.SEALED_UPDATE)).words)
        for m in seen if m[6] == Kind.SEALED_UPDATE]
    assert len(masked) == N
    for update in refs.values():
        for values in masked + partials:
            assert not _close(values, update, tol)
    total, _ = srv.result()
    assert _close(total, np.sum(list(refs.values()), axis=0), tol * N)


def _survivors_without(c: Cohort, survivors: bytes, drop: bytes) -> bytes:
    """A second survivor list, signed by the aggregator, with one device left out."""
    d = fmt.verify_directive(survivors, c.roles.aggregator_pub, SecAggStage.SURVIVORS,
                             _binding())
    return fmt.build_directive(c.roles.aggregator, SecAggStage.SURVIVORS, _binding(),
                               [i for i in d.entries if i != drop])


def _binding() -> fmt.RoundBinding:
    return fmt.RoundBinding(fmt.fleet_id(FLEET), 1, NONCE, 1)


def test_unmask_twice_with_another_list_is_refused_also_after_restart(five: Cohort) -> None:
    srv, _ = run_round(five, FULL, lambda stage, devs: devs if stage != "unmask" else [])
    survivors = srv.survivors()
    me, other = five.devices[0], five.devices[1]
    first = me.ta.secagg_unmask(survivors)
    # The same list again (a lost reply): the same reveals.
    assert me.ta.secagg_unmask(survivors) == first
    second = _survivors_without(five, survivors, other.id)
    with pytest.raises(errors.ShareConflict):
        me.ta.secagg_unmask(second)
    me.ta.close()
    me.ta = TrustedApp("sim", five.states[0])
    with pytest.raises(errors.ShareConflict):
        me.ta.secagg_unmask(second)
    assert me.ta.secagg_unmask(survivors) == first
    # A device that never answered takes the other list, once, and reveals the dropped
    # device's key share instead of its seed share: only one of the two, per device.
    third = five.devices[2]
    rev = fmt.verify_reveals(third.ta.secagg_unmask(second), third.record.ed25519_pub,
                             _binding())
    kinds = {r.owner: r.which for r in rev.entries}
    assert kinds[other.id].name == "SKEY"
    with pytest.raises(errors.ShareConflict):
        third.ta.secagg_unmask(survivors)


def test_a_finished_round_keeps_no_secret_in_ta_storage(five: Cohort) -> None:
    """Once a device answered the survivor list its keys and seed are wiped from secure
    storage, and of each neighbour's share pair only the half that list revealed is kept;
    a second list still gets share-conflict and nothing else (also after a restart)."""
    dropped = five.devices[-1]  # shared, then left before its masked update

    def drop(stage: str, devs: list) -> list:  # type: ignore[type-arg]
        if stage == "masked":
            return [d for d in devs if d is not dropped]
        return [] if stage == "unmask" else devs
    srv, summed = run_round(five, FULL, drop)
    me = five.devices[0]
    before = stored_round(five.states[0])
    assert before.stage == 3 and not any(before.c_sk)  # received: the c-key's use is over
    assert any(before.s_sk) and any(before.b)  # still needed by the masked seal
    survivors = srv.survivors()
    first = me.ta.secagg_unmask(survivors)
    after = stored_round(five.states[0])
    assert after.stage == 4
    assert not any(after.c_sk) and not any(after.s_sk) and not any(after.b)
    for peer, (has_share, pair) in after.peers.items():
        assert has_share
        seed, skey = pair[:16], pair[16:]
        if peer == dropped.id:
            assert not any(seed) and any(skey)
        else:
            assert any(seed) and not any(skey)
    # The same list again: the same reveals, from what was kept.
    assert me.ta.secagg_unmask(survivors) == first
    other = _survivors_without(five, survivors, five.devices[1].id)
    for _ in range(2):
        with pytest.raises(errors.ShareConflict):
            me.ta.secagg_unmask(other)
        assert stored_round(five.states[0]) == after
        me.ta.close()
        me.ta = TrustedApp("sim", five.states[0])
    assert me.ta.secagg_unmask(survivors) == first
    for d in summed:
        srv.add_reveal(first if d is me else d.ta.secagg_unmask(survivors))
    srv.result()  # the wiped TA's reveals still unmask the sum


def _roster_with(c: Cohort, entries: list[bytes]) -> bytes:
    ordered = sorted(entries, key=lambda e: e[HEADER_SIZE:HEADER_SIZE + 16])
    return fmt.build_directive(c.roles.aggregator, SecAggStage.ROSTER, _binding(), ordered)


def _advertised(c: Cohort) -> list[bytes]:
    ticket = c.ticket(FULL)
    return [d.cert + d.ta.secagg_advertise(ticket, ree_time=NOW) for d in c.devices]


def _fake_keys() -> tuple[bytes, bytes]:
    return (x25519_raw_public(X25519PrivateKey.generate()),
            x25519_raw_public(X25519PrivateKey.generate()))


@pytest.mark.parametrize("forgery", ["advert-rogue-key", "cert-rogue-registrar",
                                     "substituted-keys"])
def test_a_forged_entry_is_refused_by_every_device(five: Cohort, forgery: str) -> None:
    entries = _advertised(five)
    rogue = Ed25519PrivateKey.generate()
    identity = Ed25519PrivateKey.generate()
    pub = ed25519_raw_public(identity)
    if forgery == "advert-rogue-key":
        # An enrolled device whose advert another key signed.
        cert = fmt.build_cert(five.registrar, pub, fmt.fleet_id(FLEET))
        advert = fmt.build_advert(rogue, _binding(), *_fake_keys(),
                                  device_id=fmt.parse_cert(cert).device_id)
        entries.append(cert + advert)
        expect: type[errors.EdgeError] = errors.ForgedAdvert
    elif forgery == "cert-rogue-registrar":
        cert = fmt.build_cert(rogue, pub, fmt.fleet_id(FLEET))
        entries.append(cert + fmt.build_advert(identity, _binding(), *_fake_keys()))
        expect = errors.UnknownEnrollment
    else:
        # The aggregator swaps one device's keys for its own: the others' check of
        # the advert signature and the device's check of its own entry both refuse.
        victim = entries.pop()
        fake = fmt.build_advert(rogue, _binding(), *_fake_keys(),
                                device_id=victim[HEADER_SIZE:HEADER_SIZE + 16])
        entries.append(victim[:fmt.CERT_SIZE] + fake)
        expect = errors.ForgedAdvert
    roster = _roster_with(five, entries)
    for d in five.devices:
        with pytest.raises(expect):
            d.ta.secagg_share(roster)
    # Nothing was shared: the honest roster still works afterwards.
    honest = _roster_with(five, _advertised(five))
    assert all(d.ta.secagg_share(honest) for d in five.devices)


def test_the_server_holds_no_unmasked_update(five: Cohort) -> None:
    """The server's state, field by field, has masked words and shares only."""
    srv, _ = run_round(five, FULL)
    stored = hashlib.sha256(srv._sum.tobytes()).digest()
    total, _ = srv.result()
    # result() works on a copy: the stored sum is still the masked one.
    assert hashlib.sha256(srv._sum.tobytes()).digest() == stored
    assert not np.allclose(FULL.quantizer.dequantize(srv._sum), total, atol=1e-2)
