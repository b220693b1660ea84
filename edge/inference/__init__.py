"""Quantized backbone inference with TFLite (tflite-runtime or ai-edge-litert) and NPU delegates."""

from edge.inference.backbone import Backbone, InferenceConfig
from edge.inference.delegates import DelegateReport
from edge.inference.runtime import KNOWN_DELEGATES, find_delegates, runtime_info, select_runtime

__all__ = ["KNOWN_DELEGATES", "Backbone", "DelegateReport", "InferenceConfig", "find_delegates",
           "runtime_info", "select_runtime"]
