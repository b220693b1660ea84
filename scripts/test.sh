#!/usr/bin/env bash
# Sets everything up (idempotently) and runs the whole default test suite:
# lint, the C tests (normal and under AddressSanitizer + UBSan, both driven by
# pytest) and the Python tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-sanitizers
echo "test: ruff"
.venv/bin/ruff check edge firmware_sign tests benchmarks
echo "test: pytest"
exec .venv/bin/python -m pytest "$@"
