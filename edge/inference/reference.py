"""An independent numpy int8 implementation of a quantized net, with two requantizers.

``"float"`` computes ``clip(rint(float32(acc) * float32(multiplier)) + zp)`` as the XNNPACK
kernels do; ``"gemmlowp"`` uses a Q31 fixed-point multiplier and shift with TFLite's
reference rounding (``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from edge.inference.graph import Conv2D, Dense, Pool2D, QuantNet, patches

Rounding = Literal["float", "gemmlowp"]


def quantize_multiplier(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers as (Q31 int, power-of-two shift) pairs, TFLite's QuantizeMultiplier."""
    frac, shift = np.frexp(np.asarray(m, np.float64))
    q = np.round(frac * (1 << 31)).astype(np.int64)
    carry = q == (1 << 31)
    q = np.where(carry, q // 2, q)
    shift = np.where(carry, shift + 1, shift)
    return q, shift.astype(np.int64)


def _div_trunc(x: np.ndarray, d: int) -> np.ndarray:
    return np.where(x >= 0, x // d, -((-x) // d))


def _requant_gemmlowp(acc: np.ndarray, m: np.ndarray) -> np.ndarray:
    q, shift = quantize_multiplier(m)
    x = acc.astype(np.int64) * (np.int64(1) << np.maximum(shift, 0))
    x = np.clip(x, -(2**31), 2**31 - 1)  # the left shift saturates in int32
    ab = x * q
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _div_trunc(ab + nudge, 1 << 31)
    high = np.where((x == -(2**31)) & (q == -(2**31)), 2**31 - 1, high)
    right = np.maximum(-shift, 0)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def _requant(acc: np.ndarray, m: np.ndarray, rounding: Rounding) -> np.ndarray:
    if rounding == "gemmlowp":
        return _requant_gemmlowp(acc, m)
    return np.rint(acc.astype(np.float32) * m.astype(np.float32)).astype(np.int64)


def run_reference(net: QuantNet, x_q: np.ndarray, rounding: Rounding = "float") -> np.ndarray:
    """Int8 outputs of ``net`` for an int8 input batch, computed in numpy integers."""
    a = np.asarray(x_q, np.int8)
    zp, scale = net.input.zero_point, net.input.scale
    for ql in net.layers:
        layer = ql.layer
        if isinstance(layer, Dense | Conv2D):
            assert ql.w_q is not None and ql.w_scales is not None and ql.b_q is not None
            x = a.astype(np.int32) - np.int32(zp)
            w = ql.w_q.astype(np.int32)
            if isinstance(layer, Dense):
                acc = x @ w.T
            else:  # padding holds the input zero point, i.e. 0 after the subtraction
                p = patches(x, w.shape[1], layer.stride, layer.padding, 0)
                n, oh, ow = p.shape[:3]
                acc = (p.reshape(n * oh * ow, -1) @ w.reshape(w.shape[0], -1).T)
                acc = acc.reshape(n, oh, ow, -1)
            acc = acc.astype(np.int64) + ql.b_q
            m = (np.float64(np.float32(scale)) * ql.w_scales.astype(np.float64)
                 / np.float64(np.float32(ql.out.scale)))
            y = _requant(acc, m, rounding) + ql.out.zero_point
            lo = max(-128, ql.out.zero_point) if layer.relu else -128
            a = np.clip(y, lo, 127).astype(np.int8)
        elif isinstance(layer, Pool2D):
            p = patches(a.astype(np.int32), layer.size, layer.stride, "VALID", 0)
            if layer.kind == "max":
                a = p.max(axis=(3, 4)).astype(np.int8)
            else:  # TFLite rounds the window mean half away from zero
                total, count = p.sum(axis=(3, 4)), layer.size * layer.size
                avg = np.where(total >= 0, (total + count // 2) // count,
                               -((-total + count // 2) // count))
                a = np.clip(avg, -128, 127).astype(np.int8)
        else:
            a = a.reshape(a.shape[0], -1)
        zp, scale = ql.out.zero_point, ql.out.scale
    return a
