"""One log format for the daemon and the aggregator (edge/logformat.py): kv (logfmt) or JSON
lines, every line parsed here, no secret in either; the real processes are run against a port
nobody listens on (they log the connect failures at WARNING) and stopped by a group SIGTERM."""

from __future__ import annotations

import io
import json
import logging
import shlex
from pathlib import Path
from typing import Any

import pytest
from conftest import require_native
from federation_helpers import to_toml
from test_connect_failures import closed_port, daemon_config, start, stop_group, wait_line

from edge.aggregator.simulate import config_mapping
from edge.errors import ConfigError
from edge.logformat import LineFormatter, resolve_format, setup_logging


def parse_kv(line: str) -> dict[str, str]:
    """A logfmt line by POSIX shell quoting rules (an independent parser: not ours)."""
    fields = {}
    for token in shlex.split(line):
        key, sep, value = token.partition("=")
        assert sep and key, f"not key=value: {token!r} in {line!r}"
        assert key not in fields, f"{key} twice in {line!r}"
        fields[key] = value
    return fields


def parse(fmt: str, line: str) -> dict[str, Any]:
    fields = parse_kv(line) if fmt == "kv" else json.loads(line)
    assert isinstance(fields, dict)
    assert list(fields)[:3] == ["ts", "level", "logger"], line
    assert fields["ts"].endswith("Z") and fields["level"] in (
        "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
    assert "msg" in fields or len(fields) > 3, line
    return fields


def _line(fmt: str, msg: str, *args: Any, **extra: Any) -> str:
    stream = io.StringIO()
    logger = logging.getLogger("edge.test-logformat")
    setup_logging(fmt, verbose=True, stream=stream)
    try:
        logger.warning(msg, *args, extra=extra)
    finally:
        logging.getLogger().handlers[:] = []
    [line] = stream.getvalue().splitlines()
    return line


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_fields_quoting_and_lifted_pairs(fmt: str) -> None:
    text = 'cause "quoted" \\ back\nslash'
    f = parse(fmt, _line(fmt, "round %d failed: %s", 3, text, topic="a b", count=2))
    assert f["logger"] == "edge.test-logformat" and f["level"] == "WARNING"
    assert f["msg"] == f"round 3 failed: {text}".replace("\n", "\\n" if fmt == "kv" else "\n")
    assert f["topic"] == "a b" and str(f["count"]) == "2"
    # a key=value message (the daemon's) becomes fields, with its quoted values unquoted
    f = parse(fmt, _line(fmt, 'device=board-7 round=12 step=connect cause="Connection refused"'))
    assert "msg" not in f
    assert (f["device"], f["round"], f["step"], f["cause"]) == (
        "board-7", "12", "connect", "Connection refused")
    f = parse(fmt, _line(fmt, "rollback seen installed=2 offered=1"))
    assert (f["msg"], f["installed"], f["offered"]) == ("rollback seen", "2", "1")


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_no_secret_fields(fmt: str) -> None:
    line = _line(fmt, "connected password=hunter2 user=u", private_key="PEMDATA",
                 session_token="t0k", aggregator_key="k")
    for secret in ("hunter2", "PEMDATA", "t0k", "aggregator_key"):
        assert secret not in line, line
    assert parse(fmt, line)["user"] == "u"


def test_format_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_LOG_FORMAT", raising=False)
    assert resolve_format(None) == "kv"
    monkeypatch.setenv("EDGE_LOG_FORMAT", "json")
    assert resolve_format(None) == "json" and resolve_format("kv") == "kv"
    monkeypatch.setenv("EDGE_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="EDGE_LOG_FORMAT='xml'"):
        resolve_format(None)
    with pytest.raises(ValueError):
        LineFormatter("xml")


def _every_line(fmt: str, text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, "no log lines"
    return [parse(fmt, line) for line in lines]


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_daemon_lines(tmp_path: Path, fmt: str) -> None:
    require_native("host")
    url = f"mqtt://127.0.0.1:{closed_port()}"
    proc, log = start(["daemon", "--config", str(daemon_config(tmp_path, url)),
                       "--log-format", fmt], tmp_path)
    wait_line(proc, log, "WARNING", "connect")
    fields = _every_line(fmt, stop_group(proc, log))
    failed = [f for f in fields if f.get("step") == "connect" and f.get("result") == "failed"]
    assert failed and failed[0]["level"] == "WARNING", fields
    assert failed[0]["cause"] == "Connection refused" and failed[0]["broker"] == url
    assert any(f.get("step") == "signal" and f.get("signal") == "SIGTERM" for f in fields)
    assert all(f["logger"].startswith("edge") for f in fields), fields


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_aggregator_lines(tmp_path: Path, fmt: str) -> None:
    url = f"mqtt://127.0.0.1:{closed_port()}"
    table: dict[str, Any] = config_mapping(tmp_path, url)
    config = tmp_path / "agg.toml"
    config.write_text(to_toml(table), encoding="utf-8")
    # the noun-level form (`edge aggregator --log-format F --config C`) runs too
    proc, log = start(["--verbose", "aggregator", "--log-format", fmt, "run", "--config",
                       str(config)], tmp_path)
    wait_line(proc, log, "WARNING", "cannot connect to")
    fields = _every_line(fmt, stop_group(proc, log))
    warnings = [f for f in fields if f["level"] == "WARNING"]
    assert warnings and all("Connection refused" in f["msg"] for f in warnings), fields
    assert any(f.get("msg") == "stopped by SIGTERM" for f in fields), fields
