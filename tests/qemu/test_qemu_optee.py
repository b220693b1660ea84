"""The real secure world: OP-TEE under QEMU (scripts/qemu), driven over the
guest's serial console.

One guest boots per module (boot-to-ready is measured); the TA's storage is
a tmpfs, so provisioning, loads and refusals all happen within that boot, in
the order of the tests below. Packages are built on the host by
firmware_sign for the device record read back from the guest, then sent in
over the console. Run with ``pytest -m qemu tests/qemu``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, head, make_package
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reference_dpsgd import FIXED, Round, dpsgd_round
from test_tee_sim import DEFECTS, _defective
from training_helpers import BIG, NOW, data, policy, ticket
from update_helpers import verify_sealed

from edge import errors
from edge.formats.anchors import Role, build_anchor_statement
from edge.formats.device import DeviceRecord, parse_device_record
from edge.formats.keys import ed25519_raw_public, key_id
from edge.formats.manifest import InferPolicy, InferRelease
from edge.tee import _TA_REFUSALS
from edge.tee_abi import ABI_VERSION

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "qemu"))
from guest import OUT, Guest, build_image  # noqa: E402

pytestmark = pytest.mark.qemu

# xtest regression cases run in the guest (about 1 min under TCG on 2 cores):
#   1001 core self tests, 1002 PTA, 1004 TA-to-TA/crypto basics, 1006 properties,
#   1007 invalid memory access is caught, 1008 TA loading (signed/bad TAs),
#   1010 memref checks, 1033 supplicant plugin, 2001 sockets (needs lo),
#   4001-4003 hashes/MACs/ciphers, 4007 key generation (incl. Ed25519, X25519),
#   6001-6005 and 6009 REE FS secure storage (what our TA uses).
# Left out: 4006 (asymmetric operations, ~60 s here) and 4011 (Bleichenbacher,
# ~45 s), the long storage stress/concurrency cases (6016, 6018-6020, 1013
# concurrency, ~minutes each), and the pkcs11 suite (its TA is not in the image).
XTEST_CASES = ("1001 1002 1004 1006 1007 1008 1010 1033 2001 4001 4002 4003 4007 "
               "6001 6002 6003 6004 6005 6009")

MEASUREMENTS = OUT / "measurements.json"


def _record(key: str, value: object) -> None:
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[key] = value
    MEASUREMENTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def guest() -> Iterator[Guest]:
    t0 = time.monotonic()
    build_image()
    _record("build_s", round(time.monotonic() - t0, 1))
    g = Guest.boot(console_log=OUT / "console-tests.log", secure_log=OUT / "secure-tests.log")
    try:
        g.put("/root/guest_ta.py", (Path(__file__).parent / "guest_ta.py").read_bytes())
        yield g
    finally:
        g.close()


@pytest.fixture(scope="module")
def roles() -> Roles:
    return Roles(Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())


def py(g: Guest, *args: str, timeout: float = 300) -> dict:
    """guest_ta.py in the guest; its JSON answer."""
    out = g.check("cd /root && python3 guest_ta.py " + " ".join(args), timeout=timeout)
    m = re.search(r"@@JSON (.*)", out)
    assert m, out
    return json.loads(m.group(1))


def cli(g: Guest, *args: str, timeout: float = 120) -> tuple[int, str]:
    return g.run("edge-ta-cli " + " ".join(args), timeout=timeout)


def cli_code(out: str) -> int:
    m = re.search(r"\(0x([0-9a-f]{8}), from (ta|client)\)", out)
    assert m, f"no refusal line in: {out!r}"
    return int(m.group(1), 16)


def device(g: Guest) -> DeviceRecord:
    return parse_device_record(bytes.fromhex(py(g, "identity")["record"]))


# -- boot and OP-TEE itself -------------------------------------------------------

def test_boot_to_ready(guest: Guest) -> None:
    _record("boot_to_ready_s", round(guest.boot_to_ready_s, 2))
    _record("guest_uptime_at_ready_s", guest.guest_uptime_at_ready_s)
    print(f"boot to ready {guest.boot_to_ready_s:.1f} s "
          f"(guest uptime {guest.guest_uptime_at_ready_s:.1f} s)")
    assert guest.boot_to_ready_s < 180
    assert guest.run("ls /dev/tee0 /dev/teepriv0")[0] == 0
    assert "tee-supplicant" in guest.check("ps")


def test_xtest_subset(guest: Guest) -> None:
    t0 = time.monotonic()
    rc, out = guest.run(f"xtest -t regression {XTEST_CASES}", timeout=900)
    _record("xtest_subset_s", round(time.monotonic() - t0, 1))
    cases = re.search(r"(\d+) test cases of which (\d+) failed", out)
    subtests = re.search(r"(\d+) subtests of which (\d+) failed", out)
    assert cases and subtests, out[-3000:]
    # 4007 reports its sub-cases (4007_ecc, ...) as test cases of their own.
    assert int(cases.group(1)) >= len(XTEST_CASES.split()), out[-3000:]
    assert (cases.group(2), subtests.group(2)) == ("0", "0"), out[-3000:]
    assert rc == 0


def test_python_reaches_the_real_ta(guest: Guest) -> None:
    out = guest.check('python3 -c "from edge.tee import TrustedApp; '
                      "t = TrustedApp('optee'); print(t.status().abi_version, "
                      't._native.libteec_path)"', timeout=300)
    assert out.split()[:2] == [str(ABI_VERSION), "libteec.so.2"], out


# -- our TA in the real secure world --------------------------------------------------

def test_fresh_status_creates_nothing(guest: Guest) -> None:
    out = guest.check("edge-ta-cli status")
    assert "flags: 0x0" in out and "model_version: 0" in out
    assert py(guest, "status")["has_identity"] is False


def test_identity_is_created_once_and_stable(guest: Guest) -> None:
    guest.check("edge-ta-cli identity /tmp/dev1.rec && edge-ta-cli identity /tmp/dev2.rec")
    first, second = guest.get("/tmp/dev1.rec"), guest.get("/tmp/dev2.rec")
    assert first == second
    record = parse_device_record(first)  # its self-signature verifies
    assert bytes.fromhex(py(guest, "identity")["record"]) == first
    status = py(guest, "status")
    assert status["has_identity"] and not status["has_anchors"]
    assert bytes.fromhex(status["device_id"]) == record.device_id == key_id(record.ed25519_pub)


def test_secure_storage_is_where_the_docs_say(guest: Guest) -> None:
    # docs/qemu.md: tee-supplicant (started without -f) keeps REE FS objects at
    # Debian's default path, on a tmpfs that a power-off empties.
    mounts = guest.check("cat /proc/mounts")
    assert re.search(r"^tmpfs /var/lib/optee-client/data/tee tmpfs ", mounts, re.M), mounts
    objects = guest.check("ls /var/lib/optee-client/data/tee").split()
    assert "dirf.db" in objects, objects  # the identity key created above lives there


def test_load_before_provisioning_is_refused(guest: Guest, roles: Roles) -> None:
    put_package(guest, "/tmp/early.pkg", make_package(roles.signer, [device(guest)], version=1))
    rc, out = cli(guest, "load /tmp/early.pkg /tmp/early.pkg.wrap")
    assert rc == 1 and _TA_REFUSALS[cli_code(out)] is errors.NotProvisioned, out


def test_anchors_install_once(guest: Guest, roles: Roles) -> None:
    guest.check(f"edge-ta-cli anchors {roles.signer_pub.hex()} {roles.aggregator_pub.hex()}")
    status = py(guest, "status")
    assert status["has_anchors"]
    assert bytes.fromhex(status["signer_key_id"]) == key_id(roles.signer_pub)
    assert bytes.fromhex(status["aggregator_key_id"]) == key_id(roles.aggregator_pub)
    rc, out = cli(guest, f"anchors {roles.aggregator_pub.hex()} {roles.signer_pub.hex()}")
    assert rc == 1 and _TA_REFUSALS[cli_code(out)] is errors.AlreadyProvisioned, out
    assert py(guest, "status") == status


def test_package_accepted_via_cli_backbone_and_infer(guest: Guest, roles: Roles) -> None:
    dev = device(guest)
    backbone = np.random.default_rng(1).bytes(3 * 4096 + 123)
    w, b = head(5, 32, 7)
    put_package(guest, "/tmp/v3.pkg", make_package(roles.signer, [dev], version=3, w=w, b=b,
                                                   backbone=backbone, encrypt=True))
    guest.check("edge-ta-cli load /tmp/v3.pkg /tmp/v3.pkg.wrap /tmp/v3.backbone")
    assert guest.get("/tmp/v3.backbone") == backbone
    x = np.random.default_rng(2).normal(size=(9, 32)).astype("<f4")
    guest.put("/tmp/x.f32", x.tobytes())
    guest.check("edge-ta-cli infer 9 /tmp/x.f32 /tmp/s.f32")
    scores = np.frombuffer(guest.get("/tmp/s.f32"), "<f4").reshape(9, 7)
    np.testing.assert_allclose(scores, x @ w + b, rtol=1e-5, atol=1e-5)
    status = py(guest, "status")
    assert (status["model_version"], status["head_in"], status["head_out"]) == (3, 32, 7)


def test_package_accepted_via_python_streamed(guest: Guest, roles: Roles) -> None:
    backbone = np.random.default_rng(4).bytes(64 * 1024 + 5)
    w, b = head(6, 32, 7)
    put_package(guest, "/tmp/v4.pkg", make_package(roles.signer, [device(guest)], version=4,
                                                   w=w, b=b, backbone=backbone, encrypt=True))
    assert py(guest, "load", "/tmp/v4.pkg", "/tmp/v4.backbone") == {
        "version": 4, "backbone_len": len(backbone)}
    assert guest.get("/tmp/v4.backbone") == backbone
    scores = np.array(py(guest, "infer", "9", "/tmp/x.f32")["scores"], np.float32)
    x = np.frombuffer(guest.get("/tmp/x.f32"), "<f4").reshape(9, 32)
    np.testing.assert_allclose(scores, x @ w + b, rtol=1e-5, atol=1e-5)


def put_package(guest: Guest, path: str, pkg: bytes, wrap: bytes | None = None) -> None:
    """A package at ``path`` and its key wrap at ``path``.wrap (guest_ta.py reads it there)."""
    guest.put(path, pkg)
    guest.put(path + ".wrap", wrap if wrap is not None else pkg.wrap)  # type: ignore[attr-defined]


def _refusal_round(guest: Guest, defects: dict[str, tuple[bytes, bytes]], folder: str) -> None:
    """Each package (and key wrap) refused with its class, via edge-ta-cli and via Python."""
    guest.check(f"rm -rf {folder} && mkdir -p {folder}")
    for name, (pkg, wrap) in defects.items():
        put_package(guest, f"{folder}/{name}.pkg", pkg, wrap)
    before = guest.check("edge-ta-cli status")
    for name in defects:
        rc, out = cli(guest, f"load {folder}/{name}.pkg {folder}/{name}.pkg.wrap")
        assert rc == 1, f"{name}: edge-ta-cli exit {rc}: {out}"
        got = _TA_REFUSALS.get(cli_code(out))
        assert got is DEFECTS[name], f"{name}: C client got {out.strip()}"
    assert guest.check("edge-ta-cli status") == before, "a refusal changed the TA's state"
    result = py(guest, "refusals", folder, timeout=600)
    for name in defects:
        assert result[name] == {"error": DEFECTS[name].__name__, "unchanged": True}, name


def test_each_refusal_class(guest: Guest, roles: Roles) -> None:
    """Every defect of the simulated backend's suite, on the real secure world."""
    dev = device(guest)
    assert py(guest, "status")["model_version"] == 4
    simple = {}
    for name in sorted(DEFECTS):
        if name.startswith("rollback"):
            continue
        pkg, wrap, stored = _defective(name, roles, dev)
        assert stored == 0
        simple[name] = (pkg, wrap)
    _refusal_round(guest, simple, "/tmp/defects")
    # Rollback: the same version again, then an older one.
    for version, name in ((7, "rollback-equal"), (9, "rollback-older")):
        put_package(guest, f"/tmp/v{version}.pkg",
                    make_package(roles.signer, [dev], version=version))
        guest.check(f"edge-ta-cli load /tmp/v{version}.pkg /tmp/v{version}.pkg.wrap")
        pkg, wrap, _ = _defective(name, roles, dev)  # a version-7 package
        _refusal_round(guest, {name: (pkg, wrap)}, f"/tmp/{name}")
    assert py(guest, "status")["model_version"] == 9


def test_replace_anchor_then_replay_refused(guest: Guest, roles: Roles) -> None:
    new = Ed25519PrivateKey.generate()
    stmt = build_anchor_statement(roles.aggregator, Role.AGGREGATOR, 1, ed25519_raw_public(new))
    guest.put("/tmp/agg1.stmt", stmt)
    guest.check("edge-ta-cli replace-anchor /tmp/agg1.stmt")
    status = py(guest, "status")
    assert status["aggregator_epoch"] == 1
    assert bytes.fromhex(status["aggregator_key_id"]) == key_id(ed25519_raw_public(new))
    # Replayed now, its signer is no longer the anchor.
    rc, out = cli(guest, "replace-anchor /tmp/agg1.stmt")
    assert rc == 1 and _TA_REFUSALS[cli_code(out)] is errors.UnknownSigner, out
    # Swap back (epoch 2); then the epoch-1 statement is stale.
    guest.put("/tmp/agg2.stmt", build_anchor_statement(new, Role.AGGREGATOR, 2,
                                                       roles.aggregator_pub))
    guest.check("edge-ta-cli replace-anchor /tmp/agg2.stmt")
    rc, out = cli(guest, "replace-anchor /tmp/agg1.stmt")
    assert rc == 1 and _TA_REFUSALS[cli_code(out)] is errors.StaleStatement, out
    assert py(guest, "status")["aggregator_epoch"] == 2


# -- private training in the real secure world ------------------------------------------
# After the tests above the TA holds model version 9 and the original aggregator key
# (epoch 2). Version 10 carries a 16x4 head; policies are signed by the model signer.

TRAIN_VERSION = 10
TRAIN_IN, TRAIN_OUT, TRAIN_N = 16, 4, 12


def _train_inputs(guest: Guest, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = data(seed, TRAIN_N, TRAIN_IN, TRAIN_OUT)
    guest.put(f"/tmp/train{seed}.f32", x.astype("<f4").tobytes())
    guest.put(f"/tmp/train{seed}.u32", y.astype("<u4").tobytes())
    return x, y


def _round_ticket(guest: Guest, roles: Roles, name: str, round_id: int, **kw: object) -> bytes:
    tk = ticket(roles.aggregator, round_id=round_id, model_version=TRAIN_VERSION,
                nonce=bytes([round_id]) * 16, batch_size=TRAIN_N, **kw)
    guest.put(f"/tmp/{name}.tk", tk)
    return tk


def _budget_cli(guest: Guest) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in guest.check("edge-ta-cli budget").splitlines()
                if ": " in line)


def test_train_and_seal_python_matches_numpy_reference(guest: Guest, roles: Roles) -> None:
    """verify_ticket + train_and_seal via TrustedApp('optee'); the delta vs numpy DP-SGD."""
    dev = device(guest)
    w, b = head(11, TRAIN_IN, TRAIN_OUT)
    put_package(guest, "/tmp/v10.pkg",
                make_package(roles.signer, [dev], version=TRAIN_VERSION, w=w, b=b))
    guest.check("edge-ta-cli load /tmp/v10.pkg /tmp/v10.pkg.wrap")
    guest.put("/tmp/p1.pol", policy(roles.signer, step_budget=1000))
    got = py(guest, "policy", "/tmp/p1.pol")
    assert (got["has_policy"], got["step_budget"], got["steps_spent"]) == (True, 1000, 0)
    x, y = _train_inputs(guest, 1)
    lr, epochs, clip = 0.3, 2, 0.5  # no DP, fixed sampling, B = n, q = 1, sigma = 0
    _round_ticket(guest, roles, "r1", 1, learning_rate=lr, epochs=epochs, example_clip=clip)
    res = py(guest, "round", "/tmp/r1.tk", str(NOW), str(TRAIN_N), "/tmp/train1.f32",
             "/tmp/train1.u32", "/tmp/r1.upd")
    assert "error" not in res, res
    assert res["ticket"]["steps_left"] == 1000
    upd = verify_sealed(guest.get("/tmp/r1.upd"), dev, round_id=1, nonce=bytes([1]) * 16,
                        model_version=TRAIN_VERSION, param_count=w.size + b.size,
                        update_clip=BIG, example_clip=clip)
    ref = dpsgd_round(w, b, x, y, Round(lr=lr, clip=clip, sigma=0.0, update_clip=BIG,
                                        epochs=epochs, batch=TRAIN_N, q=1.0, sampling=FIXED))
    np.testing.assert_allclose(upd.delta, ref, rtol=1e-3, atol=1e-5)
    assert np.abs(upd.delta).max() > 1e-3  # it did train
    budget = res["budget"]
    assert (budget["steps_spent"], budget["rounds_sealed"], budget["last_round"]) == (2, 1, 1)
    _record("train_and_seal_ms_16x4_n12_T2", round(res["train_ms"], 1))


def test_train_and_seal_cli_round_update_clip(guest: Guest, roles: Roles) -> None:
    """`edge-ta-cli round`: the C client; ||delta|| <= U and equal to the clipped reference."""
    dev = device(guest)
    w, b = head(11, TRAIN_IN, TRAIN_OUT)  # the head of version 10, before any update
    x, y = _train_inputs(guest, 2)
    lr, epochs, u = 2.0, 3, 0.05
    _round_ticket(guest, roles, "r2", 2, learning_rate=lr, epochs=epochs, update_clip=u)
    out = guest.check(f"edge-ta-cli round /tmp/r2.tk {NOW} {TRAIN_N} /tmp/train2.f32 "
                      "/tmp/train2.u32 /tmp/r2.upd")
    assert "steps_left: 998" in out, out
    upd = verify_sealed(guest.get("/tmp/r2.upd"), dev, round_id=2, nonce=bytes([2]) * 16,
                        model_version=TRAIN_VERSION, param_count=w.size + b.size,
                        update_clip=u)
    assert upd.norm <= u * (1 + 1e-5)
    assert np.linalg.norm(upd.delta.astype(np.float64)) <= u * (1 + 1e-5)
    ref = dpsgd_round(w, b, x, y, Round(lr=lr, clip=1.0, sigma=0.0, update_clip=u,
                                        epochs=epochs, batch=TRAIN_N, q=1.0, sampling=FIXED))
    np.testing.assert_allclose(upd.delta, ref, rtol=1e-3, atol=1e-6)
    budget = _budget_cli(guest)
    assert (budget["steps_spent"], budget["rounds_sealed"], budget["last_round"]) == (
        "5", "2", "2")


def test_budget_exhaustion_and_replay_refused_budget_unchanged(guest: Guest,
                                                               roles: Roles) -> None:
    # 5 steps spent; a policy of 7 leaves 2, and the next round needs 3.
    guest.put("/tmp/p2.pol", policy(roles.signer, version=2, step_budget=7))
    got = py(guest, "policy", "/tmp/p2.pol")
    assert (got["policy_version"], got["steps_spent"], got["step_budget"]) == (2, 5, 7)
    before = py(guest, "budget")
    before_cli = _budget_cli(guest)
    _round_ticket(guest, roles, "r3", 3, epochs=3)
    res = py(guest, "round", "/tmp/r3.tk", str(NOW), str(TRAIN_N), "/tmp/train1.f32",
             "/tmp/train1.u32", "/tmp/r3.upd")
    assert (res["error"], res["unchanged"]) == ("BudgetExhausted", True), res
    assert "2 step(s) left" in res["message"], res
    rc, out = cli(guest, f"round /tmp/r3.tk {NOW} {TRAIN_N} /tmp/train1.f32 /tmp/train1.u32 "
                  "/tmp/r3.upd")
    assert rc == 1 and "budget exhausted" in out, out
    assert _TA_REFUSALS[cli_code(out)] is errors.BudgetExhausted, out
    assert guest.run("test -e /tmp/r3.upd")[0] != 0
    # A replayed ticket: round 2 was sealed already (and round 1 before it).
    for name in ("r2", "r1"):
        res = py(guest, "round", f"/tmp/{name}.tk", str(NOW), str(TRAIN_N), "/tmp/train1.f32",
                 "/tmp/train1.u32", "/tmp/replay.upd")
        assert (res["error"], res["unchanged"]) == ("Replay", True), res
        rc, out = cli(guest, f"ticket /tmp/{name}.tk {NOW}")
        assert rc == 1 and _TA_REFUSALS[cli_code(out)] is errors.Replay, out
    assert py(guest, "budget") == before
    assert _budget_cli(guest) == before_cli
    # Within the budget a round still goes through: 2 steps left, one 1-step round.
    _round_ticket(guest, roles, "r4", 4, epochs=1)
    res = py(guest, "round", "/tmp/r4.tk", str(NOW), str(TRAIN_N), "/tmp/train1.f32",
             "/tmp/train1.u32", "/tmp/r4.upd")
    assert "error" not in res, res
    assert res["budget"]["steps_spent"] == 6


def test_tflite_backbone_released_by_the_ta_runs_in_the_guest(guest: Guest,
                                                              roles: Roles) -> None:
    """The int8 backbone from `edge model build`, shipped encrypted in a package,
    verified and released by the real TA, runs under ai-edge-litert in the guest
    and gives the host's outputs."""
    from edge.inference import Backbone, InferenceConfig
    from edge.inference.demo import build_demo

    built = build_demo("mlp", epochs=5)
    w, b = head(12, 10, 10)
    put_package(guest, "/tmp/v11.pkg", make_package(roles.signer, [device(guest)], version=11,
                                                    w=w, b=b, backbone=built.tflite,
                                                    encrypt=True))
    assert py(guest, "load", "/tmp/v11.pkg", "/tmp/v11.tflite")["version"] == 11
    x = np.random.default_rng(11).uniform(0, 16, size=(5, 64)).astype("<f4")
    guest.put("/tmp/bx.f32", x.tobytes())
    guest.put("/tmp/v11.json", json.dumps(built.metadata).encode())
    out = py(guest, "backbone", "/tmp/v11.tflite", "/tmp/v11.json", "5", "/tmp/bx.f32",
             timeout=300)
    assert out["runtime"] == "ai-edge-litert"
    assert out["accelerator"] == "cpu"
    config = InferenceConfig.from_mapping({"npu_delegate": "none", "num_threads": 1})
    want = Backbone.from_verified(built.tflite, built.metadata, config).run(x)
    # Same int8 kernels on arm64 and x86: at most one quantization step apart.
    step = float(built.quant_net.output.scale)
    np.testing.assert_allclose(np.array(out["features"], np.float32), want, atol=step + 1e-6)


def test_label_only_release_and_query_budget_in_the_real_secure_world(
        guest: Guest, roles: Roles) -> None:
    """A label-only package with a 50-row budget: labels, never scores; the
    budget kept in OP-TEE's secure storage; implausible features refused."""
    w, b = head(13, 16, 4)
    put_package(guest, "/tmp/v12.pkg", make_package(
        roles.signer, [device(guest)], version=12, w=w, b=b,
        infer=InferPolicy(InferRelease.LABEL, budget=50, feature_bound=8.0)))
    assert py(guest, "load", "/tmp/v12.pkg")["version"] == 12
    x = np.random.default_rng(12).uniform(-8, 8, size=(30, 16)).astype("<f4")
    guest.put("/tmp/lx.f32", x.tobytes())
    out = py(guest, "infer", "30", "/tmp/lx.f32")
    assert "scores" not in out and out["release"] == int(InferRelease.LABEL), out
    assert out["labels"] == np.argmax(x @ w + b, axis=1).tolist()
    assert out["rows_left"] == 20
    assert py(guest, "infer", "30", "/tmp/lx.f32") == {"error": "BudgetExhausted"}
    guest.put("/tmp/big.f32", np.full((1, 16), 9.0, "<f4").tobytes())
    assert py(guest, "infer", "1", "/tmp/big.f32") == {"error": "Malformed"}
    guest.put("/tmp/lx20.f32", x[:20].tobytes())
    last = py(guest, "infer", "20", "/tmp/lx20.f32")
    assert last["rows_left"] == 0 and last["labels"] == out["labels"][:20], last


def test_secure_world_log_has_no_panic_of_our_ta(guest: Guest) -> None:
    """xtest panics its own TAs on purpose (1007); ours must never panic."""
    log = guest.secure_log.read_text(errors="replace")
    assert "Primary CPU switching to normal world boot" in log, log[:2000]
    panics = re.findall(r"TA panicked with code (0x[0-9a-f]+)\nE/LD:  Status of TA ([0-9a-f-]+)",
                        log)
    ours = [code for code, uuid in panics if uuid == "5441d9b6-a634-4050-9731-e70ae47dd281"]
    assert not ours, f"the edge TA panicked: {ours}; see {guest.secure_log}"
