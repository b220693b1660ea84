"""Private training through the simulated secure world (plain and ASan), from Python.

Needs the TA side of VERIFY_TICKET / TRAIN_AND_SEAL / BUDGET_STATUS / INSTALL_POLICY:
with an older build these fail loudly with TeeUnavailable naming the missing function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, head, state_files
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reference_dpsgd import FIXED, POISSON, Round, dpsgd_round
from scipy import stats
from training_helpers import BIG, NOW, data, policy, ready, ticket
from update_helpers import verify_sealed

from edge import errors
from edge.aggregator.verify import UpdateRefused
from edge.formats.policy import SAMPLING_FIXED, SAMPLING_POISSON, policy_id
from edge.tee import TrustedApp

NONCE = bytes(range(16))


def _verify(r: object, upd: bytes, *, round_id: int, u: float, sigma: float = 0.0,
            clip: float = 1.0) -> np.ndarray:
    got = verify_sealed(upd, r.device, round_id=round_id, nonce=NONCE, model_version=1,
                        param_count=r.params, update_clip=u, noise_multiplier=sigma,
                        example_clip=clip)
    return got.delta


# -- policy ------------------------------------------------------------------------

def test_policy_install_replace_and_rollback(provisioned: TrustedApp, roles: Roles) -> None:
    assert provisioned.budget().has_policy is False
    p1 = policy(roles.signer, step_budget=500)
    provisioned.install_policy(p1)
    b1 = provisioned.budget()
    assert (b1.has_policy, b1.policy_version, b1.step_budget, b1.steps_spent) == (True, 1, 500, 0)
    assert b1.policy_id == policy_id(p1)
    with pytest.raises(errors.Rollback):
        provisioned.install_policy(policy(roles.signer, step_budget=900))
    with pytest.raises(errors.UnknownSigner):
        provisioned.install_policy(policy(roles.aggregator, version=2))
    p2 = policy(roles.signer, version=2)
    with pytest.raises(errors.SignatureInvalid):
        provisioned.install_policy(p2[:-1] + bytes([p2[-1] ^ 1]))
    with pytest.raises(errors.WrongKind):
        provisioned.install_policy(ticket(roles.aggregator))
    with pytest.raises(errors.Malformed):
        provisioned.install_policy(p2[:-1])
    with pytest.raises(errors.Malformed):
        provisioned.install_policy(policy(roles.signer, version=2, step_budget=0, check=False))
    assert provisioned.budget() == b1
    provisioned.install_policy(policy(roles.signer, version=3, step_budget=900))
    assert provisioned.budget().step_budget == 900


# -- the DP-SGD step against the numpy reference --------------------------------------

CASES = [  # (head_in, head_out, n, lr, epochs, clip) with fixed sampling, B = n, q = 1, sigma = 0
    (16, 4, 8, 0.1, 1, 1e6),
    (16, 4, 8, 0.5, 3, 1e6),
    (32, 7, 20, 0.2, 2, 0.05),  # active clipping
    (5, 2, 3, 1.0, 4, 0.3),
    (64, 10, 50, 0.05, 2, 1.0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}-n{c[2]}-e{c[4]}-C{c[5]}"
                                             for c in CASES])
def test_no_dp_delta_matches_numpy_reference(provisioned: TrustedApp, roles: Roles,
                                             case: tuple[int, int, int, float, int, float]
                                             ) -> None:
    head_in, head_out, n, lr, epochs, clip = case
    w, b = head(head_in * 100 + head_out, head_in, head_out)
    r = ready(provisioned, roles, w, b)
    x, y = data(n, n, head_in, head_out)
    accepted = provisioned.verify_ticket(
        ticket(roles.aggregator, learning_rate=lr, epochs=epochs, batch_size=n,
               example_clip=clip), ree_time=NOW)
    assert accepted.steps_left == 1_000_000
    upd = provisioned.train_and_seal(x, y)
    delta = _verify(r, upd, round_id=1, u=BIG, clip=clip)
    ref = dpsgd_round(w, b, x, y, Round(lr=lr, clip=clip, sigma=0.0, update_clip=BIG,
                                        epochs=epochs, batch=n, q=1.0, sampling=FIXED))
    np.testing.assert_allclose(delta, ref, rtol=1e-3, atol=1e-5)
    budget = provisioned.budget()
    assert (budget.steps_spent, budget.rounds_sealed, budget.last_round) == (epochs, 1, 1)


@pytest.mark.parametrize("epochs,clip", [(1, 1e6), (3, 0.2)])
def test_poisson_q1_delta_matches_numpy_reference(provisioned: TrustedApp, roles: Roles,
                                                  epochs: int, clip: float) -> None:
    """Poisson sampling at q = 1 takes every example: T = E, divisor q·n = n."""
    w, b = head(epochs, 24, 5)
    pol = policy(roles.signer, sampling=SAMPLING_POISSON)
    r = ready(provisioned, roles, w, b, policy_bytes=pol)
    x, y = data(epochs, 12, 24, 5)
    accepted = provisioned.verify_ticket(ticket(roles.aggregator, learning_rate=0.3,
                                                epochs=epochs, example_clip=clip), ree_time=NOW)
    assert accepted.steps_per_round == epochs
    delta = _verify(r, provisioned.train_and_seal(x, y), round_id=1, u=BIG, clip=clip)
    ref = dpsgd_round(w, b, x, y, Round(lr=0.3, clip=clip, sigma=0.0, update_clip=BIG,
                                        epochs=epochs, q=1.0, sampling=POISSON))
    np.testing.assert_allclose(delta, ref, rtol=1e-3, atol=1e-5)


GRID = 2.0**16  # ta/dpsgd.c: R = 2^16 grid steps per clip C while sigma * R stays in range


@pytest.mark.parametrize("sampling", [FIXED, POISSON], ids=["fixed", "poisson"])
def test_discretized_noisy_path_matches_numpy_to_the_grid(provisioned: TrustedApp, roles: Roles,
                                                          sampling: int) -> None:
    """sigma > 0 takes the integer path (per-example randomized rounding to C/R, integer sum,
    discrete Gaussian noise, scaled back). With sigma = 1e-6 the noise is N_Z(0, 2/256), zero
    with probability 1 - 1e-27, so the delta is the reference's up to one grid step C/R per
    step and coordinate (times lr): the scaling, signs and rounding are checked."""
    w, b = head(31, 20, 6)
    pol = policy(roles.signer, sampling=sampling)
    r = ready(provisioned, roles, w, b, policy_bytes=pol)
    x, y = data(31, 10, 20, 6)
    clip, lr, epochs = 0.05, 0.5, 3
    provisioned.verify_ticket(ticket(roles.aggregator, learning_rate=lr, epochs=epochs,
                                     batch_size=10, example_clip=clip, noise_multiplier=1e-6),
                              ree_time=NOW)
    delta = _verify(r, provisioned.train_and_seal(x, y), round_id=1, u=BIG, clip=clip,
                    sigma=float(np.float32(1e-6)))
    ref = dpsgd_round(w, b, x, y, Round(lr=lr, clip=clip, sigma=0.0, update_clip=BIG,
                                        epochs=epochs, batch=10, q=1.0, sampling=sampling))
    grid_error = epochs * lr * clip / GRID  # T = E steps of the full batch, divisor = n
    assert np.abs(delta - ref).max() <= 1.01 * grid_error + 1e-6
    assert np.abs(ref).max() > 1000 * grid_error, "the check would not see a wrong scale"


def test_update_clip_bounds_the_released_delta(provisioned: TrustedApp, roles: Roles) -> None:
    w, b = head(4)
    r = ready(provisioned, roles, w, b)
    x, y = data(4, 8, 16, 4)
    provisioned.verify_ticket(ticket(roles.aggregator, learning_rate=5.0, epochs=3,
                                     batch_size=8, update_clip=0.01), ree_time=NOW)
    delta = _verify(r, provisioned.train_and_seal(x, y), round_id=1, u=0.01)
    ref = dpsgd_round(w, b, x, y, Round(lr=5.0, clip=1.0, sigma=0.0, update_clip=0.01,
                                        epochs=3, batch=8))
    assert np.linalg.norm(delta.astype(np.float64)) <= 0.01 * (1 + 1e-5)
    np.testing.assert_allclose(delta, ref, rtol=1e-3, atol=1e-7)


def test_sealed_update_fields_and_signature(provisioned: TrustedApp, roles: Roles) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge.formats.envelope import parse_envelope
    from edge.formats.update import parse_update
    w, b = head(6)
    r = ready(provisioned, roles, w, b)
    x, y = data(6, 5, 16, 4)
    provisioned.verify_ticket(ticket(roles.aggregator, round_id=7, batch_size=5,
                                     noise_multiplier=0.5, example_clip=0.7,
                                     update_clip=3.0), ree_time=NOW)
    raw = provisioned.train_and_seal(x, y)
    env = parse_envelope(raw)
    Ed25519PublicKey.from_public_bytes(r.device.ed25519_pub).verify(env.signature, env.digest())
    u = parse_update(raw)
    assert (u.device_id, u.round_id, u.nonce, u.model_version) == (r.device.device_id, 7,
                                                                     NONCE, 1)
    assert (u.example_count, u.steps, u.total_steps, u.param_count) == (5, 1, 1, r.params)
    assert (u.update_clip, u.noise_multiplier) == (3.0, 0.5)
    assert u.example_clip == pytest.approx(0.7, rel=1e-7)
    assert u.norm <= 3.0 * (1 + 1e-5)
    with pytest.raises(UpdateRefused) as refused:
        verify_sealed(raw, r.device, round_id=8, nonce=NONCE, model_version=1,
                      param_count=r.params, update_clip=3.0, noise_multiplier=0.5,
                      example_clip=0.7)
    assert refused.value.refusal == "wrong-round"


def test_poisson_round_spends_e_times_ceil_inverse_q(provisioned: TrustedApp,
                                                     roles: Roles) -> None:
    w, b = head(8)
    pol = policy(roles.signer, sampling=SAMPLING_POISSON, sampling_rate=0.3,
                 noise_multiplier_min=0.5, no_dp=False, max_update_clip=10.0)
    r = ready(provisioned, roles, w, b, policy_bytes=pol)
    accepted = provisioned.verify_ticket(ticket(roles.aggregator, epochs=2, noise_multiplier=1.0,
                                                update_clip=10.0), ree_time=NOW)
    assert accepted.steps_per_round == 2 * 4
    x, y = data(8, 40, 16, 4)
    upd = _verify(r, provisioned.train_and_seal(x, y), round_id=1, u=10.0, sigma=1.0)
    assert upd.shape == (r.params,)
    assert provisioned.budget().steps_spent == 8


# -- noise --------------------------------------------------------------------------

def test_gaussian_noise_statistics(provisioned: TrustedApp, roles: Roles) -> None:
    """Zero features: the W part of the delta is -(lr*C/(R*B)) * N_Z(0, sigma^2 * norm2_max),
    pure discrete noise on the grid, with sqrt(norm2_max)/R = 1 + 6e-5 here: as a real
    number it is -(lr*sigma*C/B) * N(0, 1) to well within the tolerances below.

    Two rounds of a 1024x100 head give 204800 draws. Each statistic fails a correct
    sampler with probability at most 1e-6 (two-sided z = 4.892).
    """
    head_in, head_out = 1024, 100
    w = np.zeros((head_in, head_out), np.float32)
    b = np.zeros(head_out, np.float32)
    lr, sigma, clip = 0.5, 2.0, 1.5
    scale = lr * sigma * clip / 1.0  # B = 1
    pol = policy(roles.signer, noise_multiplier_min=1.0, no_dp=False)
    r = ready(provisioned, roles, w, b, policy_bytes=pol)
    x = np.zeros((1, head_in), np.float32)
    y = np.zeros(1, np.uint32)
    draws = []
    for round_id in (1, 2):
        provisioned.verify_ticket(ticket(roles.aggregator, round_id=round_id, learning_rate=lr,
                                         noise_multiplier=sigma, example_clip=clip),
                                  ree_time=NOW)
        delta = _verify(r, provisioned.train_and_seal(x, y), round_id=round_id, u=BIG,
                        sigma=sigma, clip=clip)
        draws.append(-delta[: head_in * head_out].astype(np.float64) / scale)
    z = np.concatenate(draws)
    n = z.size
    assert n >= 10**5
    crit = 4.892
    assert abs(z.mean()) < crit / np.sqrt(n), f"mean {z.mean()}"
    assert abs(z.var() - 1.0) < crit * np.sqrt(2.0 / n), f"variance {z.var()}"
    ks = stats.kstest(z, "norm")
    assert ks.pvalue > 1e-6, f"KS statistic {ks.statistic}, p = {ks.pvalue}"
    assert len({d.tobytes() for d in draws}) == 2, "two rounds drew the same noise"


# -- sampling -----------------------------------------------------------------------

@pytest.mark.parametrize("sampling", [SAMPLING_POISSON, SAMPLING_FIXED], ids=["poisson", "fixed"])
def test_sampling_counts_per_example(provisioned: TrustedApp, roles: Roles,
                                     sampling: int) -> None:
    """One-hot features: row i of the delta counts the steps that sampled example i.

    With W = b = 0, two classes and every label 0, e = (-1/2, 1/2) at the start; a tiny
    learning rate keeps it so, hence dW[i, 0] = lr * k_i / (2 D). Over T = 10 steps at rate
    0.1, k_i ~ Binomial(10, 0.1) for both samplers (and sum k = T * B for fixed-size); a
    chi-square test fails a correct sampler with probability 1e-6.
    """
    n, lr, q, batch = 1000, 1e-3, 0.1, 100
    w = np.zeros((n, 2), np.float32)
    b = np.zeros(2, np.float32)
    pol = policy(roles.signer, sampling=sampling, sampling_rate=q)
    r = ready(provisioned, roles, w, b, policy_bytes=pol)
    provisioned.verify_ticket(ticket(roles.aggregator, learning_rate=lr, batch_size=batch,
                                     example_clip=1e6), ree_time=NOW)
    delta = _verify(r, provisioned.train_and_seal(np.eye(n, dtype=np.float32),
                                                  np.zeros(n, np.uint32)), round_id=1, u=BIG,
                    clip=1e6)
    divisor = q * n if sampling == SAMPLING_POISSON else batch
    raw = delta[: 2 * n].reshape(n, 2)[:, 0].astype(np.float64) * 2 * divisor / lr
    k = np.rint(raw).astype(int)
    assert np.abs(raw - k).max() < 0.1, "counts are not integers: the step is not as specified"
    assert k.min() >= 0 and k.max() <= 10
    if sampling == SAMPLING_FIXED:
        assert k.sum() == 10 * batch
    expected = stats.binom.pmf(np.arange(11), 10, q) * n
    observed = np.bincount(k, minlength=11).astype(float)
    tail = expected[4:].sum(), observed[4:].sum()  # merge the bins expecting < 5
    exp_b = np.append(expected[:4], tail[0])
    obs_b = np.append(observed[:4], tail[1])
    chi2 = float(((obs_b - exp_b) ** 2 / exp_b).sum())
    assert stats.chi2.sf(chi2, df=len(exp_b) - 1) > 1e-6, (observed, expected)


# -- budget -----------------------------------------------------------------------

def test_budget_exhaustion_names_steps_left(provisioned: TrustedApp, roles: Roles,
                                            secure_world: Path) -> None:
    w, b = head(9)
    ready(provisioned, roles, w, b, policy_bytes=policy(roles.signer, step_budget=5))
    x, y = data(9, 6, 16, 4)
    provisioned.verify_ticket(ticket(roles.aggregator, epochs=3, batch_size=2), ree_time=NOW)
    assert provisioned.budget().steps_left == 5
    before, files = provisioned.budget(), state_files(secure_world)
    with pytest.raises(errors.BudgetExhausted, match="5 step"):
        provisioned.train_and_seal(x, y)  # T = 3 * ceil(6/2) = 9 > 5
    assert provisioned.budget() == before
    assert state_files(secure_world) == files
    provisioned.verify_ticket(ticket(roles.aggregator, epochs=1, batch_size=2), ree_time=NOW)
    provisioned.train_and_seal(x, y)  # T = 3
    assert provisioned.budget().steps_left == 2


def test_steps_spent_survive_a_policy_replacement(provisioned: TrustedApp, roles: Roles) -> None:
    w, b = head(10)
    ready(provisioned, roles, w, b)
    x, y = data(10, 4, 16, 4)
    provisioned.verify_ticket(ticket(roles.aggregator, epochs=2, batch_size=4), ree_time=NOW)
    provisioned.train_and_seal(x, y)
    provisioned.install_policy(policy(roles.signer, version=2, step_budget=77))
    got = provisioned.budget()
    assert (got.steps_spent, got.step_budget, got.last_round) == (2, 77, 1)


# -- crashes ------------------------------------------------------------------------

def _crash_setup(secure_world: Path, roles: Roles) -> tuple[bytes, np.ndarray, np.ndarray]:
    w, b = head(12)
    with TrustedApp("sim", secure_world) as ta:
        ready(ta, roles, w, b)
    x, y = data(12, 4, 16, 4)
    return ticket(roles.aggregator, round_id=3, epochs=2, batch_size=4), x, y


def test_crash_on_train_spends_nothing(secure_world: Path, roles: Roles,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tk, x, y = _crash_setup(secure_world, roles)
    with TrustedApp("sim", secure_world) as ta:
        before = ta.budget()
    monkeypatch.setenv("EDGE_SIM_CRASH_ON_CMD", "10")
    with TrustedApp("sim", secure_world) as ta:
        ta.verify_ticket(tk, ree_time=NOW)
        with pytest.raises(errors.TeeDead):
            ta.train_and_seal(x, y)
    monkeypatch.delenv("EDGE_SIM_CRASH_ON_CMD")
    with TrustedApp("sim", secure_world) as ta:
        assert ta.budget() == before
        ta.verify_ticket(tk, ree_time=NOW)  # the round was not sealed: still acceptable
        ta.train_and_seal(x, y)
        assert ta.budget().steps_spent == before.steps_spent + 2


def test_crash_after_train_keeps_the_spend_and_loses_the_update(
        secure_world: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch) -> None:
    tk, x, y = _crash_setup(secure_world, roles)
    with TrustedApp("sim", secure_world) as ta:
        before = ta.budget()
    monkeypatch.setenv("EDGE_SIM_CRASH_AFTER_CMD", "10")
    with TrustedApp("sim", secure_world) as ta:
        ta.verify_ticket(tk, ree_time=NOW)
        with pytest.raises(errors.TeeDead):
            ta.train_and_seal(x, y)
    monkeypatch.delenv("EDGE_SIM_CRASH_AFTER_CMD")
    with TrustedApp("sim", secure_world) as ta:
        after = ta.budget()
        assert after.steps_spent == before.steps_spent + 2
        assert (after.last_round, after.rounds_sealed) == (3, before.rounds_sealed + 1)
        with pytest.raises(errors.Replay):
            ta.verify_ticket(tk, ree_time=NOW)


def test_train_without_a_verified_ticket_is_bad_state(provisioned: TrustedApp,
                                                      roles: Roles) -> None:
    w, b = head(13)
    ready(provisioned, roles, w, b)
    x, y = data(13, 4, 16, 4)
    with pytest.raises(errors.BadState):
        provisioned.train_and_seal(x, y)
    provisioned.verify_ticket(ticket(roles.aggregator, batch_size=4), ree_time=NOW)
    provisioned.train_and_seal(x, y)
    with pytest.raises(errors.BadState):  # a ticket is good for one round only
        provisioned.train_and_seal(x, y)


def test_unused_key_cannot_sign_tickets(provisioned: TrustedApp, roles: Roles) -> None:
    w, b = head(14)
    ready(provisioned, roles, w, b)
    with pytest.raises(errors.UnknownSigner):
        provisioned.verify_ticket(ticket(Ed25519PrivateKey.generate()), ree_time=NOW)
