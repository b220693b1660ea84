#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for edge, idempotently: the Debian
# packages the native build needs, a virtualenv (.venv) holding the project
# and its Python dependencies, and the native build (build/host, plus the
# sanitizer build build/host-asan and the libFuzzer harnesses build/fuzz with
# --with-sanitizers), and with --with-flower Flower in its own virtualenv
# (.venv-flower, for benchmarks/aggregate.py: its pins clash with ours).
set -euo pipefail
cd "$(dirname "$0")/.."

with_sanitizers=0
with_flower=0
for arg in "$@"; do
    case "$arg" in
        --with-sanitizers) with_sanitizers=1 ;;
        --with-flower) with_flower=1 ;;
        *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: compiler and make, OpenSSL 3 headers for the simulated
# secure world, venv support for Debian's python3; Mosquitto and the headers its
# retain plugin (deploy/mosquitto/edge_retain.c) is built against; Chromium, in which the
# tests render the aggregator's HTML report (tests/test_aggregator_report.py); systemd,
# whose `systemd-analyze verify` checks deploy/systemd offline (no PID 1 needed).
packages=(build-essential libssl-dev pkg-config mosquitto mosquitto-dev libmosquitto-dev
          chromium systemd)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
# The fuzz harnesses (tests/fuzz, docs/fuzzing.md) need clang and its
# compiler-rt (libFuzzer, ASan, UBSan runtimes), which bookworm's clang only
# recommends: name it, so an install without recommends still gets it.
[ "$with_sanitizers" -eq 1 ] && packages+=(clang libclang-rt-14-dev)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
# Reinstall only when the project metadata changed since the last setup.
stamp=.venv/.edge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing edge and its Python dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi

# The stamp names what is installed: a venv made for aggregate() alone gains the
# simulation extra (Ray) that benchmarks/federation.py's Flower rounds need.
if [ "$with_flower" -eq 1 ] && [ ! -f .venv-flower/.flower-simulation-installed ]; then
    echo "setup: installing Flower with its simulation engine into .venv-flower (benchmarks only)"
    [ -x .venv-flower/bin/python ] || python3 -m venv .venv-flower
    .venv-flower/bin/python -m pip install -q --upgrade pip
    .venv-flower/bin/python -m pip install -q 'flwr[simulation]' numpy
    touch .venv-flower/.flower-installed .venv-flower/.flower-simulation-installed
fi

echo "setup: building the native parts (build/host)"
make -s -j"$(nproc)"
if [ "$with_sanitizers" -eq 1 ]; then
    echo "setup: building the sanitizer variant (build/host-asan)"
    make -s -j"$(nproc)" SAN=1
    echo "setup: building the libFuzzer harnesses (build/fuzz)"
    make -s -j"$(nproc)" fuzz
fi
echo "setup: done"
