"""firmware-sign command line: keygen, model pack, anchor replace, inspect, verify."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge import tee_abi
from edge.errors import ConfigError
from edge.formats import (
    Role,
    build_device_record,
    key_id,
    open_package,
    parse_device_record,
    parse_envelope,
    parse_package,
    verify_anchor_statement,
)
from edge.formats.keywrap import KEY_WRAP_SIZE, read_key_wrap
from edge.keyfiles import load_private_key, load_public_key
from firmware_sign.cli import main

ROOT = Path(__file__).resolve().parents[1]
REFUSAL_LINE = r"^[a-z-]+: .+$"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run firmware-sign in a subprocess (python -m, so no install is needed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "firmware_sign", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def refusal(capsys: pytest.CaptureFixture[str]) -> str:
    """Return the single stderr line of a refusal, checking its shape."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.match(REFUSAL_LINE, lines[0]), lines[0]
    return lines[0]


@pytest.fixture
def device(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey, X25519PrivateKey]:
    """A device record file as the TA writes it, and the device's keys."""
    ident, agree = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    path = tmp_path / "DEVICE.pub"
    path.write_bytes(build_device_record(ident, agree))
    return path, ident, agree


@pytest.fixture
def signer(tmp_path: Path) -> Path:
    """A model-signer key pair made by keygen; returns the prefix."""
    assert main(["keygen", "--role", "model-signer", "--out", str(tmp_path / "signer")]) == 0
    return tmp_path / "signer"


@pytest.fixture
def head(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A HEAD.npz with float64 arrays (cast to float32 by pack)."""
    rng = np.random.default_rng(1)
    w, b = rng.standard_normal((12, 4)), rng.standard_normal(4)
    path = tmp_path / "head.npz"
    np.savez(path, W=w, b=b)
    return path, w.astype(np.float32), b.astype(np.float32)


def test_keygen_files_and_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "agg"
    assert main(["keygen", "--role", "aggregator", "--out", str(prefix)]) == 0
    out = capsys.readouterr().out
    priv, pub = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert priv.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    key = load_private_key(priv)
    raw = load_public_key(pub)
    assert key.public_key().public_bytes_raw() == raw
    assert key_id(raw).hex() in out
    assert "PRIVATE" not in out and priv.read_text().splitlines()[1] not in out
    assert not list(tmp_path.glob(".*.tmp"))


def test_keygen_refuses_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = str(tmp_path / "k")
    assert main(["keygen", "--role", "model-signer", "--out", prefix]) == 0
    before = Path(prefix + ".key").read_bytes()
    capsys.readouterr()
    assert main(["keygen", "--role", "model-signer", "--out", prefix]) == 1
    line = refusal(capsys)
    assert line.startswith("config: ") and "--force" in line
    assert Path(prefix + ".key").read_bytes() == before
    Path(prefix + ".key").unlink()  # only the .pub left: still refused
    assert main(["keygen", "--role", "model-signer", "--out", prefix]) == 1
    assert not Path(prefix + ".key").exists()
    assert main(["keygen", "--role", "model-signer", "--out", prefix, "--force"]) == 0
    assert main(["keygen", "--role", "model-signer", "--out", prefix, "--force"]) == 0
    assert Path(prefix + ".key").read_bytes() != before
    assert stat.S_IMODE(Path(prefix + ".key").stat().st_mode) == 0o600


def test_keygen_umask_cannot_widen(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert main(["keygen", "--role", "aggregator", "--out", str(tmp_path / "u")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "u.key").stat().st_mode) == 0o600


def test_key_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.key"):
        load_private_key(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("junk")
    with pytest.raises(ConfigError, match=r"junk\.key"):
        load_private_key(tmp_path / "junk.key")
    x = X25519PrivateKey.generate()
    (tmp_path / "x.key").write_bytes(
        x.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        load_private_key(tmp_path / "x.key")
    with pytest.raises(ConfigError, match=r"x\.key"):
        load_public_key(tmp_path / "x.key")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([]) == 2
    assert main(["keygen", "--role", "admin", "--out", "x"]) == 2
    assert (
        main(
            [
                "model",
                "pack",
                "--signer",
                "k",
                "--version",
                "0",
                "--head",
                "h",
                "--to",
                "d",
                "--out",
                "o",
            ]
        )
        == 2
    )
    for size in ("1000", "4097", "2097152", "abc"):
        assert (
            main(
                [
                    "model",
                    "pack",
                    "--signer",
                    "k",
                    "--version",
                    "1",
                    "--head",
                    "h",
                    "--to",
                    "d",
                    "--out",
                    "o",
                    "--chunk-size",
                    size,
                ]
            )
            == 2
        )
    assert (
        main(
            [
                "model",
                "pack",
                "--signer",
                "k",
                "--version",
                "1",
                "--head",
                "h",
                "--to",
                "d",
                "--out",
                "o",
                "--encrypt-backbone",
            ]
        )
        == 2
    )
    assert main(["verify", "file"]) == 2
    capsys.readouterr()


def test_pack_inspect_verify(
    tmp_path: Path, signer: Path, head, device, capsys: pytest.CaptureFixture[str]
) -> None:
    head_path, w, b = head
    dev_path, _ident, agree = device
    backbone = hashlib.shake_256(b"cli backbone").digest(20000)
    (tmp_path / "bb.tflite").write_bytes(backbone)
    (tmp_path / "meta.json").write_text(json.dumps({"backbone": "mobilenet", "shape": [1, 96]}))
    pkg = tmp_path / "model.pkg"
    capsys.readouterr()
    assert (
        main(
            [
                "model",
                "pack",
                "--signer",
                f"{signer}.key",
                "--version",
                "7",
                "--head",
                str(head_path),
                "--backbone",
                str(tmp_path / "bb.tflite"),
                "--encrypt-backbone",
                "--to",
                str(dev_path),
                "--out",
                str(pkg),
                "--chunk-size",
                "4096",
                "--metadata",
                str(tmp_path / "meta.json"),
            ]
        )
        == 0
    )
    assert "version 7" in capsys.readouterr().out
    rec = parse_device_record(dev_path.read_bytes())
    wrap = tmp_path / "model.pkg.wraps" / f"{rec.device_id.hex()}.wrap"
    assert [p.name for p in wrap.parent.iterdir()] == [wrap.name]
    assert wrap.stat().st_size == KEY_WRAP_SIZE == 204
    opened = open_package(
        pkg.read_bytes(),
        wrap=wrap.read_bytes(),
        signer_pub=load_public_key(f"{signer}.pub"),
        device_id=rec.device_id,
        agreement=agree,
        stored_version=6,
    )
    np.testing.assert_array_equal(opened.W, w)
    np.testing.assert_array_equal(opened.b, b)
    assert opened.backbone == backbone

    assert main(["inspect", str(pkg), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "package" and info["model_version"] == 7
    assert info["head"] == {"in": 12, "out": 4, "params": 52}
    assert info["backbone"]["chunks"] == 5 and info["backbone"]["encrypted"] is True
    assert "recipients" not in info and info["format_version"] == 2
    assert info["metadata"] == {"backbone": "mobilenet", "shape": [1, 96]}
    assert info["signer_key_id"] == key_id(load_public_key(f"{signer}.pub")).hex()
    assert main(["inspect", str(pkg)]) == 0
    text = capsys.readouterr().out
    assert "model version: 7" in text

    assert main(["inspect", str(wrap), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "key_wrap" and info["device_id"] == rec.device_id.hex()
    assert info["package_id"] == parse_package(pkg.read_bytes())[1].package_id.hex()
    assert main(["verify", str(wrap), "--signer", f"{signer}.pub"]) == 0
    assert f"key wrap for device {rec.device_id.hex()}" in capsys.readouterr().out

    assert main(["verify", str(pkg), "--signer", f"{signer}.pub"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("OK: ")

    data = bytearray(pkg.read_bytes())
    data[-100] ^= 1
    pkg.write_bytes(bytes(data))
    assert main(["verify", str(pkg), "--signer", f"{signer}.pub"]) == 1
    assert refusal(capsys).startswith("chunk-digest: ")
    pkg.write_bytes(bytes(data[:-1]))
    assert main(["verify", str(pkg), "--signer", f"{signer}.pub"]) == 1
    assert refusal(capsys).startswith("malformed: ")
    assert main(["inspect", str(pkg)]) == 1
    assert refusal(capsys).startswith("malformed: ")


def test_pack_refusals(
    tmp_path: Path, signer: Path, head, device, capsys: pytest.CaptureFixture[str]
) -> None:
    head_path, _, _ = head
    dev_path = device[0]
    base = [
        "model",
        "pack",
        "--signer",
        f"{signer}.key",
        "--version",
        "1",
        "--out",
        str(tmp_path / "p.pkg"),
    ]
    capsys.readouterr()
    big = tmp_path / "big.npz"
    np.savez(big, W=np.zeros((4097, 2)), b=np.zeros(2))
    assert main([*base, "--head", str(big), "--to", str(dev_path)]) == 1
    assert "oversized: head: input size 4097 exceeds 4096" in refusal(capsys)
    nob = tmp_path / "nob.npz"
    np.savez(nob, W=np.zeros((2, 2)))
    assert main([*base, "--head", str(nob), "--to", str(dev_path)]) == 1
    assert "missing array(s) b" in refusal(capsys)
    bad_dev = tmp_path / "bad.pub"
    data = bytearray(dev_path.read_bytes())
    data[70] ^= 1  # the key-agreement key, after signing
    bad_dev.write_bytes(bytes(data))
    assert main([*base, "--head", str(head_path), "--to", str(bad_dev)]) == 1
    line = refusal(capsys)
    assert line.startswith("signature: ") and "bad.pub" in line
    assert (
        main([*base, "--head", str(head_path), "--to", str(dev_path), "--to", str(dev_path)]) == 1
    )
    assert "listed twice" in refusal(capsys)
    assert main([*base, "--head", str(head_path), "--to", str(tmp_path / "none.pub")]) == 1
    assert refusal(capsys).startswith("config: cannot read device record")
    assert (
        main(
            [
                *base,
                "--head",
                str(head_path),
                "--to",
                str(dev_path),
                "--backbone",
                str(tmp_path / "nothing"),
            ]
        )
        == 1
    )
    assert refusal(capsys).startswith("config: backbone")
    assert not (tmp_path / "p.pkg").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_anchor_replace(tmp_path: Path, signer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--role", "model-signer", "--out", str(tmp_path / "next")]) == 0
    out = tmp_path / "stmt.bin"
    assert (
        main(
            [
                "anchor",
                "replace",
                "--role",
                "model-signer",
                "--current",
                f"{signer}.key",
                "--new",
                str(tmp_path / "next.pub"),
                "--epoch",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    current_pub = load_public_key(f"{signer}.pub")
    st = verify_anchor_statement(
        out.read_bytes(), anchors={Role.MODEL_SIGNER: current_pub}, epochs={}
    )
    assert st.new_pub == load_public_key(tmp_path / "next.pub")
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["role"] == 1 and info["epoch"] == 1 and info["kind"] == "anchor_statement"
    assert main(["verify", str(out), "--signer", f"{signer}.pub"]) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--signer", str(tmp_path / "next.pub")]) == 1
    assert refusal(capsys).startswith("unknown-signer: ")
    assert (
        main(
            [
                "anchor",
                "replace",
                "--role",
                "aggregator",
                "--current",
                f"{signer}.key",
                "--new",
                f"{signer}.pub",
                "--epoch",
                "1",
                "--out",
                str(out),
            ]
        )
        == 1
    )
    assert "current key" in refusal(capsys)


def test_inspect_verify_device_record(
    device, signer: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev_path, ident, _ = device
    capsys.readouterr()
    assert main(["inspect", str(dev_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    rec = parse_device_record(dev_path.read_bytes())
    assert info["device_id"] == rec.device_id.hex() and info["abi_version"] == tee_abi.ABI_VERSION
    pub = dev_path.with_name("dev.pem")
    pub.write_bytes(
        ident.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert main(["verify", str(dev_path), "--signer", str(pub)]) == 0
    capsys.readouterr()
    assert main(["verify", str(dev_path), "--signer", f"{signer}.pub"]) == 1
    assert refusal(capsys).startswith("unknown-signer: ")


def test_inspect_never_prints_secrets(
    tmp_path: Path, signer: Path, head, device, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "s.pkg"
    assert (
        main(
            [
                "model",
                "pack",
                "--signer",
                f"{signer}.key",
                "--version",
                "1",
                "--head",
                str(head[0]),
                "--to",
                str(device[0]),
                "--out",
                str(pkg),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["inspect", str(pkg), "--json"]) == 0
    text = capsys.readouterr().out
    from edge.formats import parse_package

    m = parse_package(pkg.read_bytes())[1]
    wrap = next((tmp_path / "s.pkg.wraps").iterdir())
    assert main(["inspect", str(wrap), "--json"]) == 0
    text += capsys.readouterr().out
    assert read_key_wrap(parse_envelope(wrap.read_bytes())).wrapped_key.hex() not in text
    assert m.head_ciphertext[:16].hex() not in text
    assert "PRIVATE" not in text


def test_inspect_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "empty": b"",
        "magic": b"EDGX" + bytes(24) + bytes(64),
        "version": b"EDGE\x03\x00\x01\x00" + bytes(20) + bytes(64),
        "retired": b"EDGE\x01\x00\x01\x00" + bytes(20) + bytes(64),
        "kind7": b"EDGE\x01\x00\x07\x00" + bytes(20) + bytes(64),
    }
    expected = {
        "empty": "malformed",
        "magic": "malformed",
        "version": "unsupported-version",
        "retired": "retired-format",
        "kind7": "wrong-kind",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert main(["inspect", str(tmp_path / name)]) == 1
        assert refusal(capsys).startswith(f"{expected[name]}: ")
    assert main(["inspect", str(tmp_path / "absent")]) == 1
    assert refusal(capsys).startswith("config: cannot read")


def test_subprocess_exit_codes_and_32mib_backbone(tmp_path: Path) -> None:
    """End to end through the console entry point, with a 32 MiB backbone that streams."""
    r = run("keygen", "--role", "model-signer", "--out", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    ident, agree = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    (tmp_path / "d.pub").write_bytes(build_device_record(ident, agree))
    np.savez(tmp_path / "h.npz", W=np.ones((3, 2), np.float32), b=np.zeros(2, np.float32))
    block = hashlib.shake_256(b"32").digest(1 << 20)
    with open(tmp_path / "bb", "wb") as fh:
        for _ in range(32):
            fh.write(block)
    r = run(
        "model",
        "pack",
        "--signer",
        str(tmp_path / "s.key"),
        "--version",
        "2",
        "--head",
        str(tmp_path / "h.npz"),
        "--backbone",
        str(tmp_path / "bb"),
        "--to",
        str(tmp_path / "d.pub"),
        "--out",
        str(tmp_path / "p"),
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p").stat().st_size > 32 << 20
    r = run("verify", str(tmp_path / "p"), "--signer", str(tmp_path / "s.pub"))
    assert r.returncode == 0 and r.stdout.startswith("OK: ") and "512 chunk" in r.stdout
    r = run("verify", str(tmp_path / "p"), "--signer", str(tmp_path / "d.pub"))
    assert r.returncode == 1
    r = run("verify", str(tmp_path / "p"))
    assert r.returncode == 2
    r = run("keygen", "--role", "model-signer", "--out", str(tmp_path / "s"))
    assert r.returncode == 1
    import re

    assert re.match(REFUSAL_LINE, r.stderr.strip()) and r.stderr.count("\n") == 1
