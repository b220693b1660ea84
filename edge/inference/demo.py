"""The demo backbones: train in numpy on digits, quantize, write the ``.tflite`` and metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from edge.inference.builder import build_tflite
from edge.inference.graph import FloatNet, QuantNet, output_shape, quantize_net
from edge.inference.reference import run_reference
from edge.inference.train import accuracy, load_digits_data, train_convnet, train_mlp

Arch = Literal["mlp", "conv"]


@dataclass(frozen=True)
class BuiltModel:
    """A built backbone: the float and quantized nets, ``.tflite`` bytes, metadata, scores."""

    float_net: FloatNet
    quant_net: QuantNet
    tflite: bytes
    metadata: dict[str, Any]
    float_accuracy: float
    int8_accuracy: float


def metadata_for(net: QuantNet) -> dict[str, Any]:
    """The package metadata describing a net's int8 input and output."""
    return {"input": {"shape": [1, *net.input_shape], "dtype": "int8"},
            "output": {"shape": [1, *output_shape(net)], "dtype": "int8"}}


def build_demo(arch: Arch = "mlp", *, image_size: int = 28, epochs: int | None = None,
               calibration: int = 200, seed: int = 0) -> BuiltModel:
    """Train the digits backbone, calibrate on training samples, build the int8 model."""
    x, y = load_digits_data(8 if arch == "mlp" else image_size)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(len(x) * 0.8)
    if arch == "mlp":
        net = train_mlp(x[:split], y[:split], epochs=epochs or 60, seed=seed)
    else:
        net = train_convnet(x[:split], y[:split], epochs=epochs or 4, seed=seed)
    qnet = quantize_net(net, x[:calibration])
    test_x, test_y = x[split:], y[split:]
    int8_out = run_reference(qnet, qnet.input.quantize(test_x))
    return BuiltModel(net, qnet, build_tflite(qnet, f"edge digits {arch}"), metadata_for(qnet),
                      accuracy(net.forward(test_x)[-1], test_y), accuracy(int8_out, test_y))
