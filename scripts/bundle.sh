#!/usr/bin/env bash
# Builds the installable board bundle (docs/board.md), one command per target:
#
#   scripts/bundle.sh --arch aarch64   # a board with OP-TEE: client library + signed TA
#   scripts/bundle.sh --arch x86_64    # the simulator: + edge-sim-tee, libteec_sim.so
#
# Output: dist/edge-bundle-<version>-<arch>.tar.gz, unpacking to a folder with
#   install.sh        installs everything (run as root on the board; --help)
#   wheels/           the platform wheel edge_tee-<v>-py3-none-linux_<arch>.whl, which
#                     carries the native libraries in edge/_native, and every wheel
#                     `edge-tee[board]` needs (plus pip), so the install is offline
#   ta/<uuid>.ta      the signed TA (aarch64), for /lib/optee_armtz/
#   systemd/          deploy/systemd units;  config/daemon.toml  the default config
#
# Options:
#   --arch A             aarch64 or x86_64 (required)
#   --python X.Y         the board's CPython (default: 3.13 for aarch64, as trixie and the
#                        QEMU image; this machine's for x86_64)
#   --native-dir DIR     prebuilt native files (default: `make` for x86_64; for aarch64 the
#                        cross build of scripts/qemu/build.sh, which is run first)
#   --ta-dir DIR         folder with the signed <uuid>.ta (aarch64; default build/qemu/ta)
#   --wheelhouse DIR     take dependency wheels from DIR instead of PyPI (pinned inputs;
#                        aarch64 for 3.13 defaults to the QEMU image's pinned wheels)
#   --out DIR            output folder (default dist)
#
# The aarch64 client is cross-built in one place, `make arm64-client`, which
# scripts/qemu/build.sh runs against the image's sysroot; that build then calls
# this script with --native-dir/--ta-dir/--wheelhouse to install the same bundle
# into the image.
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
log() { echo "bundle: $*"; }
die() { echo "bundle: error: $*" >&2; exit 1; }

arch="" pyver="" native="" tadir="" wheelhouse="" out=dist
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch=$2; shift ;;
        --python) pyver=$2; shift ;;
        --native-dir) native=$2; shift ;;
        --ta-dir) tadir=$2; shift ;;
        --wheelhouse) wheelhouse=$2; shift ;;
        --out) out=$2; shift ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
case "$arch" in aarch64|x86_64) ;; *) die "--arch aarch64 or --arch x86_64" ;; esac
[ -x "$PY" ] || die "$PY is missing: run scripts/setup.sh first"
"$PY" -c 'import setuptools, wheel' 2>/dev/null \
    || die "setuptools/wheel missing in .venv: run scripts/setup.sh"
version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')

if [ "$arch" = x86_64 ]; then
    [ "$(uname -m)" = x86_64 ] || die "the x86_64 bundle is built on an x86_64 machine"
    pyver=${pyver:-$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
    if [ -z "$native" ]; then
        log "building the native parts (make)"
        make -s -j"$(nproc)" build/host/libedge_client.so build/host/libteec_sim.so \
            build/host/edge-sim-tee build/host/edge-ta-cli
        native=build/host
    fi
    natives=(libedge_client.so libteec_sim.so edge-sim-tee edge-ta-cli)
else
    pyver=${pyver:-3.13}
    if [ -z "$native" ]; then
        log "cross-building with scripts/qemu/build.sh (arm64 client, signed TA)"
        scripts/qemu/build.sh
        native=build/qemu/arm64
        tadir=${tadir:-build/qemu/ta}
        # For trixie's Python, the image's pinned and verified wheels (the same bundle
        # the QEMU suite tests); another --python downloads its own.
        if [ -z "$wheelhouse" ] && [ "$pyver" = 3.13 ]; then
            wheelhouse=build/qemu/inputs/wheels
        fi
    fi
    tadir=${tadir:-build/qemu/ta}
    natives=(libedge_client.so edge-ta-cli)
fi
native=$(cd "$native" && pwd)
[ -n "$wheelhouse" ] && wheelhouse=$(cd "$wheelhouse" && pwd)
[ -n "$tadir" ] && tadir=$(cd "$tadir" && pwd)
mkdir -p "$out"; out=$(cd "$out" && pwd)

name=edge-bundle-$version-$arch
work=$out/.work-$arch
rm -rf "$work"; mkdir -p "$work/src" "$work/$name"/{wheels,systemd,config,docs}
B=$work/$name

# The package sources as they are in this tree (not just what is committed), and the
# native files inside the package; then a wheel retagged for the platform: the
# libraries are loaded with cffi's ABI mode, so no CPython ABI is involved (py3-none).
log "building the platform wheel (py3-none-linux_$arch)"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' --exclude=edge/_native \
    -cf - pyproject.toml README.md edge firmware_sign | tar -C "$work/src" -xf -
mkdir -p "$work/src/edge/_native"
for f in "${natives[@]}"; do
    [ -f "$native/$f" ] || die "$native/$f is missing"
    install -m 755 "$native/$f" "$work/src/edge/_native/$f"
done
# edge/native.py hands cffi the library's own header, found beside it.
install -m 644 "$ROOT/host/include/edge_client.h" "$work/src/edge/_native/edge_client.h"
(cd "$work/src" && "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/whl" . \
    >"$work/wheel.log" 2>&1) || { cat "$work/wheel.log" >&2; die "wheel build failed"; }
"$PY" -m wheel tags --remove --python-tag py3 --abi-tag none --platform-tag "linux_$arch" \
    "$work"/whl/edge_tee-*.whl >/dev/null
cp "$work"/whl/edge_tee-*-py3-none-linux_"$arch".whl "$B/wheels/"

# Dependency wheels for the board's Python, binary only (no compiler on the board).
if [ -n "$wheelhouse" ]; then
    log "dependency wheels from $wheelhouse"
    cp "$wheelhouse"/*.whl "$B/wheels/"
else
    log "downloading the wheels edge-tee[board] needs on CPython $pyver $arch"
    plat=()
    if [ "$arch" = aarch64 ]; then
        plat=(--platform manylinux_2_36_aarch64 --platform manylinux_2_28_aarch64
              --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64
              --python-version "$pyver" --implementation cp)
    fi
    wheel=$(ls "$B"/wheels/edge_tee-*.whl)
    "$PY" -m pip download -q --only-binary=:all: "${plat[@]}" -d "$B/wheels" \
        "edge-tee[board] @ file://$wheel" pip >"$work/download.log" 2>&1 \
        || { cat "$work/download.log" >&2; die "downloading the dependency wheels failed"; }
fi
ls "$B"/wheels/pip-*.whl >/dev/null 2>&1 || "$PY" -m pip download -q --only-binary=:all: \
    --no-deps -d "$B/wheels" pip >/dev/null

if [ "$arch" = aarch64 ]; then
    mkdir -p "$B/ta"
    ls "$tadir"/*.ta >/dev/null 2>&1 || die "no signed .ta in $tadir"
    cp "$tadir"/*.ta "$B/ta/"
fi
cp deploy/systemd/*.service "$B/systemd/"
cp deploy/board/daemon.toml "$B/config/"
cp deploy/board/install.sh "$B/install.sh"; chmod 755 "$B/install.sh"
cp docs/board.md "$B/docs/" 2>/dev/null || true
printf 'version=%s\narch=%s\npython_version=%s\n' "$version" "$arch" "$pyver" >"$B/VERSION"

# Reproducible archive: sorted names, one owner, one time.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -cf - "$name" | gzip -n >"$out/$name.tar.gz.tmp"
mv "$out/$name.tar.gz.tmp" "$out/$name.tar.gz"
rm -rf "$work"
log "done: $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1))"
