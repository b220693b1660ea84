"""TFLite outputs of built int8 models against the independent numpy int8 reference."""

from __future__ import annotations

import numpy as np
import pytest
from inference_helpers import config, runtime

from edge.inference import Backbone
from edge.inference.builder import build_tflite
from edge.inference.demo import build_demo, metadata_for
from edge.inference.graph import (
    Conv2D,
    Dense,
    Flatten,
    FloatNet,
    Pool2D,
    QuantNet,
    quantize_net,
)
from edge.inference.reference import quantize_multiplier, run_reference


def _rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.normal(size=shape) * scale).astype(np.float32)


def mlp(rng: np.random.Generator) -> FloatNet:
    return FloatNet((64,), (Dense(_rand(rng, 64, 32, scale=0.2), _rand(rng, 32, scale=0.1)),
                            Dense(_rand(rng, 32, 10, scale=0.2), _rand(rng, 10, scale=0.1),
                                  relu=False)))


def convnet(rng: np.random.Generator) -> FloatNet:
    return FloatNet((28, 28, 1), (
        Conv2D(_rand(rng, 4, 3, 3, 1), _rand(rng, 4, scale=0.1), padding="SAME"),
        Pool2D("max"),
        Conv2D(_rand(rng, 8, 3, 3, 4, scale=0.3), _rand(rng, 8, scale=0.1), stride=2),
        Pool2D("avg", size=2, stride=2),
        Flatten(),
        Dense(_rand(rng, 3 * 3 * 8, 10, scale=0.2), _rand(rng, 10, scale=0.1), relu=False),
    ))


@pytest.fixture(scope="module", params=["mlp", "conv"])
def built(request: pytest.FixtureRequest) -> tuple[QuantNet, bytes, np.ndarray]:
    rng = np.random.default_rng(7)
    net = mlp(rng) if request.param == "mlp" else convnet(rng)
    x = rng.uniform(0, 1, size=(96, *net.input_shape)).astype(np.float32)
    qnet = quantize_net(net, x[:64])
    return qnet, build_tflite(qnet), x


def _invoke(model: bytes, x_q: np.ndarray, resolver: str) -> np.ndarray:
    """Run ``model`` on the selected runtime with its op resolver ``resolver`` (by name)."""
    rt = runtime()
    it = rt.interpreter_class(model_content=model,
                              experimental_op_resolver_type=rt.module.OpResolverType[resolver])
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x_q.shape))
    it.allocate_tensors()
    it.set_tensor(d["index"], x_q)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _lsb(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def test_xnnpack_matches_float_multiplier_reference(built: tuple[QuantNet, bytes, np.ndarray]):
    """The default path: XNNPACK under ai-edge-litert, the builtin optimized kernels under
    tflite-runtime 2.14 (its XNNPACK takes no int8 operator); both within 1 LSB."""
    qnet, model, x = built
    x_q = qnet.input.quantize(x)
    assert _lsb(_invoke(model, x_q, "AUTO"), run_reference(qnet, x_q)) <= 1


def test_builtin_ref_matches_gemmlowp_reference(built: tuple[QuantNet, bytes, np.ndarray]):
    qnet, model, x = built
    x_q = qnet.input.quantize(x)
    ref = run_reference(qnet, x_q, rounding="gemmlowp")
    assert _lsb(_invoke(model, x_q, "BUILTIN_REF"), ref) <= 1


def test_backbone_run_dequantizes_within_one_step(built: tuple[QuantNet, bytes, np.ndarray]):
    qnet, model, x = built
    bb = Backbone.from_verified(model, metadata_for(qnet), config())
    y = bb.run(x)
    ref = qnet.output.dequantize(run_reference(qnet, qnet.input.quantize(x)))
    assert y.dtype == np.float32 and y.shape == ref.shape
    assert np.abs(y - ref).max() <= qnet.output.scale * 1.001
    one = bb.run(x[0])  # a single sample, then a batch again (resizes both ways)
    assert one.shape == ref.shape[1:]
    assert bb.run(x[:5]).shape == (5, *ref.shape[1:])


def test_int8_close_to_float(built: tuple[QuantNet, bytes, np.ndarray]):
    qnet, _model, x = built
    layers = tuple(q.layer for q in qnet.layers)
    y_float = FloatNet(qnet.input_shape, layers).forward(x)[-1]
    y_int8 = qnet.output.dequantize(run_reference(qnet, qnet.input.quantize(x)))
    spread = float(y_float.max() - y_float.min())
    assert np.abs(y_float - y_int8).max() < 0.05 * spread


def test_weights_per_channel_and_bias_int32(built: tuple[QuantNet, bytes, np.ndarray]):
    _qnet, model, _x = built
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    tensors = {t.name.decode(): t for t in m.subgraphs[0].tensors}
    for name, t in tensors.items():
        if name.endswith("/weights"):
            assert t.type == schema.TensorType.INT8
            assert len(t.quantization.scale) == t.shape[0] > 1
        if name.endswith("/bias"):
            assert t.type == schema.TensorType.INT32
    assert tensors["input"].type == schema.TensorType.INT8


def test_quantize_multiplier() -> None:
    q, shift = quantize_multiplier(np.array([0.5, 0.75, 1.0 - 1e-12, 3e-3]))
    assert list(q[:2]) == [1 << 30, 3 << 29] and list(shift[:2]) == [0, 0]
    assert q[2] == 1 << 30 and shift[2] == 1  # rounds up to 2**31: halved, shift + 1
    assert np.isclose(q[3] * 2.0 ** (int(shift[3]) - 31), 3e-3)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_demo_models_are_trained_and_accurate(arch: str) -> None:
    built = build_demo(arch, epochs=20 if arch == "mlp" else 2)
    assert built.int8_accuracy > 0.8 and built.int8_accuracy >= built.float_accuracy - 0.05
    bb = Backbone.from_verified(built.tflite, built.metadata, config())
    assert bb.input_shape == built.quant_net.input_shape
