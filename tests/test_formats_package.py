"""Model packages: builder and reference loader round trips, manifest checks, properties."""

from __future__ import annotations

import hashlib
import io
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import rebind_wrap
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.errors import (
    BadState,
    ChunkDigestMismatch,
    ConfigError,
    EdgeError,
    Malformed,
    NotForThisDevice,
    Oversized,
    Rollback,
    SignatureInvalid,
    Tampered,
    UnknownSigner,
    WrongPackage,
)
from edge.formats import (
    HEADER_SIZE,
    PackageLoad,
    build_device_record,
    encode_manifest,
    open_package,
    parse_device_record,
    parse_manifest,
    parse_package,
    split_package,
    verify_package,
)
from edge.formats.envelope import sign_digest
from edge.formats.keys import ed25519_raw_public
from edge.formats.manifest import FIXED_SIZE
from edge.formats.package_builder import build_package


def ed(label: str) -> Ed25519PrivateKey:
    """A deterministic Ed25519 test key."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def x(label: str) -> X25519PrivateKey:
    """A deterministic X25519 test key."""
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


SIGNER = ed("package signer")
SIGNER_PUB = ed25519_raw_public(SIGNER)
DEVICES = [(ed(f"dev {i}"), x(f"dev {i} x")) for i in range(4)]
RECORDS = [parse_device_record(build_device_record(i, a)) for i, a in DEVICES]
RNG = np.random.default_rng(7)
W = RNG.standard_normal((16, 5)).astype(np.float32)
B = RNG.standard_normal(5).astype(np.float32)


# package id -> device id -> the key wrap the builder made.
WRAPS: dict[bytes, dict[bytes, bytes]] = {}


def build(**kw) -> bytes:
    """Build a package into bytes with test defaults; its wraps go to WRAPS."""
    args = {"signer": SIGNER, "version": 3, "W": W, "b": B, "recipients": RECORDS[:1]}
    args.update(kw)
    out = io.BytesIO()
    release = build_package(out, **args)
    WRAPS[release.manifest.package_id] = dict(release.wraps)
    return out.getvalue()


def wrap_for(data: bytes | io.IOBase, device: int) -> bytes:
    """The wrap the signer made for ``device`` and this package, bound again to ``data``'s
    manifest when it was edited and re-signed (so the manifest's own checks are tested)."""
    if isinstance(data, io.BytesIO):
        data = data.getvalue()
    if not isinstance(data, bytes | bytearray | memoryview):
        # A stream cannot be peeked at: the package built last.
        wraps = list(WRAPS.values())[-1]
        return wraps.get(RECORDS[device].device_id) or next(iter(wraps.values()))
    raw = bytes(data)
    pid = raw[HEADER_SIZE + 8 : HEADER_SIZE + 24]
    wraps = WRAPS.get(pid) or list(WRAPS.values())[-1]
    wrap = wraps.get(RECORDS[device].device_id) or next(iter(wraps.values()))
    try:
        return rebind_wrap(wrap, raw, SIGNER)
    except EdgeError:
        return wrap


def load(data, device: int = 0, stored: int = 0, **kw):
    """Open a package as device ``device`` with its key wrap."""
    kw.setdefault("wrap", wrap_for(data, device))
    return open_package(
        data,
        signer_pub=SIGNER_PUB,
        device_id=RECORDS[device].device_id,
        agreement=DEVICES[device][1],
        stored_version=stored,
        **kw,
    )


def resign(data: bytes, edit) -> bytes:
    """Apply ``edit(body: bytearray)`` to the manifest and re-sign the envelope."""
    body_len = int.from_bytes(data[8:12], "little")
    body = bytearray(data[HEADER_SIZE : HEADER_SIZE + body_len])
    new = edit(body)
    body = new if new is not None else body
    header = bytearray(data[:HEADER_SIZE])
    header[8:12] = len(body).to_bytes(4, "little")
    signed = bytes(header + body)
    return signed + sign_digest(SIGNER, signed) + data[HEADER_SIZE + body_len + 64 :]


class NonSeekable(io.RawIOBase):
    """A pipe-like stream: short reads, no seek."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = self._buf.read(min(len(b), 1000))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_head_only_round_trip() -> None:
    data = build(metadata={"name": "m", "shape": [1, 2]})
    opened = load(data)
    assert opened.W.dtype == np.float32 and opened.W.shape == (16, 5)
    np.testing.assert_array_equal(opened.W, W)
    np.testing.assert_array_equal(opened.b, B)
    assert opened.backbone is None
    m = opened.manifest
    assert (m.version, m.head_in, m.head_out, m.flags, m.chunk_count) == (3, 16, 5, 0, 0)
    assert m.metadata_object() == {"name": "m", "shape": [1, 2]}
    assert m.payload_len == 0


@pytest.mark.parametrize("encrypt", [False, True])
@pytest.mark.parametrize("length", [1, 4095, 4096, 4097, 3 * 4096 + 17])
def test_backbone_round_trip(encrypt: bool, length: int) -> None:
    backbone = hashlib.shake_256(b"bb%d" % length).digest(length)
    data = build(backbone=backbone, encrypt_backbone=encrypt, chunk_log2=12)
    opened = load(data)
    assert opened.backbone == backbone
    m = opened.manifest
    assert m.chunk_count == -(-length // 4096)
    assert m.backbone_encrypted is encrypt
    assert len(data) == parse_package(data)[0].header.total_len + m.payload_len
    env_raw, payload = split_package(data)
    assert env_raw + bytes(payload) == data
    if not encrypt:
        assert bytes(payload) == backbone
    elif length >= 16:
        assert backbone[:16] not in bytes(payload)


@pytest.mark.parametrize("kind", ["bytes", "memoryview", "bytearray", "bytesio", "pipe", "file"])
def test_sources(kind: str, tmp_path: Path) -> None:
    backbone = hashlib.shake_256(b"src").digest(10000)
    data = build(backbone=backbone, encrypt_backbone=True, chunk_log2=12)
    path = tmp_path / "p.bin"
    path.write_bytes(data)
    make = {
        "bytes": lambda: data,
        "memoryview": lambda: memoryview(data),
        "bytearray": lambda: bytearray(data),
        "bytesio": lambda: io.BytesIO(data),
        "pipe": lambda: io.BufferedReader(NonSeekable(data)),
        "file": lambda: open(path, "rb"),  # noqa: SIM115
    }[kind]
    sink = io.BytesIO()
    opened = load(make(), backbone_out=sink)
    assert opened.backbone is None and sink.getvalue() == backbone
    assert load(make()).backbone == backbone
    assert verify_package(make(), signer_pub=SIGNER_PUB).chunk_count == 3


@pytest.mark.parametrize("source", ["bytes", "pipe", "seekable"])
def test_truncated_and_trailing_from_streams(source: str) -> None:
    data = build(backbone=b"a" * 5000, chunk_log2=12)
    for bad in (data[:-1], data + b"\x00", data[: HEADER_SIZE + 10]):
        src = {
            "bytes": bad,
            "pipe": io.BufferedReader(NonSeekable(bad)),
            "seekable": io.BytesIO(bad),
        }[source]
        with pytest.raises(Malformed) as info:
            load(src)
        assert type(info.value) is Malformed


def test_every_recipient_can_open_and_others_cannot() -> None:
    data = build(recipients=RECORDS[:3], backbone=b"z" * 5000, encrypt_backbone=True, chunk_log2=12)
    wraps = WRAPS[parse_package(data)[1].package_id]
    assert list(wraps) == [r.device_id for r in RECORDS[:3]]
    for i in range(3):
        assert load(data, device=i, wrap=wraps[RECORDS[i].device_id]).backbone == b"z" * 5000
    # Device 3 has no wrap; given another device's, it is refused by name.
    with pytest.raises(NotForThisDevice):
        load(data, device=3, wrap=wraps[RECORDS[0].device_id])
    # A wrap of another package (same device) is refused by name too.
    with pytest.raises(WrongPackage):
        load(data, device=0, wrap=WRAPS[parse_package(build())[1].package_id][RECORDS[0].device_id])
    # Right device id, wrong key-agreement key: the unwrap fails its tag.
    with pytest.raises(Tampered) as info:
        open_package(
            data,
            wrap=wraps[RECORDS[0].device_id],
            signer_pub=SIGNER_PUB,
            device_id=RECORDS[0].device_id,
            agreement=DEVICES[1][1],
            stored_version=0,
        )
    assert type(info.value) is Tampered


def test_rollback_and_signer() -> None:
    data = build(version=10)
    load(data, stored=9)
    for stored in (10, 11, 2**64 - 1):
        with pytest.raises(Rollback):
            load(data, stored=stored)
    with pytest.raises(UnknownSigner):
        open_package(
            data,
            wrap=wrap_for(data, 0),
            signer_pub=ed25519_raw_public(ed("x")),
            device_id=RECORDS[0].device_id,
            agreement=DEVICES[0][1],
            stored_version=0,
        )


def test_fresh_randomness_per_package() -> None:
    a, b = build(), build()
    ma, mb = parse_package(a)[1], parse_package(b)[1]
    assert ma.package_id != mb.package_id
    assert ma.ephemeral_pub != mb.ephemeral_pub
    assert ma.head_ciphertext != mb.head_ciphertext


def test_injected_randomness_is_deterministic() -> None:
    kw = {"package_id": bytes(range(16)), "content_key": bytes(32), "ephemeral_key": x("eph")}
    assert build(**kw) == build(**kw)


def test_package_load_state_machine() -> None:
    data = build(backbone=b"q" * 9000, encrypt_backbone=True, chunk_log2=12)
    env_raw, payload = split_package(data)
    load_ = PackageLoad.begin(
        env_raw,
        wrap=wrap_for(data, 0),
        signer_pub=SIGNER_PUB,
        device_id=RECORDS[0].device_id,
        agreement=DEVICES[0][1],
        stored_version=0,
    )
    m = load_.manifest
    sizes = [m.stored_chunk_len(i) for i in range(m.chunk_count)]
    assert sizes == [4096 + 16, 4096 + 16, 808 + 16]
    chunks, pos = [], 0
    for size in sizes:
        chunks.append(bytes(payload[pos : pos + size]))
        pos += size
    with pytest.raises(BadState):
        load_.chunk(1, chunks[1])
    with pytest.raises(BadState):
        load_.finish()
    with pytest.raises(Malformed):
        load_.chunk(0, chunks[0][:-1])
    assert load_.chunk(0, chunks[0]) == b"q" * 4096
    with pytest.raises(BadState):
        load_.chunk(0, chunks[0])
    load_.chunk(1, chunks[1])
    load_.chunk(2, chunks[2])
    load_.finish()
    with pytest.raises(BadState):
        load_.chunk(3, b"")


def test_chunk_digest_checked_before_decrypt() -> None:
    data = bytearray(build(backbone=b"q" * 9000, encrypt_backbone=True, chunk_log2=12))
    data[-3] ^= 1
    with pytest.raises(ChunkDigestMismatch):
        load(bytes(data))
    with pytest.raises(ChunkDigestMismatch):
        verify_package(bytes(data), signer_pub=SIGNER_PUB)


def test_verify_package_refusals() -> None:
    data = build(backbone=b"q" * 5000, chunk_log2=12)
    verify_package(io.BytesIO(data), signer_pub=SIGNER_PUB)
    with pytest.raises(Malformed):
        verify_package(data[:-1], signer_pub=SIGNER_PUB)
    with pytest.raises(Malformed):
        verify_package(data + b"!", signer_pub=SIGNER_PUB)
    bad = bytearray(data)
    bad[HEADER_SIZE + 3] ^= 1
    with pytest.raises(SignatureInvalid):
        verify_package(bytes(bad), signer_pub=SIGNER_PUB)


# --- manifest field checks (each re-signed so only the field is wrong) ---


def _set(offset: int, fmt: str, value: int):
    """Return an edit that packs ``value`` at ``offset`` of the manifest."""

    def edit(body: bytearray) -> None:
        struct.pack_into(fmt, body, offset, value)

    return edit


@pytest.mark.parametrize(
    ("edit", "expected", "match"),
    [
        (_set(0, "<Q", 0), Malformed, "version 0"),
        (_set(24, "<I", 4), Malformed, "unknown flag"),
        (_set(24, "<I", 2), Malformed, "without backbone"),
        (_set(24, "<I", 1), Malformed, "backbone"),
        (_set(60, "<B", 1), Malformed, "reserved"),
        (_set(62, "<B", 1), Malformed, "reserved"),
        (_set(83, "<B", 1), Malformed, "reserved"),
        (_set(64, "<I", 0), Malformed, "head"),
        (_set(64, "<I", 4097), Oversized, "input size 4097"),
        (_set(68, "<I", 1025), Oversized, "output size 1025"),
        (lambda body: struct.pack_into("<II", body, 64, 4096, 32), Oversized, "131104"),
        (_set(72, "<Q", 1), Malformed, "no backbone flag"),
        (_set(80, "<B", 12), Malformed, "no backbone flag"),
        (_set(84, "<I", 1), Malformed, "no backbone flag"),
        (_set(88, "<I", 4097), Oversized, "metadata length 4097"),
        (_set(88, "<I", 3), Malformed, "imply"),
        (lambda body: body + b"\x00", Malformed, "imply"),
    ],
)
def test_manifest_field_refusals(edit, expected: type, match: str) -> None:
    data = resign(build(metadata={"k": "v"}), edit)
    with pytest.raises(expected, match=match) as info:
        load(data)
    assert type(info.value) is expected
    with pytest.raises(expected):
        parse_manifest(data[HEADER_SIZE : HEADER_SIZE + int.from_bytes(data[8:12], "little")])


@pytest.mark.parametrize(
    ("edit", "expected", "match"),
    [
        (_set(80, "<B", 11), Malformed, "below 12"),
        (_set(80, "<B", 21), Oversized, "exceeds 20"),
        (_set(80, "<B", 0), Malformed, "below"),
        (_set(84, "<I", 3), Malformed, "needs 2"),
        (_set(84, "<I", 5000), Oversized, "chunk count 5000"),
        (_set(72, "<Q", 0), Malformed, "length is 0"),
        (_set(72, "<Q", 9000), Malformed, "needs 3"),
    ],
)
def test_manifest_backbone_refusals(edit, expected: type, match: str) -> None:
    data = resign(build(backbone=b"x" * 5000, chunk_log2=12), edit)
    with pytest.raises(expected, match=match) as info:
        load(data)
    assert type(info.value) is expected


@pytest.mark.parametrize(
    ("metadata", "match"),
    [(b"[1, 2]", "not a JSON object"), (b"\xff\xfe", "UTF-8"), (b"{", "JSON")],
)
def test_manifest_metadata_refusals(metadata: bytes, match: str) -> None:
    m = parse_package(build())[1]
    from dataclasses import replace

    body = encode_manifest(replace(m, metadata=metadata))
    with pytest.raises(Malformed, match=match):
        parse_manifest(body)


def test_manifest_encode_parse_round_trip() -> None:
    m = parse_package(
        build(
            recipients=RECORDS,
            backbone=b"y" * 70000,
            encrypt_backbone=True,
            metadata={"a": [1, 2, {"b": None}]},
        )
    )[1]
    assert parse_manifest(encode_manifest(m)) == m


# --- property-style tests over a small package ---

SMALL = build(W=W[:2, :2], b=B[:2], backbone=b"k" * 4200, encrypt_backbone=True, chunk_log2=12)


def test_every_truncation_is_malformed() -> None:
    for cut in range(len(SMALL)):
        for source in (SMALL[:cut], io.BytesIO(SMALL[:cut])):
            with pytest.raises(EdgeError) as info:
                load(source)
            assert type(info.value) is Malformed, (cut, info.value)


def test_every_single_byte_flip_is_refused() -> None:
    expected_loaded = load(SMALL)
    for pos in range(len(SMALL)):
        bad = bytearray(SMALL)
        bad[pos] ^= 0x41
        try:
            load(bytes(bad))
        except EdgeError:
            continue
        pytest.fail(f"flip at {pos} accepted (loaded {expected_loaded.manifest.version})")


def test_every_resigned_byte_flip_is_refused_or_harmless() -> None:
    """With a valid signature, a flipped manifest byte is refused or changes nothing secret."""
    body_len = int.from_bytes(SMALL[8:12], "little")
    for pos in range(body_len):

        def edit(body: bytearray, pos: int = pos) -> None:
            body[pos] ^= 0x01

        try:
            opened = load(resign(SMALL, edit))
        except EdgeError:
            continue
        # Only fields that are not authenticated by the key schedule can be changed:
        # metadata is opaque (and still valid JSON after this flip), and the inference
        # release (bytes 92..103) is the signer's choice, covered by the signature only.
        in_release = 92 <= pos < FIXED_SIZE
        assert in_release or pos >= body_len - len(opened.manifest.metadata), pos


# --- builder refusals ---


def test_builder_refusals(tmp_path: Path) -> None:
    with pytest.raises(Malformed, match="listed twice"):
        build(recipients=[RECORDS[0], RECORDS[1], RECORDS[0]])
    # No recipients yet is a release too: wraps can be made for any device later.
    assert parse_package(build(recipients=[]))[1].version == 3
    with pytest.raises(Oversized, match="input size 4097"):
        build(W=np.zeros((4097, 1)), b=np.zeros(1))
    with pytest.raises(Oversized, match="parameters"):
        build(W=np.zeros((4096, 32)), b=np.zeros(32))
    with pytest.raises(Malformed, match="2-D"):
        build(W=np.zeros(5), b=np.zeros(5))
    with pytest.raises(Malformed, match="shape"):
        build(W=np.zeros((3, 2)), b=np.zeros(3))
    with pytest.raises(Malformed, match="NaN"):
        build(W=np.full((2, 2), np.nan), b=np.zeros(2))
    with pytest.raises(Malformed, match="empty"):
        build(backbone=b"")
    with pytest.raises(ConfigError):
        build(encrypt_backbone=True)
    with pytest.raises(ConfigError):
        build(version=0)
    with pytest.raises(ConfigError):
        build(backbone=b"x", chunk_log2=21)
    with pytest.raises(Oversized, match="metadata"):
        build(metadata={"x": "y" * 5000})
    with pytest.raises(ConfigError):
        build(backbone=tmp_path / "missing")


def test_builder_chunk_limit() -> None:
    class Huge(io.RawIOBase):
        """Claims 4097 chunks of 4 KiB without holding them."""

        def seekable(self) -> bool:
            return True

        def tell(self) -> int:
            return 0

        def seek(self, pos: int, whence: int = 0) -> int:
            return 4097 * 4096 if whence == 2 else 0

    with pytest.raises(Oversized, match="4097 chunks"):
        build(backbone=Huge(), chunk_log2=12)


def test_builder_refuses_backbone_changed_between_passes(tmp_path: Path) -> None:
    class Mutating(io.BytesIO):
        """Returns different bytes on the second pass."""

        passes = 0

        def seek(self, pos: int, whence: int = 0) -> int:
            if whence == 0 and pos == 0:
                Mutating.passes += 1
                if Mutating.passes == 2:
                    self.getbuffer()[0] ^= 1
            return super().seek(pos, whence)

    with pytest.raises(ConfigError, match="changed while packing"):
        build(backbone=Mutating(b"m" * 10000), chunk_log2=12)


def test_builder_from_path_and_stream(tmp_path: Path) -> None:
    path = tmp_path / "bb.tflite"
    path.write_bytes(b"T" * 12345)
    from_path = build(
        backbone=path,
        package_id=bytes(16),
        content_key=bytes(32),
        ephemeral_key=x("e"),
        chunk_log2=12,
    )
    with open(path, "rb") as fh:
        fh.read(0)
        from_stream = build(
            backbone=fh,
            package_id=bytes(16),
            content_key=bytes(32),
            ephemeral_key=x("e"),
            chunk_log2=12,
        )
    assert from_path == from_stream
    assert load(from_path).backbone == b"T" * 12345


def test_builder_streams_a_large_backbone(tmp_path: Path) -> None:
    """32 MiB from a file: peak Python allocation stays at a few chunks, not the backbone."""
    path = tmp_path / "big.bin"
    block = hashlib.shake_256(b"big").digest(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(32):
            fh.write(block)
    out = tmp_path / "big.pkg"
    tracemalloc.start()
    try:
        with open(out, "wb") as fh:
            release = build_package(
                fh,
                signer=SIGNER,
                version=1,
                W=W,
                b=B,
                recipients=RECORDS[:1],
                backbone=path,
                encrypt_backbone=True,
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    with open(out, "rb") as fh:
        sink = hashlib.sha256()

        class Sink:
            def write(self, b) -> None:
                sink.update(b)

        tracemalloc.start()
        try:
            load(fh, backbone_out=Sink(), wrap=release.wraps[RECORDS[0].device_id])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 << 20, peak
    assert sink.hexdigest() == hashlib.sha256(block * 32).hexdigest()


def test_oversized_manifest_refused_from_header_alone() -> None:
    """A header announcing more than 1 MiB is refused before the body is read."""
    data = bytearray(build())
    data[8:12] = (2 << 20).to_bytes(4, "little")
    reads: list[int] = []

    class Counting(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            reads.append(size)
            return super().read(size)

    with pytest.raises(Oversized):
        load(Counting(bytes(data)))
    assert sum(reads) <= HEADER_SIZE
    with pytest.raises(Oversized):
        load(io.BufferedReader(NonSeekable(bytes(data[:HEADER_SIZE]))))
