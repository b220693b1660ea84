"""Runtime choice, NPU delegate handling, model refusal and the unverified-model guard."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inference_helpers import NUMPY_MAJOR, RUNTIME, XNNPACK_TAKES_INT8, config, runtime

from edge import errors
from edge.cli import main
from edge.inference import Backbone, InferenceConfig, runtime_info, select_runtime
from edge.inference import runtime as runtime_mod
from edge.inference.backbone import check_flatbuffer
from edge.inference.builder import build_tflite
from edge.inference.delegates import DelegateReport, measure_delegation
from edge.inference.demo import metadata_for
from edge.inference.graph import Dense, FloatNet, quantize_net

NOT_A_DELEGATE = "libc.so.6"


@pytest.fixture(scope="module")
def model() -> tuple[bytes, dict[str, Any]]:
    rng = np.random.default_rng(3)
    net = FloatNet((16,), (Dense(rng.normal(size=(16, 8)).astype(np.float32),
                                 np.zeros(8, np.float32)),
                           Dense(rng.normal(size=(8, 4)).astype(np.float32),
                                 np.zeros(4, np.float32), relu=False)))
    qnet = quantize_net(net, rng.uniform(-1, 1, size=(32, 16)).astype(np.float32))
    return build_tflite(qnet), metadata_for(qnet)


@pytest.fixture(scope="module")
def refusing_delegate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared library with the external-delegate entry points whose create fails."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc or gcc): scripts/setup.sh installs build-essential")
    src = tmp_path_factory.mktemp("delegate") / "refuse.c"
    src.write_text(
        "typedef void (*report_fn)(const char *);\n"
        "void *tflite_plugin_create_delegate(char **k, char **v, int n, report_fn report) {\n"
        "  (void)k; (void)v; (void)n; report(\"no NPU here\"); return 0; }\n"
        "void tflite_plugin_destroy_delegate(void *d) { (void)d; }\n")
    lib = src.with_suffix(".so")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def test_selected_runtime_is_the_one_used(model: tuple[bytes, dict[str, Any]]) -> None:
    """EDGE_TEST_TFLITE_RUNTIME really decides which runtime's Interpreter the tests get."""
    rt = runtime()
    module = {"ai-edge-litert": "ai_edge_litert.interpreter",
              "tflite-runtime": "tflite_runtime.interpreter"}[RUNTIME]
    assert rt.name == RUNTIME and rt.module.__name__ == module
    assert rt.version.startswith("2.14." if RUNTIME == "tflite-runtime" else "2.")
    bb = Backbone.from_verified(*model, config(npu_delegate="none"))
    assert bb.report.runtime == RUNTIME and bb.report.runtime_version == rt.version
    assert type(bb._it).__module__ == module


def test_runtime_auto_and_named() -> None:
    tflite_installed = importlib.util.find_spec("tflite_runtime") is not None
    expected = "tflite-runtime" if tflite_installed and NUMPY_MAJOR < 2 else "ai-edge-litert"
    assert select_runtime("auto").name == expected
    assert select_runtime("ai-edge-litert").version.startswith("2.")
    with pytest.raises(errors.ConfigError, match="runtime = 'tensorflow'"):
        select_runtime("tensorflow")


def test_tflite_runtime_refused_with_numpy2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(np, "__version__", "2.1.0")
    with pytest.raises(errors.ConfigError, match="needs numpy<2"):
        select_runtime("tflite-runtime")


def test_tflite_runtime_follows_the_installed_numpy(model: tuple[bytes, dict[str, Any]]) -> None:
    """No monkeypatching: refused under numpy 2, usable under numpy<2 where it is installed."""
    if NUMPY_MAJOR >= 2:
        installed = re.escape(np.__version__)
        with pytest.raises(errors.ConfigError, match=f"needs numpy<2, this is numpy {installed}"):
            select_runtime("tflite-runtime")
    elif importlib.util.find_spec("tflite_runtime") is None:
        assert RUNTIME != "tflite-runtime"
        with pytest.raises(errors.ConfigError, match="tflite-runtime is not importable"):
            select_runtime("tflite-runtime")
    else:
        bb = Backbone.from_verified(*model, InferenceConfig("tflite-runtime", "none"))
        assert bb.report.runtime == "tflite-runtime"
        assert bb.run(np.zeros(16, np.float32)).shape == (4,)


def test_delegate_none(model: tuple[bytes, dict[str, Any]]) -> None:
    bb = Backbone.from_verified(*model, config(npu_delegate="none", num_threads=2))
    r = bb.report
    assert r.accelerator == "cpu" and "'none'" in (r.fallback_reason or "")
    assert r.probed == {} and r.warnings == [] and r.num_threads == 2
    on_xnnpack = 2 if XNNPACK_TAKES_INT8 else 0
    assert (r.ops_total, r.ops_on_xnnpack, r.ops_on_cpu_kernels) == (2, on_xnnpack, 2 - on_xnnpack)


def test_delegate_auto_falls_back_and_says_why(model: tuple[bytes, dict[str, Any]],
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.inference"):
        bb = Backbone.from_verified(*model, config(npu_delegate="auto"))
    r = bb.report
    assert r.accelerator == "cpu"
    assert set(r.probed) == {lib for lib, _ in runtime_mod.KNOWN_DELEGATES}
    assert "no NPU delegate on this machine" in (r.fallback_reason or "")
    assert "libvx_delegate.so" in caplog.text and "running on the CPU" in caplog.text


def test_delegate_missing_library(model: tuple[bytes, dict[str, Any]],
                                  caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    missing = str(tmp_path / "libmissing_delegate.so")
    with caplog.at_level(logging.WARNING, logger="edge.inference"):
        bb = Backbone.from_verified(*model, config(npu_delegate=missing))
    assert bb.report.npu_delegate is None and "cannot load" in bb.report.probed[missing]
    assert bb.report.warnings and missing in caplog.text
    assert bb.run(np.zeros(16, np.float32)).shape == (4,)  # still runs, on the CPU


def test_library_that_is_not_a_delegate(model: tuple[bytes, dict[str, Any]]) -> None:
    bb = Backbone.from_verified(*model, config(npu_delegate=NOT_A_DELEGATE))
    assert "not a TFLite external delegate" in bb.report.probed[NOT_A_DELEGATE]
    assert bb.report.as_dict()["warnings"] == bb.report.warnings != []


def test_delegate_that_refuses_to_start(model: tuple[bytes, dict[str, Any]],
                                        refusing_delegate: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bb = Backbone.from_verified(*model, config(npu_delegate=str(refusing_delegate)))
    assert "refused to start" in bb.report.probed[str(refusing_delegate)]
    assert "no NPU here" in bb.report.probed[str(refusing_delegate)]
    monkeypatch.setattr(runtime_mod, "KNOWN_DELEGATES", ((str(refusing_delegate), "test"),))
    import edge.inference.delegates as delegates_mod

    monkeypatch.setattr(delegates_mod, "KNOWN_DELEGATES", runtime_mod.KNOWN_DELEGATES)
    bb = Backbone.from_verified(*model, config(npu_delegate="auto"))
    assert "no NPU here" in (bb.report.fallback_reason or "")


def test_require_npu_refuses_cpu_fallback(model: tuple[bytes, dict[str, Any]]) -> None:
    with pytest.raises(errors.DelegateUnavailable, match="require_npu"):
        Backbone.from_verified(*model, config(npu_delegate="auto", require_npu=True))


class FakeWrapper:
    """A node table as the interpreter shows one after a delegate took nodes 0-1 of 0-2."""

    names = ("CONV_2D", "MAX_POOL_2D", "RESHAPE", "DELEGATE", "DELEGATE")
    ins = ([0, 10, 11], [1], [2, 12], [0, 10, 11], [3])
    outs = ([1], [2], [3], [2], [4])

    def NumNodes(self) -> int:
        return len(self.names)

    def NodeName(self, n: int) -> str:
        return self.names[n]

    def NodeInputs(self, n: int) -> list[int]:
        return self.ins[n]

    def NodeOutputs(self, n: int) -> list[int]:
        return self.outs[n]


def test_partial_delegation_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    report = DelegateReport("libvx_delegate.so", npu_delegate="libvx_delegate.so")
    with caplog.at_level(logging.WARNING, logger="edge.inference"):
        measure_delegation(FakeWrapper(), nodes_after_npu=4, report=report)
    assert (report.ops_total, report.ops_on_npu, report.npu_partitions) == (3, 2, 1)
    assert report.partly_delegated and "RESHAPE run on the CPU" in report.warnings[0]
    assert "took 2 of 3 operators" in caplog.text


def test_xnnpack_partitions_measured_on_real_interpreter() -> None:
    from edge.inference.demo import build_demo

    built = build_demo("conv", epochs=1)
    r = Backbone.from_verified(built.tflite, built.metadata, config(npu_delegate="none")).report
    assert r.ops_total == 4 and r.ops_on_xnnpack + r.ops_on_cpu_kernels == 4
    if XNNPACK_TAKES_INT8:
        assert r.ops_on_xnnpack >= 3 and r.xnnpack_partitions >= 1
    else:
        assert (r.ops_on_xnnpack, r.xnnpack_partitions, r.ops_on_cpu_kernels) == (0, 0, 4)


@pytest.mark.parametrize("mutate, match", [
    (lambda m: b"", "not a TFLite model"),
    (lambda m: m[:100], "not a TFLite model|refused"),
    (lambda m: m[: len(m) // 2], "refused"),
    (lambda m: m[:4] + b"XXXX" + m[8:], "identifier"),
    (lambda m: b"\x00" * len(m), "not a TFLite model"),
])
def test_malformed_models_refused(model: tuple[bytes, dict[str, Any]], mutate: Any,
                                  match: str) -> None:
    with pytest.raises(errors.Malformed, match=match):
        Backbone.from_verified(mutate(model[0]), model[1], config())


def test_flatbuffer_check_for_tflite_runtime(model: tuple[bytes, dict[str, Any]]) -> None:
    """tflite-runtime 2.14 has no flatbuffer verifier (it crashes on truncated bytes): ours."""
    check_flatbuffer(model[0], "tflite-runtime")
    for cut in (12, 100, len(model[0]) // 2, len(model[0]) - 40):
        with pytest.raises(errors.Malformed, match="refused by tflite-runtime: the flatbuffer"):
            check_flatbuffer(model[0][:cut], "tflite-runtime")


@pytest.mark.parametrize("side, key, value, match", [
    ("input", "shape", [1, 17], "input 'input' has shape \\[-1, 16\\]"),
    ("output", "shape", [1, 4, 1], "output .* has shape"),
    ("input", "dtype", "float32", "input 'input' is int8, the package metadata says float32"),
    ("output", "dtype", "uint8", "is int8"),
])
def test_metadata_mismatch_refused(model: tuple[bytes, dict[str, Any]], side: str, key: str,
                                   value: Any, match: str) -> None:
    meta = json.loads(json.dumps(model[1]))
    meta[side][key] = value
    with pytest.raises(errors.ModelMismatch, match=match):
        Backbone.from_verified(model[0], meta, config())


def test_bad_metadata_and_input(model: tuple[bytes, dict[str, Any]]) -> None:
    with pytest.raises(errors.Malformed, match="'output' needs"):
        Backbone.from_verified(model[0], {"input": model[1]["input"]})
    with pytest.raises(errors.Malformed, match="dtype = 'int4'"):
        Backbone.from_verified(model[0], {**model[1], "input": {"shape": [1], "dtype": "int4"}})
    bb = Backbone.from_verified(*model, config())
    with pytest.raises(errors.ModelMismatch, match="expected \\(n, 16\\)"):
        bb.run(np.zeros((2, 15), np.float32))
    with pytest.raises(errors.ConfigError, match=r"inference\.num_threads: .*got 0"):
        InferenceConfig(num_threads=0)
    with pytest.raises(errors.ConfigError, match=r"inference\.npu: unknown key"):
        InferenceConfig.from_mapping({"npu": "auto"})
    with pytest.raises(errors.ConfigError, match=r"inference\.num_threads: must be an integer"
                       r".*got '2'"):
        InferenceConfig.from_mapping({"num_threads": "2"})
    cfg = InferenceConfig.from_mapping({"npu_delegate": "none", "num_threads": 2})
    assert (cfg.npu_delegate, cfg.num_threads, cfg.runtime) == ("none", 2, "auto")


def test_unverified_file_refused_unless_opted_in(model: tuple[bytes, dict[str, Any]],
                                                 tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "backbone.tflite"
    path.write_bytes(model[0])
    with pytest.raises(errors.UnverifiedModel, match="did not pass"):
        Backbone.from_file(path, model[1])
    for _ in range(2):  # loud on every load
        with caplog.at_level(logging.WARNING, logger="edge.inference"):
            caplog.clear()
            Backbone.from_file(path, model[1], config(npu_delegate="none"),
                               allow_unverified=True)
        assert "UNVERIFIED MODEL" in caplog.text


def test_edge_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {**info, "runtime": select_runtime().name, "numpy_version": np.__version__,
                    "delegates_found": []}
    assert main(["info"]) == 0
    assert "runtime:" in capsys.readouterr().out
    assert runtime_info("auto")["delegates_probed"][0] == "libvx_delegate.so"


def test_edge_model_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "digits.tflite"
    assert main(["model", "build", "--out", str(out), "--epochs", "10", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    meta = json.loads((tmp_path / "digits.json").read_text())
    assert summary["bytes"] == len(out.read_bytes()) and summary["int8_accuracy"] > 0.8
    bb = Backbone.from_verified(out.read_bytes(), meta, config())
    assert bb.input_shape == (64,) and bb.output_shape == (10,)


def test_no_runtime_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_mod, "RUNTIMES", {"ai-edge-litert": ("x", "no_such_mod.interp")})
    with pytest.raises(errors.ConfigError, match=r"neither .* installed.*edge-tee\[litert\]"):
        select_runtime("auto")
    info = runtime_info("auto")
    assert info["runtime"] is None and "neither" in info["runtime_error"]


def test_runtime_info_lines_go_to_our_debug_log_not_stderr(
        model: tuple[bytes, dict[str, Any]], tmp_path: Path) -> None:
    # A fresh process: the runtime announces its XNNPACK delegate once per process.
    (tmp_path / "m.tflite").write_bytes(model[0])
    (tmp_path / "m.json").write_text(json.dumps(model[1]))
    script = (
        "import json, logging, sys\n"
        "from edge.inference import Backbone, InferenceConfig\n"
        "logging.basicConfig(level=logging.DEBUG, format='LOG %(message)s')\n"
        f"m = open({str(tmp_path / 'm.tflite')!r}, 'rb').read()\n"
        f"meta = json.load(open({str(tmp_path / 'm.json')!r}))\n"
        f"Backbone.from_verified(m, meta, InferenceConfig(runtime={RUNTIME!r}, "
        "npu_delegate='none'))\n")
    import sys
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert not any(line.startswith("INFO: ") for line in lines), out.stderr
    if XNNPACK_TAKES_INT8:  # the runtime announces the XNNPACK delegate it created
        assert "LOG runtime: Created TensorFlow Lite XNNPACK delegate for CPU." in lines, lines


def test_other_runtime_output_still_reaches_stderr(capfd: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    import os

    from edge.inference.runtime_log import runtime_messages

    caplog.set_level(logging.DEBUG, logger="edge.test")
    with runtime_messages(logging.getLogger("edge.test")):
        os.write(2, b"INFO: chatter\nERROR: something real\n")
    assert capfd.readouterr().err == "ERROR: something real\n"
    assert [r.message for r in caplog.records] == ["runtime: chatter"]
    os.write(2, b"after\n")  # fd 2 is ours again
    assert capfd.readouterr().err == "after\n"
