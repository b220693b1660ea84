"""Finding and loading the native libraries: a libteec, then libedge_client.

The backend is chosen by which libteec the process loads first, with
``RTLD_GLOBAL``: libedge_client leaves its ``TEEC_*`` symbols undefined and
they bind to that library. So one process talks to one backend; asking for
the other one later raises :class:`~edge.errors.TeeUnavailable`.
"""

from __future__ import annotations

import ctypes.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cffi

from edge.errors import TeeUnavailable

BACKENDS = ("sim", "optee")

CDEF = """
typedef struct edge_client edge_client;
uint32_t edge_client_open(const char *tee_name, edge_client **out, uint32_t *origin);
void edge_client_close(edge_client *c);
uint32_t edge_get_identity(edge_client *c, uint8_t *record, size_t *record_len,
                           uint32_t *origin);
uint32_t edge_get_status(edge_client *c, uint8_t *status, size_t *status_len,
                         uint32_t *origin);
uint32_t edge_install_anchors(edge_client *c, const uint8_t *signer_pub,
                              const uint8_t *aggregator_pub, uint32_t *origin);
uint32_t edge_replace_anchor(edge_client *c, const uint8_t *statement,
                             size_t statement_len, uint32_t *origin);
uint32_t edge_load_begin(edge_client *c, const uint8_t *manifest, size_t manifest_len,
                         uint32_t *chunk_count, uint32_t *flags, uint32_t *chunk_size,
                         uint32_t *last_stored_size, uint32_t *origin);
uint32_t edge_load_chunk(edge_client *c, uint32_t index, const uint8_t *stored,
                         size_t stored_len, uint8_t *plain, size_t *plain_len,
                         uint32_t *origin);
uint32_t edge_load_finish(edge_client *c, uint64_t *version, uint32_t *origin);
uint32_t edge_load_abort(edge_client *c, uint32_t *origin);
uint32_t edge_load_model_buffer(edge_client *c, const uint8_t *package, size_t package_len,
                                uint8_t *backbone, size_t *backbone_len, uint64_t *version,
                                uint32_t *origin);
uint32_t edge_load_model_file(edge_client *c, const char *package_path,
                              const char *backbone_path, uint64_t *backbone_len,
                              uint64_t *version, uint32_t *origin);
uint32_t edge_infer(edge_client *c, const float *features, uint32_t n, size_t features_len,
                    void *out, size_t *out_len, uint32_t *release, uint32_t *rows_left,
                    uint32_t *origin);
uint32_t edge_verify_ticket(edge_client *c, const uint8_t *ticket, size_t ticket_len,
                            uint64_t ree_time, uint32_t *steps_left, uint32_t *steps_per_round,
                            uint32_t *origin);
uint32_t edge_train_and_seal(edge_client *c, const float *features, uint32_t n,
                             size_t features_len, const uint32_t *labels, size_t labels_len,
                             uint8_t *update, size_t *update_len, uint32_t *origin);
uint32_t edge_budget_status(edge_client *c, uint8_t *block, size_t *block_len,
                            uint32_t *origin);
uint32_t edge_install_policy(edge_client *c, const uint8_t *policy, size_t policy_len,
                             uint32_t *origin);
const char *edge_result_name(uint32_t result);
"""

# A platform wheel (scripts/bundle.sh) carries the libraries inside the package;
# a source checkout has them in build/host after `make`.
_PACKAGED = Path(__file__).resolve().parent / "_native"
_REPO_BUILD = Path(__file__).resolve().parent.parent / "build" / "host"
_REAL_LIBTEEC = ("libteec.so.2", "libteec.so.1")

_lock = threading.Lock()
_loaded: Native | None = None


@dataclass(frozen=True)
class Native:
    """The loaded libraries of one backend."""

    backend: str
    ffi: cffi.FFI
    lib: object
    libteec_path: str
    native_dir: Path


def native_dir() -> Path:
    """Directory holding libedge_client.so (and, for 'sim', the simulated secure world).

    ``EDGE_NATIVE_DIR`` first (development, other builds), then the installed
    package's own ``edge/_native``, then this checkout's ``build/host``.
    """
    override = os.environ.get("EDGE_NATIVE_DIR")
    if override:
        return Path(override)
    if (_PACKAGED / "libedge_client.so").exists():
        return _PACKAGED
    return _REPO_BUILD


def _find_real_libteec() -> str:
    found = ctypes.util.find_library("teec")
    candidates = ([found] if found else []) + list(_REAL_LIBTEEC)
    for name in candidates:
        try:
            ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        return name
    raise TeeUnavailable(
        "no OP-TEE client library (libteec.so.1 or libteec.so.2) found; "
        "install optee-client / libteec on the board, or use --tee sim"
    )


def load(backend: str) -> Native:
    """Load the libraries of ``backend`` ('sim' or 'optee') once per process."""
    global _loaded
    if backend not in BACKENDS:
        raise TeeUnavailable(f"unknown TEE backend {backend!r}; choose one of {BACKENDS}")
    with _lock:
        if _loaded is not None:
            if _loaded.backend != backend:
                raise TeeUnavailable(
                    f"this process already uses the {_loaded.backend!r} TEE backend; "
                    f"one process talks to one backend"
                )
            return _loaded
        ndir = native_dir()
        client = ndir / "libedge_client.so"
        if not client.exists():
            raise TeeUnavailable(
                f"{client} is missing: install the platform wheel of the board bundle "
                f"(docs/board.md), or in a checkout build it with `make` (scripts/setup.sh), "
                f"or set EDGE_NATIVE_DIR"
            )
        if backend == "sim":
            teec = ndir / "libteec_sim.so"
            if not teec.exists():
                raise TeeUnavailable(f"{teec} is missing: the simulated secure world ships "
                                     f"in the x86_64 bundle's wheel, or build it with `make`")
            ctypes.CDLL(str(teec), mode=ctypes.RTLD_GLOBAL)
            teec_path = str(teec)
        else:
            if not Path("/dev/tee0").exists():
                raise TeeUnavailable(
                    "no /dev/tee0: the OP-TEE driver is not loaded "
                    "(modprobe optee) or this board has no OP-TEE"
                )
            teec_path = _find_real_libteec()
        ffi = cffi.FFI()
        ffi.cdef(CDEF)
        lib = ffi.dlopen(str(client))
        _loaded = Native(backend, ffi, lib, teec_path, ndir)
        return _loaded
