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

_REPO = Path(__file__).resolve().parent.parent
_REPO_BUILD = _REPO / "build" / "host"
_REPO_HEADER = _REPO / "host" / "include" / "edge_client.h"
# A platform wheel (scripts/bundle.sh) carries the libraries and the header inside
# the package; a source checkout has them in build/host (after `make`) and host/include.
_PACKAGED = Path(__file__).resolve().parent / "_native"
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


def client_header() -> Path:
    """The shipped C header of libedge_client: next to the library, else in the source tree."""
    beside = native_dir() / "edge_client.h"
    for path in (beside, _REPO_HEADER):
        if path.exists():
            return path
    raise TeeUnavailable(
        f"{beside} is missing: install host/include/edge_client.h beside libedge_client.so"
    )


def cdef_source(header: str) -> str:
    """The declarations of a C header as cffi's cdef takes them: preprocessor lines
    dropped, and with them whatever only a C++ compiler sees."""
    out, skip, depth = [], False, 0
    for line in header.splitlines():
        word = line.strip()
        if word.startswith("#"):
            directive = word[1:].strip()
            if directive.startswith(("if", "ifdef", "ifndef")):
                depth += 1
                if directive == "ifdef __cplusplus":
                    skip = depth
            elif directive.startswith("endif"):
                if skip == depth:
                    skip = False
                depth -= 1
            continue
        if not skip:
            out.append(line)
    return "\n".join(out)


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
        ffi.cdef(cdef_source(client_header().read_text()))
        lib = ffi.dlopen(str(client))
        _loaded = Native(backend, ffi, lib, teec_path, ndir)
        return _loaded
