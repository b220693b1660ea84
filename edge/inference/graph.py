"""Float backbone graphs (dense, conv, pool) and their full-integer int8 quantization."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edge.errors import ConfigError

Padding = Literal["VALID", "SAME"]


@dataclass(frozen=True)
class Dense:
    """A fully connected layer ``x @ w + b`` with an optional fused ReLU; ``w`` is (in, out)."""

    w: np.ndarray
    b: np.ndarray
    relu: bool = True


@dataclass(frozen=True)
class Conv2D:
    """A 2-D convolution over NHWC; ``w`` is (out, kh, kw, in) as TFLite stores it."""

    w: np.ndarray
    b: np.ndarray
    stride: int = 1
    padding: Padding = "VALID"
    relu: bool = True


@dataclass(frozen=True)
class Pool2D:
    """Max or average pooling with VALID padding."""

    kind: Literal["max", "avg"]
    size: int = 2
    stride: int = 2


@dataclass(frozen=True)
class Flatten:
    """Flattens NHWC to (batch, features) (a TFLite RESHAPE)."""


Layer = Dense | Conv2D | Pool2D | Flatten


@dataclass(frozen=True)
class FloatNet:
    """A float backbone: per-sample input shape and an ordered list of layers."""

    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Every activation, input first, for a float batch."""
        acts = [np.asarray(x, dtype=np.float32)]
        for layer in self.layers:
            acts.append(float_layer(layer, acts[-1]))
        return acts


@dataclass(frozen=True)
class QParams:
    """Affine int8 quantization of one activation tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float to int8 with round-half-to-even, as TFLite's QUANTIZE does."""
        q = np.rint(np.asarray(x, np.float32) / np.float32(self.scale)) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Int8 to float."""
        return (q.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)


@dataclass(frozen=True)
class QLayer:
    """One layer of a quantized net: int8 weights with per-channel scales, int32 bias."""

    layer: Layer
    out: QParams
    w_q: np.ndarray | None = None
    w_scales: np.ndarray | None = None
    b_q: np.ndarray | None = None


@dataclass(frozen=True)
class QuantNet:
    """A full-integer int8 net: input quantization and quantized layers."""

    input_shape: tuple[int, ...]
    input: QParams
    layers: tuple[QLayer, ...] = field(default_factory=tuple)

    @property
    def output(self) -> QParams:
        """Quantization of the net's output."""
        return self.layers[-1].out if self.layers else self.input


def out_size(size: int, k: int, stride: int, padding: Padding) -> tuple[int, int]:
    """Output length and leading pad of a window op along one axis, TFLite's rule."""
    if padding == "SAME":
        n = -(-size // stride)
        total = max((n - 1) * stride + k - size, 0)
        return n, total // 2
    return (size - k) // stride + 1, 0


def patches(x: np.ndarray, k: int, stride: int, padding: Padding, pad_value: float) -> np.ndarray:
    """Sliding k x k windows of NHWC ``x`` as (n, oh, ow, k, k, c)."""
    h, w = x.shape[1:3]
    oh, ph = out_size(h, k, stride, padding)
    ow, pw = out_size(w, k, stride, padding)
    need_h, need_w = (oh - 1) * stride + k, (ow - 1) * stride + k
    if padding == "SAME":
        x = np.pad(x, ((0, 0), (ph, max(need_h - h - ph, 0)), (pw, max(need_w - w - pw, 0)),
                       (0, 0)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    win = win[:, : (oh - 1) * stride + 1 : stride, : (ow - 1) * stride + 1 : stride]
    return np.moveaxis(win, 3, 5)  # (n, oh, ow, c, k, k) -> (n, oh, ow, k, k, c)


def float_layer(layer: Layer, x: np.ndarray) -> np.ndarray:
    """One float layer applied to a batch."""
    if isinstance(layer, Dense):
        y = x @ layer.w + layer.b
        return np.maximum(y, 0) if layer.relu else y
    if isinstance(layer, Conv2D):
        k = layer.w.shape[1]
        p = patches(x, k, layer.stride, layer.padding, 0.0)
        y = np.einsum("nhwijc,oijc->nhwo", p, layer.w, optimize=True) + layer.b
        return np.maximum(y, 0) if layer.relu else y
    if isinstance(layer, Pool2D):
        p = patches(x, layer.size, layer.stride, "VALID", 0.0)
        return p.max(axis=(3, 4)) if layer.kind == "max" else p.mean(axis=(3, 4))
    return x.reshape(x.shape[0], -1)


def qparams_for(lo: float, hi: float) -> QParams:
    """Asymmetric int8 quantization covering [lo, hi] widened to include 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return QParams(float(np.float32(scale)), zp)


def _per_channel(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8 weights (channel axis 0) and their scales."""
    flat = w.reshape(w.shape[0], -1)
    scales = np.maximum(np.abs(flat).max(axis=1) / 127.0, 1e-12).astype(np.float32)
    q = np.clip(np.rint(flat / scales[:, None]), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scales


def quantize_net(net: FloatNet, calibration: np.ndarray) -> QuantNet:
    """Full-integer quantization, activation ranges calibrated on representative data."""
    calibration = np.asarray(calibration, np.float32)
    if calibration.shape[1:] != net.input_shape or len(calibration) == 0:
        raise ConfigError(f"calibration data has shape {calibration.shape}, "
                          f"expected (n, {', '.join(map(str, net.input_shape))}) with n >= 1")
    acts = net.forward(calibration)
    q_in = qparams_for(acts[0].min(), acts[0].max())
    prev, qlayers = q_in, []
    for layer, act in zip(net.layers, acts[1:], strict=True):
        if isinstance(layer, Dense | Conv2D):
            w = layer.w.T if isinstance(layer, Dense) else layer.w  # FC weights are (out, in)
            w_q, w_s = _per_channel(np.asarray(w, np.float32))
            bias_scale = np.float64(prev.scale) * w_s.astype(np.float64)
            b_q = np.rint(np.asarray(layer.b, np.float64) / bias_scale).astype(np.int32)
            out = qparams_for(act.min(), act.max())
            qlayers.append(QLayer(layer, out, w_q, w_s, b_q))
        else:  # pooling and reshape keep the input's quantization, as TFLite requires
            qlayers.append(QLayer(layer, prev))
        prev = qlayers[-1].out
    return QuantNet(net.input_shape, q_in, tuple(qlayers))


def output_shape(net: QuantNet | FloatNet) -> tuple[int, ...]:
    """Per-sample output shape of a net."""
    shape = net.input_shape
    for item in net.layers:
        layer = item.layer if isinstance(item, QLayer) else item
        if isinstance(layer, Dense):
            shape = (layer.w.shape[1],)
        elif isinstance(layer, Conv2D):
            k = layer.w.shape[1]
            shape = (out_size(shape[0], k, layer.stride, layer.padding)[0],
                     out_size(shape[1], k, layer.stride, layer.padding)[0], layer.w.shape[0])
        elif isinstance(layer, Pool2D):
            shape = (out_size(shape[0], layer.size, layer.stride, "VALID")[0],
                     out_size(shape[1], layer.size, layer.stride, "VALID")[0], shape[2])
        else:
            shape = (int(np.prod(shape)),)
    return shape
