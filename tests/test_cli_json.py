"""``--json`` on the commands a release or provisioning script runs: one JSON object on stdout
with the ids it needs (device id, key ids, package id/version/digest), parsed here and checked
against the files the command wrote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, require_native
from test_cli_tee_edges import edge
from test_firmware_sign_cli import device, head  # noqa: F401 - fixtures

from edge.formats import key_id, parse_device_record, parse_package
from edge.keyfiles import load_public_key, public_pem
from firmware_sign.cli import main as firmware_sign


def _one_object(out: str) -> dict:
    lines = out.splitlines()
    assert len(lines) == 1, out
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


def test_keygen_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "agg"
    assert firmware_sign(["keygen", "--role", "aggregator", "--out", str(prefix), "--json"]) == 0
    info = _one_object(capsys.readouterr().out)
    pub = load_public_key(f"{prefix}.pub")
    assert info == {"role": "aggregator", "key_id": key_id(pub).hex(),
                    "private_key": f"{prefix}.key", "public_key": f"{prefix}.pub"}


def test_pack_and_verify_json(tmp_path: Path, head, device,  # noqa: F811
                              capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "signer"
    assert firmware_sign(["keygen", "--role", "model-signer", "--out", str(prefix)]) == 0
    dev_path = device[0]
    pkg = tmp_path / "m.pkg"
    capsys.readouterr()
    assert firmware_sign(["model", "pack", "--signer", f"{prefix}.key", "--version", "3",
                          "--head", str(head[0]), "--to", str(dev_path), "--out", str(pkg),
                          "--json"]) == 0
    packed = _one_object(capsys.readouterr().out)
    manifest = parse_package(pkg.read_bytes())[1]
    signer_kid = key_id(load_public_key(f"{prefix}.pub")).hex()
    device_id = parse_device_record(dev_path.read_bytes()).device_id.hex()
    assert packed["version"] == 3
    assert packed["package_id"] == manifest.package_id.hex()
    assert packed["sha256"] == hashlib.sha256(pkg.read_bytes()).hexdigest()
    assert packed["signer_key_id"] == signer_kid
    assert packed["wraps"] == {device_id: str(pkg) + f".wraps/{device_id}.wrap"}
    assert Path(packed["wraps"][device_id]).is_file()
    assert packed["head_shape"] == list(np.load(head[0])["W"].shape)

    assert firmware_sign(["verify", str(pkg), "--signer", f"{prefix}.pub", "--json"]) == 0
    verified = _one_object(capsys.readouterr().out)
    assert verified["ok"] is True and verified["kind"] == "model package"
    for field in ("package_id", "version", "sha256", "signer_key_id", "head_shape"):
        assert verified[field] == packed[field], field

    # a device record verifies under its own key and names its device id
    assert firmware_sign(["verify", str(dev_path), "--signer", str(dev_path), "--json"]) == 0
    assert _one_object(capsys.readouterr().out)["device_id"] == device_id

    # a refusal stays one line on stderr, with nothing on stdout for the script to misread
    other = tmp_path / "other"
    assert firmware_sign(["keygen", "--role", "model-signer", "--out", str(other)]) == 0
    capsys.readouterr()
    assert firmware_sign(["verify", str(pkg), "--signer", f"{other}.pub", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1, captured


def test_tee_provision_json(tmp_path: Path, roles: Roles) -> None:
    require_native("host")
    signer, agg = tmp_path / "signer.pub", tmp_path / "agg.pub"
    signer.write_bytes(public_pem(roles.signer.public_key()))
    agg.write_bytes(public_pem(roles.aggregator.public_key()))
    record = tmp_path / "DEVICE.pub"
    out = edge("tee", "provision", "--tee", "sim", "--state", str(tmp_path / "tee"),
               "--model-signer", str(signer), "--aggregator", str(agg), "--out-pub",
               str(record), "--json")
    assert out.returncode == 0, out.stderr
    info = _one_object(out.stdout)
    rec = parse_device_record(record.read_bytes())
    assert info["device_id"] == rec.device_id.hex()
    assert info["record"] == str(record)
    assert info["identity_public_key"] == rec.ed25519_pub.hex()
    assert info["model_signer_key_id"] == key_id(load_public_key(str(signer))).hex()
    assert info["aggregator_key_id"] == key_id(load_public_key(str(agg))).hex()
    assert info["registrar_key_id"] is None
    # and `edge tee info --json` names the same rec and anchors
    shown = json.loads(edge("tee", "info", "--tee", "sim", "--state", str(tmp_path / "tee"),
                            "--json").stdout)
    assert shown["device_id"] == info["device_id"]
    assert shown["aggregator_key_id"] == info["aggregator_key_id"]
