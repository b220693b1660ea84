#!/usr/bin/env bash
# Sets everything up (idempotently) and runs the whole default test suite:
# lint, the C tests (normal and under AddressSanitizer + UBSan, both driven by
# pytest) and the Python tests; then the inference tests a second time under
# tflite-runtime 2.14 with numpy<2 (what vendor board images ship), in their
# own virtualenv .venv-tflite. Extra arguments go to the main pytest run.
# Both runs always happen; the exit status is non-zero if either failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-sanitizers
echo "test: ruff"
.venv/bin/ruff check edge firmware_sign contract tests benchmarks scripts
echo "test: pytest"
main_status=0
.venv/bin/python -m pytest "$@" || main_status=$?

echo "test: inference tests under tflite-runtime 2.14 with numpy<2"
tflite_status=0
scripts/setup-tflite-venv.sh || tflite_status=$?
if [ "$tflite_status" -eq 0 ]; then
    EDGE_TEST_TFLITE_RUNTIME=tflite-runtime .venv-tflite/bin/python -m pytest -q \
        tests/test_inference_*.py || tflite_status=$?
fi

if [ "$main_status" -ne 0 ] || [ "$tflite_status" -ne 0 ]; then
    echo "test: FAILED (main pytest run: exit $main_status; tflite-runtime run: exit" \
         "$tflite_status)" >&2
    [ "$main_status" -ne 0 ] && exit "$main_status"
    exit "$tflite_status"
fi
