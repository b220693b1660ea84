"""Aggregator operations: metrics.jsonl complete after any crash or full disk, refusal floods
counted exactly without an fsync or an audit row each (issue 10, items 11 and 13)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from ops_helpers import ROOT, aggregator_cmd, flood_scenario, kill_scenario

from edge.aggregator import AggregatorConfig
from edge.aggregator.audit import RefusalLedger
from edge.aggregator.metrics import sync_jsonl
from edge.aggregator.simulate import config_mapping
from edge.aggregator.store import Store
from edge.broker import MosquittoBroker
from edge.commands.aggregator import status


def test_metrics_complete_after_sigkills(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """20 SIGKILLs of a real aggregator at random points: one row per finished round."""
    census = kill_scenario(tmp_path, mosquitto.url, 20, seed=11, lifetime=(0.2, 2.0))
    assert census["rounds"] >= 5, census
    assert census["rows"] == census["rounds"], census
    assert (census["lost"], census["duplicated"], census["torn"], census["stray"]) == \
        (0, 0, 0, 0), census


def _rows(n: int) -> list[str]:
    return [json.dumps({"round": i, "participants": 1, "pad": "x" * 100}, sort_keys=True)
            for i in range(1, n + 1)]


def test_metrics_sync_repairs_torn_duplicated_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = _rows(5)
    assert sync_jsonl(path, rows[:2]) == 2
    with open(path, "ab") as fh:
        fh.write(rows[2].encode()[:40])  # a kill in the middle of a write
    assert sync_jsonl(path, rows) == 3
    assert path.read_text().splitlines() == rows
    path.write_text("\n".join(rows[:3] + rows[2:3]) + "\n")  # a duplicate
    sync_jsonl(path, rows)
    assert path.read_text().splitlines() == rows
    path.write_text(rows[0] + "\n" + '{"round": 99}\n')  # a row the database never had
    sync_jsonl(path, rows)
    assert path.read_text().splitlines() == rows
    assert (tmp_path / "metrics.jsonl.orphaned").read_text() == '{"round": 99}\n'
    assert sync_jsonl(path, rows) == 0


def test_metrics_full_disk_loses_no_row(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE) in a child: no torn line; every row once space is back."""
    path = tmp_path / "metrics.jsonl"
    rows = _rows(40)
    script = textwrap.dedent(f"""
        import errno, json, resource, signal, sys
        from pathlib import Path
        from edge.aggregator.metrics import sync_jsonl
        rows = json.loads(sys.argv[1])
        path = Path({str(path)!r})
        sync_jsonl(path, rows[:3])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
        for n in range(4, len(rows) + 1):  # rounds closing while the disk is full
            try:
                sync_jsonl(path, rows[:n])
            except OSError as exc:
                assert exc.errno == errno.EFBIG, exc
            data = path.read_bytes()
            assert data.endswith(b"\\n") and len(data) <= 1000, data[-80:]
            assert data.decode().splitlines() == rows[:len(data.decode().splitlines())]
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space is back
        sync_jsonl(path, rows)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script, json.dumps(rows)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr
    assert path.read_text().splitlines() == rows


def test_refusal_ledger_bounds_and_counts(tmp_path: Path) -> None:
    """Past the bounds a refusal is counted, not stored; the sum stays exact."""
    config = AggregatorConfig.from_mapping(config_mapping(tmp_path, audit={
        "rows_per_source": 3, "rows_per_round": 5}))
    with Store(config.state) as store:
        ledger = RefusalLedger(store, rows_per_source=3, rows_per_round=5)
        for i in range(10):
            ledger.record(round_id=1, device_id=None, topic="t/a", refusal="malformed",
                          reason=f"a {i}")
        for i in range(4):
            ledger.record(round_id=1, device_id=None, topic="t/b", refusal="signature",
                          reason=f"b {i}")
        assert store.refusals() == {}  # nothing is committed before the flush
        assert ledger.flush() == 14
        assert len(store.audit_rows()) == 5  # 3 of t/a, then the round's bound: 2 of t/b
        assert store.refusals(1) == {"malformed": 10, "signature": 4}
        sources = {(s["topic"], s["refusal"]): s for s in store.refusal_sources()}
        assert (sources[("t/a", "malformed")]["stored"],
                sources[("t/a", "malformed")]["counted"]) == (3, 7)
        assert sources[("t/b", "signature")]["total"] == 4
        # The bounds hold across a restart (a new ledger reads what is stored).
        again = RefusalLedger(store, rows_per_source=3, rows_per_round=100)
        assert not again.record(round_id=1, device_id=None, topic="t/a", refusal="malformed",
                                reason="after restart")
        again.flush()
        assert store.refusals(1)["malformed"] == 11
        # Past the round's bound, topics never seen in that round share one counter.
        bounded = RefusalLedger(store, rows_per_source=3, rows_per_round=5)
        for i in range(50):
            bounded.record(round_id=1, device_id=None, topic=f"t/x{i}", refusal="malformed",
                           reason="varied topic")
        bounded.flush()
        assert store._one("SELECT count(*) FROM refusal_counts WHERE round_id = 1 AND "
                          "topic LIKE 't/x%'")[0] == 0
        assert store.refusals(1)["malformed"] == 61
        assert len(store.audit_rows()) == 5
        info = status(config)
    assert info["refusals"] == {"malformed": 61, "signature": 4}
    assert info["refusal_sources"][0] == {**info["refusal_sources"][0], "topic": "*",
                                          "stored": 0, "counted": 50, "total": 50}


def test_refusal_flood(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """5,000 garbage messages from one client queued before the round's update: the round
    closes and every one of them is counted, a bounded number stored."""
    result = flood_scenario(tmp_path, mosquitto.url, 5000)
    assert result["malformed"] == result["refused"] == 5000, result
    assert result["audit_rows"] == 100, result  # audit.rows_per_source (default)
    # The close delay is a speed figure: benchmarks/aggregator_faults.py measures it.
    argv, env = aggregator_cmd("audit", "--config", str(tmp_path / "aggregator.toml"),
                               "--json")
    audit = json.loads(subprocess.run(argv, env=env, cwd=ROOT, check=True, text=True,
                                      capture_output=True, timeout=120).stdout)
    (source,) = audit["sources"]
    assert (source["refusal"], source["stored"], source["counted"], source["total"]) == \
        ("malformed", 100, 4900, 5000), source
    argv, env = aggregator_cmd("status", "--config", str(tmp_path / "aggregator.toml"))
    text = subprocess.run(argv, env=env, cwd=ROOT, check=True, text=True,
                          capture_output=True, timeout=120).stdout
    assert "refusals: malformed 5000" in text and "4900 counted only" in text, text
