#!/usr/bin/env bash
# Builds the QEMU OP-TEE image, idempotently and cached, into build/qemu/:
#
#   firmware/qemu_fw.bios   TF-A BL1 + FIP (BL2, BL31, OP-TEE OS, Linux as BL33)
#   firmware/Image          the same Debian arm64 kernel (QEMU needs -kernel for -append)
#   initrd.cpio.gz          root file system: busybox, tee-supplicant, libteec, xtest
#                           and its TAs, our TA, edge-ta-cli, libedge_client.so,
#                           Python 3.13 with edge/firmware_sign and arm64 wheels
#   image.env               paths and sizes read by boot.sh
#
# Everything arm64 comes from Debian trixie at the versions pinned in
# scripts/qemu/versions, through a private apt configuration under
# build/qemu/apt (the host's sources are never touched); .debs are unpacked
# with dpkg -x, never installed. Host tools are installed with apt-get only
# when missing.
#
#   scripts/qemu/build.sh           build (no-op when nothing changed)
#   scripts/qemu/build.sh --pin     rewrite scripts/qemu/versions from today's index
#   scripts/qemu/build.sh --clean   remove build/qemu first
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/build/qemu
VERSIONS=$ROOT/scripts/qemu/versions
HERE=$ROOT/scripts/qemu
APT_DIR=$OUT/apt
# shellcheck source=scripts/qemu/apt.sh
. "$HERE/apt.sh"

log() { echo "qemu/build: $*"; }
die() { echo "qemu/build: error: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pin=0
for arg in "$@"; do
    case "$arg" in
        --pin) pin=1 ;;
        --clean) rm -rf "$OUT" ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $arg (see --help)" ;;
    esac
done

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
    )
    local missing=() cmd
    for cmd in "${!need[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
    done
    [ -d /usr/aarch64-linux-gnu/include ] || missing+=(libc6-dev-arm64-cross)
    [ -r /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || missing+=(debian-archive-keyring)
    python3 -c 'import cryptography' 2>/dev/null || missing+=(python3-cryptography)
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing host tools: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# ---------------------------------------------------------------- pins
debs=() ; srcs=() ; wheels=()
read_pins() {
    [ -f "$VERSIONS" ] || die "$VERSIONS is missing; run with --pin to create it"
    local kind name ver
    while read -r kind name ver; do
        case "$kind" in
            ''|\#*) continue ;;
            deb) debs+=("$name=$ver") ;;
            src) srcs+=("$name=$ver") ;;
            wheel) wheels+=("$name==$ver") ;;
            *) die "$VERSIONS: unknown line '$kind $name $ver'" ;;
        esac
    done <"$VERSIONS"
}

write_pins() {
    apt_update force
    local tmp line kind name ver new
    tmp=$(mktemp)
    while IFS= read -r line; do
        read -r kind name ver <<<"$line" || true
        case "$kind" in
            deb)
                if [[ $name == linux-image-*-arm64 ]]; then
                    # The kernel package name carries the ABI: follow the metapackage.
                    name=$(papt_cache depends linux-image-arm64 | sed -n 's/.*Depends: \(linux-image-.*-arm64\)$/\1/p' | head -1)
                fi
                new=$(papt_cache show --no-all-versions "$name:arm64" | sed -n 's/^Version: //p' | head -1)
                [ -n "$new" ] || die "no $name in trixie/arm64"
                echo "deb $name $new" ;;
            src)
                new=$(papt_cache showsrc "$name" | sed -n 's/^Version: //p' | head -1)
                echo "src $name $new" ;;
            wheel)
                echo "wheel $name $(python3 -m pip index versions "$name" 2>/dev/null \
                    | sed -n 's/^[^ ]* (\(.*\))$/\1/p')" ;;
            *) echo "$line" ;;
        esac
    done <"$VERSIONS" >"$tmp"
    mv "$tmp" "$VERSIONS"
    log "pinned versions written to $VERSIONS:"
    cat "$VERSIONS"
}

# ---------------------------------------------------------------- downloads
fetch_debs() {
    mkdir -p "$OUT/debs"
    local spec name ver file need=()
    for spec in "${debs[@]}"; do
        name=${spec%%=*}; ver=${spec#*=}
        file="$OUT/debs/${name}_${ver//:/%3a}_arm64.deb"
        [ -f "$file" ] || need+=("$name:arm64=$ver")
    done
    [ "${#need[@]}" -eq 0 ] && return 0
    apt_update
    log "downloading ${#need[@]} arm64 packages"
    if ! (cd "$OUT/debs" && papt_get -qq download "${need[@]}"); then
        apt_update force
        (cd "$OUT/debs" && papt_get -qq download "${need[@]}") || die \
            "a pinned package is no longer in trixie (point release?); run" \
            "scripts/qemu/build.sh --pin to move the pins to today's versions"
    fi
}

fetch_sources() {
    local spec name ver
    for spec in "${srcs[@]}"; do
        name=${spec%%=*}; ver=${spec#*=}
        local dir="$OUT/src/$name-$ver"
        [ -f "$dir/.unpacked" ] && continue
        apt_update
        log "fetching source package $name $ver"
        rm -rf "$dir" "$OUT/src/dl-$name"
        mkdir -p "$OUT/src/dl-$name"
        (cd "$OUT/src/dl-$name" && papt_get -qq source --download-only "$name=$ver") \
            || die "source package $name=$ver not available; try --pin"
        # apt-get checked the files against the signed Sources index.
        dpkg-source --no-check -x "$OUT/src/dl-$name/${name}_${ver#*:}.dsc" "$dir" >/dev/null
        touch "$dir/.unpacked"
    done
}

fetch_wheels() {
    local stamp="$OUT/wheels/.pinned"
    local want="${wheels[*]}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    log "downloading arm64 wheels: $want"
    rm -rf "$OUT/wheels"; mkdir -p "$OUT/wheels"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 313 \
        --implementation cp --abi cp313 --abi abi3 --abi none \
        --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 \
        --platform manylinux2014_aarch64 --platform any \
        -d "$OUT/wheels" "${wheels[@]}"
    echo "$want" >"$stamp"
}

# ---------------------------------------------------------------- staging
stage() {
    local stamp="$OUT/stage/.versions"
    if [ -f "$stamp" ] && cmp -s "$stamp" "$VERSIONS"; then return 0; fi
    log "unpacking packages into build/qemu/stage"
    rm -rf "$OUT/stage"; mkdir -p "$OUT/stage"
    local spec name ver
    for spec in "${debs[@]}"; do
        name=${spec%%=*}; ver=${spec#*=}
        dpkg -x "$OUT/debs/${name}_${ver//:/%3a}_arm64.deb" "$OUT/stage"
    done
    cp "$VERSIONS" "$stamp"
}

# ---------------------------------------------------------------- TF-A
build_tfa() {
    local spec ver src
    for spec in "${srcs[@]}"; do [ "${spec%%=*}" = arm-trusted-firmware ] && ver=${spec#*=}; done
    src="$OUT/src/arm-trusted-firmware-$ver"
    local optee="$OUT/stage/usr/lib/optee/vexpress-qemu_armv8a"
    local kernel
    kernel=$(ls "$OUT"/stage/boot/vmlinuz-* 2>/dev/null | head -1)
    [ -n "$kernel" ] || die "no kernel in the staged packages"
    mkdir -p "$OUT/firmware"
    local key="$ver $(sha256sum "$kernel" "$optee"/tee-*_v2.bin | sha256sum | cut -c1-16)"
    if [ -f "$OUT/firmware/qemu_fw.bios" ] && [ "$(cat "$OUT/firmware/.key" 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    log "building TF-A $ver (PLAT=qemu SPD=opteed, kernel as BL33)"
    cp "$kernel" "$OUT/firmware/Image"
    make -s -C "$src" -j"$(nproc)" CROSS_COMPILE=aarch64-linux-gnu- \
        CFLAGS=--param=min-pagesize=0 LDFLAGS= BUILD_BASE="$OUT/tfa" \
        PLAT=qemu DEBUG=0 SPD=opteed BL32_RAM_LOCATION=tdram \
        QEMU_USE_GIC_DRIVER=QEMU_GICV3 ARM_LINUX_KERNEL_AS_BL33=1 \
        BL32="$optee/tee-header_v2.bin" BL32_EXTRA1="$optee/tee-pager_v2.bin" \
        BL32_EXTRA2="$optee/tee-pageable_v2.bin" BL33="$OUT/firmware/Image" \
        all fip >"$OUT/tfa.log" 2>&1 || { tail -30 "$OUT/tfa.log" >&2; die "TF-A build failed (log: $OUT/tfa.log)"; }
    cp "$OUT/tfa/qemu/release/qemu_fw.bios" "$OUT/firmware/qemu_fw.bios"
    echo "$key" >"$OUT/firmware/.key"
}

# ---------------------------------------------------------------- our code
build_ta() {
    local kit="$OUT/stage/usr/lib/optee-os-dev/vexpress-qemu_armv8a"
    [ -f "$kit/mk/ta_dev_kit.mk" ] || die "TA dev kit not found in $kit"
    # EDGE_QEMU_TA_SRC: build the image with the TA from another tree (debugging).
    local src=${EDGE_QEMU_TA_SRC:-ta}
    log "building the edge TA ($src) with the OP-TEE dev kit"
    make -s -C "$src" CROSS_COMPILE=aarch64-linux-gnu- TA_DEV_KIT_DIR="$kit" \
        O="$OUT/ta" >"$OUT/ta.log" 2>&1 || { cat "$OUT/ta.log" >&2; die "TA build failed"; }
}

build_client() {
    log "cross-compiling libedge_client.so and edge-ta-cli for arm64"
    make -s arm64-client ARM64_SYSROOT="$OUT/stage" >"$OUT/client.log" 2>&1 \
        || { cat "$OUT/client.log" >&2; die "arm64 client build failed"; }
}

# ---------------------------------------------------------------- root fs
# Hash of everything the root file system is made of.
rootfs_key() {
    {
        cat "$VERSIONS" "$HERE/init" "$HERE/cmdloop" "$HERE/build.sh"
        sha256sum "$OUT"/ta/*.ta build/arm64/libedge_client.so build/arm64/edge-ta-cli
        find edge firmware_sign -name '*.py' -type f -print0 | sort -z | xargs -0 sha256sum
        ls "$OUT/wheels"
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
    mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,run,root,etc,var/lib/tee,mnt,lib/optee_armtz,usr/bin,usr/lib/edge}
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
    copy_from_stage usr/sbin/tee-supplicant usr/bin/xtest usr/lib/optee_armtz
    [ -d "$OUT/stage/usr/lib/tee-supplicant" ] && copy_from_stage usr/lib/tee-supplicant
    mkdir -p "$R/usr/sbin"; mv "$R/usr/sbin/tee-supplicant" "$R/usr/bin/"; rmdir "$R/usr/sbin"
    rm -f "$R"/usr/lib/aarch64-linux-gnu/*.a

    # kernel modules, decompressed
    local kver mods
    kver=$(basename "$(ls -d "$OUT"/stage/usr/lib/modules/*/ | head -1)")
    mods="$OUT/stage/usr/lib/modules/$kver/kernel"
    mkdir -p "$R/usr/lib/modules/$kver"
    # tee + optee; failover, net_failover, virtio_net for the optional
    # user-mode network (virtio-pci is built in)
    local m
    for m in drivers/tee/tee drivers/tee/optee/optee net/core/failover \
             drivers/net/net_failover drivers/net/virtio_net; do
        xz -dc "$mods/$m.ko.xz" >"$R/usr/lib/modules/$kver/$(basename "$m").ko"
    done

    # our TA, client library and CLI
    cp "$OUT"/ta/*.ta "$R/usr/lib/optee_armtz/"
    cp build/arm64/libedge_client.so build/arm64/edge-ta-cli "$R/usr/lib/edge/"
    ln -s ../lib/edge/edge-ta-cli "$R/usr/bin/edge-ta-cli"

    # Python 3.13, trimmed of what the guest never uses
    copy_from_stage usr/bin/python3.13 usr/lib/python3.13
    ln -s python3.13 "$R/usr/bin/python3"
    rm -rf "$R"/usr/lib/python3.13/{test,idlelib,tkinter,turtledemo,ensurepip,lib2to3,pydoc_data,config-3.13-aarch64-linux-gnu}
    local site="$R/usr/local/lib/python3.13/dist-packages"
    mkdir -p "$site"
    local w
    for w in "$OUT"/wheels/*.whl; do python3 -m zipfile -e "$w" "$site"; done
    cp -r edge firmware_sign "$site/"
    find "$site" "$R/usr/lib/python3.13" -name __pycache__ -type d -prune -exec rm -rf {} +
    rm -rf "$site"/numpy/*/tests "$site"/numpy/tests

    cp "$HERE/init" "$R/init"; chmod 755 "$R/init"
    install -m 755 "$HERE/cmdloop" "$R/usr/bin/edge-cmdloop"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
    printf 'root:x:0:\n' >"$R/etc/group"
    printf '127.0.0.1 localhost\n' >"$R/etc/hosts"
    printf 'hosts: files\n' >"$R/etc/nsswitch.conf"

    check_needed "$R"

    log "packing initrd.cpio.gz"
    (cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio -o -H newc -0 --quiet -R 0:0) \
        | gzip -1 >"$OUT/initrd.cpio.gz.tmp"
    mv "$OUT/initrd.cpio.gz.tmp" "$OUT/initrd.cpio.gz"
    echo "$key" >"$OUT/.rootfs-key"
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
    done < <(find "$r/usr/bin" "$r/usr/lib/edge" "$r/usr/lib/tee-supplicant" "$r/usr/local/lib" \
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
if [ "$pin" -eq 1 ]; then apt_setup; write_pins; fi
read_pins
apt_setup
fetch_debs
fetch_sources
fetch_wheels
stage
build_tfa
build_ta
build_client
make_rootfs
write_env
log "done: $(du -sh "$OUT/firmware/qemu_fw.bios" | cut -f1) firmware," \
    "$(du -sh "$OUT/initrd.cpio.gz" | cut -f1) initrd; boot with scripts/qemu/boot.sh"
