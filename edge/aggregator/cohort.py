"""Cohort workers and their root (docs/scale-out.md): topics, authenticated messages, and
the root's combination of the workers' partial sums, de-duplicated by device id.

Workers and root share one secret, the cohort key; every message between them carries
an HMAC-SHA256 tag over all its bytes (RFC 2104), checked in constant time. Messages are
``"EDCO" | u16 kind | u32 header length | header (JSON) | body | tag (32)``. These
messages never reach a board or the TA, so they are not part of contract/spec.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, Malformed, Tampered, WrongKind
from edge.formats.envelope import HEADER_SIZE
from edge.formats.layouts import UPDATE_HEADER
from edge.protocol import PROTOCOL_VERSION, check_fleet, update_subscription

from .verify import RoundView

MAGIC = b"EDCO"
KIND_ROUND, KIND_SUM, KIND_DROP = 1, 2, 3
_KIND_NAMES = {KIND_ROUND: "round", KIND_SUM: "cohort sum", KIND_DROP: "drop"}
_PREFIX = struct.Struct("<4sHI")
TAG_SIZE = 32
KEY_SIZE = 32
MAX_HEADER = 64 * 1024 * 1024
# Refusals a worker names (class, device, topic, reason) per round in its partial, for the
# root's audit table; past this they are only counted (``refused``), as the audit bounds do.
NAMED_REFUSALS = 64
_WORKER = re.compile(r"^[a-z0-9-]{1,32}$")
_ROUND_AT = HEADER_SIZE + UPDATE_HEADER.offset("round_id")


def check_worker(worker: str) -> str:
    """Return ``worker`` if it is a valid worker id, else raise ConfigError."""
    if not _WORKER.match(worker):
        raise ConfigError(f"worker id {worker!r} must match [a-z0-9-]{{1,32}}")
    return worker


def _base(fleet: str) -> str:
    return f"edge/v{PROTOCOL_VERSION}/{check_fleet(fleet)}/cohort"


def round_topic(fleet: str) -> str:
    """Retained topic on which the root announces the open round to its workers."""
    return f"{_base(fleet)}/round"


def sum_topic(fleet: str, worker: str) -> str:
    """Retained topic of one worker's newest partial sum."""
    return f"{_base(fleet)}/{check_worker(worker)}/sum"


def sum_subscription(fleet: str) -> str:
    """The root's subscription to every worker's partial sum."""
    return f"{_base(fleet)}/+/sum"


def drop_topic(fleet: str, worker: str) -> str:
    """Topic on which the root tells a worker which devices' updates another worker owns."""
    return f"{_base(fleet)}/{check_worker(worker)}/drop"


def shared_update_subscription(fleet: str) -> str:
    """The workers' MQTT 5 shared subscription to the fleet's updates (one group per fleet)."""
    return f"$share/edge-{check_fleet(fleet)}/{update_subscription(fleet)}"


def update_round(payload: bytes) -> int | None:
    """The round id a sealed update names (unverified: to hold one for a round not yet
    announced), or None if it is too short to name one."""
    if len(payload) < _ROUND_AT + 8:
        return None
    return int.from_bytes(payload[_ROUND_AT:_ROUND_AT + 8], "little")


def load_cohort_key(path: Path) -> bytes:
    """The 32-byte cohort key from a file of 64 hex digits; ConfigError naming the file."""
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"workers.key: {path} is not a readable file of 64 hex digits "
                          f"({exc})") from None
    if len(key) != KEY_SIZE:
        raise ConfigError(f"workers.key: {path} holds {len(key)} bytes, expected {KEY_SIZE}")
    return key


def seal(key: bytes, kind: int, header: dict[str, Any], body: bytes = b"") -> bytes:
    """A message of ``kind`` with its tag."""
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    msg = _PREFIX.pack(MAGIC, kind, len(head)) + head + body
    return msg + hmac.new(key, msg, hashlib.sha256).digest()


def unseal(key: bytes, data: bytes, kind: int) -> tuple[dict[str, Any], bytes]:
    """(header, body) of a message after its tag (``Tampered``), framing (``Malformed``)
    and kind (``WrongKind``) checks, in that order."""
    if len(data) < _PREFIX.size + TAG_SIZE:
        raise Malformed(f"cohort message: {len(data)} bytes, shorter than its framing")
    msg, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
    if not hmac.compare_digest(hmac.new(key, msg, hashlib.sha256).digest(), tag):
        raise Tampered("cohort message: its tag does not verify under the cohort key "
                       "(another key, or changed on the way)")
    magic, got, head_len = _PREFIX.unpack_from(msg)
    if magic != MAGIC or head_len > min(MAX_HEADER, len(msg) - _PREFIX.size):
        raise Malformed("cohort message: bad magic or header length")
    if got != kind:
        raise WrongKind(f"cohort message: got a {_KIND_NAMES.get(got, f'kind {got}')} "
                        f"message, expected {_KIND_NAMES[kind]}")
    try:
        header = json.loads(msg[_PREFIX.size:_PREFIX.size + head_len])
    except ValueError as exc:
        raise Malformed(f"cohort message: header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise Malformed("cohort message: header is not a JSON object")
    return header, msg[_PREFIX.size + head_len:]


@dataclass(frozen=True)
class Announcement:
    """The open round as the root tells its workers (``round_id`` None: none is open)."""

    round_id: int | None
    nonce: bytes = b""
    model_version: int = 0
    params: int = 0
    update_clip: float = 0.0
    noise_multiplier: float = 0.0
    example_clip: float = 0.0
    central_noise: float = 0.0
    records: tuple[bytes, ...] = ()  # the cohort's device records (kind 3)
    package_id: bytes = b""  # of the model the round trains (its tickets name it)
    # A secure-aggregation round: masked updates, summed mod 2^32. ``maskers`` is the set
    # of devices that shared (U2), known from the masked stage on: only their masked
    # updates count, and a worker holds the others until the root names it.
    secagg: bool = False
    maskers: tuple[bytes, ...] | None = None

    def to_message(self, key: bytes, fleet: str) -> bytes:
        """The signed message (tagged with the cohort key)."""
        return seal(key, KIND_ROUND, {
            "fleet": fleet, "round": self.round_id, "nonce": self.nonce.hex(),
            "model_version": self.model_version, "params": self.params,
            "update_clip": self.update_clip, "noise_multiplier": self.noise_multiplier,
            "example_clip": self.example_clip, "central_noise": self.central_noise,
            "records": [r.hex() for r in self.records], "package_id": self.package_id.hex(),
            "secagg": self.secagg,
            "maskers": None if self.maskers is None else [d.hex() for d in self.maskers]})

    @classmethod
    def from_message(cls, key: bytes, fleet: str, data: bytes) -> Announcement:
        """Check and read an announcement of ``fleet``."""
        h, _ = unseal(key, data, KIND_ROUND)
        try:
            if h["fleet"] != fleet:
                raise Malformed(f"round announcement of fleet {h['fleet']!r}, not {fleet!r}")
            return cls(h["round"], bytes.fromhex(h["nonce"]), int(h["model_version"]),
                       int(h["params"]), float(h["update_clip"]), float(h["noise_multiplier"]),
                       float(h["example_clip"]), float(h["central_noise"]),
                       tuple(bytes.fromhex(r) for r in h["records"]),
                       bytes.fromhex(h["package_id"]), bool(h.get("secagg", False)),
                       None if h.get("maskers") is None
                       else tuple(bytes.fromhex(d) for d in h["maskers"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise Malformed(f"round announcement: bad field ({exc})") from None

    def view(self, cohort: frozenset[bytes]) -> RoundView:
        """The verifier's view of this round for ``cohort`` (the records' device ids)."""
        assert self.round_id is not None
        return RoundView(self.round_id, self.nonce, self.model_version, self.params,
                         self.update_clip, cohort, self.noise_multiplier, self.example_clip,
                         self.package_id, self.secagg)


@dataclass(frozen=True)
class Contribution:
    """One accepted update inside a partial sum: who, which update, and its training."""

    device_id: bytes
    update_id: bytes
    example_count: int
    steps: int
    total_steps: int
    noise_multiplier: float

    def to_json(self) -> list[Any]:
        return [self.device_id.hex(), self.update_id.hex(), self.example_count, self.steps,
                self.total_steps, self.noise_multiplier]

    @classmethod
    def from_json(cls, row: list[Any]) -> Contribution:
        d, u, n, s, t, z = row
        return cls(bytes.fromhex(d), bytes.fromhex(u), int(n), int(s), int(t), float(z))


@dataclass(frozen=True)
class WorkerRefusal:
    """A message a worker refused, named for the root's audit table."""

    device_id: bytes | None
    topic: str
    refusal: str
    reason: str

    def to_json(self) -> list[Any]:
        return [self.device_id.hex() if self.device_id else None, self.topic, self.refusal,
                self.reason]

    @classmethod
    def from_json(cls, row: list[Any]) -> WorkerRefusal:
        d, t, r, why = row
        return cls(bytes.fromhex(d) if d else None, str(t)[:256], str(r)[:64], str(why)[:1000])


@dataclass(frozen=True)
class PartialSum:
    """A worker's durable sum of its share of a round: Σ w·Δ, Σ w, and what it covers.

    In a secure-aggregation round (``masked``) ``total`` is Σ of the masked words mod 2^32
    (uint32), ``weight`` the number of updates: it reveals no more than one masked update.
    """

    round_id: int
    worker: str
    seq: int  # grows with every commit of the worker: the root keeps the newest
    total: np.ndarray = field(repr=False)
    weight: float
    contributions: tuple[Contribution, ...]
    refused: int = 0
    masked: bool = False
    refusals: tuple[WorkerRefusal, ...] = ()  # the first NAMED_REFUSALS of ``refused``

    def to_message(self, key: bytes, fleet: str) -> bytes:
        """The tagged message a worker publishes (retained) after each commit."""
        return seal(key, KIND_SUM, {
            "fleet": fleet, "round": self.round_id, "worker": self.worker, "seq": self.seq,
            "weight": self.weight, "refused": self.refused, "masked": self.masked,
            "refusals": [r.to_json() for r in self.refusals],
            "contributions": [c.to_json() for c in self.contributions]},
            np.ascontiguousarray(self.total, dtype=sum_dtype(self.masked)).tobytes())

    @classmethod
    def from_message(cls, key: bytes, fleet: str, data: bytes) -> PartialSum:
        """Check and read a partial sum of ``fleet``."""
        h, body = unseal(key, data, KIND_SUM)
        try:
            if h["fleet"] != fleet:
                raise Malformed(f"cohort sum of fleet {h['fleet']!r}, not {fleet!r}")
            masked = bool(h.get("masked", False))  # absent from an older worker's
            dtype = np.dtype(sum_dtype(masked))
            if len(body) % dtype.itemsize:
                raise Malformed(f"cohort sum: body of {len(body)} bytes is not "
                                f"{'uint32 words' if masked else 'float64s'}")
            return cls(int(h["round"]), check_worker(h["worker"]), int(h["seq"]),
                       np.frombuffer(body, dtype=dtype), float(h["weight"]),
                       tuple(Contribution.from_json(r) for r in h["contributions"]),
                       int(h["refused"]), masked,
                       tuple(WorkerRefusal.from_json(r)
                             for r in h.get("refusals", [])[:NAMED_REFUSALS]))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise Malformed(f"cohort sum: bad field ({exc})") from None


def sum_dtype(masked: bool) -> str:
    """The wire and database type of a partial sum: float64, or mod-2^32 words if masked."""
    return "<u4" if masked else "<f8"


def drop_message(key: bytes, fleet: str, round_id: int, worker: str,
                 devices: list[bytes]) -> bytes:
    """The root's instruction to ``worker``: take these devices' updates out of its sum."""
    return seal(key, KIND_DROP, {"fleet": fleet, "round": round_id, "worker": worker,
                                 "devices": [d.hex() for d in devices]})


def read_drop(key: bytes, fleet: str, worker: str, data: bytes) -> tuple[int, list[bytes]]:
    """(round, devices) of a drop instruction addressed to ``worker`` of ``fleet``."""
    h, _ = unseal(key, data, KIND_DROP)
    try:
        if h["fleet"] != fleet or h["worker"] != worker:
            raise Malformed(f"drop for {h['fleet']}/{h['worker']}, not {fleet}/{worker}")
        return int(h["round"]), [bytes.fromhex(d) for d in h["devices"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise Malformed(f"drop: bad field ({exc})") from None


@dataclass(frozen=True)
class Combined:
    """A round's total over every worker, each device counted once."""

    total: np.ndarray = field(repr=False)
    weight: float
    contributions: dict[bytes, Contribution]
    refused: int
    masked: bool = False


class Combiner:
    """The root's view of one round: the newest partial of each worker, de-duplicated.

    An update redelivered to a second worker (after a kill, or a board publishing its
    kept update again) is in two partials; the worker with the smaller id owns it and
    the others are told to drop it (``drops``). Until they have, ``combined`` is None:
    a round is never summed with an update counted twice.

    In a secure-aggregation round the partials are masked sums mod 2^32: the root cannot
    take a device out of one (it never sees a device's words), but the worker that holds
    the update can, exactly (its payload is in the worker's database, and subtraction
    mod 2^32 undoes addition), so the repair is the same drop.
    """

    def __init__(self, round_id: int, masked: bool = False) -> None:
        self.round_id = round_id
        self.masked = masked  # a secure-aggregation round: masked partials only
        self.partials: dict[str, PartialSum] = {}

    def add(self, partial: PartialSum) -> bool:
        """Keep ``partial`` if it is the newest of its worker for this round; True if kept."""
        if partial.round_id != self.round_id or partial.masked != self.masked:
            return False
        old = self.partials.get(partial.worker)
        if old is not None and old.seq >= partial.seq:
            return False
        self.partials[partial.worker] = partial
        return True

    def owners(self) -> dict[bytes, list[str]]:
        """Device id -> the workers whose newest partial lists it (sorted)."""
        out: dict[bytes, list[str]] = {}
        for worker in sorted(self.partials):
            for c in self.partials[worker].contributions:
                out.setdefault(c.device_id, []).append(worker)
        return out

    def drops(self) -> dict[str, list[bytes]]:
        """Worker -> devices it must drop (another worker, the smallest id, owns them)."""
        out: dict[str, list[bytes]] = {}
        for device, workers in self.owners().items():
            for worker in workers[1:]:
                out.setdefault(worker, []).append(device)
        return out

    def combined(self) -> Combined | None:
        """The round's total, or None while some device is still counted by two workers."""
        if not self.partials or self.drops():
            return None
        parts = list(self.partials.values())
        # uint32 addition wraps: masked partials add mod 2^32, as one secagg server would.
        total = np.sum([p.total for p in parts], axis=0,
                       dtype=np.uint32 if self.masked else np.float64)
        contributions = {c.device_id: c for p in parts for c in p.contributions}
        return Combined(total, float(sum(p.weight for p in parts)), contributions,
                        sum(p.refused for p in parts), self.masked)
