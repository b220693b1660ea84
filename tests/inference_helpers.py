"""The TFLite runtime the inference tests run on, chosen by EDGE_TEST_TFLITE_RUNTIME.

``ai-edge-litert`` (the default: the main .venv, numpy 2) or ``tflite-runtime`` (scripts/test.sh's
second run in .venv-tflite: tflite-runtime 2.14 with numpy<2). Every interpreter the inference
tests create uses this runtime explicitly; if it is not usable here the tests fail, they are not
skipped.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edge.inference import InferenceConfig
from edge.inference.runtime import RUNTIMES, Runtime, select_runtime

ENV_VAR = "EDGE_TEST_TFLITE_RUNTIME"
RUNTIME: str = os.environ.get(ENV_VAR, "") or "ai-edge-litert"
if RUNTIME not in RUNTIMES:
    raise RuntimeError(f"{ENV_VAR}={RUNTIME!r}: expected one of {', '.join(RUNTIMES)}")

NUMPY_MAJOR = int(np.__version__.split(".")[0])

# Measured: ai-edge-litert's default XNNPACK delegate takes the int8 operators of the built
# models; tflite-runtime 2.14's takes none of them (they run on the builtin CPU kernels).
XNNPACK_TAKES_INT8 = RUNTIME == "ai-edge-litert"


def runtime() -> Runtime:
    """The selected runtime (ConfigError, failing the test, if it is not usable here)."""
    return select_runtime(RUNTIME)


def config(**kwargs: Any) -> InferenceConfig:
    """An InferenceConfig that names the selected runtime."""
    return InferenceConfig(runtime=RUNTIME, **kwargs)


def small_backbone(inputs: int = 16, features: int = 8, seed: int = 0
                   ) -> tuple[bytes, dict[str, Any]]:
    """A real quantized TFLite backbone (inputs -> features) and its package metadata."""
    from edge.inference.builder import build_tflite
    from edge.inference.demo import metadata_for
    from edge.inference.graph import Dense, FloatNet, quantize_net

    rng = np.random.default_rng(seed)
    net = FloatNet((inputs,), (Dense(rng.normal(size=(inputs, features)).astype(np.float32),
                                     np.zeros(features, np.float32)),))
    qnet = quantize_net(net, rng.uniform(0, 1, size=(20, inputs)).astype(np.float32))
    return build_tflite(qnet), metadata_for(qnet)
