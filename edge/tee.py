"""The daemon's handle on the edge trusted application.

One method per TA command. Refusals and failures raise the specific
:mod:`edge.errors` class mapped from the TEE result and its origin.

Thread safety: a :class:`TrustedApp` may be shared between threads; every
call, and the whole begin/chunks/finish sequence of a package load, holds the
instance's lock, so commands never interleave. A ticket accepted by
``verify_ticket`` is held by the session, not the caller: with several threads,
serialise each verify/train pair yourself.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from edge import errors, tee_abi
from edge.errors import EdgeError
from edge.formats.layouts import BUDGET_BLOCK, STATUS_BLOCK
from edge.formats.manifest import InferRelease, parse_manifest
from edge.formats.package import PackageSource, read_manifest
from edge.formats.ticket import parse_ticket, wrong_model_text
from edge.native import Native, load

# One table for C and Python: contract/spec.py, generated into tee_abi.
_TA_REFUSALS = tee_abi.REFUSALS
_ORIGINS = tee_abi.ORIGIN_TEXT


@dataclass(frozen=True)
class TaStatus:
    """What GET_STATUS reports; nothing in it is secret."""

    abi_version: int
    has_identity: bool
    has_anchors: bool
    has_model: bool
    model_version: int
    device_id: bytes
    head_in: int
    head_out: int
    signer_epoch: int
    aggregator_epoch: int
    signer_key_id: bytes
    aggregator_key_id: bytes
    package_id: bytes

    @classmethod
    def parse(cls, raw: bytes) -> TaStatus:
        """Decode the status block laid out in ta/include/edge_ta.h."""
        f = STATUS_BLOCK.unpack(raw, "status block")
        flags = f["flags"]
        return cls(
            abi_version=f["abi_version"],
            has_identity=bool(flags & tee_abi.StatusFlag.IDENTITY),
            has_anchors=bool(flags & tee_abi.StatusFlag.ANCHORS),
            has_model=bool(flags & tee_abi.StatusFlag.MODEL),
            model_version=f["model_version"],
            device_id=f["device_id"],
            head_in=f["head_in"],
            head_out=f["head_out"],
            signer_epoch=f["signer_epoch"],
            aggregator_epoch=f["agg_epoch"],
            signer_key_id=f["signer_key_id"],
            aggregator_key_id=f["agg_key_id"],
            package_id=f["package_id"],
        )


@dataclass(frozen=True)
class BudgetStatus:
    """What BUDGET_STATUS reports: the privacy budget and replay state."""

    has_policy: bool
    steps_spent: int
    step_budget: int
    policy_version: int
    rounds_sealed: int
    last_round: int
    time_floor: int
    policy_id: bytes
    epsilon_spent: float = 0.0  # from the installed policy's signed steps -> ε table
    epsilon_budget: float = 0.0
    delta: float = 0.0

    @property
    def steps_left(self) -> int:
        """Steps the budget still allows (0 when spent or without a policy)."""
        return max(self.step_budget - self.steps_spent, 0)

    @classmethod
    def parse(cls, raw: bytes) -> BudgetStatus:
        """Decode the budget block laid out in ta/include/edge_ta.h."""
        f = BUDGET_BLOCK.unpack(raw, "budget block")
        return cls(bool(f["flags"] & tee_abi.BudgetFlag.POLICY), f["steps_spent"],
                   f["step_budget"], f["policy_version"], f["rounds_sealed"], f["last_round"],
                   f["time_floor"], f["policy_id"], f["epsilon_spent"], f["epsilon_budget"],
                   f["delta"])


@dataclass(frozen=True)
class TicketAccepted:
    """A ticket the TA now holds for one TRAIN_AND_SEAL."""

    steps_left: int
    steps_per_round: int  # Poisson sampling; 0 when it depends on the example count


@dataclass(frozen=True)
class Inference:
    """What INFER released: every score, the k best labels (best first) or the label.

    ``scores`` is n x head_out float32 under the ``scores`` release, else None;
    ``labels`` is n x k (top-k) or n (label), else None. ``rows_left`` is the
    query budget left for this model version (None: the package sets none).
    """

    release: InferRelease
    scores: np.ndarray | None
    labels: np.ndarray | None
    rows_left: int | None


@dataclass(frozen=True)
class LoadedModel:
    """Result of an accepted package: its version and the verified backbone."""

    version: int
    backbone: bytes | None
    backbone_path: Path | None
    backbone_len: int


def _raise_for(native: Native, what: str, code: int, origin: int) -> None:
    if code == tee_abi.TEE_SUCCESS:
        return
    name = native.ffi.string(native.lib.edge_result_name(code)).decode()
    side = _ORIGINS.get(origin, f"origin {origin}")
    message = f"{what}: {name} (0x{code:08x}, from the {side})"
    if code == tee_abi.TEE_ERROR_TARGET_DEAD:
        raise errors.TeeDead(message, code=code, origin=origin)
    cls = _TA_REFUSALS.get(code) if origin in (tee_abi.ORIGIN_TRUSTED_APP,
                                               tee_abi.ORIGIN_API) else None
    if cls is None and code == tee_abi.TEE_ERROR_BUSY:
        raise errors.TeeUnavailable(
            message + "; another process holds this TEE's trusted application",
            code=code, origin=origin,
        )
    if cls is None and code == tee_abi.TEE_ERROR_ITEM_NOT_FOUND and what == "open":
        raise errors.TeeUnavailable(
            message + "; is the edge TA installed in /lib/optee_armtz?", code=code, origin=origin
        )
    raise (cls or errors.TeeError)(message, code=code, origin=origin)


BACKENDS = ("optee", "sim")
DEFAULT_BACKEND = "optee"  # the product runs on OP-TEE; tests and the demo say "sim"


def check_backend_state(backend: str, state_dir: object | None) -> None:
    """The one rule of a backend's state folder: the simulated TEE (``sim``) keeps its
    secure storage in one and needs it; OP-TEE keeps its own, so one is refused."""
    if backend not in BACKENDS:
        raise errors.ConfigError(f"TEE backend {backend!r} is not \"optee\" or \"sim\"")
    if backend == "sim" and state_dir is None:
        raise errors.ConfigError("the simulated TEE (sim) needs a state folder")
    if backend == "optee" and state_dir is not None:
        raise errors.ConfigError("a state folder only applies to the simulated TEE (sim)")


class TrustedApp:
    """An open session with the edge TA on the chosen backend (the product's: OP-TEE)."""

    def __init__(self, backend: str = DEFAULT_BACKEND,
                 state_dir: str | os.PathLike[str] | None = None):
        """Open a session; ``state_dir`` names the simulated TEE's storage ('sim' only)."""
        check_backend_state(backend, state_dir)
        self.backend = backend
        self._native = load(backend)
        self._lock = threading.Lock()
        ffi = self._native.ffi
        self._keep: list[object] = []
        name = ffi.NULL
        if state_dir is not None:
            Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
            name = ffi.new("char[]", os.fsencode(os.fspath(state_dir)))
            self._keep.append(name)
        out = ffi.new("edge_client **")
        origin = ffi.new("uint32_t *")
        code = self._native.lib.edge_client_open(name, out, origin)
        _raise_for(self._native, "open", code, origin[0])
        self._client = out[0]

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        """Close the session; idempotent."""
        with self._lock:
            if self._client is not None:
                self._native.lib.edge_client_close(self._client)
                self._client = None

    def __enter__(self) -> TrustedApp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_client", None) is not None:
            self.close()

    def _c(self) -> object:
        if self._client is None:
            raise errors.BadState("this TrustedApp is closed")
        return self._client

    # -- commands ---------------------------------------------------------
    def _get_buffer(self, fn_name: str, what: str, size: int) -> bytes:
        ffi = self._native.ffi
        buf = ffi.new("uint8_t[]", size)
        length = ffi.new("size_t *", size)
        origin = ffi.new("uint32_t *")
        with self._lock:
            code = getattr(self._native.lib, fn_name)(self._c(), buf, length, origin)
        _raise_for(self._native, what, code, origin[0])
        return bytes(ffi.buffer(buf, length[0]))

    def identity(self) -> bytes:
        """The device record (creating the device keys on first use)."""
        return self._get_buffer("edge_get_identity", "identity", tee_abi.DEVICE_RECORD_SIZE)

    def status(self) -> TaStatus:
        """Model version, anchors and identity state; never creates anything."""
        return TaStatus.parse(self._get_buffer("edge_get_status", "status", tee_abi.STATUS_SIZE))

    def install_anchors(self, model_signer_pub: bytes, aggregator_pub: bytes) -> None:
        """Install the model-signer and aggregator Ed25519 keys (once)."""
        for label, key in (("model-signer", model_signer_pub), ("aggregator", aggregator_pub)):
            if len(key) != tee_abi.PUBKEY_SIZE:
                raise errors.Malformed(f"{label} public key is {len(key)} bytes, expected 32")
        origin = self._native.ffi.new("uint32_t *")
        with self._lock:
            code = self._native.lib.edge_install_anchors(
                self._c(), model_signer_pub, aggregator_pub, origin
            )
        _raise_for(self._native, "install anchors", code, origin[0])

    def replace_anchor(self, statement: bytes) -> None:
        """Replace one anchor with a statement signed by its current key."""
        origin = self._native.ffi.new("uint32_t *")
        with self._lock:
            code = self._native.lib.edge_replace_anchor(
                self._c(), statement, len(statement), origin
            )
        _raise_for(self._native, "replace anchor", code, origin[0])

    def load_model(
        self,
        package: bytes | os.PathLike[str] | str,
        *,
        wrap: bytes,
        backbone_out: os.PathLike[str] | str | None = None,
    ) -> LoadedModel:
        """Verify and install a model package with this device's key wrap; return the backbone.

        ``package`` given as bytes returns the backbone as bytes. Given as a
        path, it streams from the file, and the backbone goes to
        ``backbone_out`` (written only once the package is accepted).
        """
        ffi, lib = self._native.ffi, self._native.lib
        origin = ffi.new("uint32_t *")
        version = ffi.new("uint64_t *")
        wrap = bytes(wrap)
        if isinstance(package, bytes | bytearray | memoryview):
            if backbone_out is not None:
                raise errors.ConfigError("backbone_out is for packages given as a path")
            data = bytes(package)
            cap = ffi.new("size_t *", len(data))
            out = ffi.new("uint8_t[]", max(len(data), 1))
            with self._lock:
                code = lib.edge_load_model_buffer(
                    self._c(), data, len(data), wrap, len(wrap), out, cap, version, origin
                )
            self._raise_for_load(data, code, origin[0])
            backbone = bytes(ffi.buffer(out, cap[0]))
            return LoadedModel(version[0], backbone or None, None, len(backbone))
        path = Path(package)
        if not path.is_file():
            raise errors.ConfigError(f"package {path} does not exist or is not a file")
        out_path = Path(backbone_out) if backbone_out is not None else None
        length = ffi.new("uint64_t *")
        with self._lock:
            code = lib.edge_load_model_file(
                self._c(),
                os.fsencode(path),
                wrap,
                len(wrap),
                os.fsencode(out_path) if out_path else ffi.NULL,
                length,
                version,
                origin,
            )
        if code == tee_abi.EDGE_CLIENT_ERR_BACKBONE_NOT_PUBLISHED and out_path is not None:
            partial = out_path.with_name(out_path.name + ".partial")
            raise errors.BackboneNotPublished(
                f"load model: the TA committed version {version[0]}, but its backbone could not "
                f"be moved to {out_path}; it is complete in {partial}",
                partial=partial, code=code, origin=origin[0])
        self._raise_for_load(path, code, origin[0])
        return LoadedModel(version[0], None, out_path, length[0])

    def _raise_for_load(self, package: bytes | Path, code: int, origin: int) -> None:
        """A load's refusal; a rollback names both versions (the operator's first question)."""
        if code != tee_abi.EDGE_ERR_ROLLBACK or origin != tee_abi.ORIGIN_TRUSTED_APP:
            _raise_for(self._native, "load model", code, origin)
            return
        try:
            if isinstance(package, Path):
                with package.open("rb") as fh:
                    manifest = parse_manifest(read_manifest(PackageSource(fh)).body)
            else:
                manifest = parse_manifest(read_manifest(PackageSource(package)).body)
            held = self.status()
        except (EdgeError, OSError):
            _raise_for(self._native, "load model", code, origin)
            return
        raise errors.Rollback(
            f"load model: rollback: package v{manifest.version} (package "
            f"{manifest.package_id.hex()}) <= installed v{held.model_version} (package "
            f"{held.package_id.hex()})", code=code, origin=origin)

    def infer(self, features: np.ndarray) -> Inference:
        """What the active package releases of the head on features (n x head_in)."""
        x = np.ascontiguousarray(features, dtype="<f4")
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[0] == 0:
            raise errors.Malformed(f"features must be a non-empty 2-D array, got {x.shape}")
        n = x.shape[0]
        if n > tee_abi.MAX_INFER_BATCH:
            raise errors.Oversized(f"batch of {n} rows exceeds {tee_abi.MAX_INFER_BATCH}")
        ffi, lib = self._native.ffi, self._native.lib
        out = np.empty(n * tee_abi.MAX_HEAD_OUT * 4, dtype=np.uint8)
        out_len = ffi.new("size_t *", out.nbytes)
        release = ffi.new("uint32_t *")
        left = ffi.new("uint32_t *")
        origin = ffi.new("uint32_t *")
        with self._lock:
            code = lib.edge_infer(
                self._c(),
                ffi.from_buffer("float[]", x),
                n,
                x.nbytes,
                ffi.from_buffer(out),
                out_len,
                release,
                left,
                origin,
            )
        if code == tee_abi.EDGE_ERR_BUDGET_EXHAUSTED:
            raise errors.BudgetExhausted(
                f"infer: {n} rows exceed the query budget left for this model version",
                code=code, origin=origin[0])
        _raise_for(self._native, "infer", code, origin[0])
        per_row = out_len[0] // 4 // n
        rows = out[: n * per_row * 4]
        rows_left = None if left[0] == tee_abi.INFER_UNLIMITED else int(left[0])
        if release[0] == InferRelease.SCORES:
            return Inference(InferRelease.SCORES, rows.view("<f4").reshape(n, per_row).copy(),
                             None, rows_left)
        labels = rows.view("<u4").reshape(n, per_row).astype(np.int64)
        if release[0] == InferRelease.LABEL:
            labels = labels[:, 0]
        return Inference(InferRelease(release[0]), None, labels, rows_left)

    # -- private training ---------------------------------------------------
    def install_policy(self, policy: bytes) -> None:
        """Install or replace the privacy policy (signed by the model signer)."""
        origin = self._native.ffi.new("uint32_t *")
        with self._lock:
            code = self._native.lib.edge_install_policy(self._c(), bytes(policy), len(policy),
                                                        origin)
        _raise_for(self._native, "install policy", code, origin[0])

    def budget(self) -> BudgetStatus:
        """Steps spent and left, rounds sealed, last round; read-only."""
        raw = self._get_buffer("edge_budget_status", "budget status", tee_abi.BUDGET_SIZE)
        return BudgetStatus.parse(raw)

    def verify_ticket(self, ticket: bytes, ree_time: int | None = None) -> TicketAccepted:
        """Check a round ticket; the session holds it for the next ``train_and_seal``."""
        now = int(time.time()) if ree_time is None else int(ree_time)
        if not 0 <= now < 2**64:
            raise errors.ConfigError(f"REE time {now} is not a u64 Unix time")
        ffi = self._native.ffi
        left, per_round = ffi.new("uint32_t *"), ffi.new("uint32_t *")
        origin = ffi.new("uint32_t *")
        with self._lock:
            code = self._native.lib.edge_verify_ticket(self._c(), bytes(ticket), len(ticket),
                                                       now, left, per_round, origin)
        if code == tee_abi.EDGE_ERR_WRONG_MODEL and origin[0] == tee_abi.ORIGIN_TRUSTED_APP:
            # The TA checked the signature: the ticket parses. Name both models.
            held = self.status()
            raise errors.WrongModel(wrong_model_text(parse_ticket(bytes(ticket)),
                                                     held.model_version, held.package_id),
                                    code=code, origin=origin[0])
        _raise_for(self._native, "verify ticket", code, origin[0])
        return TicketAccepted(left[0], per_round[0])

    def sign_skip(self, ticket: bytes, *, reason: int = tee_abi.SkipReason.NONE,
                  examples: int = 0, ree_time: int | None = None) -> bytes:
        """The signed skip report (docs/formats.md "Skip report") for a round ticket this
        device does not train: the TA's own refusal of it, with the field and both values,
        or the normal world's ``reason``; ``examples`` (n) adds the budget check.
        ``NothingToReport`` when the TA would train it and no reason is given."""
        now = int(time.time()) if ree_time is None else int(ree_time)
        if not 0 <= now < 2**64:
            raise errors.ConfigError(f"REE time {now} is not a u64 Unix time")
        ffi = self._native.ffi
        out = ffi.new("uint8_t[]", tee_abi.SKIP_REPORT_SIZE)
        out_len = ffi.new("size_t *", tee_abi.SKIP_REPORT_SIZE)
        refusal, field = ffi.new("uint32_t *"), ffi.new("uint32_t *")
        origin = ffi.new("uint32_t *")
        with self._lock:
            code = self._native.lib.edge_sign_skip(
                self._c(), bytes(ticket), len(ticket), now, int(reason), int(examples), out,
                out_len, refusal, field, origin)
        _raise_for(self._native, "sign skip", code, origin[0])
        return bytes(ffi.buffer(out, out_len[0]))

    def train_and_seal(self, features: np.ndarray, labels: np.ndarray) -> bytes:
        """DP-SGD on the head with the held ticket; return the sealed update bytes.

        On ``BudgetExhausted`` the message names the steps left.
        """
        x = np.ascontiguousarray(features, dtype="<f4")
        y = np.ascontiguousarray(labels)
        if x.ndim != 2 or x.shape[0] == 0:
            raise errors.Malformed(f"features must be a non-empty 2-D array, got {x.shape}")
        if (y.shape != (x.shape[0],) or y.dtype.kind not in "iu" or (y < 0).any()
                or (y >= 2**32).any()):
            raise errors.Malformed(
                f"labels must be {x.shape[0]} non-negative integers, got {y.dtype} {y.shape}")
        y = y.astype("<u4")
        n = x.shape[0]
        if n > tee_abi.MAX_TRAIN_EXAMPLES:
            raise errors.Oversized(f"{n} examples exceed {tee_abi.MAX_TRAIN_EXAMPLES}")
        if x.nbytes > tee_abi.MAX_TRAIN_FEATURE_BYTES:
            raise errors.Oversized(
                f"{x.nbytes} bytes of features exceed {tee_abi.MAX_TRAIN_FEATURE_BYTES}")
        ffi = self._native.ffi
        cap = (tee_abi.ENVELOPE_HEADER_SIZE + tee_abi.UPDATE_HEADER_SIZE
               + 4 * tee_abi.MAX_HEAD_PARAMS + tee_abi.SIG_SIZE)
        out = ffi.new("uint8_t[]", cap)
        out_len = ffi.new("size_t *", cap)
        origin = ffi.new("uint32_t *")
        with self._lock:
            code = self._native.lib.edge_train_and_seal(
                self._c(), ffi.from_buffer("float[]", x), n, x.nbytes,
                ffi.from_buffer("uint32_t[]", y), y.nbytes, out, out_len, origin)
        if code == tee_abi.EDGE_ERR_BUDGET_EXHAUSTED:
            try:
                left = f"{self.budget().steps_left} step(s) left"
            except errors.EdgeError as exc:
                left = f"steps left unknown ({exc.refusal})"
            raise errors.BudgetExhausted(
                f"train and seal: the round needs more steps than the budget has; {left}",
                code=code, origin=origin[0])
        _raise_for(self._native, "train and seal", code, origin[0])
        return bytes(ffi.buffer(out, out_len[0]))

    # -- secure aggregation (docs/secagg.md) ----------------------------------
    def install_registrar(self, registrar_pub: bytes) -> None:
        """Install the registrar key that signs enrollment certificates (once)."""
        if len(registrar_pub) != tee_abi.PUBKEY_SIZE:
            raise errors.Malformed(
                f"registrar public key is {len(registrar_pub)} bytes, expected 32")
        origin = self._native.ffi.new("uint32_t *")
        with self._lock:
            code = self._native.lib.edge_install_registrar(self._c(), bytes(registrar_pub),
                                                           origin)
        _raise_for(self._native, "install registrar", code, origin[0])

    def _in_out(self, fn_name: str, what: str, data: bytes, cap: int, *extra: int) -> bytes:
        ffi = self._native.ffi
        out = ffi.new("uint8_t[]", cap)
        out_len = ffi.new("size_t *", cap)
        origin = ffi.new("uint32_t *")
        with self._lock:
            code = getattr(self._native.lib, fn_name)(self._c(), bytes(data), len(data), *extra,
                                                      out, out_len, origin)
        _raise_for(self._native, what, code, origin[0])
        return bytes(ffi.buffer(out, out_len[0]))

    def secagg_advertise(self, ticket: bytes, ree_time: int | None = None) -> bytes:
        """Check a secure-aggregation ticket; return this round's advert signed by the TA."""
        now = int(time.time()) if ree_time is None else int(ree_time)
        if not 0 <= now < 2**64:
            raise errors.ConfigError(f"REE time {now} is not a u64 Unix time")
        return self._in_out("edge_secagg_advertise", "secagg advertise", ticket,
                            tee_abi.SECAGG_ADVERT_SIZE, now)

    def secagg_share(self, roster: bytes) -> bytes:
        """Verify the signed roster; return the signed bundle of shares for the neighbours."""
        cap = (tee_abi.ENVELOPE_HEADER_SIZE + tee_abi.SHARES_HEADER_SIZE
               + tee_abi.SECAGG_MAX_NEIGHBOURS * tee_abi.SECAGG_SHARES_ENTRY_SIZE
               + tee_abi.SIG_SIZE)
        return self._in_out("edge_secagg_share", "secagg share", roster, cap)

    def secagg_receive(self, inbox: bytes) -> None:
        """Hand the TA the signed inbox: the shares its neighbours sent it."""
        origin = self._native.ffi.new("uint32_t *")
        with self._lock:
            code = self._native.lib.edge_secagg_receive(self._c(), bytes(inbox), len(inbox),
                                                        origin)
        _raise_for(self._native, "secagg receive", code, origin[0])

    def secagg_unmask(self, survivors: bytes) -> bytes:
        """Hand the TA the signed survivor list; return its signed reveals."""
        cap = (tee_abi.ENVELOPE_HEADER_SIZE + tee_abi.REVEALS_HEADER_SIZE
               + (tee_abi.SECAGG_MAX_NEIGHBOURS + 1) * tee_abi.SECAGG_REVEAL_ENTRY_SIZE
               + tee_abi.SIG_SIZE)
        return self._in_out("edge_secagg_unmask", "secagg unmask", survivors, cap)
