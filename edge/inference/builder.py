"""Writes a quantized net as a full-integer int8 ``.tflite`` flatbuffer, without TensorFlow.

The TFLite schema comes from ``ai_edge_litert.schema_py_generated`` (the object API
generated from ``schema.fbs``) and is serialized with the ``flatbuffers`` package:
TensorFlow would add about 1.5 GB to build a few kilobytes of int8 tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import ConfigError
from edge.inference.graph import Conv2D, Dense, Pool2D, QParams, QuantNet, output_shape

TFLITE_IDENTIFIER = b"TFL3"


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:
        raise ConfigError("building models needs the TFLite schema from ai-edge-litert: "
                          "pip install 'edge-tee[litert]'") from exc
    return schema


class _Writer:
    """Accumulates tensors, buffers and operators of one subgraph."""

    def __init__(self, schema: Any) -> None:
        self.s = schema
        self.buffers: list[Any] = [schema.BufferT()]  # buffer 0 is the empty sentinel
        self.tensors: list[Any] = []
        self.operators: list[Any] = []
        self.opcodes: dict[tuple[int, int], int] = {}

    def tensor(self, name: str, shape: list[int], ttype: int, data: np.ndarray | None = None,
               scales: list[float] | None = None, zero_points: list[int] | None = None,
               axis: int = 0) -> int:
        t = self.s.TensorT()
        t.name, t.shape, t.type = name, list(shape), ttype
        t.shapeSignature = [-1, *shape[1:]] if data is None else None
        if data is not None:
            buf = self.s.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if scales is not None:
            q = self.s.QuantizationParametersT()
            q.scale = [float(v) for v in scales]
            q.zeroPoint = [int(v) for v in (zero_points or [0] * len(scales))]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def act(self, name: str, shape: tuple[int, ...], qp: QParams) -> int:
        return self.tensor(name, [1, *shape], self.s.TensorType.INT8,
                           scales=[qp.scale], zero_points=[qp.zero_point])

    def op(self, code: int, version: int, inputs: list[int], outputs: list[int],
           options_type: int = 0, options: Any = None) -> None:
        index = self.opcodes.setdefault((code, version), len(self.opcodes))
        o = self.s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = index, inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        import flatbuffers

        s = self.s
        sub = s.SubGraphT()
        sub.tensors, sub.operators, sub.inputs, sub.outputs = (
            self.tensors, self.operators, inputs, outputs)
        sub.name = "main"
        model = s.ModelT()
        model.version, model.description = 3, description
        model.subgraphs, model.buffers = [sub], self.buffers
        codes = []
        for code, version in sorted(self.opcodes, key=self.opcodes.__getitem__):
            oc = s.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
            codes.append(oc)
        model.operatorCodes = codes
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
        return bytes(builder.Output())


def build_tflite(net: QuantNet, description: str = "edge backbone") -> bytes:
    """The ``.tflite`` bytes of a quantized net: int8 input and output, batch 1 (resizable)."""
    s = _schema()
    w = _Writer(s)
    ops, act_none, act_relu = s.BuiltinOperator, s.ActivationFunctionType.NONE, \
        s.ActivationFunctionType.RELU
    shape = net.input_shape
    first = cur = w.act("input", shape, net.input)
    for i, ql in enumerate(net.layers):
        layer = ql.layer
        nxt = output_shape(type(net)(shape, net.input, (ql,)))
        if isinstance(layer, Dense | Conv2D):
            assert ql.w_q is not None and ql.w_scales is not None and ql.b_q is not None
            wt = w.tensor(f"l{i}/weights", list(ql.w_q.shape), s.TensorType.INT8, ql.w_q,
                          scales=list(ql.w_scales))
            bias_scales = [float(np.float32(w_s) * np.float32(_prev_scale(net, i)))
                           for w_s in ql.w_scales]
            bt = w.tensor(f"l{i}/bias", [len(ql.b_q)], s.TensorType.INT32, ql.b_q,
                          scales=bias_scales)
            out = w.act(f"l{i}/out", nxt, ql.out)
            fused = act_relu if layer.relu else act_none
            if isinstance(layer, Dense):
                opt = s.FullyConnectedOptionsT()
                opt.fusedActivationFunction = fused
                w.op(ops.FULLY_CONNECTED, 5, [cur, wt, bt], [out],
                     s.BuiltinOptions.FullyConnectedOptions, opt)
            else:
                opt = s.Conv2DOptionsT()
                opt.padding = s.Padding.SAME if layer.padding == "SAME" else s.Padding.VALID
                opt.strideH = opt.strideW = layer.stride
                opt.fusedActivationFunction = fused
                w.op(ops.CONV_2D, 3, [cur, wt, bt], [out], s.BuiltinOptions.Conv2DOptions, opt)
        elif isinstance(layer, Pool2D):
            out = w.act(f"l{i}/pool", nxt, ql.out)
            opt = s.Pool2DOptionsT()
            opt.padding = s.Padding.VALID
            opt.strideH = opt.strideW = layer.stride
            opt.filterHeight = opt.filterWidth = layer.size
            code = ops.MAX_POOL_2D if layer.kind == "max" else ops.AVERAGE_POOL_2D
            w.op(code, 2, [cur], [out], s.BuiltinOptions.Pool2DOptions, opt)
        else:
            new_shape = np.array([-1, nxt[0]], np.int32)
            st = w.tensor(f"l{i}/shape", [2], s.TensorType.INT32, new_shape)
            out = w.act(f"l{i}/flat", nxt, ql.out)
            opt = s.ReshapeOptionsT()
            opt.newShape = [-1, nxt[0]]
            w.op(ops.RESHAPE, 1, [cur, st], [out], s.BuiltinOptions.ReshapeOptions, opt)
        cur, shape = out, nxt
    return w.finish([first], [cur], description)


def _prev_scale(net: QuantNet, i: int) -> float:
    return net.layers[i - 1].out.scale if i else net.input.scale
