"""TAs signed by ``firmware-sign ta sign``: the same bytes as the TA dev kit's own signer,
and OP-TEE OS (built by scripts/qemu/build.sh to trust only the project's TA key) loads
them while refusing the same ELF signed by OP-TEE's public development key or another key.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from firmware_sign.ta_cli import load_rsa_private
from firmware_sign.ta_image import SigAlgo, sign_ta, verify_ta

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "qemu"))
from guest import OUT, Guest, build_image  # noqa: E402

pytestmark = pytest.mark.qemu

UUID = "5441d9b6-a634-4050-9731-e70ae47dd281"
DEVKIT = OUT / "stage" / "usr" / "lib" / "optee-os-dev" / "vexpress-qemu_armv8a"
OTHER_KEY = ROOT / "tests" / "vectors" / "ta_image" / "other_ta_key.pem"
TEE_ERROR_SECURITY = 0xFFFF000F


@pytest.fixture(scope="module")
def image() -> Path:
    build_image()
    return OUT


def _ci_key() -> Path:
    """The key build.sh signed the image's TAs with (EDGE_QEMU_TA_KEY, or the CI key)."""
    if os.environ.get("EDGE_QEMU_TA_KEY"):
        return Path(os.environ["EDGE_QEMU_TA_KEY"])
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = Path(os.environ.get("EDGE_QEMU_CACHE") or xdg / "edge" / "qemu")
    return cache / "keys" / "edge-ta-ci.pem"


def _devkit_sign(tmp: Path, key: Path, algo: str, *extra: str) -> bytes:
    out = tmp / f"devkit-{algo}.ta"
    subprocess.run([sys.executable, str(DEVKIT / "scripts" / "sign_encrypt.py"), "sign-enc",
                    "--key", str(key), "--uuid", UUID, "--ta-version", "0", "--algo", algo,
                    "--in", str(OUT / "ta" / f"{UUID}.stripped.elf"), "--out", str(out),
                    *extra], check=True, capture_output=True)
    return out.read_bytes()


def test_image_ta_is_byte_identical_to_the_dev_kits_signing(image: Path, tmp_path: Path) -> None:
    ours = (OUT / "ta" / f"{UUID}.ta").read_bytes()
    assert _devkit_sign(tmp_path, _ci_key(), "TEE_ALG_RSASSA_PKCS1_V1_5_SHA256") == ours
    pub = load_rsa_private(str(_ci_key())).public_key()
    assert verify_ta(ours, pub).uuid.hex == UUID.replace("-", "")
    # The OS was built with exactly this public key.
    assert (OUT / "ta-key.pub.pem").read_bytes() == pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_pss_and_encrypted_images_cross_verify_with_the_dev_kit(image: Path,
                                                                tmp_path: Path) -> None:
    elf = (OUT / "ta" / f"{UUID}.stripped.elf").read_bytes()
    key = load_rsa_private(str(_ci_key()))
    enc_key = "a5" * 32
    # ours -> the dev kit's verifier
    for name, data in {
        "pss": sign_ta(elf, key, uuid.UUID(UUID),
                       algo=SigAlgo.RSASSA_PKCS1_PSS_MGF1_SHA256),
        "enc": sign_ta(elf, key, uuid.UUID(UUID),
                       enc_key=bytes.fromhex(enc_key)),
    }.items():
        path = tmp_path / f"{name}.ta"
        path.write_bytes(data)
        subprocess.run([sys.executable, str(DEVKIT / "scripts" / "sign_encrypt.py"), "verify",
                        "--key", str(_ci_key()), "--uuid", UUID, "--in", str(path),
                        "--enc-key", enc_key], check=True, capture_output=True)
    # the dev kit's (PSS, random salt; encrypted, random IV) -> ours
    pss = _devkit_sign(tmp_path, _ci_key(), "TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256")
    assert verify_ta(pss, key.public_key()).algo == SigAlgo.RSASSA_PKCS1_PSS_MGF1_SHA256
    enc = _devkit_sign(tmp_path, _ci_key(), "TEE_ALG_RSASSA_PKCS1_V1_5_SHA256",
                       "--enc-key", enc_key)
    assert verify_ta(enc, key.public_key(), enc_key=bytes.fromhex(enc_key)).payload != elf


@pytest.fixture(scope="module")
def guest(image: Path) -> Iterator[Guest]:
    g = Guest.boot(console_log=OUT / "console-signing.log", secure_log=OUT / "secure-signing.log")
    try:
        yield g
    finally:
        g.close()


def _status_code(g: Guest) -> int:
    rc, out = g.run("edge-ta-cli status")
    if rc == 0:
        return 0
    m = re.search(r"\(0x([0-9a-f]{8}), from (ta|client|tee|transport|unknown)\)", out)
    assert m, out
    return int(m.group(1), 16)


def test_optee_refuses_the_dev_key_and_another_key_then_loads_the_project_signed_ta(
        guest: Guest, tmp_path: Path) -> None:
    target = f"/lib/optee_armtz/{UUID}.ta"
    guest.check(f"cp {target} /root/project.ta")
    # Before the TA is ever opened (it is keep-alive): the same ELF signed by OP-TEE's
    # public development key (what Debian's OS trusts), then by an unrelated key.
    for name, key in (("devkey", DEVKIT / "keys" / "default_ta.pem"), ("other", OTHER_KEY)):
        guest.put(target, _devkit_sign(tmp_path, key, "TEE_ALG_RSASSA_PKCS1_V1_5_SHA256"))
        code = _status_code(guest)
        assert code == TEE_ERROR_SECURITY, f"{name}: 0x{code:08x}"
    guest.check(f"cp /root/project.ta {target}")
    assert _status_code(guest) == 0
    log = guest.secure_log.read_text(errors="replace")
    assert "Signature" in log or "signature" in log or "0xffff000f" in log.lower(), log[-2000:]
