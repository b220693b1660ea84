"""The operator's views of the aggregator's database: the HTML report rendered in headless
Chromium (its screenshot checked for every plotted series inside its chart), `edge
aggregator devices`, `status` with human times, and timestamps in metrics.jsonl."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge.aggregator.config import AggregatorConfig
from edge.aggregator.device_budget import DeviceBudget
from edge.aggregator.registry import Registry
from edge.aggregator.report import (
    CHART_H,
    CHART_W,
    CHARTS,
    COLOURS,
    DEVICE_COLOURS,
    HEADER_PX,
    ReportData,
    from_store,
    write_html,
)
from edge.aggregator.rounds import RoundManager
from edge.aggregator.simulate import FakeDevice, clip, config_mapping
from edge.aggregator.store import Store
from edge.cli import main as edge_main
from edge.errors import ConfigError
from edge.formats.policy import build_policy, parse_policy
from edge.keyfiles import load_private_key

ROUNDS = 5
STEP_BUDGET = 40


def _run_rounds(tmp_path: Path) -> tuple[AggregatorConfig, list[FakeDevice], Path]:
    """ROUNDS rounds of 4 fake devices (cohort 3, central noise, a held-out set), one refusal
    per round (a replayed update), through the real round manager and store."""
    table = config_mapping(tmp_path, fleet="report",
                           rounds={"cohort_size": 3, "quorum": 3, "min_updates": 1},
                           dp={"central_noise_multiplier": 2.0})
    holdout = tmp_path / "holdout.npz"
    rng = np.random.default_rng(1)
    np.savez(holdout, X=rng.normal(size=(50, 8)).astype(np.float32),
             y=rng.integers(0, 3, 50))
    table["eval"] = {"holdout": str(holdout)}
    # the boards' policy, signed by the model signer: device ε and budget left in the views
    policy = build_policy(load_private_key(table["aggregator"]["model_signer_key"]),
                          version=1, noise_multiplier_min=1.0, max_example_clip=1.0,
                          max_update_clip=1.0, sampling_rate=0.1, max_steps_per_round=10,
                          step_budget=STEP_BUDGET, target_epsilon=10.0, delta=1e-5)
    (tmp_path / "policy.bin").write_bytes(policy)
    table["dp"]["device_policy"] = str(tmp_path / "policy.bin")
    toml = tmp_path / "aggregator.toml"
    toml.write_text(_toml(table))
    config = AggregatorConfig.from_toml(toml)
    devices = [FakeDevice(example_count=10 + i) for i in range(4)]
    with Store(config.state) as store:
        registry = Registry(store)
        for d in devices:
            registry.enroll(d.record)
        manager = RoundManager(config, store, registry)
        by_id = {d.device_id.hex(): d for d in devices}
        for _ in range(ROUNDS):
            tickets = manager.open_next()
            first = None
            for topic, ticket in tickets:
                dev = by_id[topic.split("/")[-2]]
                payload = dev.update(ticket, clip(rng.normal(size=27), 1.0), steps=3,
                                     total_steps=3 * (dev.total_steps + 1))
                assert manager.handle(dev.topic(config.fleet), payload).accepted
                first = first or (dev, payload)
            assert first is not None
            assert not manager.handle(first[0].topic(config.fleet), first[1]).accepted
            manager.close()
    return config, devices, toml


def _toml(table: dict) -> str:
    lines = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def chromium() -> str:
    """Debian's Chromium, or a loud failure saying how to install it."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run scripts/setup.sh (apt-get install chromium)")
    return exe


def screenshot(page: Path, out: Path, height: int) -> np.ndarray:
    """Render ``page`` in headless Chromium at scale 1; the screenshot as an RGB array."""
    from PIL import Image

    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--force-device-scale-factor=1", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={out.parent / 'chromium-profile'}",
           f"--window-size={CHART_W + 40},{height}", f"--screenshot={out}", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and out.is_file(), f"chromium failed: {done.stderr[-2000:]}"
    with Image.open(out) as img:
        return np.asarray(img.convert("RGB"))


def _steps(data: ReportData) -> list[tuple[int, str, int]]:
    return [(r, d, t) for d, pts in data.steps.items() for r, t in pts]


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def pixels(img: np.ndarray, chart: str, colour: str) -> int:
    """Pixels of exactly ``colour`` inside the plot area of ``chart``'s box."""
    i = CHARTS.index(chart)
    top = HEADER_PX + i * CHART_H
    # the plot area only: the legend sits right of it, the title above it
    box = img[top + 34:top + CHART_H - 36, 64:CHART_W - 150]
    return int(np.all(box == np.array(_rgb(colour), dtype=box.dtype), axis=-1).sum())


def test_html_report_renders_every_series_in_chromium(tmp_path: Path) -> None:
    config, _devices, _ = _run_rounds(tmp_path)
    with Store(config.state) as store:
        data = from_store(store, config.fleet)
    # dp.device_policy gives each round the worst device's ε, from its updates' steps
    budget = DeviceBudget(parse_policy((tmp_path / "policy.bin").read_bytes()))
    worst = 0
    for row in data.rows:
        worst = max([worst] + [t for r, _, t in _steps(data) if r == row["round"]])
        assert row["device_epsilon"] == pytest.approx(budget.epsilon(worst))
    assert data.rows[-1]["device_epsilon"] > data.rows[0]["device_epsilon"] > 0
    page = tmp_path / "report.html"
    write_html(page, data)
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert "https://" not in text and "<script" not in text
    img = screenshot(page, tmp_path / "shot.png", HEADER_PX + len(CHARTS) * CHART_H + 400)
    expected = {"accuracy": ["accuracy"], "epsilon": ["fleet_epsilon", "device_epsilon"],
                "participants": ["participants", "refusals"], "seconds": ["seconds"]}
    for chart, keys in expected.items():
        for key in keys:
            n = pixels(img, chart, COLOURS[key])
            assert n >= 100, f"{key} drawn with {n} pixels in chart {chart}"
        for other in set(COLOURS) - set(keys):
            assert pixels(img, chart, COLOURS[other]) == 0, f"{other} inside chart {chart}"
    assert len(data.steps) == 4
    for i, _device in enumerate(sorted(data.steps)):
        n = pixels(img, "budget", DEVICE_COLOURS[i])
        assert n >= 50, f"device {i}'s burn-down drawn with {n} pixels"


def test_report_without_holdout_or_noise_says_so_and_cli_writes_it(tmp_path: Path,
                                                                    capsys) -> None:
    _config, _, toml = _run_rounds(tmp_path)
    out = tmp_path / "cli.html"
    assert edge_main(["aggregator", "report", "--config", str(toml), "--html", str(out)]) == 0
    assert f"report of {ROUNDS} rounds written to {out}" in capsys.readouterr().out
    text = out.read_text()
    assert text.count("<svg") == len(CHARTS)
    assert 'data-series="device_epsilon"' in text
    assert "polyline" in text and 'data-series="accuracy"' in text
    # an empty database draws empty charts with a note, never a traceback
    empty = ReportData("x", ())
    write_html(tmp_path / "empty.html", empty)
    assert (tmp_path / "empty.html").read_text().count("no data yet") == len(CHARTS)


def test_metrics_rows_carry_timestamps(tmp_path: Path) -> None:
    config, _, _ = _run_rounds(tmp_path)
    with Store(config.state) as store:
        rows = store.metrics_rows()
    assert len(rows) == ROUNDS
    for a, b in itertools.pairwise(rows):
        assert a["opened_at"] <= a["closed_at"] <= b["opened_at"]
        assert a["seconds"] == pytest.approx(a["closed_at"] - a["opened_at"])


def test_devices_view(tmp_path: Path, capsys) -> None:
    _config, devices, toml = _run_rounds(tmp_path)
    assert edge_main(["aggregator", "devices", "--config", str(toml), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    by_id = {d["device"]: d for d in info["devices"]}
    assert sorted(by_id) == sorted(d.device_id.hex() for d in devices)
    # 3 of 4 devices per round over ROUNDS rounds
    assert sum(d["rounds_joined"] for d in by_id.values()) == 3 * ROUNDS
    for dev in devices:
        d = by_id[dev.device_id.hex()]
        assert d["tickets"] == d["rounds_joined"]
        if d["rounds_joined"]:
            assert d["steps_spent"] == 3 * dev.total_steps  # what its last update said
            assert d["budget_left"] == STEP_BUDGET - d["steps_spent"]
            assert d["epsilon"] == pytest.approx(DeviceBudget(parse_policy(
                (tmp_path / "policy.bin").read_bytes())).epsilon(d["steps_spent"]))
            assert d["last_update_at"] is not None
    refused = [d["last_refusal"] for d in by_id.values() if d["last_refusal"]]
    assert refused and all(r["refusal"] == "duplicate" for r in refused)
    assert edge_main(["aggregator", "devices", "--config", str(toml)]) == 0
    text = capsys.readouterr().out
    assert "ago)" in text and "duplicate" in text


def test_status_human_times_and_no_model_vnone(tmp_path: Path, capsys) -> None:
    _config, _, toml = _run_rounds(tmp_path)
    assert edge_main(["aggregator", "status", "--config", str(toml)]) == 0
    text = capsys.readouterr().out
    assert "vNone" not in text
    assert f"last round {ROUNDS}: model v" in text and " UTC (" in text
    fresh = tmp_path / "fresh"
    table = config_mapping(fresh, fleet="fresh")
    (fresh / "a.toml").write_text(_toml(table))
    Store(fresh / "state.sqlite").close()
    assert edge_main(["aggregator", "status", "--config", str(fresh / "a.toml")]) == 0
    text = capsys.readouterr().out
    assert "vNone" not in text and "no model yet" in text


def test_views_refuse_a_missing_database(tmp_path: Path, capsys) -> None:
    table = config_mapping(tmp_path, fleet="none")
    (tmp_path / "a.toml").write_text(_toml(table))
    for verb in (["devices"], ["report", "--html", str(tmp_path / "r.html")]):
        assert edge_main(["aggregator", *verb, "--config", str(tmp_path / "a.toml")]) == 1
        assert "no aggregator database" in capsys.readouterr().err
    assert not (tmp_path / "state.sqlite").exists()


def test_device_policy_is_checked_at_start(tmp_path: Path) -> None:
    """A policy from another signer, or tickets weaker than the policy, stop the aggregator
    at start naming the field, instead of every board refusing every ticket."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    table = config_mapping(tmp_path, fleet="pol")
    signer = load_private_key(table["aggregator"]["model_signer_key"])
    fields = dict(version=1, noise_multiplier_min=1.1, max_example_clip=1.0,
                  max_update_clip=1.0, sampling_rate=0.1, max_steps_per_round=3,
                  step_budget=40, target_epsilon=10.0, delta=1e-5)
    cases = [(Ed25519PrivateKey.generate(), "not a privacy policy signed by", {}),
             (signer, r"dp.noise_multiplier 1 < policy sigma_min 1.1", {}),
             # Poisson at q = 0.1: one epoch takes 10 steps, the policy allows 3
             (signer, r"dp.local_epochs 1 takes 10 steps per round > policy "
                      r"max_steps_per_round 3", {"noise_multiplier_min": 0.5})]
    for key, message, change in cases:
        (tmp_path / "policy.bin").write_bytes(build_policy(key, **{**fields, **change}))
        table["dp"]["device_policy"] = str(tmp_path / "policy.bin")
        config = AggregatorConfig.from_mapping(table)
        with Store(config.state) as store, pytest.raises(ConfigError, match=message):
            RoundManager(config, store, Registry(store))
