"""Every secure-aggregation message refused with its class, by the TA and by the server."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Roles, require_native
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from secagg_helpers import FLEET, NONCE, Cohort, cohort
from training_helpers import NOW, ticket

from edge import errors
from edge.formats import secagg as fmt
from edge.formats.envelope import HEADER_SIZE, build_envelope
from edge.formats.keys import ed25519_raw_public
from edge.secagg.server import SecAggParams, SecAggRound
from edge.tee_abi import Kind, SecAggStage

N = 3
P = SecAggParams(t=2, k=2, cohort=N, update_clip=1.0)
B = fmt.RoundBinding(fmt.fleet_id(FLEET), 1, NONCE, 1)


@pytest.fixture
def three(tmp_path: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch) -> Cohort:
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    with cohort(tmp_path, roles, N) as c:
        yield c  # type: ignore[misc]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def _directive(c: Cohort, stage: SecAggStage, entries: list[bytes], *,
               binding: fmt.RoundBinding = B, recipient: bytes = bytes(16),
               key: Ed25519PrivateKey | None = None) -> bytes:
    return fmt.build_directive(key or c.roles.aggregator, stage, binding, entries, recipient)


# -- the TA ------------------------------------------------------------------------

def test_install_registrar_once(three: Cohort) -> None:
    with pytest.raises(errors.AlreadyProvisioned):
        three.devices[0].ta.install_registrar(ed25519_raw_public(Ed25519PrivateKey.generate()))
    with pytest.raises(errors.Malformed):
        three.devices[0].ta.install_registrar(b"short")


def test_advertise_refusals(three: Cohort, roles: Roles) -> None:
    ta = three.devices[0].ta
    with pytest.raises(errors.BadState):  # a float32 ticket has no secagg round
        ta.secagg_advertise(ticket(roles.aggregator), ree_time=NOW)
    with pytest.raises(errors.UnknownSigner):
        ta.secagg_advertise(three.ticket(P) and _resigned_ticket(three), ree_time=NOW)
    with pytest.raises(errors.Expired):
        ta.secagg_advertise(three.ticket(P), ree_time=NOW + 10**6)
    first = ta.secagg_advertise(three.ticket(P), ree_time=NOW)
    assert ta.secagg_advertise(three.ticket(P), ree_time=NOW) == first  # same keys


def _resigned_ticket(c: Cohort) -> bytes:
    raw = c.ticket(P)
    return build_envelope(Kind.ROUND_TICKET, raw[HEADER_SIZE:-64], Ed25519PrivateKey.generate())


def test_policy_requiring_secagg_refuses_a_float32_ticket(tmp_path: Path, roles: Roles,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    with cohort(tmp_path, roles, 2, policy_kw={"require_secagg": True}) as c:
        ta = c.devices[0].ta
        with pytest.raises(errors.PolicyViolation):
            ta.verify_ticket(ticket(roles.aggregator), ree_time=NOW)
        params = SecAggParams(t=2, k=1, cohort=2)
        assert ta.secagg_advertise(c.ticket(params), ree_time=NOW)
        ta.verify_ticket(c.ticket(params), ree_time=NOW)


def _advertised(c: Cohort) -> list[bytes]:
    t = c.ticket(P)
    return [d.cert + d.ta.secagg_advertise(t, ree_time=NOW) for d in c.devices]


def _roster_entries(c: Cohort) -> list[bytes]:
    return sorted(_advertised(c), key=lambda e: e[HEADER_SIZE:HEADER_SIZE + 16])


ROSTER_CASES: dict[str, tuple[Callable[[Cohort, list[bytes]], bytes], type]] = {
    "rogue-signer": (lambda c, e: _directive(c, SecAggStage.ROSTER, e,
                                             key=Ed25519PrivateKey.generate()),
                     errors.UnknownSigner),
    "bad-signature": (lambda c, e: _flip(_directive(c, SecAggStage.ROSTER, e), -40),
                      errors.SignatureInvalid),
    "truncated": (lambda c, e: _directive(c, SecAggStage.ROSTER, e)[:-1], errors.Malformed),
    "other-round": (lambda c, e: _directive(c, SecAggStage.ROSTER, e,
                                            binding=fmt.RoundBinding(B.fleet_id, 2, NONCE, 1)),
                    errors.WrongRound),
    "other-fleet": (lambda c, e: _directive(c, SecAggStage.ROSTER, e,
                                            binding=fmt.RoundBinding(bytes(16), 1, NONCE, 1)),
                    errors.WrongRound),
    "inbox-for-roster": (lambda c, e: _directive(c, SecAggStage.SURVIVORS, []),
                         errors.WrongKind),
    "unsorted": (lambda c, e: _directive(c, SecAggStage.ROSTER, e[::-1]), errors.Malformed),
    "not-listed": (lambda c, e: _directive(c, SecAggStage.ROSTER, e[1:]),
                   errors.NotForThisDevice),
    "ticket-kind": (lambda c, e: c.ticket(P), errors.WrongKind),
}


@pytest.mark.parametrize("case", sorted(ROSTER_CASES))
def test_share_refusals_change_nothing(three: Cohort, case: str) -> None:
    entries = _roster_entries(three)
    make, exc = ROSTER_CASES[case]
    bad = make(three, entries)
    me = next(d for d in three.devices if d.id == entries[0][HEADER_SIZE:HEADER_SIZE + 16])
    with pytest.raises(exc):
        me.ta.secagg_share(bad)
    # Refused without a trace: the good roster is still taken, once.
    good = _directive(three, SecAggStage.ROSTER, entries)
    assert me.ta.secagg_share(good)
    with pytest.raises(errors.BadState):
        me.ta.secagg_share(good)


def test_share_over_the_cohort_bound_is_oversized(tmp_path: Path, roles: Roles,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    small = SecAggParams(t=2, k=1, cohort=2)
    with cohort(tmp_path, roles, 3) as c:
        t = c.ticket(small)
        entries = sorted((d.cert + d.ta.secagg_advertise(t, ree_time=NOW) for d in c.devices),
                         key=lambda e: e[HEADER_SIZE:HEADER_SIZE + 16])
        with pytest.raises(errors.Oversized):
            c.devices[0].ta.secagg_share(_directive(c, SecAggStage.ROSTER, entries))


def _to_inboxes(c: Cohort) -> tuple[SecAggRound, dict[bytes, bytes]]:
    srv = c.round(P)
    t = c.ticket(P)
    for d in c.devices:
        srv.add_advert(d.ta.secagg_advertise(t, ree_time=NOW))
    roster = srv.roster()
    for d in c.devices:
        srv.add_shares(d.ta.secagg_share(roster))
    return srv, {d.id: srv.inbox_for(d.id) for d in c.devices}


def test_receive_refusals(three: Cohort) -> None:
    with pytest.raises(errors.BadState):  # nothing advertised yet
        three.devices[0].ta.secagg_receive(_directive(three, SecAggStage.INBOX, []))
    _srv, inboxes = _to_inboxes(three)
    a, b = three.devices[0], three.devices[1]
    good = inboxes[a.id]
    d = fmt.verify_directive(good, three.roles.aggregator_pub, SecAggStage.INBOX, B, a.id)
    tampered = [e[:20] + bytes([e[20] ^ 1]) + e[21:] for e in d.entries]
    with pytest.raises(errors.Tampered):
        a.ta.secagg_receive(_directive(three, SecAggStage.INBOX, tampered, recipient=a.id))
    with pytest.raises(errors.NotForThisDevice):
        a.ta.secagg_receive(inboxes[b.id])
    with pytest.raises(errors.TooFewSurvivors):  # t = 2: alone it can never finish
        a.ta.secagg_receive(_directive(three, SecAggStage.INBOX, [], recipient=a.id))
    a.ta.secagg_receive(good)
    a.ta.secagg_receive(good)  # the same inbox again is fine
    with pytest.raises(errors.ShareConflict):
        a.ta.secagg_receive(_directive(three, SecAggStage.INBOX, d.entries[:1],
                                       recipient=a.id))


def test_unmask_refusals(three: Cohort) -> None:
    _srv, inboxes = _to_inboxes(three)
    a = three.devices[0]
    ids = sorted(d.id for d in three.devices)
    with pytest.raises(errors.BadState):  # before its inbox
        a.ta.secagg_unmask(_directive(three, SecAggStage.SURVIVORS, ids))
    for d in three.devices:
        d.ta.secagg_receive(inboxes[d.id])
    with pytest.raises(errors.TooFewSurvivors):
        a.ta.secagg_unmask(_directive(three, SecAggStage.SURVIVORS, [a.id]))
    others = [i for i in ids if i != a.id]
    with pytest.raises(errors.NotForThisDevice):
        a.ta.secagg_unmask(_directive(three, SecAggStage.SURVIVORS, others))
    with pytest.raises(errors.WrongKind):
        a.ta.secagg_unmask(inboxes[a.id])
    # None of those was recorded: the real list is answered.
    assert a.ta.secagg_unmask(_directive(three, SecAggStage.SURVIVORS, ids))


def test_masked_seal_needs_the_inbox(three: Cohort) -> None:
    a = three.devices[0]
    t = three.ticket(P)
    a.ta.secagg_advertise(t, ree_time=NOW)
    a.ta.verify_ticket(t, ree_time=NOW)
    with pytest.raises(errors.BadState):
        a.ta.train_and_seal(a.x, a.y)
    assert a.ta.budget().steps_spent == 0


# -- the server ---------------------------------------------------------------------

def _state(srv: SecAggRound) -> object:
    return copy.deepcopy({k: v for k, v in vars(srv).items() if k != "_key"})


def _refused(srv: SecAggRound, call: Callable[[], object], exc: type) -> None:
    before = _state(srv)
    with pytest.raises(exc):
        call()
    after = _state(srv)
    assert repr(after) == repr(before)


def test_server_refusals_change_nothing(three: Cohort) -> None:
    srv = three.round(P)
    t = three.ticket(P)
    adverts = [d.ta.secagg_advertise(t, ree_time=NOW) for d in three.devices]
    rogue = Ed25519PrivateKey.generate()
    forged = fmt.build_advert(rogue, B, bytes(32), bytes(32), device_id=three.devices[0].id)
    _refused(srv, lambda: srv.add_advert(forged), errors.ForgedAdvert)
    stranger = fmt.build_advert(rogue, B, bytes(32), bytes(32))
    _refused(srv, lambda: srv.add_advert(stranger), errors.UnknownEnrollment)
    _refused(srv, lambda: srv.add_advert(_flip(adverts[0], HEADER_SIZE + 70)), errors.ForgedAdvert)
    _refused(srv, lambda: srv.add_advert(adverts[0][:-1]), errors.Malformed)
    _refused(srv, lambda: srv.add_shares(adverts[0]), errors.BadState)
    for a in adverts:
        srv.add_advert(a)
    assert srv.add_advert(adverts[0]) == three.devices[0].id  # idempotent
    roster = srv.roster()
    _refused(srv, lambda: srv.add_advert(adverts[1]), errors.BadState)
    bundles = [d.ta.secagg_share(roster) for d in three.devices]
    _refused(srv, lambda: srv.add_shares(_flip(bundles[0], 50)), errors.SignatureInvalid)
    _refused(srv, lambda: srv.add_shares(bundles[0][:-3]), errors.Malformed)
    for bnd in bundles:
        srv.add_shares(bnd)
    inboxes = {d.id: srv.inbox_for(d.id) for d in three.devices}
    for d in three.devices:
        d.ta.secagg_receive(inboxes[d.id])
    sealed = []
    for d in three.devices:
        d.ta.verify_ticket(t, ree_time=NOW)
        sealed.append(d.ta.train_and_seal(d.x, d.y))
    _refused(srv, lambda: srv.add_masked(_flip(sealed[0], HEADER_SIZE + 200)),
             errors.SignatureInvalid)
    _refused(srv, lambda: srv.add_masked(sealed[0][:-1]), errors.Malformed)
    _refused(srv, lambda: srv.add_reveal(sealed[0]), errors.BadState)
    for s in sealed:
        srv.add_masked(s)
    survivors = srv.survivors()
    reveals = [d.ta.secagg_unmask(survivors) for d in three.devices]
    _refused(srv, lambda: srv.add_reveal(_flip(reveals[0], 60)), errors.SignatureInvalid)
    _refused(srv, lambda: srv.add_masked(sealed[0]), errors.BadState)
    for r in reveals:
        srv.add_reveal(r)
    total, survivors_list = srv.result()
    assert len(survivors_list) == N and total.size == three.w.size + three.b.size


def test_server_refuses_an_update_of_another_round(tmp_path: Path, roles: Roles,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A masked update of round 1 given to round 2's server is WrongRound; a float32
    update is Malformed (not mode 2)."""
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    with cohort(tmp_path, roles, N) as c:
        srv, inboxes = _to_inboxes(c)
        t = c.ticket(P)
        for d in c.devices:
            d.ta.secagg_receive(inboxes[d.id])
        a = c.devices[0]
        a.ta.verify_ticket(t, ree_time=NOW)
        sealed = a.ta.train_and_seal(a.x, a.y)
        other = SecAggRound(P, FLEET, 1, bytes(16), 1, c.enrolled, roles.aggregator)
        other._u2 = [a.id]
        with pytest.raises(errors.WrongRound):
            other.add_masked(sealed)
        b = c.devices[1]
        b.ta.verify_ticket(ticket(roles.aggregator, round_id=5, update_clip=1.0,
                                  batch_size=8), ree_time=NOW)
        with pytest.raises(errors.Malformed):
            srv.add_masked(b.ta.train_and_seal(b.x, b.y))


def test_params_validation() -> None:
    for kw in (dict(t=1, k=4, cohort=10), dict(t=6, k=4, cohort=10), dict(t=3, k=5, cohort=10),
               dict(t=2, k=4, cohort=3), dict(t=2, k=2, cohort=1),
               dict(t=3, k=4, cohort=10, scale_log2=31)):
        with pytest.raises(errors.ConfigError):
            SecAggParams(**kw)  # type: ignore[arg-type]
    for n, k, t in ((5, 4, 3), (20, 10, 6), (100, 14, 8), (1000, 20, 11)):
        p = SecAggParams.for_cohort(n)
        assert (p.k, p.t, p.cohort) == (k, t, n)



def test_registrar_replaced_by_statement(three: Cohort) -> None:
    """A registrar statement (role 3, epoch 1) signed by the current registrar moves the TA
    to the new key: certificates of the old one are then refused."""
    from edge.formats.anchors import Role, build_anchor_statement

    new = Ed25519PrivateKey.generate()
    a = three.devices[0]
    with pytest.raises(errors.UnknownSigner):
        a.ta.replace_anchor(build_anchor_statement(new, Role.REGISTRAR, 1,
                                                   ed25519_raw_public(new)))
    a.ta.replace_anchor(build_anchor_statement(three.registrar, Role.REGISTRAR, 1,
                                               ed25519_raw_public(new)))
    with pytest.raises(errors.StaleStatement):
        a.ta.replace_anchor(build_anchor_statement(new, Role.REGISTRAR, 1,
                                                   ed25519_raw_public(three.registrar)))
    entries = _roster_entries(three)
    me = next(i for i, e in enumerate(entries) if e[HEADER_SIZE:HEADER_SIZE + 16] == a.id)
    with pytest.raises(errors.UnknownEnrollment):
        a.ta.secagg_share(_directive(three, SecAggStage.ROSTER, entries))
    recert = [e if i == me else fmt.build_cert(new, three.by_id(
        e[HEADER_SIZE:HEADER_SIZE + 16]).record.ed25519_pub, B.fleet_id) + e[fmt.CERT_SIZE:]
        for i, e in enumerate(entries)]
    assert a.ta.secagg_share(_directive(three, SecAggStage.ROSTER, recert))
