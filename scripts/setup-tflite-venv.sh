#!/usr/bin/env bash
# Creates (idempotently) .venv-tflite, the second test environment: tflite-runtime
# 2.14 with numpy<2 and ai-edge-litert beside it (the model builder needs its TFLite
# schema), the project and pytest, all from the `test-tflite` extra in pyproject.toml.
# Reinstalls only when pyproject.toml is newer than the stamp, as setup.sh does for .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# tflite-runtime 2.14 (its last release) has x86_64 wheels for CPython <= 3.11 only.
if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] > (3, 11))'; then
    echo "setup-tflite-venv: python3 is $(python3 -c 'import platform; print(platform.python_version())');" \
         "tflite-runtime 2.14 has wheels for CPython <= 3.11 only, so the tflite-runtime" \
         "test environment cannot be built: run with a python3 that is 3.11" >&2
    exit 1
fi

venv=.venv-tflite
if [ ! -x "$venv/bin/python" ]; then
    echo "setup-tflite-venv: creating $venv"
    python3 -m venv "$venv"
fi
stamp=$venv/.edge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup-tflite-venv: installing edge[test-tflite] (tflite-runtime 2.14, numpy<2," \
         "ai-edge-litert, pytest) into $venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e '.[test-tflite]'
    touch "$stamp"
fi
