"""The registrar on the command line: keys, certificates, and provisioning a TA with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require_native
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import errors
from edge.cli import main as edge_main
from edge.formats import secagg as fmt
from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public
from edge.keyfiles import load_public_key
from edge.tee import TrustedApp
from firmware_sign.cli import main as sign_main


def test_registrar_keygen_certify_and_provision(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    for role in ("model-signer", "aggregator", "registrar"):
        assert sign_main(["keygen", "--role", role, "--out", str(tmp_path / role)]) == 0
    state = tmp_path / "tee"
    dev_pub = tmp_path / "device.pub"
    assert edge_main(["tee", "provision", "--tee", "sim", "--state", str(state),
                      "--model-signer", str(tmp_path / "model-signer.pub"),
                      "--aggregator", str(tmp_path / "aggregator.pub"),
                      "--registrar", str(tmp_path / "registrar.pub"),
                      "--out-pub", str(dev_pub)]) == 0
    cert_path = tmp_path / "device.cert"
    assert sign_main(["registrar", "certify", "--registrar", str(tmp_path / "registrar.key"),
                      "--device", str(dev_pub), "--fleet", "lab",
                      "--out", str(cert_path)]) == 0
    registrar_pub = load_public_key(tmp_path / "registrar.pub")
    cert = fmt.verify_cert(cert_path.read_bytes(), registrar_pub, fmt.fleet_id("lab"))
    assert cert.device_id == parse_device_record(dev_pub.read_bytes()).device_id
    with pytest.raises(errors.UnknownEnrollment):
        fmt.verify_cert(cert_path.read_bytes(), registrar_pub, fmt.fleet_id("other"))
    with pytest.raises(errors.UnknownEnrollment):
        fmt.verify_cert(cert_path.read_bytes(),
                        ed25519_raw_public(Ed25519PrivateKey.generate()), fmt.fleet_id("lab"))
    # The TA holds the registrar: a second one is refused.
    with TrustedApp("sim", state) as ta, pytest.raises(errors.AlreadyProvisioned):
        ta.install_registrar(registrar_pub)
