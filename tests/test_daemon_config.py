"""The daemon's TOML configuration: good files parse, bad ones name the offending key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.daemon import DaemonConfig
from edge.errors import ConfigError

GOOD: dict[str, Any] = {
    "device": {"name": "board-7", "fleet": "lab"},
    "tee": {"backend": "sim", "state_dir": "tee"},
    "broker": {"url": "mqtt://127.0.0.1:1883"},
    "data": {"source": "directory", "path": "samples"},
    "paths": {"work_dir": "work"},
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    """GOOD with ``table.key`` set (or removed when value is ...)."""
    table = copy.deepcopy(GOOD)
    name, _, key = path.partition(".")
    if not key:
        if value is ...:
            del table[name]
        else:
            table[name] = value
        return table
    sub = table.setdefault(name, {})
    if value is ...:
        sub.pop(key, None)
    else:
        sub[key] = value
    return table


def test_good_config_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.toml"
    cfg.write_text('[device]\nname = "board-7"\nfleet = "lab"\n'
                   '[tee]\nbackend = "sim"\nstate_dir = "tee"\n'
                   '[broker]\nurl = "mqtts://broker.example:8884"\nkeepalive = 30\n'
                   '[data]\nsource = "serial"\nserial_url = "socket://127.0.0.1:7000"\n'
                   'baudrate = 9600\nmax_samples = 500\n'
                   '[inference]\nnum_threads = 2\n'
                   '[paths]\nwork_dir = "work"\n')
    c = DaemonConfig.from_toml(cfg)
    assert (c.name, c.fleet, c.tee_backend) == ("board-7", "lab", "sim")
    assert c.tee_state_dir == tmp_path / "tee" and c.work_dir == tmp_path / "work"
    assert (c.broker.host, c.broker.port, c.broker.tls, c.broker.keepalive) == \
        ("broker.example", 8884, True, 30)
    assert (c.data.source, c.data.serial_url, c.data.baudrate, c.data.max_samples) == \
        ("serial", "socket://127.0.0.1:7000", 9600, 500)
    assert c.data.store_dir == tmp_path / "work" / "samples"
    assert c.inference.num_threads == 2


@pytest.mark.parametrize(("path", "value", "key"), [
    ("device.name", ..., "device.name"),
    ("device.name", "has space", "device.name"),
    ("device.fleet", "Upper", "device.fleet"),
    ("device.colour", "red", "device.colour"),
    ("tee.backend", "tz", "tee.backend"),
    ("tee.state_dir", ..., "tee.state_dir"),
    ("broker", ..., "broker"),
    ("broker.url", "tcp://h", "broker.url"),
    ("broker.keepalive", True, "broker.keepalive"),
    ("data.source", "usb", "data.source"),
    ("data.path", ..., "data.path"),
    ("data.serial_url", "loop://", "data.serial_url"),
    ("data.max_samples", 0, "data.max_samples"),
    ("data.baudrate", "fast", "data.baudrate"),
    ("paths.work_dir", ..., "paths.work_dir"),
    ("inference.threads", 2, "threads"),
    ("extra", {}, "extra"),
])
def test_bad_config_names_the_key(path: str, value: Any, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        DaemonConfig.from_mapping(with_change(path, value), base=Path("/tmp"))


def test_optee_takes_no_state_dir() -> None:
    with pytest.raises(ConfigError, match=r"tee\.state_dir"):
        DaemonConfig.from_mapping(with_change("tee.backend", "optee"))
    table = with_change("tee.backend", "optee")
    del table["tee"]["state_dir"]
    assert DaemonConfig.from_mapping(table).tee_state_dir is None


def test_serial_source_needs_its_url() -> None:
    table = with_change("data", {"source": "serial"})
    with pytest.raises(ConfigError, match=r"data\.serial_url"):
        DaemonConfig.from_mapping(table)


def test_edge_daemon_refuses_bad_config_with_the_key(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "d.toml"
    cfg.write_text('[device]\nname = "b"\nfleet = "BAD FLEET"\n')
    assert main(["daemon", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("config: device.fleet")
    cfg.write_text("not toml = = =")
    assert main(["daemon", "--config", str(cfg)]) == 1
    assert "is not valid TOML" in capsys.readouterr().err
    assert main(["daemon", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read config" in capsys.readouterr().err
