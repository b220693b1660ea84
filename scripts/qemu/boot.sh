#!/usr/bin/env bash
# Boots the QEMU OP-TEE image built by scripts/qemu/build.sh.
#
#   scripts/qemu/boot.sh [options]
#
# Consoles: the normal-world console is a TCP server on 127.0.0.1 (pyserial:
# socket://127.0.0.1:PORT; or `nc 127.0.0.1 PORT`, or --stdio); QEMU waits
# for the first client before starting the machine, so nothing is missed.
# OP-TEE's secure-world log goes to a file.
#
# Options:
#   --port N            console TCP port (default: a free one, printed)
#   --stdio             console on this terminal instead (Ctrl-A X quits)
#   --secure-log FILE   secure-world log (default build/qemu/secure.log)
#   --run SCRIPT        run SCRIPT (a host file) in the guest at boot, print
#                       its verdict line "@@EDGE-RESULT rc=N@@", power off;
#                       with --stdio this script exits with N
#   --add HOST:GUEST    add a host file to the guest at GUEST (repeatable;
#                       appended to the initrd as a second cpio archive)
#   --fwd GPORT:HPORT   user-mode network, restricted: the guest reaches
#                       10.0.2.100:GPORT -> host 127.0.0.1:HPORT, nothing else
#                       (e.g. --fwd 1883:1883 for an MQTT broker on the host)
#   --smp N / --mem MB  vCPUs (default 2) / RAM (default 1057)
#   --append ARGS       extra kernel command line arguments
#   --disk FILE         persistent secure storage: FILE (a raw ext4 image,
#                       made, 32 MiB, when missing) is the guest's /dev/vda,
#                       mounted on tee-supplicant's storage folder
#   --exit-with-parent  stop QEMU when the calling process goes away (tools)
# Without --fwd the guest has no network interface at all (-nic none).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$PWD/build/qemu
die() { echo "qemu/boot: error: $*" >&2; exit 1; }

watch_parent="" port="" stdio=0 slog=$OUT/secure.log run="" fwd="" smp=2 mem=1057 extra_append="" disk=""
adds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port=$2; shift ;;
        --stdio) stdio=1 ;;
        --secure-log) slog=$2; shift ;;
        --run) run=$2; shift ;;
        --add) adds+=("$2"); shift ;;
        --fwd) fwd=$2; shift ;;
        --smp) smp=$2; shift ;;
        --mem) mem=$2; shift ;;
        --append) extra_append=$2; shift ;;
        --disk) disk=$2; shift ;;
        --exit-with-parent) watch_parent=$PPID ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

[ -f "$OUT/image.env" ] || die "no image: run scripts/qemu/build.sh first"
# shellcheck source=/dev/null
. "$OUT/image.env"
command -v qemu-system-aarch64 >/dev/null || die "qemu-system-aarch64 missing: run scripts/qemu/build.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/edge-qemu.XXXXXX")
trap 'rm -rf "$work"' EXIT
initrd=$INITRD
append="console=ttyAMA0,115200 rdinit=/init quiet"
if [ -n "$run" ] || [ "${#adds[@]}" -gt 0 ]; then
    mkdir -p "$work/extra"
    if [ -n "$run" ]; then
        [ -f "$run" ] || die "--run: no file $run"
        adds+=("$run:/run.sh")
        append+=" edge.run=/run.sh"
    fi
    for spec in "${adds[@]}"; do
        src=${spec%%:*}; dst=${spec#*:}
        [ -f "$src" ] || die "--add: no file $src"
        mkdir -p "$work/extra/$(dirname "$dst")"
        cp "$src" "$work/extra/$dst"
    done
    # The kernel unpacks concatenated cpio archives in order.
    (cd "$work/extra" && find . | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$work/extra.cpio.gz"
    cat "$INITRD" "$work/extra.cpio.gz" >"$work/initrd.cpio.gz"
    initrd=$work/initrd.cpio.gz
fi
size=$(stat -c %s "$initrd")
append="$append initrd=0x48000000,$size $extra_append"

if [ -n "$fwd" ]; then
    gport=${fwd%%:*}; hport=${fwd#*:}
    [[ $gport =~ ^[0-9]+$ && $hport =~ ^[0-9]+$ ]] || die "--fwd wants GPORT:HPORT (numbers)"
    [[ $PWD != *[,[:space:]]* ]] || die "--fwd: the repository path must not contain ',' or spaces"
    # guestfwd to a command: QEMU runs fwd.py for each guest connection (a tcp:
    # target would be one connection for the whole run, made when QEMU starts).
    # virtio-net-pci without its option ROM (not installed; the kernel is
    # loaded directly, so no network boot ROM is needed).
    net=(-netdev "user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:$gport-cmd:$PWD/scripts/qemu/fwd.py $hport"
         -device "virtio-net-pci,netdev=net0,romfile=")
else
    net=(-nic none)
fi

storage=()
if [ -n "$disk" ]; then
    [[ $disk != *,* ]] || die "--disk: the path must not contain ','"
    if [ ! -e "$disk" ]; then
        command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing: apt-get install e2fsprogs"
        truncate -s 32M "$disk"
        mkfs.ext4 -q -F -L edge-tee -E root_owner=0:0 "$disk" || die "--disk: mkfs.ext4 $disk failed"
    fi
    storage=(-drive "if=none,id=tee,format=raw,file=$disk" -device "virtio-blk-pci,drive=tee")
    append+=" edge.disk=1"
fi

if [ "$stdio" -eq 1 ]; then
    console=(-serial mon:stdio)
else
    if [ -z "$port" ]; then
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    console=(-serial "tcp:127.0.0.1:$port,server=on,wait=on")
    echo "qemu/boot: console socket://127.0.0.1:$port (QEMU starts when a client connects)," \
         "secure log $slog"
fi
: >"$slog"

cmd=(qemu-system-aarch64 -nographic "${net[@]}"
     -machine virt,secure=on,gic-version=3,virtualization=false
     -cpu cortex-a57 -smp "$smp" -m "$mem"
     -bios "$BIOS" -kernel "$KERNEL" -append "$append"
     -device "loader,file=$initrd,addr=0x48000000,force-raw=on" "${storage[@]}"
     "${console[@]}" -serial "file:$slog")
[ "$stdio" -eq 1 ] || cmd+=(-monitor none)

# QEMU runs as our child so that the temporary initrd outlives it; stopping
# this script (TERM/INT/HUP) stops QEMU.
qpid=""
stop() { [ -z "$qpid" ] || { kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null; } || true; }
trap 'stop; exit 143' TERM HUP
trap 'stop; exit 130' INT
trap 'stop; rm -rf "$work"' EXIT
if [ "$stdio" -eq 1 ] && [ -n "$run" ]; then
    "${cmd[@]}" | tee "$work/console.log"
    rc=$(sed -n 's/.*@@EDGE-RESULT rc=\([0-9]*\)@@.*/\1/p' "$work/console.log" | tail -1)
    [ -n "$rc" ] || die "the guest gave no verdict (see the console output above)"
    exit "$rc"
fi
"${cmd[@]}" &
qpid=$!
if [ -n "$watch_parent" ]; then
    (while kill -0 "$watch_parent" 2>/dev/null && kill -0 "$qpid" 2>/dev/null; do sleep 1; done
     kill "$qpid" 2>/dev/null || true) &
fi
wait "$qpid"
