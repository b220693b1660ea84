"""One CLI grammar: shared options at every documented level, help on everything, --json."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edge.cli import build_parser as edge_parser
from edge.cli_options import walk
from firmware_sign.cli import build_parser as firmware_sign_parser

PARSERS = {"edge": edge_parser, "firmware-sign": firmware_sign_parser}


def _missing_help(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for path, p in walk(parser):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {c.dest for c in action._choices_actions if c.help}
                missing += [f"{path} {name}".strip() + " (subcommand)"
                            for name in action.choices if name not in helped]
            elif not action.help:
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")
    return missing


@pytest.mark.parametrize("prog", PARSERS)
def test_every_option_and_subcommand_has_help(prog: str) -> None:
    assert _missing_help(PARSERS[prog]()) == []


def test_the_walk_finds_a_missing_help() -> None:
    # The check above must be able to fail: a parser with one bare option and verb.
    p = argparse.ArgumentParser()
    p.add_argument("--bare")
    p.add_subparsers().add_parser("verb")
    assert _missing_help(p) == [": --bare", "verb (subcommand)"]


def test_walk_reaches_every_verb() -> None:
    paths = {path for path, _ in walk(edge_parser())}
    assert {"tee info", "tee provision", "runtime info", "info", "aggregator run",
            "daemon", "demo", "board apply", "model build"} <= paths
    fs = {path for path, _ in walk(firmware_sign_parser())}
    assert {"keygen", "model pack", "verify", "inspect"} <= fs


@pytest.mark.parametrize("argv", [
    ["--verbose", "tee", "info", "--tee", "sim", "--state", "S"],
    ["tee", "--verbose", "info", "--tee", "sim", "--state", "S"],
    ["tee", "info", "--verbose", "--tee", "sim", "--state", "S"],
    ["-v", "runtime", "info"], ["runtime", "info", "-v"], ["runtime", "-v", "info"],
    ["aggregator", "status", "--config", "c.toml", "--verbose"],
    ["daemon", "--config", "d.toml", "--verbose"], ["--verbose", "daemon", "--config", "d"],
])
def test_verbose_works_at_every_level(argv: list[str]) -> None:
    assert edge_parser().parse_args(argv).verbose is True


def test_verbose_everywhere_and_off_unless_given() -> None:
    parser = edge_parser()
    for path, p in walk(parser):
        action = p._option_string_actions.get("--verbose")
        assert action is not None, f"edge {path} has no --verbose"
        # below the top an unset flag must leave the top's value alone
        assert action.default == (False if p is parser else argparse.SUPPRESS), path
    assert parser.parse_args(["runtime", "info"]).verbose is False
    assert parser.parse_args(["tee", "info"]).verbose is False


@pytest.mark.parametrize("argv", [
    ["--json", "tee", "info"], ["tee", "--json", "info"], ["--tee", "sim", "tee", "info"],
    ["tee", "--state", "S", "info"],
])
def test_verb_options_above_their_verb_are_usage_errors(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        edge_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err or "invalid choice" in err


def test_shared_options_are_defined_once() -> None:
    # every --tee/--state/--json in the tree is the shared definition (same help text); an
    # option of another meaning under the same name (a worker's --state FILE) has no --tee
    helps: dict[str, set[str]] = {}
    for _, p in walk(edge_parser()):
        tee = "--tee" in p._option_string_actions
        for a in p._actions:
            if "--state" in a.option_strings and not tee:
                continue
            for opt in ("--json", "--state", "--verbose"):
                if opt in a.option_strings:
                    helps.setdefault(opt, set()).add(str(a.help))
    assert {k: len(v) for k, v in helps.items()} == {"--json": 1, "--state": 1, "--verbose": 1}


@pytest.mark.parametrize("prog", PARSERS)
def test_version(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        PARSERS[prog]().parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(prog + " ")


def test_board_verbs_take_the_sim_state_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # `--state` help says "default $EDGE_SIM_STATE" wherever it appears: edge board too
    from edge.commands.board import _board_tee
    from edge.errors import ConfigError

    args = edge_parser().parse_args(["board", "report", "--tee", "sim"])
    monkeypatch.delenv("EDGE_SIM_STATE", raising=False)
    with pytest.raises(ConfigError, match="EDGE_SIM_STATE"):
        _board_tee(args)
    monkeypatch.setenv("EDGE_SIM_STATE", str(tmp_path))
    assert _board_tee(args) == ("sim", tmp_path)
    args = edge_parser().parse_args(["board", "report", "--tee", "sim", "--state", "S"])
    assert _board_tee(args) == ("sim", Path("S"))
