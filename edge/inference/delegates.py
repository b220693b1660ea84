"""Loading NPU delegates by the ``npu_delegate`` setting, and measuring what they took."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from edge.inference.runtime import KNOWN_DELEGATES, Runtime, check_delegate_library

log = logging.getLogger("edge.inference")

DELEGATE_NODE = "DELEGATE"


@dataclass
class DelegateReport:
    """Where a backbone runs: the NPU delegate if any, and how much of the graph each took."""

    requested: str
    runtime: str = ""
    runtime_version: str = ""
    num_threads: int = 1
    npu_delegate: str | None = None
    ops_total: int = 0
    ops_on_npu: int = 0
    npu_partitions: int = 0
    ops_on_xnnpack: int = 0
    xnnpack_partitions: int = 0
    ops_on_cpu_kernels: int = 0
    probed: dict[str, str] = field(default_factory=dict)
    fallback_reason: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def accelerator(self) -> str:
        """``npu:<library>`` or ``cpu``."""
        return f"npu:{self.npu_delegate}" if self.npu_delegate else "cpu"

    @property
    def partly_delegated(self) -> bool:
        """Whether an NPU delegate was applied but left some operators to the CPU."""
        return self.npu_delegate is not None and self.ops_on_npu < self.ops_total

    def warn(self, message: str) -> None:
        """Record a warning in the report and log it."""
        self.warnings.append(message)
        log.warning("%s", message)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**self.__dict__, "accelerator": self.accelerator,
                "partly_delegated": self.partly_delegated}


def load_npu_delegate(runtime: Runtime, setting: str, options: dict[str, str] | None,
                      report: DelegateReport) -> tuple[Any, str] | None:
    """The loaded delegate and its library for ``setting``, or None (reason in ``report``)."""
    if setting == "none":
        report.fallback_reason = "npu_delegate = 'none': running on the CPU"
        log.info("%s", report.fallback_reason)
        return None
    candidates = [lib for lib, _ in KNOWN_DELEGATES] if setting == "auto" else [setting]
    for library in candidates:
        why = check_delegate_library(library)
        if not why:
            try:
                return runtime.module.load_delegate(library, options or None), library
            except (OSError, ValueError, RuntimeError, AttributeError) as exc:
                why = f"{library}: the delegate refused to start: {exc}".strip()
        report.probed[library] = why
        if setting != "auto":
            report.warn(f"npu_delegate = {setting!r} failed to load, running on the CPU: {why}")
    if setting == "auto":
        reason = "; ".join(report.probed.values())
        report.fallback_reason = f"no NPU delegate on this machine ({reason})"
        log.warning("npu_delegate = 'auto': %s; running on the CPU (XNNPACK where it applies)",
                    report.fallback_reason)
    else:
        report.fallback_reason = report.warnings[-1]
    return None


def _covered(wrapper: Any, first: int, stop: int, originals: int) -> tuple[set[int], int]:
    """Original nodes inside the delegate kernels numbered [first, stop), and their count.

    A delegate replaces each convex subset of nodes it claims with one new node whose
    inputs and outputs are the subset's boundary tensors; walking producers back from
    those outputs, stopping at its inputs, finds exactly the replaced nodes.
    """
    producer = {t: n for n in range(originals) for t in wrapper.NodeOutputs(n)}
    covered: set[int] = set()
    for node in range(first, stop):
        inputs = set(wrapper.NodeInputs(node))
        stack = [t for t in wrapper.NodeOutputs(node) if t >= 0]
        while stack:
            t = stack.pop()
            n = producer.get(t)
            if t in inputs or n is None or n in covered:
                continue
            covered.add(n)
            stack.extend(i for i in wrapper.NodeInputs(n) if i >= 0)
    return covered, stop - first


def measure_delegation(wrapper: Any, nodes_after_npu: int, report: DelegateReport) -> None:
    """Fill the report's operator counts from the interpreter's node table.

    ``wrapper`` is the interpreter's native ``_interpreter``: its ``NumNodes`` counts the
    model's operators followed by one node per delegated partition (named ``DELEGATE``),
    the NPU delegate's added at creation, XNNPACK's at ``allocate_tensors``.
    """
    total = wrapper.NumNodes()
    names = [wrapper.NodeName(n) for n in range(total)]
    originals = names.index(DELEGATE_NODE) if DELEGATE_NODE in names else total
    npu, report.npu_partitions = _covered(wrapper, originals, nodes_after_npu, originals)
    xnn, report.xnnpack_partitions = _covered(wrapper, nodes_after_npu, total, originals)
    report.ops_total, report.ops_on_npu = originals, len(npu)
    report.ops_on_xnnpack = len(xnn - npu)
    report.ops_on_cpu_kernels = originals - len(npu | xnn)
    if report.partly_delegated:
        left = sorted({names[n] for n in range(originals) if n not in npu})
        report.warn(f"{report.npu_delegate} took {len(npu)} of {originals} operators in "
                    f"{report.npu_partitions} partition(s); {', '.join(left)} run on the CPU")
    elif report.npu_delegate is None and report.ops_on_cpu_kernels:
        log.info("XNNPACK took %d of %d operators; %d run on the builtin CPU kernels",
                 report.ops_on_xnnpack, originals, report.ops_on_cpu_kernels)
