"""One TOML reader: every table of every process refuses bad values in one wording,
naming ``table.key`` and, read from a file, the file."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from test_daemon_config import GOOD, with_change

from edge.aggregator.config import AggregatorConfig
from edge.aggregator.simulate import config_mapping
from edge.cli import main
from edge.daemon import DaemonConfig
from edge.errors import ConfigError
from edge.inference.backbone import InferenceConfig
from edge.mqtt import BrokerSettings
from edge.tee import DEFAULT_BACKEND, TrustedApp, check_backend_state
from edge.toml_config import Table, load


def _message(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as got:
        call(*args, **kwargs)
    return str(got.value)


def _aggregator(tmp_path: Path, section: str, key: str, value: Any) -> str:
    table = config_mapping(tmp_path)
    table.setdefault(section, {})[key] = value
    return _message(AggregatorConfig.from_mapping, table)


def test_one_wording_for_a_bad_integer_in_every_table(tmp_path: Path) -> None:
    got = [
        _message(DaemonConfig.from_mapping, with_change("data.max_samples", "many"),
                 base=tmp_path),
        _aggregator(tmp_path, "rounds", "seed", "many"),
        _message(BrokerSettings.from_mapping, {"url": "mqtt://h", "keepalive": "many"}),
        _message(InferenceConfig.from_mapping, {"num_threads": "many"}),
    ]
    keys = ["data.max_samples", "rounds.seed", "broker.keepalive", "inference.num_threads"]
    for key, text in zip(keys, got, strict=True):
        assert re.fullmatch(rf"{re.escape(key)}: must be an integer in \d+\.\.\d+, got 'many'",
                            text), text


def test_one_wording_for_an_unknown_key_in_every_table(tmp_path: Path) -> None:
    got = [
        _message(DaemonConfig.from_mapping, with_change("data.colour", 1), base=tmp_path),
        _aggregator(tmp_path, "dp", "colour", 1),
        _message(BrokerSettings.from_mapping, {"url": "mqtt://h", "colour": 1}),
        _message(InferenceConfig.from_mapping, {"colour": 1}),
    ]
    for table, text in zip(["data", "dp", "broker", "inference"], got, strict=True):
        assert text.startswith(f"{table}.colour: unknown key (known: "), text


def test_one_wording_for_a_missing_key_and_an_unknown_table(tmp_path: Path) -> None:
    assert _message(DaemonConfig.from_mapping, with_change("device.name", ...),
                    base=tmp_path) == "device.name: required"
    table = config_mapping(tmp_path)
    del table["rounds"]["cohort_size"]
    assert _message(AggregatorConfig.from_mapping, table) == "rounds.cohort_size: required"
    assert _message(DaemonConfig.from_mapping, {**GOOD, "extra": {}}).startswith(
        "extra: unknown table (known: ")
    assert _message(AggregatorConfig.from_mapping, {**config_mapping(tmp_path), "extra": {}}
                    ).startswith("extra: unknown table (known: ")


def test_a_file_error_names_the_file_and_the_key(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.toml"
    daemon.write_text('[device]\nname = "b"\nfleet = "lab"\n[tee]\nbackend = "tz"\n')
    assert _message(DaemonConfig.from_toml, daemon) == \
        f'tee.backend: must be "optee" or "sim", got \'tz\' (in {daemon})'
    agg = tmp_path / "aggregator.toml"
    agg.write_text('[aggregator]\nfleet = "Bad Fleet"\n')
    text = _message(AggregatorConfig.from_toml, agg)
    assert text.startswith("aggregator.fleet: ") and text.endswith(f"(in {agg})"), text
    agg.write_text("[rounds\n")
    assert _message(AggregatorConfig.from_toml, agg).startswith(
        f"config {agg} is not valid TOML: ")
    assert _message(load, tmp_path / "none.toml", lambda t, b: t) == \
        f"cannot read config {tmp_path / 'none.toml'}: No such file or directory"


def test_paths_resolve_against_the_file_and_wrong_kinds_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    t = Table({"f": "a-file", "d": "a-dir", "new": "sub/new.db"}, "x", ("f", "d", "new"),
              tmp_path)
    assert t.path("f") == tmp_path / "a-file"
    assert t.path("d", folder=True) == tmp_path / "a-dir"
    assert _message(t.path, "d") == f"x.d: {str(tmp_path / 'a-dir')!r} is not a regular file"
    assert _message(t.path, "f", folder=True) == \
        f"x.f: {str(tmp_path / 'a-file')!r} is not a folder"
    assert _message(t.path, "new", must_exist=False) == \
        f"x.new: folder {str(tmp_path / 'sub')!r} does not exist"


def test_the_backend_rule_is_one_and_the_default_is_optee(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert DEFAULT_BACKEND == "optee"
    assert inspect.signature(TrustedApp).parameters["backend"].default == DEFAULT_BACKEND
    no_tee = dict(GOOD)
    del no_tee["tee"]
    assert DaemonConfig.from_mapping(no_tee, base=tmp_path).tee_backend == DEFAULT_BACKEND
    with pytest.raises(ConfigError, match="needs a state folder"):
        check_backend_state("sim", None)
    with pytest.raises(ConfigError, match="only applies to the simulated TEE"):
        check_backend_state("optee", tmp_path)
    # The same rule, named by where it was broken: a config key, a CLI option.
    assert _message(DaemonConfig.from_mapping, with_change("tee.state_dir", ...)) == \
        "tee.state_dir: the simulated TEE (sim) needs a state folder"
    assert main(["tee", "info", "--tee", "optee", "--state", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(
        "config: --tee optee --state: a state folder only applies to the simulated TEE")
    assert main(["tee", "info", "--tee", "sim"]) == 1
    assert "--tee sim --state: the simulated TEE (sim) needs a state folder" in \
        capsys.readouterr().err
