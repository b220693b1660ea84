#!/bin/sh
# Installs an edge board bundle (docs/board.md). Run from the unpacked bundle:
#
#   sudo ./install.sh                  on the board: everything below
#   ./install.sh --venv DIR --no-system
#                                      only the Python environment, in DIR (tests, users)
#   ./install.sh --root DIR            into a root file system being assembled on another
#                                      machine (an image build): same files, same places
#
# What goes where:
#   /opt/edge                    a virtualenv with edge-tee[board] from wheels/ (offline;
#                                pip comes from the bundle too: no compiler, no network)
#   /usr/local/bin/edge          -> /opt/edge/bin/edge
#   /lib/optee_armtz/<uuid>.ta   the signed trusted application (aarch64 bundles)
#   /etc/edge/daemon.toml        the default config (an existing one is kept)
#   /etc/systemd/system/         edge-daemon.service, edge-aggregator.service
#   user and group `edge`, member of the TEE client group `teeclnt`
#   /var/lib/edge                the daemon's state (systemd's StateDirectory= makes it too)
#
# Options: --venv DIR (default /opt/edge), --root DIR, --glibc X.Y (with --root: the
# target's glibc, default 2.36), --no-system (no users, units, TA or config),
# --python PY (default python3), --enable (systemctl enable --now).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
venv=/opt/edge root="" system=1 python=python3 enable=0 glibc=2.36
die() { echo "install: error: $*" >&2; exit 1; }
log() { echo "install: $*"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) venv=$2; shift ;;
        --root) root=$2; shift ;;
        --glibc) glibc=$2; shift ;;
        --no-system) system=0 ;;
        --python) python=$2; shift ;;
        --enable) enable=1 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
# version=, arch=, python_version= of the bundle
. "$HERE/VERSION"
wheel=$(ls "$HERE"/wheels/edge_tee-*-py3-none-linux_"$arch".whl 2>/dev/null | head -1)
[ -n "$wheel" ] || die "no edge_tee wheel for $arch in $HERE/wheels"
pipwhl=$(ls "$HERE"/wheels/pip-*.whl 2>/dev/null | head -1)

if [ -z "$root" ]; then
    # On the board (or this machine): a venv without pip, then the bundle's pip.
    [ "$(uname -m)" = "$arch" ] || die "this bundle is for $arch, this machine is $(uname -m)"
    have=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")') \
        || die "no $python: install Python $python_version first"
    [ "$have" = "$python_version" ] || die "the bundle's wheels are for Python" \
        "$python_version, $python is $have (build a bundle with --python $have)"
    log "creating the virtualenv $venv (Python $have)"
    "$python" -m venv --without-pip --clear "$venv"
    log "installing edge-tee[board] $version from the bundle's wheels (offline)"
    "$venv/bin/python" "$pipwhl/pip" install -q --no-index --find-links "$HERE/wheels" \
        --no-cache-dir --disable-pip-version-check "edge-tee[board]==$version"
else
    # An image being assembled elsewhere: the target's Python cannot run here, so the
    # host's pip installs the same wheels for the target's platform into the venv's
    # site-packages, and the venv and entry point are written as `python -m venv` would.
    pyv=$python_version
    hostpy=${EDGE_INSTALL_HOST_PYTHON:-python3}
    site=$root$venv/lib/python$pyv/site-packages
    log "installing edge-tee[board] $version into $root$venv (Python $pyv $arch)"
    mkdir -p "$site" "$root$venv/bin"
    ln -sf "/usr/bin/python$pyv" "$root$venv/bin/python3"
    ln -sf python3 "$root$venv/bin/python"
    printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n' "$pyv" \
        >"$root$venv/pyvenv.cfg"
    pv=$(echo "$pyv" | tr -d .)
    # Every manylinux tag the target's glibc accepts (PEP 600), and our linux_ wheel.
    platforms="--platform linux_$arch --platform manylinux2014_$arch"
    minor=17
    while [ "$minor" -le "${glibc#2.}" ]; do
        platforms="$platforms --platform manylinux_2_${minor}_$arch"
        minor=$((minor + 1))
    done
    "$hostpy" -m pip install -q --no-index --find-links "$HERE/wheels" --no-cache-dir \
        --disable-pip-version-check --target "$site" --only-binary=:all: \
        --implementation cp --python-version "$pyv" --abi "cp$pv" --abi abi3 --abi none \
        $platforms "edge-tee[board]==$version"
    rm -rf "$site/bin"
    for cmd in edge firmware-sign; do
        mod=$([ "$cmd" = edge ] && echo edge.cli || echo firmware_sign.cli)
        printf '#!%s/bin/python3\nimport sys\nfrom %s import main\nsys.exit(main())\n' \
            "$venv" "$mod" >"$root$venv/bin/$cmd"
        chmod 755 "$root$venv/bin/$cmd"
    done
fi

[ "$system" -eq 1 ] || { log "done (Python environment only): $venv/bin/edge"; exit 0; }

mkdir -p "$root/usr/local/bin"
ln -sf "$venv/bin/edge" "$root/usr/local/bin/edge"
if [ -d "$HERE/ta" ]; then
    mkdir -p "$root/lib/optee_armtz"
    for ta in "$HERE"/ta/*.ta; do
        install -m 444 "$ta" "$root/lib/optee_armtz/$(basename "$ta")"
        log "trusted application /lib/optee_armtz/$(basename "$ta")"
    done
fi
mkdir -p "$root/etc/edge"
if [ -e "$root/etc/edge/daemon.toml" ]; then
    log "keeping /etc/edge/daemon.toml"
else
    # World-readable: no secret goes in it (the MQTT password has its own file).
    install -m 644 "$HERE/config/daemon.toml" "$root/etc/edge/daemon.toml"
fi
mkdir -p "$root/etc/systemd/system"
for unit in "$HERE"/systemd/*.service; do
    install -m 644 "$unit" "$root/etc/systemd/system/$(basename "$unit")"
done

# Users: `edge` runs the daemon; it opens /dev/tee0, which belongs to the TEE client
# group (teeclnt, created by Debian's tee-supplicant package; made here if missing).
if [ -z "$root" ]; then
    getent group teeclnt >/dev/null || groupadd --system teeclnt
    getent group edge >/dev/null || groupadd --system edge
    getent passwd edge >/dev/null || useradd --system --gid edge --groups teeclnt \
        --home-dir /var/lib/edge --no-create-home --shell /usr/sbin/nologin edge
    id -nG edge | grep -qw teeclnt || usermod -a -G teeclnt edge
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        [ "$enable" -eq 0 ] || systemctl enable --now edge-daemon.service
    fi
else
    grep -q '^teeclnt:' "$root/etc/group" 2>/dev/null || echo 'teeclnt:x:990:' >>"$root/etc/group"
    grep -q '^edge:' "$root/etc/group" 2>/dev/null || echo 'edge:x:991:' >>"$root/etc/group"
    sed -i 's/^\(teeclnt:x:[0-9]*:\)$/\1edge/' "$root/etc/group"
    grep -q '^edge:' "$root/etc/passwd" 2>/dev/null \
        || echo 'edge:x:991:991:edge daemon:/var/lib/edge:/usr/sbin/nologin' >>"$root/etc/passwd"
fi
mkdir -p "$root/var/lib/edge"
log "done: edge-tee $version; configure /etc/edge/daemon.toml, then" \
    "systemctl enable --now edge-daemon (docs/board.md)"
