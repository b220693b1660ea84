"""What INFER gives the normal world of the private head (issue 10, item 1).

Before: INFER returned x . W + b for any x, and one call with the zero row and
2^40 * e_i returned b and W bit for bit. Now the package (signed by the model
signer) says what INFER releases (every score, the k best labels, the label
only, or nothing), how many rows it answers per model version (counted in
secure storage), and how large a feature may be; non-finite features are
always refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, head, load, make_package
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import errors
from edge.formats.device import parse_device_record
from edge.formats.manifest import InferPolicy, InferRelease
from edge.tee import TrustedApp
from firmware_sign.cli import main as firmware_sign

HEAD_IN, HEAD_OUT = 16, 4


def _load(ta: TrustedApp, roles: Roles, policy: InferPolicy, version: int = 2,
          w: np.ndarray | None = None, b: np.ndarray | None = None) -> None:
    dev = parse_device_record(ta.identity())
    load(ta, make_package(roles.signer, [dev], version=version, w=w, b=b, infer=policy))


def _attack_queries() -> np.ndarray:
    """The documented extraction on full scores: the zero row, then 2^40 * e_i."""
    unit = np.eye(HEAD_IN, dtype=np.float32)
    return np.vstack([np.zeros((1, HEAD_IN), np.float32), np.float32(2.0**40) * unit])


def _extract(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = scores[0]
    w = (scores[1:].astype(np.float64) - b) / 2.0**40
    return w.astype(np.float32), b


def test_full_scores_give_the_head_away(provisioned: TrustedApp, roles: Roles) -> None:
    # Why the release matters: this is what a package with --infer scores allows.
    w, b = head(3)
    _load(provisioned, roles, InferPolicy(InferRelease.SCORES), w=w, b=b)
    got_w, got_b = _extract(provisioned.infer(_attack_queries()).scores)
    np.testing.assert_array_equal(got_b, b)
    np.testing.assert_allclose(got_w, w, rtol=1e-6)


def test_label_only_release_makes_the_extraction_impossible(
        roles: Roles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two different heads with the same decision function answer every query
    # the same way under a label-only package, so no sequence of queries can
    # tell which head the TA holds: the exact W and b cannot be extracted.
    from conftest import BUILDS

    monkeypatch.setenv("EDGE_SIM_TEE", str(BUILDS["host"] / "edge-sim-tee"))
    w, b = head(4)
    shift = np.linspace(-3, 3, HEAD_IN).astype(np.float32)[:, None]  # adds x . shift to every class
    heads = [(w, b), ((2 * w + shift).astype(np.float32), (2 * b + 1).astype(np.float32))]
    rng = np.random.default_rng(5)
    queries = np.vstack([_attack_queries(), rng.normal(size=(200, HEAD_IN)).astype(np.float32)])
    answers = []
    for n, (hw, hb) in enumerate(heads):
        with TrustedApp("sim", tmp_path / f"tee{n}") as ta:
            ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
            _load(ta, roles, InferPolicy(InferRelease.LABEL), w=hw, b=hb)
            result = ta.infer(queries)
            assert result.release == InferRelease.LABEL and result.scores is None
            assert result.labels is not None and result.labels.shape == (len(queries),)
            np.testing.assert_array_equal(result.labels, np.argmax(queries @ hw + hb, axis=1))
            answers.append(result.labels)
    assert not np.array_equal(heads[0][0], heads[1][0])
    np.testing.assert_array_equal(answers[0], answers[1])


def test_top_k_releases_the_best_labels_in_order(provisioned: TrustedApp, roles: Roles) -> None:
    w, b = head(6)
    _load(provisioned, roles, InferPolicy(InferRelease.TOPK, top_k=2), w=w, b=b)
    x = np.random.default_rng(1).normal(size=(50, HEAD_IN)).astype(np.float32)
    result = provisioned.infer(x)
    assert result.release == InferRelease.TOPK and result.scores is None
    expect = np.argsort(-(x @ w + b), axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(result.labels, expect)
    assert result.rows_left is None


def test_query_budget_is_kept_across_sessions_and_reset_by_a_new_version(
        secure_world: Path, roles: Roles) -> None:
    x = np.ones((60, HEAD_IN), np.float32)
    with TrustedApp("sim", secure_world) as ta:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
        _load(ta, roles, InferPolicy(InferRelease.LABEL, budget=100))
        assert ta.infer(x).rows_left == 40
        with pytest.raises(errors.BudgetExhausted, match="query budget"):
            ta.infer(np.ones((41, HEAD_IN), np.float32))
        assert ta.infer(np.ones((40, HEAD_IN), np.float32)).rows_left == 0
        with pytest.raises(errors.BudgetExhausted):
            ta.infer(np.ones((1, HEAD_IN), np.float32))
    with TrustedApp("sim", secure_world) as ta:  # a new TA instance: still spent
        with pytest.raises(errors.BudgetExhausted):
            ta.infer(np.ones((1, HEAD_IN), np.float32))
        _load(ta, roles, InferPolicy(InferRelease.LABEL, budget=100), version=3)
        assert ta.infer(np.ones((1, HEAD_IN), np.float32)).rows_left == 99


def test_a_restart_counts_the_reserved_rows_as_spent(secure_world: Path, roles: Roles) -> None:
    # Rows are reserved in storage 1024 at a time before they are answered: a
    # crash can lose rows, never hand out more than the budget.
    with TrustedApp("sim", secure_world) as ta:
        ta.install_anchors(roles.signer_pub, roles.aggregator_pub)
        _load(ta, roles, InferPolicy(InferRelease.LABEL, budget=5000))
        assert ta.infer(np.ones((10, HEAD_IN), np.float32)).rows_left == 4990
    with TrustedApp("sim", secure_world) as ta:
        assert ta.infer(np.ones((1, HEAD_IN), np.float32)).rows_left == 5000 - 10 - 1024 - 1


def test_implausible_features_are_refused_before_they_cost_budget(
        provisioned: TrustedApp, roles: Roles) -> None:
    _load(provisioned, roles, InferPolicy(InferRelease.SCORES, budget=10, feature_bound=4.0))
    for bad in (np.nan, np.inf, -np.inf, 4.5, -1e30):
        x = np.zeros((3, HEAD_IN), np.float32)
        x[2, 5] = bad
        with pytest.raises(errors.Malformed):
            provisioned.infer(x)
    edge = np.full((1, HEAD_IN), 4.0, np.float32)
    assert provisioned.infer(edge).rows_left == 9  # |x| = B is allowed; nothing spent before


def test_non_finite_features_are_refused_without_a_bound(provisioned: TrustedApp,
                                                        roles: Roles) -> None:
    _load(provisioned, roles, InferPolicy(InferRelease.SCORES))
    with pytest.raises(errors.Malformed):
        provisioned.infer(np.full((1, HEAD_IN), np.nan, np.float32))
    assert provisioned.infer(np.full((1, HEAD_IN), 1e30, np.float32)).scores.shape == (1, HEAD_OUT)


def test_release_none_refuses_infer(provisioned: TrustedApp, roles: Roles) -> None:
    _load(provisioned, roles, InferPolicy(InferRelease.NONE))
    with pytest.raises(errors.InferenceDisabled):
        provisioned.infer(np.zeros((1, HEAD_IN), np.float32))


def test_firmware_sign_pack_sets_the_release(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from edge.formats.device import build_device_record

    assert firmware_sign(["keygen", "--role", "model-signer", "--out",
                          str(tmp_path / "signer")]) == 0
    (tmp_path / "dev.pub").write_bytes(build_device_record(Ed25519PrivateKey.generate(),
                                                           X25519PrivateKey.generate()))
    w, b = head(1)
    np.savez(tmp_path / "head.npz", W=w, b=b)
    base = ["model", "pack", "--signer", str(tmp_path / "signer.key"), "--version", "1",
            "--head", str(tmp_path / "head.npz"), "--to", str(tmp_path / "dev.pub"),
            "--out", str(tmp_path / "m.pkg")]
    assert firmware_sign(base) == 0
    capsys.readouterr()
    assert firmware_sign(["inspect", "--json", str(tmp_path / "m.pkg")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["infer"] == {"release": "label", "top_k": 0, "query_budget_rows": "none",
                             "feature_bound": "none"}
    assert firmware_sign([*base, "--infer", "top-k", "--infer-top-k", "2", "--infer-budget",
                          "500", "--feature-bound", "6"]) == 0
    capsys.readouterr()
    assert firmware_sign(["inspect", "--json", str(tmp_path / "m.pkg")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["infer"] == {"release": "top-k", "top_k": 2, "query_budget_rows": 500,
                             "feature_bound": 6.0}
    assert firmware_sign([*base, "--infer", "top-k"]) == 2
    assert firmware_sign([*base, "--infer", "top-k", "--infer-top-k", "4"]) == 1  # k = O
    assert "top-k k = 4" in capsys.readouterr().err
