"""OP-TEE signed TA images (firmware_sign.ta_image, ``firmware-sign ta``): vectors, CLI.

The byte-level comparison with the TA dev kit's own ``sign_encrypt.py`` runs in the QEMU
suite (tests/qemu/test_qemu_ta_signing.py), where the dev kit is unpacked.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from edge import errors
from firmware_sign.cli import main
from firmware_sign.ta_image import MAX_IMAGE_SIZE, parse_ta, sign_ta, verify_ta

VECTORS = Path(__file__).parent / "vectors" / "ta_image"
sys.path.insert(0, str(VECTORS))
import generate  # noqa: E402

REFUSALS = {
    "malformed": errors.Malformed,
    "oversized": errors.Oversized,
    "signature": errors.SignatureInvalid,
    "tampered": errors.Tampered,
}


def _rows() -> list[dict[str, str]]:
    with open(VECTORS / "index.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _pub(name: str = "test_ta_key.pem"):
    return serialization.load_pem_private_key((VECTORS / name).read_bytes(), None).public_key()


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["name"])
def test_vector_outcome(row: dict[str, str]) -> None:
    data = (VECTORS / row["file"]).read_bytes()
    enc_key = generate.ENC_KEY if "encrypted" in row["name"] or "ciphertext" in row["name"] \
        else None
    if row["expect"] == "ok":
        image = verify_ta(data, _pub(), uuid=generate.UUID, enc_key=enc_key)
        assert image.uuid == generate.UUID
        return
    with pytest.raises(REFUSALS[row["expect"]]) as caught:
        verify_ta(data, _pub(), uuid=generate.UUID, enc_key=enc_key)
    # The refusal is of exactly the class listed, not a parent or a sibling.
    assert type(caught.value) is REFUSALS[row["expect"]], caught.value


def test_index_lists_every_vector_file() -> None:
    files = {p.name for p in VECTORS.glob("*.ta")}
    assert files == {r["file"] for r in _rows()} == {f"{n}.ta" for n in generate.VECTORS}


def test_generator_is_deterministic_except_pss(tmp_path: Path) -> None:
    generate.write(tmp_path)
    for row in _rows():
        same = (tmp_path / row["file"]).read_bytes() == (VECTORS / row["file"]).read_bytes()
        assert same == (row["name"] != "ok_pss"), row["name"]


def test_fields_of_the_ok_vectors() -> None:
    ok = parse_ta((VECTORS / "ok_pkcs1v15.ta").read_bytes())
    assert (ok.img_type, ok.ta_version, ok.enc) == (1, 7, None)
    assert ok.payload == generate.elf() and ok.img_size == len(generate.elf())
    enc = parse_ta((VECTORS / "ok_encrypted.ta").read_bytes())
    assert (enc.img_type, enc.enc.key_type, enc.enc.iv) == (2, 1, generate.IV)
    assert generate.elf()[16:64] not in enc.payload


def test_encrypted_image_needs_its_key() -> None:
    data = (VECTORS / "ok_encrypted.ta").read_bytes()
    with pytest.raises(errors.ConfigError, match="encrypted"):
        verify_ta(data, _pub())
    with pytest.raises(errors.Tampered):
        verify_ta(data, _pub(), enc_key=bytes(32))


def test_another_tas_uuid_is_refused() -> None:
    data = (VECTORS / "ok_pkcs1v15.ta").read_bytes()
    with pytest.raises(errors.Malformed, match="expected"):
        verify_ta(data, _pub(), uuid=uuid.UUID(int=1))


def test_sign_refuses_non_elf_and_oversized_input() -> None:
    key = serialization.load_pem_private_key((VECTORS / "test_ta_key.pem").read_bytes(), None)
    with pytest.raises(errors.Malformed, match="ELF"):
        sign_ta(b"MZ" + bytes(100), key, generate.UUID)
    with pytest.raises(errors.Oversized):
        sign_ta(b"\x7fELF" + bytes(MAX_IMAGE_SIZE), key, generate.UUID)


def test_cli_keygen_sign_verify_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "ta-key"
    assert main(["ta", "keygen", "--bits", "2048", "--out", str(prefix)]) == 0
    assert stat.S_IMODE(os.stat(f"{prefix}.pem").st_mode) == 0o600
    elf = tmp_path / "ta.stripped.elf"
    elf.write_bytes(generate.elf())
    out = tmp_path / "x.ta"
    # the TA dev kit's SIGN_ENC convention: --in/--out, --ta-version
    assert main(["ta", "sign", "--key", f"{prefix}.pem", "--uuid", str(generate.UUID),
                 "--ta-version", "3", "--in", str(elf), "--out", str(out)]) == 0
    assert main(["ta", "verify", "--key", f"{prefix}.pub.pem", "--uuid", str(generate.UUID),
                 str(out)]) == 0
    capsys.readouterr()
    assert main(["ta", "verify", "--key", str(VECTORS / "test_ta_key.pem"), str(out)]) == 1
    assert capsys.readouterr().err.startswith("signature: ")
    assert main(["inspect", "--json", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["kind"], info["uuid"], info["ta_version"], info["img_size"]) == (
        "op-tee signed TA", str(generate.UUID), 3, len(generate.elf()))
    out.write_bytes(out.read_bytes()[:-1])
    assert main(["inspect", str(out)]) == 1
    assert capsys.readouterr().err.startswith("malformed: ")


def test_cli_encrypted_round_trip(tmp_path: Path) -> None:
    elf = tmp_path / "ta.elf"
    elf.write_bytes(generate.elf())
    out = tmp_path / "e.ta"
    key = str(VECTORS / "test_ta_key.pem")
    hexkey = generate.ENC_KEY.hex()
    assert main(["ta", "sign", "--key", key, "--uuid", str(generate.UUID), "--algo", "pss",
                 "--enc-key", hexkey, str(elf), "-o", str(out)]) == 0
    assert main(["ta", "verify", "--key", key, "--enc-key", hexkey, str(out)]) == 0
    assert main(["ta", "verify", "--key", key, "--enc-key", "00" * 32, str(out)]) == 1
