#!/usr/bin/env bash
# Builds the QEMU OP-TEE image, idempotently and cached, into build/qemu/:
#
#   firmware/qemu_fw.bios   TF-A BL1 + FIP (BL2, BL31, OP-TEE OS, Linux as BL33)
#   optee-os/               OP-TEE OS built from Debian's source package with the
#                           project's TA key and RPMB-backed storage, and its TA dev kit
#   firmware/Image          the same Debian arm64 kernel (QEMU needs -kernel for -append)
#   initrd.cpio.gz          root file system: busybox, tee-supplicant, libteec, xtest
#                           and its TAs, Python 3.13, and the aarch64 board bundle
#                           installed by its install.sh (edge in /opt/edge, our TA
#                           in /lib/optee_armtz; bundle/ keeps the tarball)
#   manifest.lock           every input: name, version, sha256, URL; index dates;
#                           the cross compiler
#   image.env               paths and sizes read by boot.sh
#
# Inputs (docs/qemu.md): the secure world (OP-TEE OS, dev kit, client, xtest,
# TF-A source) is hard-pinned with sha256 in scripts/qemu/secure.lock; the
# guest userland, kernel and wheels float (scripts/qemu/userland) on trixie,
# trixie-updates, trixie-security and PyPI, and drift from
# scripts/qemu/manifest.ref is printed as a warning. Downloads are cached by
# sha256 in ~/.cache/edge/qemu. The image is reproducible: same inputs, same
# bytes (SOURCE_DATE_EPOCH defaults to the last commit's time).
#
#   scripts/qemu/build.sh                 build (no-op when nothing changed)
#   scripts/qemu/build.sh --pin secure    move the secure pins to the index's newest
#   scripts/qemu/build.sh --pin reference build, then make the manifest the reference
#   scripts/qemu/build.sh --clean         remove the output folder first
#
# Environment: EDGE_QEMU_STRICT=1 makes drift fatal (release builds);
# EDGE_QEMU_LOCK=FILE builds exactly the inputs of a manifest;
# EDGE_QEMU_OUT=DIR builds elsewhere than build/qemu; EDGE_QEMU_CACHE=DIR
# moves the download cache (and the firmware cache, and the CI TA key);
# EDGE_QEMU_TA_KEY=FILE signs TAs with FILE (RSA PEM private key) and builds
# OP-TEE OS to trust its public half instead of the generated CI key.
set -euo pipefail
umask 022
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${EDGE_QEMU_OUT:-$ROOT/build/qemu}
HERE=$ROOT/scripts/qemu
APT_DIR=$OUT/apt
CACHE=${EDGE_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge/qemu}
PY=$ROOT/.venv/bin/python
log() { echo "qemu/build: $*"; }
die() { echo "qemu/build: error: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# shellcheck source=scripts/qemu/apt.sh
. "$HERE/apt.sh"

pin=none
while [ $# -gt 0 ]; do
    case "$1" in
        --pin)
            case "${2:-}" in
                secure|reference) pin=$2; shift ;;
                *) die "--pin wants 'secure' or 'reference' (see --help)" ;;
            esac ;;
        --clean) rm -rf "$OUT" ;;
        -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[ -x "$PY" ] || die "$PY is missing: run scripts/setup.sh first (the resolver runs in .venv)"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null \
        || stat -c %Y "$HERE/secure.lock")
fi
export SOURCE_DATE_EPOCH
mkdir -p "$OUT"

# ---------------------------------------------------------------- host tools
host_tools() {
    local -A need=(
        [qemu-system-aarch64]=qemu-system-arm
        [aarch64-linux-gnu-gcc]=gcc-aarch64-linux-gnu
        [cpio]=cpio
        [xz]=xz-utils
        [dpkg-source]=dpkg-dev
        [make]=make
        [readelf]=binutils
        [gzip]=gzip
        [mkfs.ext4]=e2fsprogs
        [dtc]=device-tree-compiler   # OP-TEE OS embeds its test DTB
    )
    local missing=() cmd
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
    done
    [ -d /usr/aarch64-linux-gnu/include ] || missing+=(libc6-dev-arm64-cross)
    [ -r /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || missing+=(debian-archive-keyring)
    /usr/bin/python3 -c 'import cryptography' 2>/dev/null || missing+=(python3-cryptography)
    /usr/bin/python3 -c 'import elftools' 2>/dev/null || missing+=(python3-pyelftools)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing host tools: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# ---------------------------------------------------------------- inputs
# scripts/qemu/inputs.py resolves (or, with EDGE_QEMU_LOCK, takes from a
# manifest), fetches into the sha256-addressed cache, checks, and links every
# input under $OUT/inputs; it writes $OUT/manifest.lock.
inputs() {
    local common=(--cache "$CACHE" --inputs "$OUT/inputs" --out "$OUT/manifest.lock")
    if [ -n "${EDGE_QEMU_LOCK:-}" ]; then
        log "inputs exactly as in $EDGE_QEMU_LOCK"
        "$PY" "$HERE/inputs.py" from-lock "${common[@]}" "$EDGE_QEMU_LOCK" || exit 1
        return 0
    fi
    # Resolve at most once a day (as the index is refreshed) or when the
    # input lists changed; otherwise rebuild from the last manifest.
    local key; key=$(cat "$HERE/secure.lock" "$HERE/userland" | sha256sum | cut -c1-16)
    if [ -f "$OUT/manifest.lock" ] && [ "$(cat "$OUT/.resolved" 2>/dev/null)" = "$key" ] \
        && [ -z "$(find "$OUT/.resolved" -mmin +1440)" ] && [ "$pin" = none ]; then
        "$PY" "$HERE/inputs.py" from-lock "${common[@]}" "$OUT/manifest.lock" || exit 1
        return 0
    fi
    apt_update
    local rc=0
    log "resolving the image's inputs (secure pins + today's trixie userland and wheels)"
    "$PY" "$HERE/inputs.py" resolve "${common[@]}" --lists "$APT_DIR/lists" || rc=$?
    if [ "$rc" -eq 3 ]; then
        log "the mirror no longer serves a file the index names: refreshing the index"
        apt_update force
        rc=0
        "$PY" "$HERE/inputs.py" resolve "${common[@]}" --lists "$APT_DIR/lists" || rc=$?
    fi
    [ "$rc" -eq 0 ] || exit "$rc"
    echo "$key" >"$OUT/.resolved"
}

# A hash of the manifest lines of one kind (what a build step depends on).
inputs_key() { grep "^$1 " "$OUT/manifest.lock" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- staging
stage() {
    local key; key=$(inputs_key deb)
    if [ "$(cat "$OUT/stage/.key" 2>/dev/null)" = "$key" ]; then return 0; fi
    log "unpacking packages into $OUT/stage"
    rm -rf "$OUT/stage"; mkdir -p "$OUT/stage"
    local deb
    for deb in "$OUT"/inputs/debs/*.deb; do dpkg -x "$deb" "$OUT/stage"; done
    echo "$key" >"$OUT/stage/.key"
}

# ---------------------------------------------------------------- TA key
# The key OP-TEE OS is built to trust and every TA in the image is signed
# with. CI: an RSA-3072 key generated once into the cache (never in the work
# tree; private file 0600). A release: EDGE_QEMU_TA_KEY (docs/qemu.md, keys).
ta_key() {
    if [ -n "${EDGE_QEMU_TA_KEY:-}" ]; then
        [ -r "$EDGE_QEMU_TA_KEY" ] || die "EDGE_QEMU_TA_KEY=$EDGE_QEMU_TA_KEY is not readable"
        TA_KEY=$EDGE_QEMU_TA_KEY
    else
        TA_KEY="$CACHE/keys/edge-ta-ci.pem"
        if [ ! -f "$TA_KEY" ]; then
            log "generating the CI TA signing key in $CACHE/keys (RSA-3072, test only)"
            mkdir -p "$CACHE/keys"; chmod 700 "$CACHE/keys"
            "$ROOT/.venv/bin/firmware-sign" ta keygen --out "$CACHE/keys/edge-ta-ci" >/dev/null
        fi
    fi
    TA_PUB="$OUT/ta-key.pub.pem"
    "$PY" - "$TA_KEY" "$TA_PUB" <<'PYEOF' || die "cannot read the TA key $TA_KEY"
import sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from firmware_sign.ta_cli import load_rsa_private
pub = load_rsa_private(sys.argv[1]).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
if not Path(sys.argv[2]).is_file() or Path(sys.argv[2]).read_bytes() != pub:
    Path(sys.argv[2]).write_bytes(pub)
PYEOF
}

# ---------------------------------------------------------------- OP-TEE OS
# Built from Debian's optee-os source package for vexpress-qemu_armv8a, with
# Debian's flags for that platform plus: TA_PUBLIC_KEY (only TAs signed with
# the project key load), and secure storage anchored in RPMB (REE FS objects'
# directory hash in RPMB, so a rolled-back set of files is detected; the
# emulated RPMB of tee-supplicant with OP-TEE's test key programmed on first
# use). CFG_RPMB_ANNOUNCE_PROBE_CAP=n: RPMB goes through tee-supplicant, not
# the kernel's RPMB subsystem (no eMMC here). The result is cached under
# $CACHE/optee-os/KEY, KEY = hash of the sources, flags, compiler and key.
OPTEE_FLAGS=(PLATFORM=vexpress-qemu_armv8a CFG_ARM64_core=y CFG_ARM_GICV3=y
    CFG_VIRTUALIZATION=n CFG_USER_TA_TARGETS=ta_arm64 CFG_TEE_CORE_LOG_LEVEL=2
    CFG_TEE_BENCHMARK=n CFG_RPMB_FS=y CFG_REE_FS_INTEGRITY_RPMB=y
    CFG_RPMB_WRITE_KEY=y CFG_RPMB_TESTKEY=y CFG_RPMB_ANNOUNCE_PROBE_CAP=n
    CFG_REE_FS_ALLOW_RESET=n)
build_optee_os() {
    local dsc ver
    dsc=$(ls "$OUT"/inputs/src/optee-os/*.dsc)
    ver=$(sed -n 's/^Version: //p' "$dsc")
    local key
    key=$({ echo "${OPTEE_FLAGS[*]}"; aarch64-linux-gnu-gcc -dumpfullversion
            sha256sum "$OUT"/inputs/src/optee-os/* "$TA_PUB" | cut -d' ' -f1; } \
          | sha256sum | cut -c1-32)
    local cached="$CACHE/optee-os/$key"
    if [ ! -f "$cached/.done" ]; then
        local src="$OUT/src/optee-os-$key" t0=$SECONDS
        rm -rf "$OUT"/src/optee-os-*; mkdir -p "$OUT/src"
        dpkg-source --no-check -x "$dsc" "$src" >/dev/null
        log "building OP-TEE OS $ver from source (project TA key, RPMB storage); cached by key $key"
        # Debian's CFLAGS for this platform: hardening without the stack
        # protector and format checks; optee_os calls ld directly (no -Wl,).
        local build="$OUT/optee-os-build"
        rm -rf "$build"
        (cd "$src" && make -j"$(nproc)" CROSS_COMPILE=aarch64-linux-gnu- \
            CROSS_COMPILE64=aarch64-linux-gnu- PYTHON3=/usr/bin/python3 \
            "${OPTEE_FLAGS[@]}" TA_PUBLIC_KEY="$TA_PUB" O="$build" \
            "CFG_TEE_FW_MANUFACTURER=debian-$ver" >"$OUT/optee-os.log" 2>&1) \
            || { tail -30 "$OUT/optee-os.log" >&2; die "OP-TEE OS build failed (log: $OUT/optee-os.log)"; }
        local tmp="$cached.tmp.$$"
        rm -rf "$tmp"; mkdir -p "$tmp"
        cp "$build"/core/tee-header_v2.bin "$build"/core/tee-pager_v2.bin \
           "$build"/core/tee-pageable_v2.bin "$tmp/"
        cp -a "$build/export-ta_arm64" "$tmp/"
        echo "OP-TEE OS $ver ${OPTEE_FLAGS[*]} TA_PUBLIC_KEY sha256 $(sha256sum "$TA_PUB" | cut -c1-64)" >"$tmp/BUILDINFO"
        touch "$tmp/.done"
        rm -rf "$cached"; mkdir -p "$(dirname "$cached")"; mv "$tmp" "$cached"
        rm -rf "$build" "$src"
        log "OP-TEE OS built in $((SECONDS - t0)) s"
    fi
    if [ "$(cat "$OUT/optee-os/.key" 2>/dev/null)" != "$key" ]; then
        rm -rf "$OUT/optee-os"; cp -a "$cached" "$OUT/optee-os"; echo "$key" >"$OUT/optee-os/.key"
    fi
}

# ---------------------------------------------------------------- TF-A
build_tfa() {
    local dsc src ver
    dsc=$(ls "$OUT"/inputs/src/arm-trusted-firmware/*.dsc)
    ver=$(sed -n 's/^Version: //p' "$dsc")
    src="$OUT/src/arm-trusted-firmware-$(inputs_key src)"
    if [ ! -f "$src/.unpacked" ]; then
        rm -rf "$OUT"/src/arm-trusted-firmware-*; mkdir -p "$OUT/src"
        # Every file was checked against the sha256 in secure.lock.
        dpkg-source --no-check -x "$dsc" "$src" >/dev/null
        touch "$src/.unpacked"
    fi
    local optee="$OUT/optee-os"
    local kernel
    kernel=$(ls "$OUT"/stage/boot/vmlinuz-* 2>/dev/null | head -1)
    [ -n "$kernel" ] || die "no kernel in the staged packages"
    # No build time in the firmware, and no `git describe` (TF-A would find
    # this checkout's git): the banner names the source package instead.
    local flags=(CROSS_COMPILE=aarch64-linux-gnu- CFLAGS=--param=min-pagesize=0 LDFLAGS=
        PLAT=qemu DEBUG=0 SPD=opteed BL32_RAM_LOCATION=tdram
        QEMU_USE_GIC_DRIVER=QEMU_GICV3 ARM_LINUX_KERNEL_AS_BL33=1
        "BUILD_MESSAGE_TIMESTAMP=\"debian $ver\"" "BUILD_STRING=debian-$ver")
    mkdir -p "$OUT/firmware"
    local key
    key=$({ echo "${flags[*]}"; aarch64-linux-gnu-gcc -dumpfullversion
            sha256sum "$dsc" "$kernel" "$optee"/tee-*_v2.bin | cut -d' ' -f1; } \
          | sha256sum | cut -c1-32)
    if [ -f "$OUT/firmware/qemu_fw.bios" ] && [ "$(cat "$OUT/firmware/.key" 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    log "building TF-A $ver (PLAT=qemu SPD=opteed, kernel as BL33)"
    cp "$kernel" "$OUT/firmware/Image"
    rm -rf "$OUT/tfa"
    make -s -C "$src" -j"$(nproc)" "${flags[@]}" BUILD_BASE="$OUT/tfa" \
        BL32="$optee/tee-header_v2.bin" BL32_EXTRA1="$optee/tee-pager_v2.bin" \
        BL32_EXTRA2="$optee/tee-pageable_v2.bin" BL33="$OUT/firmware/Image" \
        all fip >"$OUT/tfa.log" 2>&1 || { tail -30 "$OUT/tfa.log" >&2; die "TF-A build failed (log: $OUT/tfa.log)"; }
    cp "$OUT/tfa/qemu/release/qemu_fw.bios" "$OUT/firmware/qemu_fw.bios"
    echo "$key" >"$OUT/firmware/.key"
}

# ---------------------------------------------------------------- our code
build_ta() {
    # The dev kit exported by our OP-TEE OS build (same version as the OS).
    local kit="$OUT/optee-os/export-ta_arm64"
    [ -f "$kit/mk/ta_dev_kit.mk" ] || die "TA dev kit not found in $kit"
    # EDGE_QEMU_TA_SRC: build the image with the TA from another tree (debugging).
    local src=${EDGE_QEMU_TA_SRC:-ta}
    log "building the edge TA ($src) with the OP-TEE dev kit, signed by firmware-sign"
    rm -rf "$OUT/ta"
    TA_DEV_KIT_DIR="$kit" make -s -C "$src" CROSS_COMPILE=aarch64-linux-gnu- \
        TA_DEV_KIT_DIR="$kit" SIGN_ENC="$HERE/sign-ta" TA_SIGN_KEY="$TA_KEY" \
        O="$OUT/ta" >"$OUT/ta.log" 2>&1 || { cat "$OUT/ta.log" >&2; die "TA build failed"; }
}

# xtest's TAs come signed with OP-TEE's public development key, which this
# OS does not trust: each is verified under that key, then its ELF re-signed
# with the project key (same UUID and TA version) into $OUT/xtest-tas. The
# TAs of xtest's subkey test are left out: their chain ends in a subkey of
# the development key, which a project-keyed OS rightly refuses.
resign_xtest_tas() {
    local devkey="$OUT/stage/usr/lib/optee-os-dev/vexpress-qemu_armv8a/keys/default_ta.pem"
    local key; key=$({ sha256sum "$OUT"/stage/usr/lib/optee_armtz/*.ta "$TA_PUB" | cut -d' ' -f1; } | sha256sum | cut -c1-32)
    [ "$(cat "$OUT/xtest-tas/.key" 2>/dev/null)" = "$key" ] && return 0
    log "re-signing xtest's TAs with the project TA key"
    rm -rf "$OUT/xtest-tas"; mkdir -p "$OUT/xtest-tas"
    "$ROOT/.venv/bin/firmware-sign" ta resign --skip-subkey --verify-key "$devkey" --key "$TA_KEY" \
        --out "$OUT/xtest-tas" "$OUT"/stage/usr/lib/optee_armtz/*.ta \
        >"$OUT/xtest-tas.log" || die "re-signing xtest's TAs failed"
    echo "$key" >"$OUT/xtest-tas/.key"
}

build_client() {
    log "cross-compiling libedge_client.so and edge-ta-cli for arm64"
    make -s arm64-client ARM64_SYSROOT="$OUT/stage" ARM64_BUILD="$OUT/arm64" \
        >"$OUT/client.log" 2>&1 \
        || { cat "$OUT/client.log" >&2; die "arm64 client build failed"; }
}

# ---------------------------------------------------------------- root fs
# Hash of everything the root file system is made of.
rootfs_key() {
    {
        echo "$SOURCE_DATE_EPOCH"
        grep -E '^(deb|wheel) ' "$OUT/manifest.lock"
        cat "$HERE/init" "$HERE/cmdloop" "$HERE/build.sh"
        sha256sum "$OUT"/ta/*.ta "$OUT"/xtest-tas/*.ta "$OUT"/arm64/libedge_client.so \
            "$OUT"/arm64/edge-ta-cli host/include/edge_client.h
        find edge firmware_sign -name '*.py' -type f -print0 | sort -z | xargs -0 sha256sum
        sha256sum pyproject.toml scripts/bundle.sh deploy/board/* deploy/systemd/*
    } | sha256sum | cut -c1-32
}

copy_from_stage() { # paths relative to the staged root
    local p
    for p in "$@"; do
        [ -e "$OUT/stage/$p" ] || [ -L "$OUT/stage/$p" ] || die "missing in staged packages: /$p"
        mkdir -p "$R/$(dirname "$p")"
        cp -a "$OUT/stage/$p" "$R/$(dirname "$p")/"
    done
}

make_rootfs() {
    local key; key=$(rootfs_key)
    if [ -f "$OUT/initrd.cpio.gz" ] && [ "$(cat "$OUT/.rootfs-key" 2>/dev/null)" = "$key" ]; then
        log "root file system up to date"
        return 0
    fi
    log "assembling the root file system"
    R="$OUT/rootfs"
    rm -rf "$R"
    mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,run,root,etc,var/lib/optee-client/data/tee,mnt,lib/optee_armtz,usr/bin}
    # usrmerge layout, like trixie.
    rmdir "$R/bin" "$R/sbin"; ln -s usr/bin "$R/bin"; ln -s usr/bin "$R/sbin"
    ln -s usr/lib "$R/lib64" 2>/dev/null || true
    rm -rf "$R/lib"; mkdir -p "$R/usr/lib/optee_armtz"; ln -s usr/lib "$R/lib"

    # busybox (arm64, so it cannot run here: /init installs its applets)
    cp "$OUT/stage/usr/bin/busybox" "$R/usr/bin/busybox"
    ln -s busybox "$R/usr/bin/sh"

    # libc & co, OP-TEE client side, xtest and its TAs and plugin
    copy_from_stage usr/lib/ld-linux-aarch64.so.1 usr/lib/aarch64-linux-gnu
    rm -rf "$R"/usr/lib/aarch64-linux-gnu/{gconv,audit,engines-3,ossl-modules}
    copy_from_stage usr/sbin/tee-supplicant usr/bin/xtest
    mkdir -p "$R/usr/lib/optee_armtz"
    cp "$OUT"/xtest-tas/*.ta "$R/usr/lib/optee_armtz/"
    [ -d "$OUT/stage/usr/lib/tee-supplicant" ] && copy_from_stage usr/lib/tee-supplicant
    mkdir -p "$R/usr/sbin"; mv "$R/usr/sbin/tee-supplicant" "$R/usr/bin/"; rmdir "$R/usr/sbin"
    rm -f "$R"/usr/lib/aarch64-linux-gnu/*.a

    # kernel modules, decompressed
    local kver mods
    kver=$(basename "$(ls -d "$OUT"/stage/usr/lib/modules/*/ | head -1)")
    mods="$OUT/stage/usr/lib/modules/$kver/kernel"
    mkdir -p "$R/usr/lib/modules/$kver"
    # tee + optee; failover, net_failover, virtio_net for the optional
    # user-mode network (virtio-pci is built in); virtio_blk and ext4 (with
    # what it needs, in load order) for the persistent secure-storage disk
    local m
    for m in drivers/tee/tee drivers/tee/optee/optee net/core/failover \
             drivers/net/net_failover drivers/net/virtio_net drivers/block/virtio_blk \
             lib/crc16 crypto/crc32c_generic fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4; do
        xz -dc "$mods/$m.ko.xz" >"$R/usr/lib/modules/$kver/$(basename "$m").ko"
    done

    # Python 3.13, trimmed of what the guest never uses
    copy_from_stage usr/bin/python3.13 usr/lib/python3.13
    ln -s python3.13 "$R/usr/bin/python3"
    rm -rf "$R"/usr/lib/python3.13/{test,idlelib,tkinter,turtledemo,ensurepip,lib2to3,pydoc_data,config-3.13-aarch64-linux-gnu}
    install_bundle

    cp "$HERE/init" "$R/init"; chmod 755 "$R/init"
    install -m 755 "$HERE/cmdloop" "$R/usr/bin/edge-cmdloop"
    printf '127.0.0.1 localhost\n' >"$R/etc/hosts"
    printf 'hosts: files\n' >"$R/etc/nsswitch.conf"

    check_needed "$R"

    # Reproducible archive: one time for every file, no inode numbers, no
    # name or time in the gzip header; the order is sorted.
    log "packing initrd.cpio.gz"
    find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    (cd "$R" && find . -print0 | LC_ALL=C sort -z \
        | cpio -o -H newc -0 --quiet --reproducible -R 0:0) \
        | gzip -n -1 >"$OUT/initrd.cpio.gz.tmp"
    mv "$OUT/initrd.cpio.gz.tmp" "$OUT/initrd.cpio.gz"
    echo "$key" >"$OUT/.rootfs-key"
}

# Edge goes into the image as a user installs it on a board (docs/board.md): the
# aarch64 board bundle (scripts/bundle.sh, from this build's cross-compiled client,
# signed TA and pinned wheels), unpacked and installed by its own install.sh, here
# with --root since the guest's Python cannot run on this machine: pip installs the
# platform wheel and edge-tee[board]'s wheels into the /opt/edge virtualenv, the TA
# lands in /lib/optee_armtz/<uuid>.ta, the config in /etc/edge, the units and the
# edge/teeclnt accounts where a board has them.
install_bundle() {
    log "building and installing the aarch64 board bundle"
    rm -rf "$OUT/bundle"
    scripts/bundle.sh --arch aarch64 --python 3.13 --native-dir "$OUT/arm64" \
        --ta-dir "$OUT/ta" --wheelhouse "$OUT/inputs/wheels" --out "$OUT/bundle" \
        >"$OUT/bundle.log" 2>&1 || { cat "$OUT/bundle.log" >&2; die "bundle build failed"; }
    mkdir -p "$OUT/bundle/unpacked"
    tar -C "$OUT/bundle/unpacked" -xzf "$OUT"/bundle/edge-bundle-*-aarch64.tar.gz
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
    printf 'root:x:0:\n' >"$R/etc/group"
    local glibc
    glibc=$(sed -n 's/^deb libc6 \([0-9]*\.[0-9]*\).*/\1/p' "$OUT/manifest.lock")
    EDGE_INSTALL_HOST_PYTHON="$PY" "$OUT"/bundle/unpacked/edge-bundle-*/install.sh \
        --root "$R" --glibc "$glibc" >>"$OUT/bundle.log" 2>&1 \
        || { cat "$OUT/bundle.log" >&2; die "installing the bundle into the image failed"; }
    local site="$R/opt/edge/lib/python3.13/site-packages"
    # edge-ta-cli (C) from the installed package, for the tests and humans
    ln -s /opt/edge/lib/python3.13/site-packages/edge/_native/edge-ta-cli "$R/usr/bin/edge-ta-cli"
    find "$site" "$R/usr/lib/python3.13" -name __pycache__ -type d -prune -exec rm -rf {} +
    rm -rf "$site"/numpy/*/tests "$site"/numpy/tests
}

# Every DT_NEEDED of every ELF in the image must be in the image.
check_needed() {
    local r=$1 f lib missing=0
    declare -A have=()
    while IFS= read -r f; do have[$(basename "$f")]=1; done < <(find "$r" \( -name '*.so*' \) \( -type f -o -type l \))
    while IFS= read -r f; do
        while read -r lib; do
            [ -n "${have[$lib]:-}" ] && continue
            # wheels carry their own copies in *.libs folders
            echo "qemu/build: $f needs $lib, which is not in the image" >&2
            missing=1
        done < <(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    done < <(find "$r/usr/bin" "$r/opt/edge" "$r/usr/lib/tee-supplicant" "$r/usr/local/lib" \
                 -type f \( -perm -u+x -o -name '*.so*' \) 2>/dev/null)
    [ "$missing" -eq 0 ] || die "the image misses shared libraries (see above)"
}

write_env() {
    local size
    size=$(stat -c %s "$OUT/initrd.cpio.gz")
    cat >"$OUT/image.env" <<EOF
BIOS=$OUT/firmware/qemu_fw.bios
KERNEL=$OUT/firmware/Image
INITRD=$OUT/initrd.cpio.gz
INITRD_SIZE=$size
EOF
}

host_tools
apt_setup
if [ "$pin" = secure ]; then
    apt_update force
    "$PY" "$HERE/inputs.py" pin-secure --lists "$APT_DIR/lists" || exit 1
    log "secure pins moved: review 'git diff scripts/qemu/secure.lock', then commit it"
fi
inputs
stage
ta_key
build_optee_os
build_tfa
build_ta
resign_xtest_tas
build_client
make_rootfs
write_env
if [ "$pin" = reference ]; then
    cp "$OUT/manifest.lock" "$HERE/manifest.ref"
    log "scripts/qemu/manifest.ref is now this build's manifest: review and commit it"
fi
log "done: $(du -sh "$OUT/firmware/qemu_fw.bios" | cut -f1) firmware," \
    "$(du -sh "$OUT/initrd.cpio.gz" | cut -f1) initrd; boot with scripts/qemu/boot.sh"
