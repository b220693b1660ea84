"""The backbone: a verified int8 ``.tflite`` run by TFLite on the NPU or the CPU."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ConfigError, DelegateUnavailable, Malformed, ModelMismatch, UnverifiedModel
from edge.inference.delegates import DelegateReport, load_npu_delegate, measure_delegation
from edge.inference.runtime import select_runtime
from edge.inference.runtime_log import runtime_messages
from edge.toml_config import Table

if TYPE_CHECKING:
    from edge.tee import LoadedModel

log = logging.getLogger("edge.inference")

DTYPES = ("int8", "uint8", "float32")
RUNTIME_NAMES = ("auto", "tflite-runtime", "ai-edge-litert")
MAX_THREADS = 2**31 - 1  # TFLite takes a C int


@dataclass(frozen=True)
class InferenceConfig:
    """The ``[inference]`` settings: runtime, NPU delegate, threads."""

    runtime: str = "auto"
    npu_delegate: str = "auto"
    num_threads: int = 1
    require_npu: bool = False
    delegate_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked here, when the configuration is read, not when the first model loads.
        if self.runtime not in RUNTIME_NAMES:
            raise ConfigError(f"inference.runtime: must be one of "
                              f"{', '.join(repr(r) for r in RUNTIME_NAMES)}, got {self.runtime!r}")
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) \
                or not 1 <= self.num_threads <= MAX_THREADS:
            raise ConfigError(f"inference.num_threads: must be an integer in 1..{MAX_THREADS}, "
                              f"got {self.num_threads!r}")
        if not self.npu_delegate:
            raise ConfigError("inference.npu_delegate: must be \"auto\", \"none\" or a library "
                              "path, got ''")
        if self.require_npu and self.npu_delegate == "none":
            raise ConfigError("inference.require_npu: true contradicts npu_delegate = \"none\"")

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> InferenceConfig:
        """From the ``[inference]`` table of a TOML file; ConfigError names a bad key."""
        return cls.from_table(Table(table, "inference", INFERENCE_KEYS, Path.cwd()))

    @classmethod
    def from_table(cls, table: Table) -> InferenceConfig:
        """Validate the ``[inference]`` table of a configuration."""
        default = cls()
        return cls(runtime=table.string("runtime", default.runtime),
                   npu_delegate=table.string("npu_delegate", default.npu_delegate),
                   num_threads=table.integer("num_threads", default.num_threads, lo=1,
                                             hi=MAX_THREADS),
                   require_npu=table.boolean("require_npu", default.require_npu),
                   delegate_options=table.mapping("delegate_options"))


INFERENCE_KEYS = ("runtime", "npu_delegate", "num_threads", "require_npu", "delegate_options")


def check_metadata(metadata: dict[str, Any]) -> None:
    """Refuse metadata that lacks a well-formed input and output description."""
    for side in ("input", "output"):
        spec = metadata.get(side) if isinstance(metadata, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list | tuple):
            raise Malformed(f"model metadata: {side!r} needs a 'shape' list and a 'dtype'")
        if spec.get("dtype") not in DTYPES:
            raise Malformed(f"model metadata: {side}.dtype = {spec.get('dtype')!r}, "
                            f"expected one of {', '.join(DTYPES)}")


def _check_tensor(side: str, details: dict[str, Any], spec: dict[str, Any]) -> None:
    """ModelMismatch unless a tensor matches its metadata (the batch dimension is free)."""
    actual = [int(d) for d in details.get("shape_signature", details["shape"])]
    want = [int(d) if d is not None else -1 for d in spec["shape"]]
    dtype = np.dtype(details["dtype"]).name
    if dtype != spec["dtype"]:
        raise ModelMismatch(f"model {side} {details['name']!r} is {dtype}, "
                            f"the package metadata says {spec['dtype']}")
    if len(actual) != len(want) or actual[1:] != want[1:]:
        raise ModelMismatch(f"model {side} {details['name']!r} has shape {actual}, "
                            f"the package metadata says {want} (batch dimension free)")
    if dtype != "float32" and not details["quantization"][0]:
        raise ModelMismatch(f"model {side} {details['name']!r} is {dtype} without a scale")


def check_flatbuffer(model: bytes, runtime_name: str) -> None:
    """Malformed if ``model`` does not parse as a TFLite flatbuffer (for tflite-runtime).

    ai-edge-litert runs TFLite's flatbuffer verifier when an interpreter is created;
    tflite-runtime 2.14 does not, and truncated bytes crash the process (SIGSEGV) there. So
    before handing bytes to tflite-runtime every table and vector of the model is read with
    the TFLite schema's Python object API (bounds-checked, about 1 ms), when it is
    importable (it ships in ai-edge-litert); without it the bytes go to the runtime as they are.
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        log.debug("no TFLite schema (ai-edge-litert) here: %s gets the model unchecked",
                  runtime_name)
        return
    try:
        schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    except Exception as exc:  # struct.error, IndexError, ValueError, ... from a bad offset
        raise Malformed(f"backbone refused by {runtime_name}: the flatbuffer does not parse "
                        f"({type(exc).__name__}: {exc})") from exc


def check_tflite_file(path: Path) -> None:
    """Malformed unless ``path`` holds a TFLite model: checked where it is signed and shipped.

    No interpreter is needed: the flatbuffer's identifier (``TFL3``), its root table and
    vtable are bounds-checked here, and the whole model is read with the TFLite schema when
    ai-edge-litert provides it. Refusing here keeps a garbage file from being signed and
    sent to every device, which would each refuse it only after loading the package.
    """
    try:
        model = path.read_bytes()
    except OSError as exc:
        raise Malformed(f"backbone {path}: cannot read it ({exc.strerror})") from None
    if len(model) < 16 or model[4:8] != b"TFL3":
        raise Malformed(f"backbone {path} is not a TFLite model ({len(model)} bytes, "
                        f"identifier {bytes(model[4:8])!r}, expected b'TFL3')")
    root = int.from_bytes(model[0:4], "little")
    if not 8 <= root <= len(model) - 4:
        raise Malformed(f"backbone {path}: root table offset {root} outside the file")
    vtable = root - int.from_bytes(model[root:root + 4], "little", signed=True)
    if not 0 <= vtable <= len(model) - 4:
        raise Malformed(f"backbone {path}: root vtable offset {vtable} outside the file")
    vt_size = int.from_bytes(model[vtable:vtable + 2], "little")
    if vt_size < 4 or vt_size % 2 or vtable + vt_size > len(model):
        raise Malformed(f"backbone {path}: root vtable of {vt_size} bytes is not valid")
    check_flatbuffer(model, "the TFLite schema")


class Backbone:
    """A loaded backbone; ``run`` takes and returns float batches."""

    def __init__(self, model: bytes, metadata: dict[str, Any],
                 config: InferenceConfig | None = None) -> None:
        """Use :meth:`from_verified` or :meth:`from_file`; this trusts ``model``."""
        config = config or InferenceConfig()
        check_metadata(metadata)
        if len(model) < 8 or model[4:8] != b"TFL3":
            raise Malformed(f"backbone is not a TFLite model ({len(model)} bytes, "
                            f"identifier {bytes(model[4:8])!r}, expected b'TFL3')")
        runtime = select_runtime(config.runtime)
        if runtime.name == "tflite-runtime":
            check_flatbuffer(bytes(model), runtime.name)
        self.report = DelegateReport(config.npu_delegate, runtime.name, runtime.version,
                                     config.num_threads)
        loaded = load_npu_delegate(runtime, config.npu_delegate, config.delegate_options,
                                   self.report)
        delegates = [loaded[0]] if loaded else []
        self.report.npu_delegate = loaded[1] if loaded else None
        with runtime_messages(log):
            try:
                self._it = self._interpreter(runtime, bytes(model), delegates, config.num_threads)
            except (ValueError, RuntimeError) as exc:
                if not delegates:
                    raise Malformed(f"backbone refused by {runtime.name}: {exc}".strip()) from exc
                self.report.warn(f"{self.report.npu_delegate} could not take the graph ({exc}); "
                                 f"running on the CPU")
                self.report.npu_delegate, delegates = None, []
                self._it = self._interpreter(runtime, bytes(model), [], config.num_threads)
            nodes_after_npu = self._it._interpreter.NumNodes()
            try:
                self._it.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise Malformed(f"backbone refused by {runtime.name}: {exc}".strip()) from exc
            measure_delegation(self._it._interpreter, nodes_after_npu, self.report)
        if config.require_npu and (self.report.npu_delegate is None
                                   or self.report.partly_delegated):
            raise DelegateUnavailable("require_npu = true: " + (
                self.report.warnings[-1] if self.report.warnings
                else self.report.fallback_reason or "no NPU delegate"))
        inputs, outputs = self._it.get_input_details(), self._it.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelMismatch(f"backbone has {len(inputs)} inputs and {len(outputs)} "
                                f"outputs, expected one of each")
        _check_tensor("input", inputs[0], metadata["input"])
        _check_tensor("output", outputs[0], metadata["output"])
        self._in, self._out = inputs[0], outputs[0]
        self._delegates = delegates  # kept alive as long as the interpreter
        self._batch = int(self._in["shape"][0])

    @staticmethod
    def _interpreter(runtime: Any, model: bytes, delegates: list[Any], threads: int) -> Any:
        return runtime.interpreter_class(model_content=model, experimental_delegates=delegates,
                                         num_threads=threads)

    @classmethod
    def from_verified(cls, model: bytes, metadata: dict[str, Any],
                      config: InferenceConfig | None = None) -> Backbone:
        """Load backbone bytes that the trusted application returned after verifying a package."""
        return cls(model, metadata, config)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, metadata: dict[str, Any],
                    config: InferenceConfig | None = None) -> Backbone:
        """Load the backbone of a package the TA accepted (``TrustedApp.load_model``)."""
        if loaded.backbone is not None:
            return cls(loaded.backbone, metadata, config)
        if loaded.backbone_path is not None:
            return cls(Path(loaded.backbone_path).read_bytes(), metadata, config)
        raise Malformed(f"model package version {loaded.version} carries no backbone")

    @classmethod
    def from_file(cls, path: str | Path, metadata: dict[str, Any],
                  config: InferenceConfig | None = None, *,
                  allow_unverified: bool = False) -> Backbone:
        """Load a ``.tflite`` file that no TA verified: refused unless ``allow_unverified``."""
        if not allow_unverified:
            raise UnverifiedModel(f"refusing to load {path}: it did not pass the trusted "
                                  f"application's verification (load a signed package, or "
                                  f"opt into the unverified development mode)")
        log.warning("UNVERIFIED MODEL: loading %s without signature verification "
                    "(development mode; never do this on a deployed board)", path)
        return cls(Path(path).read_bytes(), metadata, config)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape."""
        return tuple(int(d) for d in self._in["shape"][1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample output shape."""
        return tuple(int(d) for d in self._out["shape"][1:])

    @property
    def input_quantization(self) -> tuple[float, int]:
        """The model's input (scale, zero point); scale 0 for a float input."""
        return self._in["quantization"]

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._it.resize_tensor_input(self._in["index"], [batch, *self.input_shape])
            self._it.allocate_tensors()
            self._out = self._it.get_output_details()[0]
            self._batch = batch

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """Run on a batch already in the model's input type; the raw output tensor."""
        x = np.asarray(x)
        if x.shape[1:] != self.input_shape or x.dtype != self._in["dtype"]:
            raise ModelMismatch(f"input batch {x.shape} {x.dtype}, expected "
                                f"(n, {', '.join(map(str, self.input_shape))}) "
                                f"{np.dtype(self._in['dtype']).name}")
        self._resize(len(x))
        self._it.set_tensor(self._in["index"], np.ascontiguousarray(x))
        self._it.invoke()
        return self._it.get_tensor(self._out["index"])

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float inputs in the model's input type, with its own scale and zero point."""
        dtype = np.dtype(self._in["dtype"])
        scale, zp = self._in["quantization"]
        if dtype == np.float32:
            return np.asarray(x, np.float32)
        info = np.iinfo(dtype)
        q = np.rint(np.asarray(x, np.float32) / np.float32(scale)) + zp
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        """Raw outputs as float32, with the model's output scale and zero point."""
        scale, zp = self._out["quantization"]
        if y.dtype == np.float32:
            return y
        return (y.astype(np.float32) - np.float32(zp)) * np.float32(scale)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Float features for a float batch (or one sample) of inputs."""
        x = np.asarray(x, np.float32)
        single = x.shape == self.input_shape
        y = self.dequantize_output(self.run_raw(self.quantize_input(x[None] if single else x)))
        return y[0] if single else y
