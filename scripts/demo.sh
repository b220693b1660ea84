#!/usr/bin/env bash
# Sets everything up (idempotently), then:
#  1. `edge demo` with its defaults: 10 simulated boards, each with its own
#     simulated secure world, learn a digits classifier head together over MQTT
#     (embedded broker) for 20 rounds with local DP-SGD in their TAs, next to the
#     centralised non-private reference (docs/demo.md);
#  2. a short look at the secure-world side: a signed, encrypted model package
#     accepted by the board it is addressed to and refused by another, a rollback
#     refused, and the private head answering inference.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

printf '\n== part 1: a private federation of 10 simulated boards (edge demo)\n'
edge demo

printf '\n== part 2: the secure-world side, board by board\n'
work=$(mktemp -d "${TMPDIR:-/tmp}/edge-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }
refused() {  # runs a command that must be refused, shows the refusal line
    if "$@" 2>"$work/err"; then echo "UNEXPECTED: accepted"; exit 1; fi
    printf 'refused as expected -> %s\n' "$(cat "$work/err")"
}

step "release engineer: keys for the model signer and the aggregator"
firmware-sign keygen --role model-signer --out "$work/signer"
firmware-sign keygen --role aggregator --out "$work/aggregator"

for board in board-a board-b; do
    step "$board: provision its simulated secure world (keys are created inside the TA)"
    edge tee provision --tee sim --state "$work/$board" \
        --model-signer "$work/signer.pub" --aggregator "$work/aggregator.pub" \
        --out-pub "$work/$board.pub"
done

step "release engineer: a head (64 -> 10) and a 256 KiB encrypted backbone, for board-a only"
python - "$work" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(7)
np.savez(f"{sys.argv[1]}/head.npz", W=rng.normal(size=(64, 10)).astype("f4"),
         b=rng.normal(size=10).astype("f4"))
open(f"{sys.argv[1]}/backbone.bin", "wb").write(rng.bytes(256 * 1024))
PY
firmware-sign model pack --signer "$work/signer.key" --version 2 --head "$work/head.npz" \
    --backbone "$work/backbone.bin" --encrypt-backbone --to "$work/board-a.pub" \
    --out "$work/model-v2.pkg"
firmware-sign inspect "$work/model-v2.pkg"
wrap_a=$(ls "$work/model-v2.pkg.wraps"/*.wrap)    # one key wrap: board-a's
firmware-sign inspect "$wrap_a"

step "board-a: load it with its key wrap (verified and decrypted inside the TA, backbone streamed in chunks)"
edge tee load-model --tee sim --state "$work/board-a" "$work/model-v2.pkg" --wrap "$wrap_a" \
    --backbone-out "$work/board-a.backbone"
cmp "$work/backbone.bin" "$work/board-a.backbone" && echo "backbone identical to the original"

step "board-b: the package serves any board, but board-a's key wrap is not for board-b"
refused edge tee load-model --tee sim --state "$work/board-b" "$work/model-v2.pkg" --wrap "$wrap_a" \
    --backbone-out "$work/board-b.backbone"

step "board-a: an older version is a rollback"
firmware-sign model pack --signer "$work/signer.key" --version 1 --head "$work/head.npz" \
    --to "$work/board-a.pub" --out "$work/model-v1.pkg"
refused edge tee load-model --tee sim --state "$work/board-a" "$work/model-v1.pkg" \
    --wrap "$(ls "$work/model-v1.pkg.wraps"/*.wrap)"

step "board-a: the private head labels features inside the secure world (the package releases labels, not scores)"
python -c "import numpy as np; np.save('$work/x.npy', np.eye(3, 64, dtype='f4'))"
edge tee infer --tee sim --state "$work/board-a" --features "$work/x.npy"

step "board-a: what the TA reports"
edge tee info --tee sim --state "$work/board-a"
