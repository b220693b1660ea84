"""Private-training command lines: firmware-sign policy/ticket, edge tee install-policy/budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, head
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from training_helpers import NOW, data, ready, ticket

from edge import privacy
from edge.cli import main as edge_main
from edge.formats.policy import parse_policy, policy_id
from edge.formats.ticket import parse_ticket
from edge.keyfiles import private_pem
from edge.tee import TrustedApp
from firmware_sign.cli import main as fs_main

REFUSAL_LINE = r"^[a-z-]+: .+$"


@pytest.fixture
def keys(tmp_path: Path, roles: Roles) -> dict[str, Path]:
    """The roles' private keys as PEM files."""
    out = {}
    for name, key in (("signer", roles.signer), ("aggregator", roles.aggregator)):
        path = tmp_path / f"{name}.key"
        path.write_bytes(private_pem(key))
        out[name] = path
    return out


def _policy_args(keys: dict[str, Path], out: Path, *extra: str, q: str = "0.01") -> list[str]:
    return ["policy", "make", "--signer", str(keys["signer"]), "--version", "1",
            "--delta", "1e-5", "--noise-multiplier", "1.1", "--sampling-rate", q,
            "--max-example-clip", "1", "--max-update-clip", "5",
            "--max-steps-per-round", "200", "--out", str(out), *extra]


def test_policy_make_computes_the_budget(keys: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "policy.bin"
    assert fs_main(_policy_args(keys, out, "--epsilon", "3")) == 0
    line = capsys.readouterr().out
    p = parse_policy(out.read_bytes())
    expected = privacy.max_steps(p.sampling_rate, p.noise_multiplier_min, 3.0, 1e-5)
    assert p.step_budget == expected and f"step budget {expected} steps" in line
    assert re.search(r"epsilon=2\.99\d* at delta=1e-05", line), line
    assert fs_main(["inspect", "--json", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "privacy_policy" and info["step_budget"] == expected
    assert info["policy_id"] == policy_id(out.read_bytes()).hex()
    assert 2.9 < info["implied_epsilon_rdp"] <= 3.0
    # The signed table is the RDP accountant's (the policy's accountant); PLD is tighter.
    assert info["implied_epsilon"] == info["implied_epsilon_rdp"] > info["implied_epsilon_pld"]
    assert info["epsilon_table"][-1] == [expected, info["implied_epsilon"]]


def test_no_dp_policy_needs_steps_and_says_so(keys: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nodp.bin"
    args = _policy_args(keys, out, "--no-dp-test-only")
    args[args.index("1.1")] = "0"
    assert fs_main(args) == 2
    capsys.readouterr()
    assert fs_main([*args, "--steps", "50"]) == 0
    cap = capsys.readouterr()
    assert "NO-DP TEST POLICY" in cap.err and "NO PRIVACY" in cap.out
    p = parse_policy(out.read_bytes())
    assert p.no_dp and p.step_budget == 50 and p.noise_multiplier_min == 0.0


def test_policy_make_refusals(keys: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.bin"
    args = _policy_args(keys, out, "--epsilon", "3")
    zero = list(args)
    zero[zero.index("1.1")] = "0"
    assert fs_main(zero) == 1
    assert capsys.readouterr().err.startswith("config: noise multiplier 0")
    assert fs_main(_policy_args(keys, out, "--epsilon", "1e-9")) == 1
    err = capsys.readouterr().err
    assert err.startswith("config: ") and "does not allow one step" in err
    assert re.match(REFUSAL_LINE, err.strip())
    assert fs_main([*args, "--steps", "4"]) == 2
    assert not out.exists()


def test_ticket_make_and_inspect(keys: dict[str, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.bin"
    assert fs_main(["ticket", "make", "--aggregator", str(keys["aggregator"]), "--round", "9",
                    "--model-version", "2", "--package-id", "ab" * 16,
                    "--nonce", "00" * 16, "--issued-at", "100",
                    "--deadline", "200", "--clip", "1", "--noise-multiplier", "1.1",
                    "--update-clip", "5", "--learning-rate", "0.1", "--epochs", "2",
                    "--batch-size", "8", "--out", str(out)]) == 0
    t = parse_ticket(out.read_bytes())
    assert (t.round_id, t.model_version, t.deadline, t.epochs, t.batch_size) == (9, 2, 200, 2, 8)
    assert t.package_id == bytes.fromhex("ab" * 16)
    capsys.readouterr()
    assert fs_main(["inspect", "--json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["round_id"] == 9
    pub = tmp_path / "agg.pub"
    from edge.keyfiles import load_private_key, public_pem
    pub.write_bytes(public_pem(load_private_key(keys["aggregator"]).public_key()))
    assert fs_main(["verify", str(out), "--signer", str(pub)]) == 0


# -- edge tee, through the simulated secure world --------------------------------------

def test_edge_install_policy_and_budget(secure_world: Path, roles: Roles, keys: dict[str, Path],
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pol = tmp_path / "policy.bin"
    assert fs_main(_policy_args(keys, pol, "--epsilon", "30", "--sampling", "fixed",
                                q="0.5")) == 0
    p = parse_policy(pol.read_bytes())
    w, b = head(30)
    with TrustedApp("sim", secure_world) as ta:
        ready(ta, roles, w, b, policy_bytes=pol.read_bytes())
        for round_id in (1, 2):
            ta.verify_ticket(ticket(roles.aggregator, round_id=round_id, noise_multiplier=1.1,
                                    update_clip=5.0, batch_size=1), ree_time=NOW)
            ta.train_and_seal(*data(round_id, 2, 16, 4))  # B/n = q: 2 steps a round
    capsys.readouterr()
    base = ["tee", "budget", "--tee", "sim", "--state", str(secure_world)]
    assert edge_main([*base, "--json", "--policy", str(pol)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["steps_spent"], info["rounds_sealed"], info["last_round"]) == (4, 2, 2)
    assert info["steps_left"] == p.step_budget - 4
    assert info["policy_id"] == policy_id(pol.read_bytes()).hex()
    # The TA reads epsilon from the policy's signed table: the first entry at or above 4
    # steps, an upper bound on the accountant's epsilon at 4 steps.
    expected = privacy.epsilon(p.sampling_rate, p.noise_multiplier_min, 4, 1e-5, privacy.FIXED)
    at = min(steps for steps, _ in p.table if steps >= 4)
    assert info["epsilon_spent"] == dict(p.table)[at] >= expected
    assert info["epsilon_at_budget"] == p.table[-1][1]
    assert info["delta"] == 1e-5 and "signed steps -> epsilon table" in info["accounting"]
    assert edge_main(base) == 0
    out = capsys.readouterr().out
    assert re.search(r"steps spent\s+4$", out, re.M)
    assert re.search(rf"epsilon spent\s+{info['epsilon_spent']:.6g}$", out, re.M)
    # A policy file that is not the installed one is refused.
    other = tmp_path / "other.bin"
    assert fs_main(_policy_args(keys, other, "--epsilon", "2")) == 0
    capsys.readouterr()
    assert edge_main([*base, "--policy", str(other)]) == 1
    assert capsys.readouterr().err.startswith("config: budget: --policy has id")


def test_edge_install_policy_command(secure_world: Path, roles: Roles, keys: dict[str, Path],
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pol = tmp_path / "policy.bin"
    assert fs_main(_policy_args(keys, pol, "--epsilon", "3")) == 0
    with TrustedApp("sim", secure_world) as ta:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
    base = ["tee", "install-policy", "--tee", "sim", "--state", str(secure_world)]
    capsys.readouterr()
    assert edge_main([*base, str(pol)]) == 0
    assert "installed privacy policy version 1" in capsys.readouterr().out
    assert edge_main([*base, str(pol)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rollback: ") and re.match(REFUSAL_LINE, err.strip())
    bad = tmp_path / "bad.bin"
    from edge.formats.policy import build_policy
    bad.write_bytes(build_policy(Ed25519PrivateKey.generate(), version=5,
                                 noise_multiplier_min=1.0, max_example_clip=1.0,
                                 max_update_clip=1.0, sampling_rate=0.1,
                                 max_steps_per_round=10, step_budget=10, target_epsilon=1.0,
                                 delta=1e-5))
    assert edge_main([*base, str(bad)]) == 1
    assert capsys.readouterr().err.startswith("unknown-signer: ")


def test_inspect_and_verify_a_sealed_update(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge.formats.device import build_device_record
    from edge.formats.update import build_update
    ident = Ed25519PrivateKey.generate()
    record = tmp_path / "DEVICE.pub"
    record.write_bytes(build_device_record(ident, X25519PrivateKey.generate()))
    upd = tmp_path / "update.bin"
    upd.write_bytes(build_update(ident, round_id=3, nonce=bytes(16), model_version=2,
                                 package_id=bytes(16), delta=np.full(12, 0.5, np.float32),
                                 example_count=9, steps=4,
                                 total_steps=10, update_clip=2.0, noise_multiplier=1.0,
                                 example_clip=1.0))
    assert fs_main(["inspect", "--json", str(upd)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["kind"], info["round_id"], info["param_count"]) == ("sealed_update", 3, 12)
    assert info["delta_norm"] == pytest.approx(np.sqrt(12) * 0.5)
    assert "delta" not in info
    assert fs_main(["verify", str(upd), "--signer", str(record)]) == 0
    assert "sealed update round 3" in capsys.readouterr().out
    other = tmp_path / "OTHER.pub"
    other.write_bytes(build_device_record(Ed25519PrivateKey.generate(),
                                          X25519PrivateKey.generate()))
    assert fs_main(["verify", str(upd), "--signer", str(other)]) == 1
    assert capsys.readouterr().err.startswith("unknown-signer: ")


def _target_args(keys: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["policy", "make", "--signer", str(keys["signer"]), "--version", "1",
            "--target-epsilon", "8", "--delta", "1e-5", "--rounds", "20",
            "--steps-per-round", "3", "--sampling-rate", "1", "--max-example-clip", "1",
            "--max-update-clip", "5", "--out", str(out), *extra]


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_policy_make_by_target_round_trips(keys: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           accountant: str) -> None:
    """target epsilon -> sigma -> epsilon within 1% (and never above the target)."""
    from edge import calibration

    out = tmp_path / "policy.bin"
    assert fs_main(_target_args(keys, out, "--accountant", accountant)) == 0
    line = capsys.readouterr().out
    p = parse_policy(out.read_bytes())
    assert (p.step_budget, p.max_steps_per_round, p.target_epsilon) == (60, 3, 8.0)
    assert p.accountant == (2 if accountant == "pld" else 1)
    eps = calibration.epsilon(p.sampling_rate, p.noise_multiplier_min, 60, 1e-5,
                              p.sampling, accountant)
    assert 8.0 * 0.99 <= eps <= 8.0, eps
    assert f"solved sigma_min={p.noise_multiplier_min:.6g}" in line and "PLD " in line
    # Each accountant's sigma is the smallest float32 meeting the target: one ulp less fails.
    below = float(np.nextafter(np.float32(p.noise_multiplier_min), np.float32(0)))
    assert calibration.epsilon(1.0, below, 60, 1e-5, 1, accountant) > 8.0
    assert fs_main(["inspect", "--json", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["implied_epsilon_pld"] < info["implied_epsilon_rdp"]
    # The table, which boards read, is by the accountant the policy was calibrated with.
    assert info["implied_epsilon"] == pytest.approx(info[f"implied_epsilon_{accountant}"])
    assert "PLD is tighter" in info["implied"]


def test_calibration_matches_dp_accounting_directly() -> None:
    """The solved sigma, put back into a fresh dp_accounting RDP accountant, meets the target
    (known setting: q = 0.01, 10,000 steps, epsilon 3 at 1e-5 needs sigma about 1.66)."""
    from dp_accounting import dp_event
    from dp_accounting.rdp import RdpAccountant

    from edge import calibration

    c = calibration.noise_for_target(3.0, 1e-5, 0.01, 10_000)
    acc = RdpAccountant()
    acc.compose(dp_event.PoissonSampledDpEvent(0.01, dp_event.GaussianDpEvent(
        c.noise_multiplier)), 10_000)
    assert 2.97 <= acc.get_epsilon(1e-5) <= 3.0
    assert 1.6 < c.noise_multiplier < 1.72
    assert c.epsilon_pld is not None and c.epsilon_pld < c.epsilon_rdp


def test_policy_make_by_target_refusals(keys: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.bin"
    args = _target_args(keys, out)
    no_rounds = [a for a in args if a not in ("--rounds", "20")]
    assert fs_main(no_rounds) == 2
    assert "--target-epsilon needs --rounds" in capsys.readouterr().err
    assert fs_main([*args, "--noise-multiplier", "2"]) == 2
    assert "drop --noise-multiplier" in capsys.readouterr().err
    assert fs_main([*args, "--max-steps-per-round", "2"]) == 2
    assert "below --steps-per-round" in capsys.readouterr().err
    fixed = [*args, "--sampling", "fixed", "--accountant", "pld"]
    assert fs_main(fixed) == 1
    assert capsys.readouterr().err.startswith("config: the PLD accountant covers Poisson")
    assert not out.exists()


BUDGET_PROBE = """
import sys, time
t0 = time.perf_counter()
from edge.cli import main
code = main(sys.argv[1:])
took = time.perf_counter() - t0
heavy = sorted(m for m in ("dp_accounting", "scipy") if m in sys.modules)
print("PROBE", code, heavy, f"{took:.3f}", file=sys.stderr)
"""


def test_edge_tee_budget_needs_no_accountant(secure_world: Path, roles: Roles,
                                             keys: dict[str, Path], tmp_path: Path) -> None:
    """A board's `edge tee budget` shows epsilon without importing dp_accounting or scipy
    (the board install has neither): the epsilon comes from the TA, read off the table."""
    import subprocess
    import sys

    pol = tmp_path / "policy.bin"
    assert fs_main(_policy_args(keys, pol, "--epsilon", "3")) == 0
    w, b = head(31)
    with TrustedApp("sim", secure_world) as ta:
        ready(ta, roles, w, b, policy_bytes=pol.read_bytes())
    proc = subprocess.run(
        [sys.executable, "-c", BUDGET_PROBE, "tee", "budget", "--tee", "sim", "--state",
         str(secure_world), "--json", "--policy", str(pol)],
        capture_output=True, text=True, timeout=120, check=False)
    probe = [line for line in proc.stderr.splitlines() if line.startswith("PROBE")]
    assert probe, proc.stderr[-2000:]
    _, code, heavy, _took = probe[-1].split(" ", 3)
    assert code == "0" and heavy == "[]", probe[-1]
    info = json.loads(proc.stdout)
    assert info["epsilon_at_budget"] == parse_policy(pol.read_bytes()).table[-1][1]
    assert info["epsilon_spent"] == 0.0
