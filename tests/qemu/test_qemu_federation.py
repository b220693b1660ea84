"""The federation end to end with one device in the real secure world (OP-TEE under QEMU).

A Mosquitto broker and the in-process aggregator run on the host; two simulated devices run
their daemons in threads here; the QEMU guest runs ``edge daemon`` with ``[tee] backend =
"optee"`` and reaches the broker only through QEMU's restricted user-mode network (one
guestfwd: the guest's 10.0.2.100:1883 is the host's 127.0.0.1:<broker port>). The package
carries no backbone, so every device trains its head on raw features (the image has
ai-edge-litert, tested with a backbone in test_qemu_optee.py; the daemon never imports it
here). Run with ``pytest -m qemu tests/qemu``.
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
from federation_helpers import Federation, to_toml
from qemu_fleet import GUEST_BROKER_PORT, pem_key, separable_samples
from training_helpers import policy

from edge.aggregator.simulate import config_mapping
from edge.broker import MosquittoBroker
from edge.demo.fleet import FLEET, Fleet, device_config, provision_device
from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "qemu"))
from guest import OUT, Guest, build_image  # noqa: E402

pytestmark = pytest.mark.qemu

ROUNDS = 2
@pytest.fixture
def guest(mosquitto: MosquittoBroker) -> Iterator[Guest]:
    build_image()
    g = Guest.boot(console_log=OUT / "console-federation.log",
                   secure_log=OUT / "secure-federation.log",
                   boot_args=("--fwd", f"{GUEST_BROKER_PORT}:{mosquitto.port}"))
    try:
        yield g
    finally:
        g.close()


def _wait_guest_log(g: Guest, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = g.run("cat /root/daemon.log")[1]
        if re.search(pattern, log):
            return log
        if time.monotonic() > deadline:
            pytest.fail(f"the guest daemon did not log {pattern!r}:\n{log[-3000:]}")
        time.sleep(2)


def test_federation_with_a_qemu_device(guest: Guest, mosquitto: MosquittoBroker,
                                       tmp_path: Path) -> None:
    require_native("host")
    # The fleet: role keys and an 8x3 zero head (no backbone), a permissive no-DP policy
    # with fixed-size sampling (the rounds' tickets carry sigma = 1, C = 1, U = 1).
    root = tmp_path / "fleet"
    table = config_mapping(root / "aggregator", mosquitto.url, fleet=FLEET,
                           rounds={"cohort_size": 3, "quorum": 3, "min_updates": 3,
                                   "timeout_s": 120, "rounds": ROUNDS},
                           dp={"batch_size": 8, "learning_rate": 0.5})
    signer = pem_key(table["aggregator"]["model_signer_key"])
    aggregator = pem_key(table["aggregator"]["aggregator_key"])
    pol = policy(signer)
    fleet = Fleet(root, table)
    for i in (1, 2):
        cfg = device_config(root, i, mosquitto.url, "sim")
        data = Path(cfg["data"]["path"])
        data.mkdir(parents=True)
        xi, yi = separable_samples(i)
        np.savez(data / "private.npz", X=xi, y=yi)
        fleet.records.append(provision_device(Path(cfg["tee"]["state_dir"]), signer,
                                              aggregator, pol))
        fleet.devices.append(cfg)

    # The QEMU device: provisioned through the C client, data and config over the console.
    g = guest
    g.check(f"date -u -s @{int(time.time())}")
    g.check(f"edge-ta-cli anchors {ed25519_raw_public(signer).hex()} "
            f"{ed25519_raw_public(aggregator).hex()}")
    g.put("/root/policy.bin", pol)
    g.check("edge-ta-cli policy /root/policy.bin && edge-ta-cli identity /root/device.rec")
    record = g.get("/root/device.rec")
    qemu_id = parse_device_record(record).device_id
    fleet.records.append(record)
    x, y = separable_samples(3)
    npz = tmp_path / "qemu.npz"
    np.savez(npz, X=x, y=y)
    g.put("/root/data/private.npz", npz.read_bytes())
    g.put("/root/daemon.toml", to_toml({
        "device": {"name": "qemu-01", "fleet": FLEET},
        "tee": {"backend": "optee"},
        "broker": {"url": f"mqtt://10.0.2.100:{GUEST_BROKER_PORT}", "keepalive": 30},
        "data": {"source": "directory", "path": "/root/data", "store_dir": "/root/store",
                 "max_samples": 4096},
        "inference": {"npu_delegate": "none"},
        "paths": {"work_dir": "/root/work"},
    }).encode())
    g.check("mkdir -p /root/work && (python3 -m edge.cli daemon --config /root/daemon.toml "
            "--verbose >/root/daemon.log 2>&1 &)")

    fed = Federation(fleet)
    try:
        fed.start_boards()
        _wait_guest_log(g, r"step=subscribe result=ok", 180)
        t0 = time.monotonic()
        rows = fed.run_rounds(ROUNDS, timeout=600)
        elapsed = time.monotonic() - t0
        log = g.run("cat /root/daemon.log")[1]
        assert [m.round for m in rows] == list(range(1, ROUNDS + 1)), log[-3000:]
        agg = fed.aggregator
        assert agg is not None
        for m in rows:
            assert not m.failed and m.participants == 3 and m.refused == {}, (m, log[-3000:])
        for r in range(1, ROUNDS + 1):
            assert qemu_id in agg.store.accepted(r), f"round {r}: {log[-3000:]}"
        assert agg.store.audit_rows() == []
        budget = dict(line.split(": ", 1) for line in
                      g.check("edge-ta-cli budget").splitlines() if ": " in line)
        assert budget["rounds_sealed"] == str(ROUNDS)
        assert budget["last_round"] == str(ROUNDS)
        print(f"{ROUNDS} rounds with the QEMU device in {elapsed:.1f} s")
    finally:
        fed.close()
