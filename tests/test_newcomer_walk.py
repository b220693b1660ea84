"""A newcomer's walk, literally: the shell blocks of docs/ marked ``# walk: NAME`` are run as
written (only where files go and the broker's host name are set), and what they make is used
the way the docs say next."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from federation_helpers import DEBIAN_STOCK_CONF, deployed_config

from edge.broker import MosquittoBroker
from edge.mqtt import BrokerSettings, client_id, make_client


def doc_block(doc: str, name: str) -> str:
    """The fenced block of ``docs/DOC`` whose first line is ``# walk: NAME``, unindented."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    m = re.search(r"^( *)```sh\n\1# walk: " + re.escape(name) + r"\n(.*?)^\1```", text,
                  re.MULTILINE | re.DOTALL)
    assert m, f"docs/{doc} has no ```sh block starting with '# walk: {name}'"
    indent = len(m.group(1))
    return "".join(line[indent:] for line in m.group(2).splitlines(keepends=True))


def run_block(script: str, cwd: Path, **env: str) -> None:
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, text=True,
                         capture_output=True, env={**os.environ, **env}, timeout=60)
    assert out.returncode == 0, f"{script}\n---\n{out.stderr}"


@pytest.mark.parametrize("main", ["standalone", "debian-stock"])
def test_tls_files_from_the_broker_doc_serve_a_tls_fleet(tmp_path: Path, main: str) -> None:
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.fail("openssl and mosquitto are needed: apt-get install openssl mosquitto "
                    "(or scripts/setup.sh)")
    run_block(doc_block("broker.md", "tls-files"), tmp_path, BROKER_SAN="IP:127.0.0.1")
    files = {"ca": tmp_path / "ca.crt", "crt": tmp_path / "server.crt",
             "key": tmp_path / "server.key", "passwd": tmp_path / "passwd"}
    user, password = "aggregator-demo", os.urandom(8).hex()
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(files["passwd"]), user, password],
                   check=True, capture_output=True)
    (tmp_path / "agg.pw").write_text(password + "\n")
    kwargs = {"main": DEBIAN_STOCK_CONF} if main == "debian-stock" else {}
    broker = MosquittoBroker(tmp_path, config=lambda port: deployed_config(
        tmp_path, port, files, **kwargs))
    try:
        settings = BrokerSettings.from_mapping({
            "url": f"mqtts://127.0.0.1:{broker.port}", "ca_file": str(files["ca"]),
            "username": user, "password_file": str(tmp_path / "agg.pw")})
        client = make_client(settings, client_id(settings, "walk"), clean_session=True)
        client.connect(settings.host, settings.port)
        client.loop_start()
        try:
            deadline = time.monotonic() + 15
            while not client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.is_connected(), (tmp_path / "mosquitto.log").read_text()
        finally:
            client.loop_stop()
            client.disconnect()
    finally:
        broker.stop()


def _doc_commands() -> list[tuple[str, str]]:
    """Every ``edge ...`` and ``firmware-sign ...`` line of the sh blocks in README and docs/
    (continuation lines joined, comments dropped), with the file it is in."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"^ *```(?:sh|bash|console|text)?\n(.*?)^ *```", text,
                                re.MULTILINE | re.DOTALL):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.strip().removeprefix("$ ").removeprefix("sudo ")
                if re.match(r"(edge|firmware-sign) ", line):
                    found.append((path.name, line))
    return found


DOC_COMMANDS = _doc_commands()


def test_the_docs_show_commands() -> None:
    assert len(DOC_COMMANDS) >= 20, DOC_COMMANDS


@pytest.mark.parametrize(("doc", "line"), DOC_COMMANDS,
                         ids=[f"{d}:{i}" for i, (d, _) in enumerate(DOC_COMMANDS)])
def test_every_documented_command_line_parses(doc: str, line: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A command a newcomer copies from the docs is one the parser accepts (no stale verb,
    option or option position); placeholders like ``DEVICE...`` stand for a value."""
    from edge.cli import build_parser as edge_parser
    from firmware_sign.cli import build_parser as firmware_sign_parser

    # a synopsis's optional parts ([--rounds N]) are left out: N is no value
    # and a <placeholder> stands for one value
    line = re.sub(r"<[^>]*>", "X", re.sub(r" \[[^\]]*\]", "", line))
    words = shlex.split(line, comments=True)
    words = words[:next((i for i, w in enumerate(words) if w in ("|", "&&", ";", ">", "2>&1")),
                        len(words))]
    parser = edge_parser() if words[0] == "edge" else firmware_sign_parser()
    try:
        parser.parse_args([w.rstrip(".") if w.endswith("...") else w for w in words[1:]])
    except SystemExit as exc:
        if exc.code != 0:
            pytest.fail(f"docs/{doc}: `{line}` is refused: {capsys.readouterr().err}")


def test_initial_head_block_of_the_aggregator_doc(tmp_path: Path) -> None:
    from edge.aggregator.rounds import load_head

    run_block(doc_block("aggregator.md", "initial-head"), tmp_path, HEAD_IN="16",
              HEAD_OUT="3", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    W, b = load_head(tmp_path / "head.npz")
    assert W.shape == (16, 3) and b.shape == (3,) and not W.any() and not b.any()


# -- the whole walk of docs/fleet.md ------------------------------------------------------

WALK_BLOCK = re.compile(r"^```sh\n# (walk|walk-processes): ([a-z0-9-]+)\n(.*?)^```",
                        re.MULTILINE | re.DOTALL)


def walk_blocks(doc: str = "fleet.md") -> list[tuple[str, str, str]]:
    """(kind, name, text) of every walk block of ``docs/DOC``, in page order."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), m.group(3)) for m in WALK_BLOCK.finditer(text)]


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM to the process's group (what systemd sends); its exit status, once the whole
    group (the daemon's edge-sim-tee too) is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    status = proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return status
        time.sleep(0.05)
    raise AssertionError(f"process group {proc.pid} still has members {timeout} s after "
                         "SIGTERM")


def test_the_fleet_walk_gives_a_training_fleet(tmp_path: Path) -> None:
    """docs/fleet.md as a newcomer follows it: TLS Mosquitto from deploy/mosquitto, three
    boards each with its own simulated secure world and daemon process, the aggregator as a
    process; then what the operator sees. Only EDGE_SRC and BROKER_PORT are set.

    About 35 s on the 2-core test machine: in the default suite, since the slow marker
    (qemu) that .ci/run also runs selects only tests/qemu, where this would never run."""
    for tool in ("openssl", "mosquitto", "mosquitto_passwd"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} is needed: apt-get install openssl mosquitto "
                        "(or scripts/setup.sh)")
    from conftest import require_native

    from edge.broker import free_port

    require_native("host")
    blocks = walk_blocks()
    assert [k for k, _, _ in blocks].count("walk-processes") == 1, blocks
    # a user's PATH: the activated .venv, and no sbin (Debian puts mosquitto in /usr/sbin)
    path = [p for p in os.environ["PATH"].split(":") if not p.endswith("sbin")]
    env = {**os.environ, "EDGE_SRC": str(ROOT), "BROKER_PORT": str(free_port()),
           "PATH": ":".join([str(Path(sys.executable).parent), *path])}
    env.pop("EDGE_SIM_STATE", None)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    logs = tmp_path / "logs"
    logs.mkdir()
    work = tmp_path / "fleet"
    work.mkdir()

    def trail() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(logs.iterdir()))

    # The shell blocks between process blocks run as one script, as typed into one shell;
    # the folder it ends in is where the next script starts (a new shell, same folder).
    segments: list[tuple[str, list[tuple[str, str]]]] = [("walk", [])]
    for kind, name, text in blocks:
        if kind == "walk-processes":
            segments += [(kind, [(name, text)]), ("walk", [])]
        else:
            segments[-1][1].append((name, text))
    shell_dir = tmp_path / "shell-dir"
    shell_dir.write_text(str(work))

    def run_shell(part: list[tuple[str, str]]) -> None:
        script = "".join(f"echo '>>> block {name}'\n{text}" for name, text in part)
        out = subprocess.run(["bash", "-euo", "pipefail", "-c",
                              f"{script}\npwd > {shlex.quote(str(shell_dir))}\n"],
                             cwd=shell_dir.read_text().strip(), env=env, capture_output=True,
                             text=True, timeout=300)
        (logs / f"shell-{part[0][0]}.log").write_text(out.stdout + out.stderr)
        assert out.returncode == 0, f"{out.stdout[-3000:]}\n---\n{out.stderr[-3000:]}"

    try:
        for kind, part in segments:
            if kind == "walk":
                if part:
                    run_shell(part)
                continue
            (_, text), = part
            for i, line in enumerate(ln for ln in text.splitlines()
                                     if ln.strip() and not ln.startswith("#")):
                with open(logs / f"proc-{i}.log", "wb") as log_file:
                    procs.append((line, subprocess.Popen(
                        ["bash", "-c", f"exec {line}"], cwd=work, env=env,
                        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)))
                time.sleep(0.5 if i == 0 else 0)  # the broker first, as the page says
            line, aggregator = procs[-1]
            assert line.startswith("edge aggregator run"), procs
            try:
                status = aggregator.wait(timeout=300)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the aggregator did not finish its rounds\n{trail()}")
            assert status == 0, trail()
            procs.pop()

        def view(*verb: str) -> object:
            out = subprocess.run(["edge", "aggregator", *verb, "--config", "aggregator.toml",
                                  "--json"], cwd=work, env=env, capture_output=True,
                                 text=True, timeout=60, check=True)
            return json.loads(out.stdout)

        status = view("status")
        assert status["rounds"].get("closed") == 12 and "failed" not in status["rounds"], status
        assert status["last_round"]["accuracy"] >= 0.75, status  # 0.84 measured
        devices = view("devices")
        assert sorted(d["name"] for d in devices["devices"]) == ["board-1", "board-2",
                                                                "board-3"], devices
        assert all(d["rounds_joined"] >= 8 for d in devices["devices"]), devices
        html = (work / "report.html").read_text(encoding="utf-8")
        assert "board-1" in html and "<svg" in html
    finally:
        # as an operator stops them: the daemons, then the broker
        statuses = {line: _stop_group(proc) for line, proc in reversed(procs)}
    assert all(s == 0 for s in statuses.values()), (statuses, trail())
