"""The shared test vectors: every expected outcome reproduced in Python, and reproducible."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from update_helpers import verify_sealed

import edge.errors as errors
from edge.aggregator.verify import UpdateRefused
from edge.formats import (
    key_id,
    open_package,
    parse_device_record,
    parse_package,
    verify_anchor_statement,
)
from edge.formats import secagg as fmt
from edge.formats.envelope import Kind, parse_envelope, verify_envelope
from edge.formats.policy import verify_policy
from edge.formats.ticket import TICKET_SIZE, parse_ticket
from edge.tee_abi import SecAggStage

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())
KEYS = {name: bytes.fromhex(value) for name, value in MANIFEST["keys"].items()}
ROWS = MANIFEST["vectors"]
KEYS_DEVICE_RECORD = (VECTORS / "device_record.bin").read_bytes()
BY_REFUSAL = {
    cls.refusal: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.EdgeError)
}
KEY_NAMES = [
    "model_signer_pub",
    "model_signer_priv",
    "aggregator_pub",
    "aggregator_priv",
    "rogue_signer_pub",
    "rogue_signer_priv",
    "new_signer_pub",
    "device_ed25519_pub",
    "device_ed25519_priv",
    "device_x25519_pub",
    "device_x25519_priv",
    "device_id",
    "other_device_x25519_pub",
    "other_device_id",
    "registrar_pub",
]


def generator() -> ModuleType:
    """Import tests/vectors/generate.py by path."""
    spec = importlib.util.spec_from_file_location("edge_vector_generator", VECTORS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_vector(row: dict[str, Any], source: Any) -> Any:
    """Apply the device-side check the row's kind calls for."""
    if row["kind"] == "package":
        return open_package(
            source,
            wrap=(VECTORS / row["extra"]["wrap"]).read_bytes(),
            signer_pub=KEYS["model_signer_pub"],
            device_id=KEYS["device_id"],
            agreement=X25519PrivateKey.from_private_bytes(KEYS["device_x25519_priv"]),
            stored_version=row["stored_version"],
        )
    if row["kind"] == "anchor_statement":
        role = int(row["extra"]["role"])
        anchors = {1: KEYS["model_signer_pub"], 2: KEYS["aggregator_pub"]}
        if role in anchors:
            anchors[role] = KEYS[row["extra"]["current"]]
        return verify_anchor_statement(source, anchors=anchors, epochs={role: row["stored_epoch"]})
    if row["kind"] == "privacy_policy":
        return verify_policy(bytes(source), KEYS["model_signer_pub"])
    if row["kind"] == "round_ticket":
        env = parse_envelope(bytes(source), kind=Kind.ROUND_TICKET, max_len=TICKET_SIZE)
        verify_envelope(env, KEYS["aggregator_pub"])
        return parse_ticket(bytes(source))
    if row["kind"] == "sealed_update":
        extra = row["extra"]
        # The aggregator's own verifier, for an open round whose ticket carried the
        # generator's U, sigma and C (tests/vectors/generate.py, UPDATE_ARGS).
        return verify_sealed(bytes(source), parse_device_record(KEYS_DEVICE_RECORD),
                             round_id=int(extra["round_id"]), nonce=bytes(range(16)),
                             model_version=int(extra["model_version"]),
                             pkg_id=bytes(range(16, 32)),
                             param_count=int(extra["param_count"]), update_clip=4.0,
                             noise_multiplier=1.1, example_clip=1.0)
    if row["kind"].startswith("secagg_"):
        return run_secagg_vector(row, bytes(source))
    assert row["kind"] == "device_record"
    return parse_device_record(source)


def run_secagg_vector(row: dict[str, Any], data: bytes) -> Any:
    """A secure-aggregation artefact, checked as the server checks it (and as the TA does)."""
    raw = bytes.fromhex(row["extra"]["binding"])
    binding = fmt.RoundBinding(raw[:16], int.from_bytes(raw[16:24], "little"), raw[24:40],
                               int.from_bytes(raw[40:48], "little"))
    me = bytes.fromhex(row["extra"]["self"])
    if row["kind"] == "secagg_entry":
        cert = fmt.verify_cert(data[:fmt.CERT_SIZE], KEYS["registrar_pub"], binding.fleet_id)
        return fmt.verify_advert(data[fmt.CERT_SIZE:], cert, binding)
    if row["kind"] == "secagg_directive":
        stage = SecAggStage(int(row["extra"]["stage"]))
        return fmt.verify_directive(data, KEYS["aggregator_pub"], stage, binding, me)
    verify = fmt.verify_shares if row["kind"] == "secagg_shares" else fmt.verify_reveals
    return verify(data, KEYS["device_ed25519_pub"], binding)


CASES = [(row, False) for row in ROWS] + [(row, True) for row in ROWS if row["kind"] == "package"]


@pytest.mark.parametrize(
    ("row", "as_stream"),
    CASES,
    ids=[f"{r['name']}-{'stream' if s else 'bytes'}" for r, s in CASES],
)
def test_vector_outcome(row: dict[str, Any], as_stream: bool) -> None:
    data = (VECTORS / row["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == row["sha256"]
    source = io.BytesIO(data) if as_stream else data
    if row["expect"] == "ok":
        result = run_vector(row, source)
        if row["kind"] == "package":
            extra = row["extra"]
            head = result.W.astype("<f4").tobytes() + result.b.astype("<f4").tobytes()
            assert hashlib.sha256(head).hexdigest() == extra["head_sha256"]
            assert result.manifest.version == int(extra["version"])
            if extra["backbone_sha256"]:
                assert hashlib.sha256(result.backbone).hexdigest() == extra["backbone_sha256"]
            else:
                assert result.backbone is None
        return
    if row["kind"] == "sealed_update":
        with pytest.raises(UpdateRefused) as refused:
            run_vector(row, source)
        assert refused.value.refusal == row["extra"]["audit_refusal"], refused.value
        return
    expected = BY_REFUSAL[row["expect"]]
    with pytest.raises(errors.EdgeError) as info:
        run_vector(row, source)
    assert type(info.value) is expected, info.value


def test_index_matches_manifest_and_ta_codes() -> None:
    header = (ROOT / "ta" / "include" / "edge_ta.h").read_text()
    found = re.findall(r"#define (EDGE_ERR_\w+)\s+(0x\w+)", header)
    edge_codes = {name: int(value, 16) for name, value in found}
    gp = (ROOT / "host" / "sim" / "include" / "tee_internal_api.h").read_text()
    found = re.findall(r"#define (TEE_ERROR_\w+)\s+(0x\w+)", gp)
    gp_codes = {name: int(value, 16) for name, value in found}
    ta_codes = {
        "ok": 0,
        "malformed": gp_codes["TEE_ERROR_BAD_FORMAT"],
        "signature": gp_codes["TEE_ERROR_SIGNATURE_INVALID"],
        "tampered": gp_codes["TEE_ERROR_MAC_INVALID"],
        "oversized": gp_codes["TEE_ERROR_EXCESS_DATA"],
        "rollback": edge_codes["EDGE_ERR_ROLLBACK"],
        "not-for-this-device": edge_codes["EDGE_ERR_NOT_FOR_DEVICE"],
        "wrong-package": edge_codes["EDGE_ERR_WRONG_PACKAGE"],
        "retired-format": edge_codes["EDGE_ERR_RETIRED_FORMAT"],
        "unknown-signer": edge_codes["EDGE_ERR_UNKNOWN_SIGNER"],
        "stale-statement": edge_codes["EDGE_ERR_STALE_STATEMENT"],
        "unsupported-version": edge_codes["EDGE_ERR_UNSUPPORTED_VERSION"],
        "wrong-kind": edge_codes["EDGE_ERR_WRONG_KIND"],
        "chunk-digest": edge_codes["EDGE_ERR_CHUNK_DIGEST"],
        "weaker-than-policy": edge_codes["EDGE_ERR_POLICY_VIOLATION"],
        "unknown-enrollment": edge_codes["EDGE_ERR_UNKNOWN_ENROLLMENT"],
        "forged-advert": edge_codes["EDGE_ERR_FORGED_ADVERT"],
        "wrong-round": edge_codes["EDGE_ERR_WRONG_ROUND"],
    }
    with open(VECTORS / "index.tsv", newline="") as fh:
        lines = fh.read().splitlines()
    assert lines[0].split("\t") == [
        "name",
        "kind",
        "file",
        "expect",
        "ta_code",
        "stored_version",
        "stored_epoch",
        "extra",
    ]
    index = list(csv.reader(lines[1:], delimiter="\t"))
    assert len(index) == len(ROWS)
    for fields, row in zip(index, ROWS, strict=True):
        assert len(fields) == 8
        name, kind, file, expect, code, version, epoch, extra = fields
        assert (name, kind, file, expect) == (row["name"], row["kind"], row["file"], row["expect"])
        assert kind in ("package", "anchor_statement", "device_record", "privacy_policy",
                        "round_ticket", "sealed_update", "secagg_entry", "secagg_directive",
                        "secagg_shares", "secagg_reveals")
        assert expect in BY_REFUSAL or expect == "ok"
        assert int(code, 16) == ta_codes[expect] and code == row["ta_code"]
        assert (int(version), int(epoch)) == (row["stored_version"], row["stored_epoch"])
        parsed = dict(item.split("=", 1) for item in extra.split(",")) if extra else {}
        assert parsed == row["extra"]
        assert (VECTORS / file).is_file()


def test_keys_tsv() -> None:
    lines = (VECTORS / "keys.tsv").read_text().splitlines()
    table = dict(line.split("\t") for line in lines)
    assert list(table) == KEY_NAMES
    assert {k: bytes.fromhex(v) for k, v in table.items()} == KEYS
    for role in ("model_signer", "aggregator", "rogue_signer"):
        priv = Ed25519PrivateKey.from_private_bytes(KEYS[f"{role}_priv"])
        assert priv.public_key().public_bytes_raw() == KEYS[f"{role}_pub"]
    ident = Ed25519PrivateKey.from_private_bytes(KEYS["device_ed25519_priv"])
    assert ident.public_key().public_bytes_raw() == KEYS["device_ed25519_pub"]
    agree = X25519PrivateKey.from_private_bytes(KEYS["device_x25519_priv"])
    assert agree.public_key().public_bytes_raw() == KEYS["device_x25519_pub"]
    assert KEYS["device_id"] == key_id(KEYS["device_ed25519_pub"])
    assert len(KEYS["other_device_id"]) == 16 and KEYS["other_device_id"] != KEYS["device_id"]


def test_required_vectors_present() -> None:
    expects = [(r["kind"], r["expect"]) for r in ROWS]
    for refusal in (
        "signature",
        "tampered",
        "chunk-digest",
        "malformed",
        "unsupported-version",
        "wrong-kind",
        "not-for-this-device",
        "wrong-package",
        "retired-format",
        "rollback",
        "unknown-signer",
        "oversized",
    ):
        assert ("package", refusal) in expects, refusal
    for refusal in ("ok", "stale-statement", "unknown-signer", "signature", "malformed"):
        assert ("anchor_statement", refusal) in expects, refusal
    assert ("device_record", "ok") in expects
    assert sum(1 for r in ROWS if r["name"].startswith("pkg_truncated_")) >= 4
    assert sum(1 for r in ROWS if r["kind"] == "package" and r["expect"] == "ok") >= 4


def test_generator_is_deterministic(tmp_path: Path) -> None:
    """A fresh run writes byte-identical files to the committed ones, and nothing else."""
    subprocess.run(
        [sys.executable, str(VECTORS / "generate.py"), "--out", str(tmp_path)],
        check=True,
        cwd=tmp_path,
    )
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in VECTORS.iterdir() if p.suffix in (".bin", ".json", ".tsv"))
    assert fresh == committed
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), name


def test_generator_runs_as_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tests.vectors.generate", "--out", str(tmp_path)],
        check=True,
        cwd=ROOT,
    )
    assert (tmp_path / "manifest.json").read_bytes() == (VECTORS / "manifest.json").read_bytes()


# --- each defective vector has one defect: undo it and the artefact is accepted ---


def _open(
    data: bytes,
    *,
    signer: bytes | None = None,
    stored: int = 0,
    agreement: X25519PrivateKey | None = None,
    device_id: bytes | None = None,
    wrap: bytes | None = None,
) -> Any:
    """Open a package with the vector keys, overriding one parameter."""
    return open_package(
        data,
        wrap=wrap or _bin("pkg_ok_head_only.wrap"),
        signer_pub=signer or KEYS["model_signer_pub"],
        device_id=device_id or KEYS["device_id"],
        agreement=agreement or X25519PrivateKey.from_private_bytes(KEYS["device_x25519_priv"]),
        stored_version=stored,
    )


def _bin(name: str) -> bytes:
    return (VECTORS / f"{name}.bin").read_bytes()


def test_single_defects() -> None:
    gen = generator()
    gen.build_all()  # registers every package's keys, for gen.key_wrap
    _open(_bin("pkg_rollback_older"), stored=2, wrap=_bin("pkg_rollback_older.wrap"))
    _open(_bin("pkg_rollback_equal"), stored=4, wrap=_bin("pkg_rollback_equal.wrap"))
    _open(_bin("pkg_unknown_signer"), signer=KEYS["rogue_signer_pub"],
          wrap=gen.key_wrap(_bin("pkg_unknown_signer"), signer=gen.ROGUE))
    # A wrap's defects: the other device opens the package with its wrap; the
    # package of the other wrap opens with it.
    _open(_bin("pkg_ok_head_only"), wrap=_bin("pkg_wrap_other_device.wrap"),
          agreement=gen.OTHER.agreement, device_id=KEYS["other_device_id"])
    _open(gen.package("pkg_wrap_other_package"), wrap=_bin("pkg_wrap_other_package.wrap"))
    bad_sig = _bin("pkg_bad_signature")
    assert bad_sig[:-64] == _bin("pkg_ok_head_only")[:-64]
    ok_public = _bin("pkg_ok_public_backbone")
    for name in ("header", "body", "signature", "payload"):
        cut = _bin(f"pkg_truncated_{name}")
        assert ok_public.startswith(cut) and len(cut) < len(ok_public)
    assert _bin("pkg_trailing_byte")[:-1] == _bin("pkg_ok_head_only")
    big_head = _bin("pkg_oversized_head")
    assert struct.unpack_from("<II", big_head, 28 + 64) == (4096, 32)
    assert len(big_head) <= 1 << 20
    with pytest.raises(errors.Oversized, match="131104"):
        parse_package(big_head)
    assert len(_bin("pkg_oversized_manifest")) == (1 << 20) + 1
    statement = verify_anchor_statement(
        _bin("anchor_ok"), anchors={1: KEYS["model_signer_pub"]}, epochs={1: 0}
    )
    assert statement.new_pub == KEYS["new_signer_pub"]
    verify_anchor_statement(
        _bin("anchor_unknown_signer"), anchors={1: KEYS["rogue_signer_pub"]}, epochs={}
    )


def test_re_signed_defects_have_valid_signatures() -> None:
    """Defects meant to get past the signature really do: the envelope verifies."""
    from edge.formats import parse_envelope, verify_envelope

    for name in (
        "pkg_tampered_head",
        "pkg_tampered_chunk",
        "pkg_oversized_head",
        "pkg_reserved_nonzero",
        "pkg_encrypted_without_backbone",
        "pkg_chunk_count_inconsistent",
        "pkg_rollback_older",
        "pkg_wrap_other_manifest",
    ):
        verify_envelope(parse_envelope(_bin(name), exact=False), KEYS["model_signer_pub"])
    for name in ("pkg_wrap_tampered_key", "pkg_wrap_other_device", "pkg_wrap_other_package"):
        verify_envelope(parse_envelope(_bin(name + ".wrap")), KEYS["model_signer_pub"])
    for name in ("pkg_bad_magic", "pkg_format_version_3", "pkg_format_version_1"):
        data = _bin(name)
        patched = b"EDGE\x02\x00" + data[6:]
        with pytest.raises(errors.SignatureInvalid):
            verify_envelope(parse_envelope(patched, exact=False), KEYS["model_signer_pub"])
    verify_envelope(parse_envelope(_bin("anchor_bad_role")), KEYS["model_signer_pub"])
