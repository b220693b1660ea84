"""Which TFLite runtime is used (tflite-runtime or ai-edge-litert) and which delegates exist."""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import importlib.util
import logging
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from edge.errors import ConfigError

log = logging.getLogger("edge.inference")

RuntimeName = Literal["auto", "tflite-runtime", "ai-edge-litert"]

# (distribution, interpreter module), in the order "auto" tries them: the vendor
# board images ship tflite-runtime; pip on a fresh machine with numpy 2 gives ai-edge-litert.
RUNTIMES: dict[str, tuple[str, str]] = {
    "tflite-runtime": ("tflite-runtime", "tflite_runtime.interpreter"),
    "ai-edge-litert": ("ai-edge-litert", "ai_edge_litert.interpreter"),
}

# Delegate libraries that npu_delegate = "auto" probes, in order (docs/inference.md).
KNOWN_DELEGATES: tuple[tuple[str, str], ...] = (
    ("libvx_delegate.so", "NXP VX delegate (i.MX 8M Plus / i.MX 93 NPU)"),
    ("libethosu_delegate.so", "Arm Ethos-U delegate"),
    ("libarmnnDelegate.so", "Arm NN delegate (Mali GPU / Cortex-A NEON)"),
    ("libedgetpu.so.1", "Coral Edge TPU"),
)


@dataclass(frozen=True)
class Runtime:
    """An importable TFLite runtime: its name, version and interpreter module."""

    name: str
    version: str
    module: ModuleType

    @property
    def interpreter_class(self) -> Any:
        """The runtime's ``Interpreter`` class."""
        return self.module.Interpreter


def _numpy_major() -> int:
    return int(np.__version__.split(".")[0])


def _try_runtime(name: str) -> tuple[Runtime | None, str]:
    dist, module_name = RUNTIMES[name]
    if name == "tflite-runtime" and _numpy_major() >= 2:
        # It imports with numpy 2 but fails when an Interpreter is created.
        return None, f"tflite-runtime needs numpy<2, this is numpy {np.__version__}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, f"{name} is not importable ({exc})"
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return Runtime(name, version, module), ""


def select_runtime(name: str = "auto") -> Runtime:
    """The configured runtime, or under ``"auto"`` the first importable one; ConfigError if none."""
    if name not in ("auto", *RUNTIMES):
        raise ConfigError(f"runtime = {name!r}: expected 'auto', 'tflite-runtime' or "
                          f"'ai-edge-litert'")
    reasons = []
    for candidate in RUNTIMES if name == "auto" else (name,):
        runtime, reason = _try_runtime(candidate)
        if runtime is not None:
            if reasons:
                log.warning("runtime = 'auto': using %s because %s", runtime.name,
                            "; ".join(reasons))
            return runtime
        installed = importlib.util.find_spec(RUNTIMES[candidate][1].split(".")[0]) is not None
        if name != "auto" or installed:  # an absent runtime is expected under "auto"
            reasons.append(reason)
    reasons = reasons or ["neither tflite-runtime nor ai-edge-litert is installed"]
    raise ConfigError(f"runtime = {name!r}: no usable TFLite runtime: {'; '.join(reasons)}; "
                      f"install one with pip install 'edge-tee[litert]' (numpy 2) or "
                      f"'edge-tee[tflite]' (numpy<2)")


def check_delegate_library(library: str) -> str:
    """Why ``library`` cannot be a TFLite external delegate, or "" if it looks like one."""
    try:
        lib = ctypes.CDLL(library)
    except OSError as exc:
        return f"cannot load {exc}"
    missing = [sym for sym in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate")
               if not hasattr(lib, sym)]
    if missing:
        return f"{library} is not a TFLite external delegate (no {', '.join(missing)})"
    return ""


def find_delegates() -> list[str]:
    """The known NPU delegate libraries that this machine can load."""
    return [lib for lib, _ in KNOWN_DELEGATES if not check_delegate_library(lib)]


def runtime_info(name: str = "auto") -> dict[str, Any]:
    """What ``edge info`` prints: runtime, version, delegates found, numpy version."""
    info: dict[str, Any] = {"runtime": None, "runtime_version": None,
                            "numpy_version": np.__version__, "cpu_count": os.cpu_count(),
                            "delegates_found": find_delegates(),
                            "delegates_probed": [lib for lib, _ in KNOWN_DELEGATES],
                            "runtime_error": None}
    try:
        runtime = select_runtime(name)
    except ConfigError as exc:
        info["runtime_error"] = str(exc)
    else:
        info["runtime"], info["runtime_version"] = runtime.name, runtime.version
    return info
