"""End to end: an int8 backbone signed into a package, verified by the TA, run by TFLite."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import Roles, load, make_package
from inference_helpers import RUNTIME, config

from edge import errors
from edge.formats.device import DeviceRecord
from edge.inference import Backbone
from edge.inference.builder import build_tflite
from edge.inference.demo import metadata_for
from edge.inference.graph import Dense, FloatNet, quantize_net
from edge.inference.reference import run_reference
from edge.tee import TrustedApp


@pytest.mark.parametrize("encrypt", [False, True], ids=["public", "encrypted"])
def test_backbone_from_verified_package(provisioned: TrustedApp, roles: Roles,
                                        encrypt: bool) -> None:
    rng = np.random.default_rng(11)
    net = FloatNet((64,), (Dense(rng.normal(size=(64, 16)).astype(np.float32) * 0.3,
                                 np.zeros(16, np.float32)),))
    x = rng.uniform(0, 1, size=(20, 64)).astype(np.float32)
    qnet = quantize_net(net, x)
    model = build_tflite(qnet)
    dev = DeviceRecord.parse(provisioned.identity())
    pkg = make_package(roles.signer, [dev], version=1, backbone=model, encrypt=encrypt)
    loaded = load(provisioned, pkg)
    bb = Backbone.from_loaded(loaded, metadata_for(qnet), config(npu_delegate="none"))
    expected = qnet.output.dequantize(run_reference(qnet, qnet.input.quantize(x)))
    assert bb.report.runtime == RUNTIME
    np.testing.assert_allclose(bb.run(x), expected, atol=qnet.output.scale * 1.001)


def test_package_without_backbone(provisioned: TrustedApp, roles: Roles) -> None:
    dev = DeviceRecord.parse(provisioned.identity())
    loaded = load(provisioned, make_package(roles.signer, [dev], version=1))
    meta = {"input": {"shape": [1, 4], "dtype": "int8"},
            "output": {"shape": [1, 4], "dtype": "int8"}}
    with pytest.raises(errors.Malformed, match="version 1 carries no backbone"):
        Backbone.from_loaded(loaded, meta, config())
