"""The aggregator's side of one secure-aggregation round (SecAgg+), with no I/O.

Devices run their half inside the TA (``ta/secagg.c``); this class takes
their messages in protocol order, verifies each one (a refusal raises the
named :mod:`edge.errors` class and changes nothing), and produces the signed
directives the devices need: the roster, one inbox per device, the survivor
list. In the end it sums the masked updates mod 2^32, rebuilds the self-mask
seeds of the survivors and the s-keys of the devices that dropped after
sharing, removes the masks and dequantizes. It only ever holds masked words
and their running sum, never one device's update in the clear.

Protocol: Bonawitz et al., "Practical Secure Aggregation for Privacy-
Preserving Machine Learning", CCS 2017; the sparse graph of Bell et al.,
"Secure Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS 2020.
docs/secagg.md describes stages, messages and the parameter choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge import tee_abi
from edge.errors import (
    BadState,
    ConfigError,
    Malformed,
    NotForThisDevice,
    Oversized,
    ShareConflict,
    TooFewSurvivors,
    UnknownEnrollment,
    WrongRound,
)
from edge.formats import secagg as fmt
from edge.formats.envelope import Kind, parse_envelope, verify_envelope
from edge.formats.update import MAX_UPDATE_SIZE, parse_masked_update_envelope
from edge.secagg import graph, prg, shamir
from edge.secagg.quantize import Quantizer
from edge.tee_abi import SecAggShare, SecAggStage


@dataclass(frozen=True)
class SecAggParams:
    """Threshold ``t``, neighbours ``k``, cohort bound and quantization of a fleet's rounds.

    ``k >= cohort - 1`` is the complete graph (plain SecAgg). Every device holds
    a share of its own seed besides its k neighbours, so a secret has k + 1
    holders of which ``t`` rebuild it. ``scale_log2`` None picks the finest
    scale at which ``cohort`` updates of norm ``update_clip`` cannot overflow.
    """

    t: int
    k: int
    cohort: int
    update_clip: float = 1.0
    scale_log2: int | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.cohort <= fmt.MAX_COHORT:
            raise ConfigError(f"secagg cohort {self.cohort} is not in 2..{fmt.MAX_COHORT}")
        if not 1 <= self.k <= min(self.cohort - 1, fmt.MAX_NEIGHBOURS):
            raise ConfigError(f"secagg k {self.k} is not in 1..min(cohort - 1, 254)")
        if self.k % 2 and self.k != self.cohort - 1:
            raise ConfigError(f"secagg k {self.k} must be even below a complete graph")
        if not (2 * self.t > self.k and self.t <= self.k + 1):
            raise ConfigError(f"secagg t {self.t} must be > k/2 and <= k + 1 (k = {self.k})")
        try:
            finest = Quantizer.for_cohort(float(np.float32(self.update_clip)), self.cohort)
        except ValueError as exc:
            raise ConfigError(f"secagg quantization: {exc}") from exc
        if self.scale_log2 is None:
            object.__setattr__(self, "scale_log2", finest.scale_log2)
        elif not 0 <= self.scale_log2 <= finest.scale_log2:
            raise ConfigError(f"secagg scale 2^{self.scale_log2} can overflow: at most "
                              f"2^{finest.scale_log2} for {self.cohort} updates")

    @classmethod
    def for_cohort(cls, n: int, update_clip: float = 1.0) -> SecAggParams:
        """Defaults for ``n`` devices: the complete graph up to 12, else k = 2 * ceil(log2 n)
        (Bell et al.'s k = O(log n)) and t = k/2 + 1, the smallest majority of k."""
        if n < 2:
            raise ConfigError(f"secure aggregation needs at least 2 devices, got {n}")
        k = n - 1 if n <= 12 else min(n - 1, 2 * math.ceil(math.log2(n)))
        if k % 2 and k != n - 1:
            k -= 1
        return cls(k // 2 + 1, k, n, update_clip)

    @property
    def quantizer(self) -> Quantizer:
        """The quantizer the devices use (clip as the ticket's float32)."""
        assert self.scale_log2 is not None
        return Quantizer(float(np.float32(self.update_clip)), self.cohort, self.scale_log2)

    def ticket_fields(self, fleet: bytes) -> dict[str, object]:
        """The keyword arguments of ``build_ticket`` that make a round secure-aggregated."""
        return {"update_mode": tee_abi.UpdateMode.SECAGG, "fleet_id": fleet,
                "secagg_threshold": self.t, "secagg_neighbours": self.k,
                "secagg_cohort": self.cohort, "secagg_scale_log2": self.scale_log2,
                "update_clip": self.update_clip}


def _fleet_bytes(fleet: str | bytes) -> bytes:
    if isinstance(fleet, str):
        return fmt.fleet_id(fleet)
    if len(fleet) != tee_abi.FLEET_ID_SIZE:
        raise ConfigError(f"fleet id of {len(fleet)} bytes, expected {tee_abi.FLEET_ID_SIZE}")
    return bytes(fleet)


def _claimed_id(data: bytes, kind: Kind, max_len: int) -> bytes:
    """The device id a device message claims in its body (structure checked); its
    certified key must then have signed it."""
    body = parse_envelope(data, kind=kind, max_len=max_len).body
    if len(body) < fmt.ID_SIZE:
        raise Malformed(f"{kind.name.lower()}: body of {len(body)} bytes")
    return body[:fmt.ID_SIZE]


@dataclass
class _Device:
    cert: fmt.Cert
    advert: fmt.Advert | None = None
    shares: fmt.Shares | None = None
    masked_digest: bytes | None = None
    reveals: fmt.Reveals | None = None
    inbox: bytes | None = None


@dataclass
class _Graph:
    neighbours: dict[bytes, list[bytes]]
    x: dict[bytes, dict[bytes, int]] = field(default_factory=dict)  # owner -> holder -> x

    @classmethod
    def over(cls, ids: list[bytes], k: int, seed: bytes) -> _Graph:
        nb = graph.neighbours(ids, k, seed)
        g = cls(nb)
        for owner, peers in nb.items():
            holders = sorted([owner, *peers])
            g.x[owner] = {h: i + 1 for i, h in enumerate(holders)}
        return g


class SecAggRound:
    """One round: adverts -> roster -> shares -> inboxes -> masked -> survivors -> reveals."""

    def __init__(self, params: SecAggParams, fleet: str | bytes, round_id: int, nonce: bytes,
                 model_version: int, enrolled: Mapping[bytes, bytes],
                 aggregator_key: Ed25519PrivateKey, *, registrar_pub: bytes | None = None):
        """``enrolled`` maps device id to its enrollment certificate; with ``registrar_pub``
        each is verified now (``UnknownEnrollment``), else only its structure and fleet."""
        self.params = params
        self.binding = fmt.RoundBinding(_fleet_bytes(fleet), round_id, bytes(nonce),
                                        model_version)
        self._key = aggregator_key
        self._devices: dict[bytes, _Device] = {}
        for dev, raw in enrolled.items():
            cert = (fmt.verify_cert(raw, registrar_pub, self.binding.fleet_id)
                    if registrar_pub is not None else fmt.parse_cert(raw))
            if cert.device_id != dev or cert.fleet_id != self.binding.fleet_id:
                raise UnknownEnrollment(f"certificate of {dev.hex()} names another device or "
                                        "fleet")
            self._devices[dev] = _Device(cert)
        self._roster: bytes | None = None
        self._graph: _Graph | None = None
        self._u2: list[bytes] | None = None
        self._survivors: bytes | None = None
        self._u3: list[bytes] | None = None
        self._sum: np.ndarray | None = None
        self._params_count = 0
        # Revealed shares by (owner, which): x -> share, filled as reveals are taken.
        self._revealed: dict[tuple[bytes, SecAggShare], dict[int, bytes]] = {}

    # -- helpers -------------------------------------------------------------
    def _device(self, dev: bytes) -> _Device:
        d = self._devices.get(dev)
        if d is None:
            raise UnknownEnrollment(f"device {dev.hex()} is not enrolled in this fleet")
        return d

    def _need(self, ok: bool, stage: str) -> None:
        if not ok:
            raise BadState(f"secagg round {self.binding.round_id}: not at the {stage} stage")

    def _too_few(self, what: str, have: int) -> None:
        if have < self.params.t:
            raise TooFewSurvivors(f"secagg round {self.binding.round_id}: {what}: {have} "
                                  f"below the threshold {self.params.t}")

    @property
    def advertised(self) -> list[bytes]:
        """Devices whose advert was taken (U1 once the roster is out)."""
        return sorted(d for d, s in self._devices.items() if s.advert is not None)

    # -- stage 1: adverts -------------------------------------------------------
    def add_advert(self, data: bytes) -> bytes:
        """Take a device's advert (``ForgedAdvert``, ``WrongRound``, ``UnknownEnrollment``)."""
        self._need(self._roster is None, "advert")
        dev = _claimed_id(data, Kind.SECAGG_ADVERT, fmt.ADVERT_SIZE)
        d = self._device(dev)
        advert = fmt.verify_advert(data, d.cert, self.binding)
        if d.advert is not None:
            if d.advert.raw != advert.raw:
                raise ShareConflict(f"secagg advert: a second, different advert from {dev.hex()}")
            return dev
        if len(self.advertised) >= self.params.cohort:
            raise Oversized(f"secagg advert: the cohort bound {self.params.cohort} is reached")
        d.advert = advert
        return dev

    def roster(self) -> bytes:
        """The signed roster of the advertised devices (fixed on first call)."""
        if self._roster is None:
            ids = self.advertised
            self._too_few("devices advertised", len(ids))
            entries = [self._devices[i].cert.raw + self._devices[i].advert.raw  # type: ignore
                       for i in ids]
            self._graph = _Graph.over(ids, self.params.k, self.binding.nonce)
            self._roster = fmt.build_directive(self._key, SecAggStage.ROSTER, self.binding,
                                               entries)
        return self._roster

    # -- stage 2: shares -----------------------------------------------------------
    def add_shares(self, data: bytes) -> bytes:
        """Take a device's bundle of encrypted shares, one per neighbour."""
        self._need(self._graph is not None and self._u2 is None, "shares")
        assert self._graph is not None
        dev = _claimed_id(data, Kind.SECAGG_SHARES, fmt.MAX_SHARES_SIZE)
        d = self._device(dev)
        if dev not in self._graph.neighbours:
            raise NotForThisDevice(f"secagg shares: {dev.hex()} is not in the roster")
        shares = fmt.verify_shares(data, d.cert.identity_pub, self.binding)
        if sorted(shares.pairs) != self._graph.neighbours[dev]:
            raise Malformed(f"secagg shares: {dev.hex()} shares with other devices than its "
                            "neighbours")
        if d.shares is not None:
            if d.shares.raw != shares.raw:
                raise ShareConflict(f"secagg shares: a second, different bundle from "
                                    f"{dev.hex()}")
            return dev
        d.shares = shares
        return dev

    def _freeze_u2(self) -> list[bytes]:
        if self._u2 is None:
            self._need(self._graph is not None, "inbox")
            u2 = sorted(i for i, d in self._devices.items() if d.shares is not None)
            self._too_few("devices shared", len(u2))
            self._u2 = u2
        return self._u2

    def inbox_for(self, device_id: bytes) -> bytes:
        """The signed inbox of one device that shared: its neighbours' shares to it."""
        self._need(self._survivors is None, "inbox")
        u2 = self._freeze_u2()
        if device_id not in u2:
            raise NotForThisDevice(f"secagg inbox: {device_id.hex()} did not share")
        d = self._devices[device_id]
        if d.inbox is None:
            assert self._graph is not None
            senders = [j for j in self._graph.neighbours[device_id] if j in u2]
            entries = [j + self._devices[j].shares.pairs[device_id]  # type: ignore[union-attr]
                       for j in senders]
            d.inbox = fmt.build_directive(self._key, SecAggStage.INBOX, self.binding, entries,
                                          recipient=device_id)
        return d.inbox

    # -- stage 3: masked updates ---------------------------------------------------
    def add_masked(self, sealed_update: bytes) -> bytes:
        """Add a device's masked sealed update (mode 2) to the running sum mod 2^32."""
        self._need(self._u2 is not None and self._survivors is None, "masked update")
        assert self._u2 is not None
        env = parse_envelope(sealed_update, kind=Kind.SEALED_UPDATE, max_len=MAX_UPDATE_SIZE)
        if len(env.body) < fmt.ID_SIZE:
            raise Malformed(f"sealed update: body of {len(env.body)} bytes")
        d = self._device(env.body[:fmt.ID_SIZE])
        dev = d.cert.device_id
        if dev not in self._u2:
            raise NotForThisDevice(f"sealed update: {dev.hex()} did not share in this round")
        m = parse_masked_update_envelope(env)
        # One SHA-256 pass over the 400 KB: the signed digest also names the update.
        digest = env.digest()
        verify_envelope(env, d.cert.identity_pub, digest=digest)
        if m.device_id != dev:
            raise Malformed("sealed update: names another device than its signer")
        if (m.round_id, m.nonce, m.model_version) != (
                self.binding.round_id, self.binding.nonce, self.binding.model_version):
            raise WrongRound("sealed update: for another round, nonce or model version")
        if m.update_clip != self.params.quantizer.clip:
            raise Malformed(f"sealed update: update clip {m.update_clip} is not the round's "
                            f"{self.params.quantizer.clip}")
        if self._params_count and m.param_count != self._params_count:
            raise Malformed(f"sealed update: {m.param_count} parameters, the round has "
                            f"{self._params_count}")
        if d.masked_digest is not None:
            if d.masked_digest != digest:
                raise ShareConflict(f"sealed update: a second, different update from {dev.hex()}")
            return dev
        if self._sum is None:
            self._sum = np.zeros(m.param_count, np.uint32)
        np.add(self._sum, m.words, out=self._sum)  # uint32 arithmetic wraps: mod 2^32
        self._params_count = m.param_count
        d.masked_digest = digest
        return dev

    def add_masked_sum(self, total: np.ndarray, covered: Mapping[bytes, bytes]) -> None:
        """Add a modular partial sum of masked updates verified elsewhere (a cohort worker's,
        docs/scale-out.md): ``total`` is Σ words mod 2^32 over exactly the devices of
        ``covered`` (device id -> update id), each of which must have shared and not be
        counted yet (``NotForThisDevice``, ``ShareConflict``); refused whole, nothing added."""
        self._need(self._u2 is not None and self._survivors is None, "masked update")
        assert self._u2 is not None
        words = np.asarray(total)
        if words.dtype != np.uint32 or words.ndim != 1:
            raise Malformed(f"masked sum: {words.dtype} of {words.ndim} dimension(s), expected "
                            "one dimension of uint32 words")
        if self._params_count and words.size != self._params_count:
            raise Malformed(f"masked sum: {words.size} parameters, the round has "
                            f"{self._params_count}")
        u2 = set(self._u2)
        for dev in covered:
            if dev not in u2:
                raise NotForThisDevice(f"masked sum: {dev.hex()} did not share in this round")
            if self._device(dev).masked_digest is not None:
                raise ShareConflict(f"masked sum: {dev.hex()} is counted already")
        if not covered:
            return
        base = self._sum if self._sum is not None else np.zeros(words.size, np.uint32)
        self._sum = base + words  # mod 2^32, as add_masked
        self._params_count = words.size
        for dev, uid in covered.items():
            self._devices[dev].masked_digest = bytes(uid)

    def masked_id(self, device_id: bytes) -> bytes | None:
        """The update id of the device's masked update in the sum (None: not in it)."""
        d = self._devices.get(device_id)
        return None if d is None else d.masked_digest

    def masked_sum(self) -> np.ndarray | None:
        """A copy of the masked words' sum mod 2^32 (None before the first), to persist:
        masked like every word in it, it tells no more than the updates it sums."""
        return None if self._sum is None else self._sum.copy()

    # -- stage 4: unmasking ----------------------------------------------------------
    def survivors(self) -> bytes:
        """The signed survivor list U3 (fixed on first call); ``TooFewSurvivors`` when some
        secret the result needs would have fewer than t live holders."""
        if self._survivors is None:
            self._need(self._u2 is not None, "survivors")
            assert self._graph is not None and self._u2 is not None
            u3 = sorted(i for i, d in self._devices.items() if d.masked_digest is not None)
            self._too_few("masked updates", len(u3))
            live = set(u3)
            for i in u3:
                holders = [h for h in [i, *self._graph.neighbours[i]] if h in live]
                self._too_few(f"live holders of {i.hex()}'s seed", len(holders))
            for j in set(self._u2) - live:
                holders = [h for h in self._graph.neighbours[j] if h in live]
                self._too_few(f"live holders of dropped {j.hex()}'s key", len(holders))
            self._u3 = u3
            self._survivors = fmt.build_directive(self._key, SecAggStage.SURVIVORS,
                                                  self.binding, u3)
        return self._survivors

    def _expected_reveals(self, dev: bytes) -> list[tuple[bytes, SecAggShare, int]]:
        assert self._graph is not None and self._u2 is not None and self._u3 is not None
        out = [(dev, SecAggShare.SEED, self._graph.x[dev][dev])]
        for j in self._graph.neighbours[dev]:
            if j in self._u2:
                which = SecAggShare.SEED if j in self._u3 else SecAggShare.SKEY
                out.append((j, which, self._graph.x[j][dev]))
        return sorted(out)

    def add_reveal(self, data: bytes) -> bytes:
        """Take a survivor's reveals for the survivor list."""
        self._need(self._survivors is not None, "reveal")
        assert self._u3 is not None and self._survivors is not None
        dev = _claimed_id(data, Kind.SECAGG_REVEALS, fmt.MAX_REVEALS_SIZE)
        d = self._device(dev)
        if dev not in self._u3:
            raise NotForThisDevice(f"secagg reveals: {dev.hex()} is not a survivor")
        rev = fmt.verify_reveals(data, d.cert.identity_pub, self.binding)
        if rev.survivors_digest != fmt.digest16(self._survivors):
            raise ShareConflict("secagg reveals: for another survivor list")
        got = [(r.owner, r.which, r.x) for r in rev.entries]
        if got != self._expected_reveals(dev):
            raise Malformed(f"secagg reveals: {dev.hex()} reveals other shares than its "
                            "neighbourhood calls for")
        if d.reveals is not None:
            if d.reveals.raw != rev.raw:
                raise ShareConflict(f"secagg reveals: a second, different answer from "
                                    f"{dev.hex()}")
            return dev
        d.reveals = rev
        for r in rev.entries:
            self._revealed.setdefault((r.owner, r.which), {})[r.x] = r.share
        return dev

    def _secret(self, owner: bytes, which: SecAggShare) -> bytes:
        shares = self._revealed.get((owner, which), {})
        self._too_few(f"shares revealed of {owner.hex()}'s {which.name.lower()}", len(shares))
        return shamir.combine(shares, self.params.t)

    def result(self) -> tuple[np.ndarray, list[bytes]]:
        """The float32 sum of the survivors' dequantized updates, and the survivors."""
        self._need(self._survivors is not None, "result")
        assert self._u2 is not None and self._u3 is not None and self._graph is not None
        assert self._sum is not None
        total = self._sum.copy()
        n = total.size
        live = set(self._u3)
        seeds = [self._secret(i, SecAggShare.SEED) for i in self._u3]
        keys = {j: self._secret(j, SecAggShare.SKEY) for j in self._u2 if j not in live}
        binding = self.binding.raw()
        mask = np.empty(n, np.uint32)  # one buffer: every mask is generated into it
        for b in seeds:
            np.subtract(total, prg.expand(b, n, out=mask), out=total)
        for j, sk in keys.items():
            priv = X25519PrivateKey.from_private_bytes(sk)
            for i in self._graph.neighbours[j]:
                if i not in live:
                    continue
                advert = self._devices[i].advert
                assert advert is not None
                z = priv.exchange(X25519PublicKey.from_public_bytes(advert.s_pub))
                prg.expand(prg.pair_seed(z, binding), n, out=mask)
                # Survivor i added +mask if its id sorts below j's: take back what it added.
                (np.subtract if i < j else np.add)(total, mask, out=total)
        values = self.params.quantizer.dequantize(total).astype(np.float32)
        return values, list(self._u3)


__all__ = ["SecAggParams", "SecAggRound"]
