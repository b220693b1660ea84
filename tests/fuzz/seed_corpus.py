"""Write the seed inputs of the TA's fuzz harnesses from tests/vectors, deterministically.

Run from the repository root: ``python tests/fuzz/seed_corpus.py`` writes
``tests/fuzz/corpus/<harness>/seed-*`` (``--out DIR`` writes elsewhere). Each harness
gets the vectors of its parser in the layout its ``LLVMFuzzerTestOneInput`` reads
(tests/fuzz/fuzz_*.c): envelopes as they are, package files cut to the manifest for
``fuzz_manifest`` and to framed chunk records for ``fuzz_chunk``, and secure-storage
records as the TA writes them. Round tickets and privacy policies have no files in
tests/vectors, so they are signed here with the keys of ``keys.tsv``. Inputs the
fuzzer found are kept next to the seeds under their SHA-1 names (``-merge=1``).
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from edge.formats.anchors import build_anchor_statement  # noqa: E402
from edge.formats.envelope import HEADER_SIZE, SIG_SIZE  # noqa: E402
from edge.formats.layouts import MANIFEST_FIXED  # noqa: E402
from edge.formats.policy import SAMPLING_FIXED, build_policy  # noqa: E402
from edge.formats.ticket import build_ticket  # noqa: E402
from edge.tee_abi import PackageFlag  # noqa: E402

VECTORS = ROOT / "tests" / "vectors"
OUT_DIR = Path(__file__).resolve().parent / "corpus"
GCM_TAG = 16
# Keeps the committed corpus small and the fuzzer's max_len reasonable: the two
# oversized vectors of 0.5 and 1 MiB are refused from their header alone.
MAX_SEED = 64 * 1024
FIXED_MANIFEST = 92

CTRL_ENCRYPTED = 0x01
CTRL_REDIGEST = 0x02
CTRL_SHORT_OUT = 0x04

# TA command ids (ta/include/edge_ta.h) for fuzz_commands records.
CMD_GET_IDENTITY, CMD_GET_STATUS, CMD_INSTALL_ANCHORS, CMD_REPLACE_ANCHOR = 0, 1, 2, 3
CMD_LOAD_BEGIN, CMD_LOAD_CHUNK, CMD_LOAD_FINISH, CMD_LOAD_ABORT, CMD_INFER = 4, 5, 6, 7, 8
CMD_VERIFY_TICKET, CMD_TRAIN_AND_SEAL, CMD_BUDGET_STATUS, CMD_INSTALL_POLICY = 9, 10, 11, 12
CMD_FLAG_RESIGN = 0x08
REE_TIME = 1_700_000_200

# Secure-storage headers (ta/storage.h): u32 tag || u32 layout 1, little-endian.
TAG_KEY = b"EDGK"
TAG_ANCHORS = b"EDGA"
TAG_MODEL = b"EDGM"
TAG_TRAIN = b"EDGT"
TAG_INFER = b"EDGI"
LAYOUT = struct.pack("<I", 1)


def keys() -> dict[str, bytes]:
    """Return keys.tsv as name -> bytes."""
    table = {}
    for line in (VECTORS / "keys.tsv").read_text().splitlines():
        if line and not line.startswith("#") and "\t" in line:
            name, value = line.split("\t", 1)
            table[name] = bytes.fromhex(value)
    return table


def vector_files() -> dict[str, bytes]:
    """Return every .bin vector up to MAX_SEED bytes, by file name."""
    return {p.name: p.read_bytes() for p in sorted(VECTORS.glob("*.bin"))
            if p.stat().st_size <= MAX_SEED}


def envelope_len(data: bytes) -> int:
    """Return the length the header declares (header + body + signature), capped to data."""
    if len(data) < HEADER_SIZE:
        return len(data)
    return min(len(data), HEADER_SIZE + struct.unpack_from("<I", data, 8)[0] + SIG_SIZE)


def tickets(aggregator: Ed25519PrivateKey) -> dict[str, bytes]:
    """Return signed tickets for the harness's policies (round > 2, model 1)."""
    base = dict(model_version=1, package_id=bytes(16), nonce=bytes(range(16)),
                issued_at=1_700_000_100,
                deadline=1_700_003_600, example_clip=1.0, noise_multiplier=1.1,
                update_clip=1.0, learning_rate=0.1)
    return {
        "ticket-poisson": build_ticket(aggregator, round_id=3, epochs=1, batch_size=1, **base),
        "ticket-fixed": build_ticket(aggregator, round_id=7, epochs=2, batch_size=16, **base),
        "ticket-replay": build_ticket(aggregator, round_id=1, **base),
    }


def policies(signer: Ed25519PrivateKey) -> dict[str, bytes]:
    """Return signed privacy policies: Poisson, fixed-size, and a no-DP test policy."""
    base = dict(max_example_clip=1.0, max_update_clip=1.0, max_steps_per_round=200,
                step_budget=10_000, target_epsilon=8.0, delta=1e-5)
    return {
        "policy-poisson": build_policy(signer, version=1, noise_multiplier_min=1.1,
                                       sampling_rate=0.05, **base),
        "policy-fixed": build_policy(signer, version=2, noise_multiplier_min=1.1,
                                     sampling_rate=0.25, sampling=SAMPLING_FIXED, **base),
        "policy-no-dp": build_policy(signer, version=3, noise_multiplier_min=0.0,
                                     sampling_rate=1.0, no_dp=True, **base),
    }


def chunk_records(payload: bytes, sizes: list[int], delta: int = 0) -> bytes:
    """Return the payload as fuzz_chunk records: int8 delta | u24 length | bytes."""
    out = bytearray()
    off = 0
    for size in sizes:
        piece = payload[off:off + size]
        out += struct.pack("<b", delta) + len(piece).to_bytes(3, "little") + piece
        off += len(piece)
    return bytes(out)


def stored_sizes(manifest: bytes, payload_len: int) -> tuple[bool, list[int]]:
    """Return (encrypted, stored chunk sizes) of a package's manifest; surplus as a last chunk."""
    body = manifest[HEADER_SIZE:]
    fixed = MANIFEST_FIXED.read(body)
    backbone_len, chunk_log2 = fixed["backbone_len"], fixed["chunk_log2"]
    count = fixed["chunk_count"]
    encrypted = bool(fixed["flags"] & PackageFlag.BACKBONE_ENCRYPTED)
    size = 1 << chunk_log2 if chunk_log2 < 32 else 0
    sizes = []
    for i in range(count):
        plain = size if i < count - 1 else backbone_len - (count - 1) * size
        sizes.append(plain + (GCM_TAG if encrypted else 0))
    if sum(sizes) < payload_len:
        sizes.append(payload_len - sum(sizes))
    return encrypted, sizes


def storage_records(k: dict[str, bytes], policy: bytes) -> dict[str, bytes]:
    """Return fuzz_storage inputs: selector byte || the object's data stream as the TA writes it."""
    anchors = (TAG_ANCHORS + LAYOUT + k["model_signer_pub"] + struct.pack("<Q", 0)
               + k["aggregator_pub"] + struct.pack("<Q", 3))
    head_in, head_out = 4, 3
    head = struct.pack(f"<{head_in * head_out + head_out}f",
                       *[(i % 7) / 8 for i in range(head_in * head_out + head_out)])
    # The inference release after I and O: scores, no k, 4096 rows, no bound.
    release = struct.pack("<BBHIf", 3, 0, 0, 4096, 0.0)
    model = (TAG_MODEL + LAYOUT + struct.pack("<Q", 5) + bytes(range(16))
             + struct.pack("<II", head_in, head_out) + release + head)
    label_model = (TAG_MODEL + LAYOUT + struct.pack("<Q", 6) + bytes(range(16))
                   + struct.pack("<II", head_in, head_out)
                   + struct.pack("<BBHIf", 2, 0, 2, 0, 8.0) + head)
    train_fixed = struct.pack("<IIQQQQ", 1, 0, 120, 3, 9, 1_700_000_000)
    train = TAG_TRAIN + LAYOUT + train_fixed + policy
    no_policy = TAG_TRAIN + LAYOUT + struct.pack("<IIQQQQ", 0, 0, 0, 0, 0, 0) + bytes(len(policy))
    key_hdr = TAG_KEY + LAYOUT
    return {
        "storage-anchors": b"\x00" + anchors,
        "storage-model": b"\x01" + model,
        "storage-model-topk": b"\x01" + label_model,
        "storage-infer": b"\x06" + TAG_INFER + LAYOUT + struct.pack("<QQ", 5, 1024),
        "storage-infer-other-version": b"\x06" + TAG_INFER + LAYOUT + struct.pack("<QQ", 4, 9),
        "storage-train": b"\x02" + train,
        "storage-train-no-policy": b"\x02" + no_policy,
        "storage-identity-sign": b"\x03" + key_hdr,
        "storage-identity-kex": b"\x04" + key_hdr,
        "storage-identity-no-kex": b"\x05" + key_hdr,
    }


def command(cmd: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """Return one fuzz_commands record: id | flags | u16 length | payload."""
    return struct.pack("<BBH", cmd, flags, len(payload)) + payload


def values(a: int, b: int = 0) -> bytes:
    """Return the value.a, value.b prefix of a command with a value input."""
    return struct.pack("<II", a, b)


def head_shape(manifest: bytes) -> tuple[int, int]:
    """Return (I, O) of a manifest envelope."""
    return struct.unpack_from("<II", manifest, HEADER_SIZE + 64)


def command_sequences(files: dict[str, bytes], k: dict[str, bytes], policy: bytes,
                      ticket: bytes) -> dict[str, bytes]:
    """Return fuzz_commands inputs: what the daemon and the CLI send, in order."""
    seqs = {}
    head_only = files["pkg_ok_head_only.bin"]
    head_in, head_out = head_shape(head_only)
    # LOAD_BEGIN's payload: the manifest, then the device's key wrap (its last bytes).
    load_head = (command(CMD_LOAD_BEGIN, head_only + files["pkg_ok_head_only.wrap.bin"])
                 + command(CMD_LOAD_FINISH))
    n = 4
    features = struct.pack(f"<{n * head_in}f", *[(i % 5) / 4 for i in range(n * head_in)])
    labels = struct.pack(f"<{n}I", *[i % head_out for i in range(n)])
    seqs["head-only-infer"] = (load_head + command(CMD_GET_STATUS)
                               + command(CMD_INFER, values(n) + features))
    for stem, resign in (("train", 0), ("train-resigned", CMD_FLAG_RESIGN)):
        seqs[stem] = (load_head + command(CMD_INSTALL_POLICY, policy, resign)
                      + command(CMD_VERIFY_TICKET,
                                values(REE_TIME & 0xFFFFFFFF, REE_TIME >> 32) + ticket, resign)
                      + command(CMD_TRAIN_AND_SEAL, values(n) + struct.pack("<H", len(features))
                                + features + labels)
                      + command(CMD_BUDGET_STATUS))
    for stem in ("pkg_ok_public_backbone", "pkg_ok_encrypted_backbone"):
        data = files[stem + ".bin"]
        mlen = envelope_len(data)
        _, sizes = stored_sizes(data[:mlen], len(data) - mlen)
        seq = command(CMD_LOAD_BEGIN, data[:mlen] + files[stem + ".wrap.bin"])
        off = mlen
        for i, size in enumerate(sizes):
            seq += command(CMD_LOAD_CHUNK, values(i) + data[off:off + size])
            off += size
        seqs[stem] = seq + command(CMD_LOAD_FINISH)
    public = files["pkg_ok_public_backbone.bin"]
    seqs["abort"] = (command(CMD_LOAD_BEGIN, public[:envelope_len(public)]
                             + files["pkg_ok_public_backbone.wrap.bin"])
                     + command(CMD_LOAD_ABORT) + command(CMD_LOAD_FINISH))
    seqs["replace-anchor"] = (command(CMD_REPLACE_ANCHOR, files["anchor_ok.bin"])
                              + command(CMD_GET_STATUS))
    seqs["identity"] = (command(CMD_GET_IDENTITY) + command(CMD_GET_STATUS, flags=2)
                        + command(CMD_INSTALL_ANCHORS,
                                  k["model_signer_pub"] + k["aggregator_pub"]))
    return seqs


def secagg_seeds(k: dict[str, bytes], files: dict[str, bytes]) -> dict[str, bytes]:
    """fuzz_secagg inputs: stage selector || binding || directive (the vectors' directives,
    and a roster of two devices whose certificates the model signer signed, standing in
    for the registrar)."""
    from edge.formats import secagg as fmt
    from edge.tee_abi import SecAggStage

    aggregator = Ed25519PrivateKey.from_private_bytes(k["aggregator_priv"])
    registrar = Ed25519PrivateKey.from_private_bytes(k["model_signer_priv"])
    device = Ed25519PrivateKey.from_private_bytes(k["device_ed25519_priv"])
    other = Ed25519PrivateKey.from_private_bytes(seed_bytes("fuzz other device"))
    binding = fmt.RoundBinding(fmt.fleet_id("vectors"), 7, bytes(range(16)), 3)
    entries = sorted(
        fmt.build_cert(registrar, key.public_key().public_bytes_raw(), binding.fleet_id)
        + fmt.build_advert(key, binding, bytes(range(32)), bytes(range(32, 64)))
        for key in (device, other))
    roster = fmt.build_directive(aggregator, SecAggStage.ROSTER, binding, entries)
    seeds = {"roster": bytes([SecAggStage.ROSTER - 1]) + binding.raw() + roster}
    for name, data in files.items():
        if name.startswith("secagg_directive_"):
            stage = SecAggStage.INBOX if "inbox" in name else SecAggStage.SURVIVORS
            seeds[name.removesuffix(".bin")] = bytes([stage - 1]) + binding.raw() + data
    return seeds


def seed_bytes(label: str) -> bytes:
    """32 bytes from a label (keys the vectors do not have)."""
    return hashlib.sha256(label.encode()).digest()


def build() -> dict[str, dict[str, bytes]]:
    """Return harness -> seed name -> input."""
    k = keys()
    signer = Ed25519PrivateKey.from_private_bytes(k["model_signer_priv"])
    aggregator = Ed25519PrivateKey.from_private_bytes(k["aggregator_priv"])
    files = vector_files()
    made_tickets = tickets(aggregator)
    made_policies = policies(signer)
    role2 = build_anchor_statement(aggregator, 2, 1, k["new_signer_pub"])

    corpus: dict[str, dict[str, bytes]] = {name: {} for name in (
        "fuzz_envelope", "fuzz_manifest", "fuzz_chunk", "fuzz_ticket", "fuzz_policy",
        "fuzz_statement", "fuzz_device_record", "fuzz_storage", "fuzz_commands",
        "fuzz_secagg")}
    for name, data in files.items():
        stem = name.removesuffix(".bin")
        corpus["fuzz_envelope"][stem] = data
        if stem.endswith(".wrap"):
            continue  # key wraps: envelopes only (fuzz_manifest and fuzz_chunk use them)
        if stem.startswith("pkg_"):
            mlen = envelope_len(data)
            corpus["fuzz_manifest"][stem] = data[:mlen]
            payload = data[mlen:]
            if payload and len(data[:mlen]) >= HEADER_SIZE + FIXED_MANIFEST:
                encrypted, sizes = stored_sizes(data[:mlen], len(payload))
                ctrl = CTRL_ENCRYPTED if encrypted else 0
                records = chunk_records(payload, sizes)
                corpus["fuzz_chunk"][stem] = bytes([ctrl]) + records
                corpus["fuzz_chunk"][stem + "-redigest"] = bytes([ctrl | CTRL_REDIGEST]) + records
                if stem.startswith("pkg_ok_"):
                    corpus["fuzz_chunk"][stem + "-short-out"] = (
                        bytes([ctrl | CTRL_SHORT_OUT]) + records)
                    corpus["fuzz_chunk"][stem + "-out-of-order"] = (
                        bytes([ctrl]) + chunk_records(payload, sizes[1:2], delta=1))
        elif stem.startswith("anchor_"):
            corpus["fuzz_statement"][stem] = data
        elif stem.startswith("device_record"):
            corpus["fuzz_device_record"][stem] = data
    corpus["fuzz_statement"]["anchor-role2"] = role2
    corpus["fuzz_envelope"]["anchor-role2"] = role2
    for stem, data in made_tickets.items():
        corpus["fuzz_ticket"][stem] = data
        corpus["fuzz_envelope"][stem] = data
    for stem, data in made_policies.items():
        corpus["fuzz_policy"][stem] = data
        corpus["fuzz_envelope"][stem] = data
    corpus["fuzz_storage"].update(storage_records(k, made_policies["policy-poisson"]))
    corpus["fuzz_secagg"].update(secagg_seeds(k, files))
    corpus["fuzz_commands"].update(command_sequences(
        files, k, made_policies["policy-poisson"], made_tickets["ticket-poisson"]))
    return corpus


def write_all(out: Path) -> tuple[int, int]:
    """Write every seed as <out>/<harness>/seed-<name>; return (seeds, files changed)."""
    total = changed = 0
    for harness, seeds in build().items():
        folder = out / harness
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            path = folder / f"seed-{name}"
            total += 1
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
                changed += 1
    return total, changed


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    total, changed = write_all(args.out)
    print(f"seed_corpus: {total} seeds, {changed} written under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
