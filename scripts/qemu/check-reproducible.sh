#!/usr/bin/env bash
# Builds the QEMU image a second time, from the inputs recorded in the first
# build's manifest, in another output folder, and compares the bytes of the
# firmware, kernel, initrd, TA and arm64 client. Exit 0 when every file is
# identical; otherwise lists what differs (diffoscope, if installed, says how).
#
#   scripts/qemu/check-reproducible.sh     (runs scripts/qemu/build.sh first)
set -euo pipefail
cd "$(dirname "$0")/../.."
first=build/qemu
scripts/qemu/build.sh
second=$(mktemp -d "$PWD/build/qemu-repro.XXXXXX")
trap 'rm -rf "$second"' EXIT
echo "check-reproducible: second build in $second from $first/manifest.lock"
EDGE_QEMU_LOCK=$first/manifest.lock EDGE_QEMU_OUT=$second scripts/qemu/build.sh \
    | sed 's/^/  /'
status=0
for f in firmware/qemu_fw.bios firmware/Image initrd.cpio.gz "$(cd "$first" && ls ta/*.ta)" \
         arm64/libedge_client.so arm64/edge-ta-cli; do
    a=$(sha256sum <"$first/$f" | cut -c1-64); b=$(sha256sum <"$second/$f" | cut -c1-64)
    if [ "$a" = "$b" ]; then
        echo "check-reproducible: same   $a  $f"
    else
        echo "check-reproducible: DIFFER $a $b  $f" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "check-reproducible: the two builds are byte for byte identical"
exit "$status"
