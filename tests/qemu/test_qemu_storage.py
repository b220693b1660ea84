"""Secure storage on a persistent disk across reboots of the QEMU board, and a rollback of
the normal world's storage files (OP-TEE OS built with CFG_REE_FS_INTEGRITY_RPMB).

Boot 1 on a new disk provisions the TA and spends budgets; boot 2 on the same disk starts
a fresh TA instance (the TA is keep-alive, so only a reboot gives one), which must load
identity, anchors, model version, privacy budget and query budget from storage. Then, in
boot 2, the storage files are copied back from a snapshot taken before more budget was
spent: OP-TEE must refuse them (the REE FS directory hash in RPMB no longer matches), so
the budget is not given back. What this does not prove (docs/qemu.md): tee-supplicant's
emulated RPMB is in memory, so a rollback done while the board is off is not detected.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Roles, head, make_package
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from training_helpers import NOW, data, policy, ticket

from edge.formats.anchors import Role, build_anchor_statement
from edge.formats.device import parse_device_record
from edge.formats.keys import ed25519_raw_public
from edge.formats.manifest import InferPolicy, InferRelease

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "qemu"))
from guest import OUT, Guest, build_image  # noqa: E402

pytestmark = pytest.mark.qemu

TEE_FS = "/var/lib/optee-client/data/tee"
VERSION, N_IN, N_OUT, N = 5, 16, 4, 12
TEE_ERROR_CORRUPT_OBJECT = 0xF0100001
ROWS = 3000  # the package's query budget (the TA reserves rows in blocks of 1024)


def _round_files(g: Guest, roles: Roles, round_id: int) -> str:
    """Put round ``round_id``'s ticket and the training data into the guest; the args."""
    x, y = data(3, N, N_IN, N_OUT)
    g.put("/tmp/x.f32", x.astype("<f4").tobytes())
    g.put("/tmp/y.u32", y.astype("<u4").tobytes())
    g.put(f"/tmp/r{round_id}.tk", ticket(roles.aggregator, round_id=round_id,
                                         model_version=VERSION, nonce=bytes([round_id]) * 16,
                                         batch_size=N, epochs=2))
    return f"/tmp/r{round_id}.tk {NOW} {N} /tmp/x.f32 /tmp/y.u32 /tmp/r{round_id}.upd"


def _py(g: Guest, *args: str) -> dict:
    out = g.check("python3 /root/guest_ta.py " + " ".join(args), timeout=300)
    m = re.search(r"@@JSON (\{.*\})", out)
    assert m, out
    return json.loads(m.group(1))


def _boot(disk: Path, n: int) -> Guest:
    g = Guest.boot(console_log=OUT / f"console-storage-{n}.log",
                   secure_log=OUT / f"secure-storage-{n}.log", boot_args=("--disk", str(disk)))
    g.put("/root/guest_ta.py", (Path(__file__).parent / "guest_ta.py").read_bytes())
    return g


@pytest.fixture(scope="module")
def disk() -> Iterator[Path]:
    build_image()
    path = OUT / "test-storage.img"
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def roles() -> Roles:
    return Roles(Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def before_reboot(disk: Path, roles: Roles) -> Iterator[dict]:
    """Boot 1: provision, load a model with a query budget, install a policy, train, infer."""
    g = _boot(disk, 1)
    try:
        assert "/dev/vda on " + TEE_FS in g.check("mount"), g.check("mount")
        record = bytes.fromhex(_py(g, "identity")["record"])
        dev = parse_device_record(record)
        g.check(f"edge-ta-cli anchors {roles.signer_pub.hex()} {roles.aggregator_pub.hex()}")
        w, b = head(5, N_IN, N_OUT)
        pkg = make_package(roles.signer, [dev], version=VERSION, w=w, b=b,
                           infer=InferPolicy(InferRelease.LABEL, budget=ROWS))
        g.put("/tmp/m.pkg", pkg)
        g.put("/tmp/m.pkg.wrap", pkg.wrap)  # guest_ta.py reads the key wrap beside it
        assert _py(g, "load", "/tmp/m.pkg")["version"] == VERSION
        g.put("/tmp/p.pol", policy(roles.signer, step_budget=50))
        _py(g, "policy", "/tmp/p.pol")
        res = _py(g, "round", _round_files(g, roles, 1))
        assert "error" not in res, res
        inf = _py(g, "infer", str(N), "/tmp/x.f32")
        assert inf["rows_left"] == ROWS - N, inf
        state = {"record": record, "status": _py(g, "status"), "budget": _py(g, "budget"),
                 "rows_left": inf["rows_left"], "labels": inf["labels"]}
        g.check("sync")
    finally:
        g.close()
    yield state


@pytest.fixture(scope="module")
def after_reboot(disk: Path, before_reboot: dict) -> Iterator[Guest]:
    g = _boot(disk, 2)
    try:
        yield g
    finally:
        g.close()


def test_fresh_ta_instance_loads_identity_and_model_from_storage(
        before_reboot: dict, after_reboot: Guest) -> None:
    g = after_reboot
    status = _py(g, "status")
    assert status == before_reboot["status"], (status, before_reboot["status"])
    assert status["model_version"] == VERSION
    assert bytes.fromhex(_py(g, "identity")["record"]) == before_reboot["record"]


def test_anchors_survive_the_reboot(roles: Roles, before_reboot: dict,
                                    after_reboot: Guest) -> None:
    g = after_reboot
    rc, out = g.run(f"edge-ta-cli anchors {roles.signer_pub.hex()} "
                    f"{roles.aggregator_pub.hex()}")
    assert rc != 0 and "already provisioned" in out, out
    # A statement signed by the stored model-signer anchor is accepted (epoch 1 is next).
    new = Ed25519PrivateKey.generate()
    g.put("/tmp/st.bin", build_anchor_statement(roles.signer, Role.MODEL_SIGNER, 1,
                                                ed25519_raw_public(new)))
    g.check("edge-ta-cli replace-anchor /tmp/st.bin")


def test_model_version_and_budgets_never_go_back(roles: Roles, before_reboot: dict,
                                                 after_reboot: Guest) -> None:
    g = after_reboot
    budget = _py(g, "budget")
    assert budget == before_reboot["budget"], (budget, before_reboot["budget"])
    assert (budget["steps_spent"], budget["rounds_sealed"], budget["last_round"]) == (2, 1, 1)
    # the round already sealed is a replay for the fresh instance too; the next one
    # spends on top of what was spent before the reboot
    res = _py(g, "round", _round_files(g, roles, 1))
    assert res.get("error") == "Replay" and res["unchanged"], res
    res = _py(g, "round", _round_files(g, roles, 2))
    assert "error" not in res, res
    assert (res["budget"]["steps_spent"], res["budget"]["last_round"]) == (4, 2)
    # The query budget: rows reserved before the reboot count as used (never given back).
    inf = _py(g, "infer", str(N), "/tmp/x.f32")
    assert inf["rows_left"] <= before_reboot["rows_left"] - N, inf
    assert inf["labels"] == before_reboot["labels"]


def test_copying_old_storage_files_back_is_detected(roles: Roles, before_reboot: dict,
                                                    after_reboot: Guest) -> None:
    """The normal world restores a snapshot taken before a round's spend: OP-TEE refuses it."""
    g = after_reboot
    g.check(f"rm -rf /root/snap && cp -a {TEE_FS} /root/snap")
    spent = _py(g, "round", _round_files(g, roles, 3))
    assert "error" not in spent, spent
    g.check(f"rm -rf {TEE_FS}/* && cp -a /root/snap/. {TEE_FS}/ && sync")
    # The TA keeps its counters in memory, so they could not go back within this boot
    # anyway; what shows RPMB at work is that the storage is refused from then on: OP-TEE
    # reopens the restored directory file, finds it does not match the hash in RPMB, and
    # answers TEE_ERROR_CORRUPT_OBJECT; the next round is not sealed.
    rc, out = g.run("edge-ta-cli budget")
    assert rc != 0 and f"0x{TEE_ERROR_CORRUPT_OBJECT:08x}, from ta" in out, out
    rc, out = g.run("python3 /root/guest_ta.py round " + _round_files(g, roles, 4))
    assert rc != 0 and "TeeError" in out and f"0x{TEE_ERROR_CORRUPT_OBJECT:08x}" in out, out
    assert g.run("ls /tmp/r4.upd")[0] != 0
