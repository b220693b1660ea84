"""One secure-aggregation round (SecAgg+, docs/secagg.md) with the QEMU board among simulated ones.

The QEMU board's TA runs in a real OP-TEE secure world: it makes its per-round X25519 keys,
secret-shares its seeds, masks its update and reveals shares there. It is provisioned as an
operator would: ``edge board provision --registrar`` over its serial console (the registrar key
goes into the TA, and ``edge board status`` must report it from the TA's own status block),
then enrolled and certified by the registrar. Two simulated devices get the same registrar and
certificates. The broker, the aggregator and the simulated daemons run on the host as in
test_qemu_federation.py; the guest reaches the broker through QEMU's one guestfwd. Run with
``pytest -m qemu tests/qemu/test_qemu_secagg.py``.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import require_native
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from federation_helpers import Federation, to_toml
from qemu_fleet import GUEST_BROKER_PORT, pem_key, separable_samples
from training_helpers import policy

from edge.aggregator.simulate import config_mapping
from edge.board.agent import bundle_version
from edge.board.console import Console
from edge.board.provision import BoardAccess, provision, status
from edge.board.transfer import TransferStats, push
from edge.broker import MosquittoBroker
from edge.demo.fleet import FLEET, Fleet, device_config, provision_device
from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.secagg import build_cert, fleet_id
from edge.keyfiles import public_pem
from edge.tee import TrustedApp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "qemu"))
from guest import OUT, Guest, build_image  # noqa: E402

pytestmark = pytest.mark.qemu

@pytest.fixture
def console_url(mosquitto: MosquittoBroker) -> Iterator[str]:
    """The booted guest's serial console, left at its shell for `edge board` to drive."""
    build_image()
    g = Guest.boot(console_log=OUT / "console-secagg.log", secure_log=OUT / "secure-secagg.log",
                   boot_args=("--fwd", f"{GUEST_BROKER_PORT}:{mosquitto.port}"), cmdloop=False)
    try:
        yield g.release_console()
    finally:
        g.close()


def _wait_log(console: Console, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = console.run("cat /root/daemon.log")[1]
        if re.search(pattern, log):
            return log
        if time.monotonic() > deadline:
            pytest.fail(f"the guest daemon did not log {pattern!r}:\n{log[-3000:]}")
        time.sleep(2)


def test_secagg_round_with_a_qemu_device(console_url: str, mosquitto: MosquittoBroker,
                                         tmp_path: Path) -> None:
    require_native("host")
    root = tmp_path / "fleet"
    # Generous deadlines: the guest's Python runs under TCG emulation.
    table = config_mapping(root / "aggregator", mosquitto.url, fleet=FLEET,
                           rounds={"cohort_size": 3, "quorum": 3, "min_updates": 3,
                                   "timeout_s": 600, "rounds": 1},
                           dp={"batch_size": 8, "learning_rate": 0.5})
    signer = pem_key(table["aggregator"]["model_signer_key"])
    aggregator = pem_key(table["aggregator"]["aggregator_key"])
    registrar = Ed25519PrivateKey.generate()
    registrar_pub = ed25519_raw_public(registrar)
    pol = policy(signer)
    fleet = Fleet(root, table)
    certs = root / "aggregator" / "certs"
    certs.mkdir(parents=True, mode=0o700)
    (root / "registrar.pub").write_bytes(public_pem(registrar_pub))
    fid = fleet_id(FLEET)
    for i in (1, 2):
        cfg = device_config(root, i, mosquitto.url, "sim")
        data = Path(cfg["data"]["path"])
        data.mkdir(parents=True)
        xi, yi = separable_samples(i)
        np.savez(data / "private.npz", X=xi, y=yi)
        state = Path(cfg["tee"]["state_dir"])
        record = provision_device(state, signer, aggregator, pol)
        with TrustedApp("sim", state) as ta:
            ta.install_registrar(registrar_pub)
        rec = parse_device_record(record)
        (certs / f"{rec.device_id.hex()}.cert").write_bytes(
            build_cert(registrar, rec.ed25519_pub, fid))
        fleet.records.append(record)
        fleet.devices.append(cfg)

    # The QEMU board, provisioned over its console with the registrar (docs/board.md).
    access = BoardAccess(url=console_url)
    with Console(console_url) as console:
        console.login()
        console.check(f"date -u -s @{int(time.time())}")
    assert status(access)["secagg_ready"] is False
    result = provision(access, signer=public_pem(ed25519_raw_public(signer)),
                       aggregator=public_pem(ed25519_raw_public(aggregator)), policy=pol,
                       registrar=(root / "registrar.pub").read_bytes(),
                       expect_version=bundle_version())
    assert result.board["actions"] == ["anchors-installed", "registrar-installed",
                                       "policy-installed"]
    report = status(access)
    assert report["tee"]["backend"] == "optee" and report["secagg_ready"] is True, report
    assert report["tee"]["registrar_key_id"] == key_id(registrar_pub).hex()
    qemu = result.device
    (certs / f"{qemu.device_id.hex()}.cert").write_bytes(
        build_cert(registrar, qemu.ed25519_pub, fid))
    fleet.records.append(result.record)
    fleet.aggregator["rounds"]["secagg"] = "secagg+"
    fleet.aggregator["secagg"] = {"registrar": str(root / "registrar.pub"),
                                  "certificates": str(certs), "stage_timeout_s": 150}

    x, y = separable_samples(3)
    npz = tmp_path / "qemu.npz"
    np.savez(npz, X=x, y=y)
    config = to_toml({
        "device": {"name": "qemu-01", "fleet": FLEET},
        "tee": {"backend": "optee"},
        "broker": {"url": f"mqtt://10.0.2.100:{GUEST_BROKER_PORT}", "keepalive": 30},
        "data": {"source": "directory", "path": "/root/data", "store_dir": "/root/store",
                 "max_samples": 4096},
        "inference": {"npu_delegate": "none"},
        "paths": {"work_dir": "/root/work"},
    }).encode()
    stats = TransferStats()
    with Console(console_url) as console:
        console.login()
        push(console, "/root/data", "private.npz", npz.read_bytes(), stats)
        push(console, "/root/etc", "daemon.toml", config, stats)
        console.check("mkdir -p /root/work && (edge daemon --config /root/etc/daemon.toml "
                      "--verbose >/root/daemon.log 2>&1 &)")

        fed = Federation(fleet)
        try:
            fed.start_boards()
            _wait_log(console, r"step=subscribe result=ok", 180)
            t0 = time.monotonic()
            [m] = fed.run_rounds(1, timeout=900)
            elapsed = time.monotonic() - t0
            log = console.run("cat /root/daemon.log")[1]
            assert not m.failed and m.participants == 3 and m.refused == {}, (m, log[-3000:])
            assert m.model_version == 2, (m, log[-3000:])
            agg = fed.aggregator
            assert agg is not None
            # Only the unmasked sum was counted: no per-device update row, nothing refused.
            assert agg.store.accepted(1) == {}
            assert agg.store.audit_rows() == []
            assert "secagg-inbox" in log and "secagg-masked" not in log, log[-3000:]
            budget = dict(line.split(": ", 1) for line in
                          console.check("edge-ta-cli budget").splitlines() if ": " in line)
            assert budget["rounds_sealed"] == "1" and budget["last_round"] == "1", budget
            print(f"secagg round with the QEMU device in {elapsed:.1f} s")
        finally:
            fed.close()
