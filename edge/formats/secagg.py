"""Secure-aggregation artefacts (kinds 7..11, docs/formats.md "Secure aggregation artefacts").

Enrollment certificates (registrar-signed), adverts, shares bundles and reveals
(device-signed) and the aggregator's directives (roster, inbox, survivors).
Every reader checks structure first (``Malformed``, ``WrongKind``,
``Oversized``), then the signature with the class the TA uses for that
artefact: a certificate not from the registrar is ``UnknownEnrollment``, an
advert not from the certified key ``ForgedAdvert``, a message for another
round ``WrongRound``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import tee_abi
from edge.errors import (
    ForgedAdvert,
    Malformed,
    NotForThisDevice,
    SignatureInvalid,
    UnknownEnrollment,
    UnknownSigner,
    WrongKind,
    WrongRound,
)
from edge.formats.envelope import (
    HEADER_SIZE,
    Envelope,
    Kind,
    build_envelope,
    parse_envelope,
    verify_envelope,
)
from edge.formats.keys import key_id
from edge.formats.layouts import (
    ADVERT_BODY,
    CERT_BODY,
    DIRECTIVE_HEADER,
    REVEALS_HEADER,
    SHARES_HEADER,
)
from edge.tee_abi import SecAggShare, SecAggStage

ID_SIZE = tee_abi.KEY_ID_SIZE
CERT_SIZE = tee_abi.CERT_SIZE
ADVERT_SIZE = tee_abi.SECAGG_ADVERT_SIZE
ROSTER_ENTRY_SIZE = tee_abi.SECAGG_ROSTER_ENTRY_SIZE
INBOX_ENTRY_SIZE = tee_abi.SECAGG_INBOX_ENTRY_SIZE
SHARES_ENTRY_SIZE = tee_abi.SECAGG_SHARES_ENTRY_SIZE
REVEAL_ENTRY_SIZE = tee_abi.SECAGG_REVEAL_ENTRY_SIZE
SEED_SIZE = tee_abi.SECAGG_SEED_SIZE
MAX_COHORT = tee_abi.SECAGG_MAX_COHORT
MAX_NEIGHBOURS = tee_abi.SECAGG_MAX_NEIGHBOURS
_SIG = tee_abi.SIG_SIZE
MAX_DIRECTIVE_SIZE = (HEADER_SIZE + DIRECTIVE_HEADER.size + MAX_COHORT * ROSTER_ENTRY_SIZE
                      + _SIG)
MAX_SHARES_SIZE = HEADER_SIZE + SHARES_HEADER.size + MAX_NEIGHBOURS * SHARES_ENTRY_SIZE + _SIG
MAX_REVEALS_SIZE = (HEADER_SIZE + REVEALS_HEADER.size + (MAX_NEIGHBOURS + 1) * REVEAL_ENTRY_SIZE
                    + _SIG)
_ENTRY = {SecAggStage.ROSTER: ROSTER_ENTRY_SIZE, SecAggStage.INBOX: INBOX_ENTRY_SIZE,
          SecAggStage.SURVIVORS: ID_SIZE}


def fleet_id(name: str) -> bytes:
    """The 16-byte fleet id of a fleet name: SHA-256 of its UTF-8, truncated."""
    return hashlib.sha256(name.encode()).digest()[:tee_abi.FLEET_ID_SIZE]


@dataclass(frozen=True)
class RoundBinding:
    """What binds every secure-aggregation message to one round."""

    fleet_id: bytes
    round_id: int
    nonce: bytes
    model_version: int

    def raw(self) -> bytes:
        """fleet id || round id || nonce || model version (48 bytes, as the TA writes it)."""
        return (self.fleet_id + self.round_id.to_bytes(8, "little") + self.nonce
                + self.model_version.to_bytes(8, "little"))

    def check(self, what: str, fields: dict[str, object]) -> None:
        """Refuse (``WrongRound``) fields naming another round than this one."""
        for name in ("fleet_id", "round_id", "nonce", "model_version"):
            if fields[name] != getattr(self, name):
                raise WrongRound(f"{what}: {name} is not this round's")


def _sorted_ids(ids: list[bytes], what: str) -> None:
    if any(a >= b for a, b in itertools.pairwise(ids)):
        raise Malformed(f"{what}: device ids are not strictly increasing")


# -- enrollment certificates ----------------------------------------------------
@dataclass(frozen=True)
class Cert:
    """An enrollment certificate: a device's identity key in a fleet."""

    device_id: bytes
    identity_pub: bytes
    fleet_id: bytes
    raw: bytes


def build_cert(registrar: Ed25519PrivateKey, identity_pub: bytes, fleet: bytes) -> bytes:
    """A certificate for ``identity_pub`` in fleet id ``fleet``, signed by the registrar."""
    body = CERT_BODY.pack({"device_id": key_id(identity_pub), "identity_pub": identity_pub,
                           "fleet_id": fleet})
    return build_envelope(Kind.ENROLLMENT_CERT, body, registrar)


def parse_cert(data: bytes) -> Cert:
    """A certificate's fields, structure checked, signature not."""
    env = parse_envelope(data, kind=Kind.ENROLLMENT_CERT, max_len=CERT_SIZE)
    f = CERT_BODY.unpack(env.body, "enrollment certificate")
    return Cert(f["device_id"], f["identity_pub"], f["fleet_id"], env.raw)


def verify_cert(data: bytes, registrar_pub: bytes, fleet: bytes) -> Cert:
    """A certificate signed by the registrar for a device of ``fleet`` (``UnknownEnrollment``).

    The aggregator checks its fleet's certificates when it loads them and again in every
    round: the same bytes under the same registrar and fleet are verified once (the cache
    is keyed by all three, and keeps only successes).
    """
    return _verified_cert(bytes(data), bytes(registrar_pub), bytes(fleet))


@functools.lru_cache(maxsize=4096)
def _verified_cert(data: bytes, registrar_pub: bytes, fleet: bytes) -> Cert:
    cert = parse_cert(data)
    try:
        verify_envelope(parse_envelope(data, kind=Kind.ENROLLMENT_CERT), registrar_pub)
    except (UnknownSigner, SignatureInvalid) as exc:
        raise UnknownEnrollment(f"enrollment certificate: not from the registrar ({exc})") from exc
    if key_id(cert.identity_pub) != cert.device_id:
        raise UnknownEnrollment("enrollment certificate: device id is not its key's id")
    if cert.fleet_id != fleet:
        raise UnknownEnrollment("enrollment certificate: for another fleet")
    return cert


# -- adverts ------------------------------------------------------------------------
@dataclass(frozen=True)
class Advert:
    """A device's public keys for one round."""

    device_id: bytes
    binding: RoundBinding
    c_pub: bytes
    s_pub: bytes
    raw: bytes


def build_advert(identity: Ed25519PrivateKey, binding: RoundBinding, c_pub: bytes,
                 s_pub: bytes, *, device_id: bytes | None = None) -> bytes:
    """An advert as the TA writes it (tests; ``device_id`` overrides for forgeries)."""
    dev = device_id if device_id is not None else key_id(
        identity.public_key().public_bytes_raw())
    body = ADVERT_BODY.pack({"device_id": dev, "fleet_id": binding.fleet_id,
                             "round_id": binding.round_id, "nonce": binding.nonce,
                             "model_version": binding.model_version, "c_pub": c_pub,
                             "s_pub": s_pub})
    return build_envelope(Kind.SECAGG_ADVERT, body, identity)


def verify_advert(data: bytes, cert: Cert, binding: RoundBinding) -> Advert:
    """An advert signed by the certified identity key (``ForgedAdvert``) for this round."""
    env = parse_envelope(data, kind=Kind.SECAGG_ADVERT, max_len=ADVERT_SIZE)
    f = ADVERT_BODY.unpack(env.body, "secagg advert")
    try:
        verify_envelope(env, cert.identity_pub)
    except (UnknownSigner, SignatureInvalid) as exc:
        raise ForgedAdvert(f"secagg advert: not signed by the certified key ({exc})") from exc
    if f["device_id"] != cert.device_id:
        raise ForgedAdvert("secagg advert: names another device than its certificate")
    binding.check("secagg advert", f)
    return Advert(f["device_id"], binding, f["c_pub"], f["s_pub"], env.raw)


# -- directives (aggregator-signed) ---------------------------------------------
@dataclass(frozen=True)
class Directive:
    """A verified directive: its stage, recipient and raw entries."""

    stage: SecAggStage
    recipient: bytes
    entries: list[bytes]
    raw: bytes

    def ids(self, offset: int = 0) -> list[bytes]:
        """The device id of each entry (at ``offset`` inside it)."""
        return [e[offset:offset + ID_SIZE] for e in self.entries]


def build_directive(aggregator: Ed25519PrivateKey, stage: SecAggStage, binding: RoundBinding,
                    entries: list[bytes], recipient: bytes = bytes(ID_SIZE)) -> bytes:
    """A directive of ``stage`` with ``entries`` (already in device-id order)."""
    head = DIRECTIVE_HEADER.pack({"stage": stage, "count": len(entries),
                                  "fleet_id": binding.fleet_id, "round_id": binding.round_id,
                                  "nonce": binding.nonce, "model_version": binding.model_version,
                                  "recipient": recipient})
    return build_envelope(Kind.SECAGG_DIRECTIVE, head + b"".join(entries), aggregator)


def verify_directive(data: bytes, aggregator_pub: bytes, stage: SecAggStage,
                     binding: RoundBinding, recipient: bytes | None = None) -> Directive:
    """A directive checked as SECAGG_SHARE/RECEIVE/UNMASK check it, in their order."""
    env = parse_envelope(data, kind=Kind.SECAGG_DIRECTIVE, max_len=MAX_DIRECTIVE_SIZE)
    verify_envelope(env, aggregator_pub)
    return _directive_body(env, stage, binding, recipient)


def _directive_body(env: Envelope, stage: SecAggStage, binding: RoundBinding,
                    recipient: bytes | None) -> Directive:
    what = "secagg directive"
    body = env.body
    if len(body) < DIRECTIVE_HEADER.size:
        raise Malformed(f"{what}: body of {len(body)} bytes, shorter than its header")
    raw_stage = body[0]
    if raw_stage != stage:
        raise WrongKind(f"{what}: stage {raw_stage}, expected {stage} ({stage.name.lower()})")
    f = DIRECTIVE_HEADER.unpack(body[:DIRECTIVE_HEADER.size], what)
    size = _ENTRY[stage]
    if len(body) != DIRECTIVE_HEADER.size + f["count"] * size:
        raise Malformed(f"{what}: {len(body)} bytes for {f['count']} entries")
    binding.check(what, f)
    if stage == SecAggStage.INBOX:
        if recipient is not None and f["recipient"] != recipient:
            raise NotForThisDevice(f"{what}: an inbox for another device")
    elif any(f["recipient"]):
        raise Malformed(f"{what}: recipient set outside an inbox")
    tail = body[DIRECTIVE_HEADER.size:]
    entries = [tail[i * size:(i + 1) * size] for i in range(f["count"])]
    d = Directive(stage, f["recipient"], entries, env.raw)
    _sorted_ids(d.ids(HEADER_SIZE if stage == SecAggStage.ROSTER else 0), what)
    return d


# -- device messages: shares bundle and reveals -------------------------------
@dataclass(frozen=True)
class Shares:
    """A device's encrypted share pairs, by recipient."""

    device_id: bytes
    pairs: dict[bytes, bytes]  # recipient id -> ciphertext || tag (64 bytes)
    raw: bytes


@dataclass(frozen=True)
class Reveal:
    """One revealed share: whose secret, which one, at which x."""

    owner: bytes
    which: SecAggShare
    x: int
    share: bytes


@dataclass(frozen=True)
class Reveals:
    """A device's reveals for one survivor list."""

    device_id: bytes
    survivors_digest: bytes
    entries: list[Reveal]
    raw: bytes


def _device_env(data: bytes, kind: Kind, max_len: int, identity_pub: bytes, what: str,
                layout_size: int) -> Envelope:
    env = parse_envelope(data, kind=kind, max_len=max_len)
    verify_envelope(env, identity_pub)
    if len(env.body) < layout_size:
        raise Malformed(f"{what}: body of {len(env.body)} bytes, shorter than its header")
    return env


def verify_shares(data: bytes, identity_pub: bytes, binding: RoundBinding) -> Shares:
    """A shares bundle signed by the device's identity key, for this round."""
    what = "secagg shares"
    env = _device_env(data, Kind.SECAGG_SHARES, MAX_SHARES_SIZE, identity_pub, what,
                      SHARES_HEADER.size)
    f = SHARES_HEADER.unpack(env.body[:SHARES_HEADER.size], what)
    binding.check(what, f)
    tail = env.body[SHARES_HEADER.size:]
    if len(tail) != f["count"] * SHARES_ENTRY_SIZE:
        raise Malformed(f"{what}: {len(tail)} bytes for {f['count']} entries")
    if f["device_id"] != key_id(identity_pub):
        raise Malformed(f"{what}: names another device than its signer")
    entries = [tail[i * SHARES_ENTRY_SIZE:(i + 1) * SHARES_ENTRY_SIZE]
               for i in range(f["count"])]
    _sorted_ids([e[:ID_SIZE] for e in entries], what)
    return Shares(f["device_id"], {e[:ID_SIZE]: e[ID_SIZE:] for e in entries}, env.raw)


def verify_reveals(data: bytes, identity_pub: bytes, binding: RoundBinding) -> Reveals:
    """Reveals signed by the device's identity key, for this round."""
    what = "secagg reveals"
    env = _device_env(data, Kind.SECAGG_REVEALS, MAX_REVEALS_SIZE, identity_pub, what,
                      REVEALS_HEADER.size)
    f = REVEALS_HEADER.unpack(env.body[:REVEALS_HEADER.size], what)
    binding.check(what, f)
    if f["device_id"] != key_id(identity_pub):
        raise Malformed(f"{what}: names another device than its signer")
    tail = env.body[REVEALS_HEADER.size:]
    if len(tail) != f["count"] * REVEAL_ENTRY_SIZE:
        raise Malformed(f"{what}: {len(tail)} bytes for {f['count']} entries")
    out = []
    for i in range(f["count"]):
        e = tail[i * REVEAL_ENTRY_SIZE:(i + 1) * REVEAL_ENTRY_SIZE]
        try:
            which = SecAggShare(e[ID_SIZE])
        except ValueError:
            raise Malformed(f"{what}: entry {i} reveals share kind {e[ID_SIZE]}") from None
        size = SEED_SIZE if which == SecAggShare.SEED else 32
        if any(e[ID_SIZE + 2:ID_SIZE + 8]) or any(e[ID_SIZE + 8 + size:]) or e[ID_SIZE + 1] == 0:
            raise Malformed(f"{what}: entry {i} has non-zero padding or x 0")
        out.append(Reveal(e[:ID_SIZE], which, e[ID_SIZE + 1], e[ID_SIZE + 8:ID_SIZE + 8 + size]))
    _sorted_ids([r.owner for r in out], what)
    return Reveals(f["device_id"], f["survivors_digest"], out, env.raw)


def digest16(data: bytes) -> bytes:
    """The first 16 bytes of SHA-256 (the survivors digest reveals name)."""
    return hashlib.sha256(data).digest()[:16]

