"""Secure aggregation end to end: several simulated TAs and one SecAggRound, in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import Roles, require_native
from secagg_helpers import STAGES, Cohort, cohort, drop_at, run_round

from edge import errors
from edge.formats import secagg as fmt
from edge.secagg.server import SecAggParams
from edge.tee_abi import SecAggStage

N = 5
# Complete graph, t = 3 of 5: n - t = 2 devices may drop at any stage.
FULL = SecAggParams(t=3, k=4, cohort=N, update_clip=1.0)


@pytest.fixture
def five(tmp_path: Path, roles: Roles, monkeypatch: pytest.MonkeyPatch) -> Cohort:
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    with cohort(tmp_path, roles, N) as c:
        yield c  # type: ignore[misc]


def _check_sum(c: Cohort, params: SecAggParams, total: np.ndarray, survivors: list[bytes]
               ) -> None:
    """The secagg sum is the plain sum of the survivors' updates, within the bound."""
    refs = [c.reference(c.by_id(s)) for s in survivors]
    plain = np.sum(refs, axis=0)
    # Quantization: < 1 unit of 2^-s per device and coordinate (stochastic rounding);
    # reference: the TA's float32 DP-SGD against numpy's float64 (test_train_sim's tolerance).
    quant = params.quantizer.error_bound(len(survivors))
    ref_tol = sum(1e-3 * np.abs(r) + 1e-5 for r in refs)
    assert total.shape == plain.shape and total.dtype == np.float32
    assert np.all(np.abs(total - plain) <= quant + ref_tol)
    # A real sum, far above the tolerance (updates have norm <= U = 1).
    assert np.linalg.norm(plain) > 0.1


def test_no_dropout_sum_matches(five: Cohort) -> None:
    srv, summed = run_round(five, FULL)
    total, survivors = srv.result()
    assert survivors == sorted(d.id for d in summed) and len(survivors) == N
    _check_sum(five, FULL, total, survivors)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("dropped", [1, N - FULL.t])
def test_dropouts_at_each_stage(five: Cohort, stage: str, dropped: int) -> None:
    srv, summed = run_round(five, FULL, drop_at(stage, dropped))
    total, survivors = srv.result()
    expect = N - dropped if stage != "unmask" else N
    assert len(survivors) == expect == len(summed)
    _check_sum(five, FULL, total, survivors)


@pytest.mark.parametrize("stage", ["advert", "share", "masked"])
def test_below_threshold_fails_and_produces_nothing(five: Cohort, stage: str) -> None:
    with pytest.raises(errors.TooFewSurvivors):
        run_round(five, FULL, drop_at(stage, N - FULL.t + 1))


def test_too_few_reveals_fails_and_produces_nothing(five: Cohort) -> None:
    srv, _ = run_round(five, FULL, drop_at("unmask", N - FULL.t + 1))
    with pytest.raises(errors.TooFewSurvivors):
        srv.result()


def test_sparse_graph_survives_a_dropout(tmp_path: Path, roles: Roles,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """SecAgg+: 8 devices, 4 neighbours each, t = 3; one drops after sharing."""
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host") / "edge-sim-tee"))
    params = SecAggParams(t=3, k=4, cohort=8, update_clip=1.0)
    with cohort(tmp_path, roles, 8) as c:
        srv, summed = run_round(c, params, drop_at("masked", 1))
        bundle_sizes = {len(srv._devices[d.id].shares.raw) for d in summed}  # type: ignore
        total, survivors = srv.result()
        assert len(survivors) == 7
        # Each device shared with its 4 neighbours only, not the 7 others.
        assert bundle_sizes == {28 + 72 + 4 * 80 + 64}
        _check_sum(c, params, total, survivors)


def test_round_in_sanitized_secure_worlds(tmp_path: Path, roles: Roles,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The TA's secagg code under ASan + UBSan: a round with a dropout after sharing and a
    refused second survivor list; any sanitizer report fails the test."""
    monkeypatch.setenv("EDGE_SIM_TEE", str(require_native("host-asan") / "edge-sim-tee"))
    logs = tmp_path / "sanitizer-logs"
    logs.mkdir()
    monkeypatch.setenv("ASAN_OPTIONS", f"log_path={logs}/asan:detect_leaks=1")
    monkeypatch.setenv("UBSAN_OPTIONS", f"log_path={logs}/ubsan:print_stacktrace=1")
    with cohort(tmp_path, roles, 4) as c:
        params = SecAggParams(t=2, k=3, cohort=4)
        srv, _ = run_round(c, params, drop_at("masked", 1))
        total, survivors = srv.result()
        _check_sum(c, params, total, survivors)
        first = c.devices[0]
        with pytest.raises(errors.ShareConflict):
            first.ta.secagg_unmask(fmt.build_directive(
                c.roles.aggregator, SecAggStage.SURVIVORS, srv.binding, survivors[:2]))
    reports = sorted(logs.iterdir())
    assert not reports, "sanitizer reports:\n" + "\n".join(p.read_text() for p in reports)
