"""What the aggregator checks at start about the backbone it ships: that it is a TFLite
model, that the package metadata the boards build it from says what the ``.tflite`` itself
says, and that the head takes the backbone's output (else every board skips every round
with ``backbone-unusable`` or ``feature-shape``, and only the boards' logs say why)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, EdgeError

_DTYPES = {0: "float32", 2: "int32", 3: "uint8", 9: "int8"}  # TFLite TensorType codes


def tflite_io(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input, output) of a one-input, one-output TFLite model, each ``{"shape", "dtype"}``,
    read with the TFLite schema (no interpreter)."""
    from edge.inference.backbone import check_tflite_file

    check_tflite_file(path)
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise ConfigError(f"aggregator.backbone: reading the tensor shapes of {path} needs the "
                          "TFLite schema: pip install 'edge-tee[litert]'") from None
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(path.read_bytes(), 0))
    graph = model.subgraphs[0] if model.subgraphs else None
    if graph is None or len(graph.inputs if graph.inputs is not None else []) != 1 \
            or len(graph.outputs if graph.outputs is not None else []) != 1:
        raise ConfigError(f"aggregator.backbone: {path} must have one subgraph with one input "
                          "and one output")

    def tensor(index: int) -> dict[str, Any]:
        t = graph.tensors[index]
        signature = t.shapeSignature if t.shapeSignature is not None else t.shape
        shape = [int(d) for d in (signature if signature is not None else [])]
        return {"shape": shape, "dtype": _DTYPES.get(int(t.type), f"type {t.type}")}

    return tensor(int(graph.inputs[0])), tensor(int(graph.outputs[0]))


def load_metadata(config: Any) -> dict[str, Any] | None:
    """The package metadata JSON object (``aggregator.backbone_metadata``), if configured."""
    if config.backbone_metadata is None:
        return None
    try:
        meta = json.loads(Path(config.backbone_metadata).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"aggregator.backbone_metadata: not a readable JSON file ({exc})") \
            from None
    if not isinstance(meta, dict):
        raise ConfigError("aggregator.backbone_metadata: must hold a JSON object")
    return meta


def check_backbone(config: Any, metadata: dict[str, Any] | None, head_in: int) -> None:
    """ConfigError naming the key unless the backbone, its metadata and the head agree."""
    if config.backbone is None:
        return
    from edge.inference.backbone import check_metadata

    try:
        inp, out = tflite_io(Path(config.backbone))
    except EdgeError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"aggregator.backbone: {exc}") from None
    if metadata is None:
        raise ConfigError("aggregator.backbone_metadata: required with aggregator.backbone: "
                          "the boards build the backbone from it (without it every board "
                          "skips every round: backbone-unusable)")
    try:
        check_metadata(metadata)
    except EdgeError as exc:
        raise ConfigError(f"aggregator.backbone_metadata: {exc}") from None
    for side, actual in (("input", inp), ("output", out)):
        spec = metadata[side]
        want = [-1 if d is None else int(d) for d in spec["shape"]]
        if spec["dtype"] != actual["dtype"] or want[1:] != actual["shape"][1:] \
                or len(want) != len(actual["shape"]):
            raise ConfigError(
                f"aggregator.backbone_metadata: {side} is {spec['dtype']} {want}, "
                f"{config.backbone} says {actual['dtype']} {actual['shape']} (batch dimension "
                "free): every board would refuse the backbone (backbone-unusable)")
    features = math.prod(out["shape"][1:])
    if features != head_in:
        raise ConfigError(
            f"aggregator.initial_head: the head takes {head_in} features, the backbone "
            f"{config.backbone} gives {features} (output shape {out['shape']}): every board "
            "would skip every round (feature-shape)")
