"""Builds the TA's libFuzzer harnesses (tests/fuzz, `make fuzz`) and fuzzes each one briefly.

Each harness starts from its committed corpus (tests/fuzz/corpus/<harness>, seeds from
tests/vectors plus the inputs fuzzing found, regressions included) and mutates it for
EDGE_FUZZ_SECONDS seconds (default 15; longer runs: docs/fuzzing.md). A crash, a
sanitizer report, a harness invariant or a non-zero exit fails the test and names the
reproducer. Without clang's libFuzzer runtime the build fails, naming the packages.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT

FUZZ_DIR = ROOT / "tests" / "fuzz"
CORPUS = FUZZ_DIR / "corpus"
BUILD = ROOT / "build" / "fuzz"
HARNESSES = ["envelope", "manifest", "chunk", "ticket", "policy", "statement",
             "device_record", "storage", "commands", "secagg"]
SECONDS = int(os.environ.get("EDGE_FUZZ_SECONDS", "15"))
CORPUS_LIMIT = 4 * 1024 * 1024
FAILURE_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                 "ERROR: libFuzzer", "invariant violated", "SUMMARY: ")


@pytest.fixture(scope="module")
def fuzz_build() -> Path:
    """build/fuzz, made (incrementally) with `make fuzz`; a loud failure if it cannot be."""
    proc = subprocess.run(["make", "-s", f"-j{os.cpu_count() or 1}", "fuzz"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"`make fuzz` failed (clang with libFuzzer: scripts/setup.sh "
                    f"--with-sanitizers installs it):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return BUILD


def seed_module() -> ModuleType:
    """tests/fuzz/seed_corpus.py, loaded by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("seed_corpus", FUZZ_DIR / "seed_corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_parser_has_a_harness_and_a_corpus() -> None:
    sources = sorted(p.stem.removeprefix("fuzz_") for p in FUZZ_DIR.glob("fuzz_*.c"))
    assert sorted(HARNESSES) == sorted(s for s in sources if s != "common"), sources
    for name in HARNESSES:
        files = list((CORPUS / f"fuzz_{name}").iterdir())
        assert any(f.name.startswith("seed-") for f in files), name


def test_seed_corpus_matches_the_vectors() -> None:
    """The committed seeds are what seed_corpus.py makes from tests/vectors today."""
    for harness, seeds in seed_module().build().items():
        for name, data in seeds.items():
            path = CORPUS / harness / f"seed-{name}"
            assert path.exists() and path.read_bytes() == data, (
                f"{path} is stale: run .venv/bin/python tests/fuzz/seed_corpus.py")


def test_corpus_is_small() -> None:
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total < CORPUS_LIMIT, f"committed corpus is {total} bytes; merge it (docs/fuzzing.md)"


@pytest.mark.parametrize("name", HARNESSES)
def test_fuzz_harness(name: str, fuzz_build: Path, tmp_path: Path) -> None:
    exe = fuzz_build / f"fuzz_{name}"
    assert exe.exists(), f"{exe} was not built by `make fuzz`"
    new = tmp_path / "new"
    artifacts = tmp_path / "artifacts"
    new.mkdir()
    artifacts.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SIM_")}
    env["TMPDIR"] = str(tmp_path)
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    # New inputs go to a scratch directory first: the committed corpus is only read.
    # A per-input limit of 60 s still catches a hang; 10 s was hit by ordinary inputs of
    # the statement harness on a machine at load 30+ (a false "timeout" crash).
    cmd = [str(exe), f"-max_total_time={SECONDS}", "-timeout=60", "-rss_limit_mb=2048",
           "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(new),
           str(CORPUS / f"fuzz_{name}")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=SECONDS + 300)
    output = proc.stdout + proc.stderr
    found = sorted(str(p) for p in artifacts.iterdir())
    done = re.findall(r"DONE\s+cov: (\d+) ft: (\d+).*exec/s: (\d+)", output)
    print(f"fuzz_{name}: {done[-1] if done else 'no DONE line'} (cov, ft, exec/s)")
    marks = [m for m in FAILURE_MARKS if m in output]
    assert proc.returncode == 0 and not found and not marks, (
        f"fuzz_{name} failed (exit {proc.returncode}, {marks}); reproducer(s): {found}; "
        f"rerun with `{exe} <reproducer>`\n{output[-6000:]}")
    assert done, f"fuzz_{name} did not finish its run:\n{output[-3000:]}"
