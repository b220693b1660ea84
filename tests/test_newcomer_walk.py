"""A newcomer's walk, literally: the shell blocks of docs/ marked ``# walk: NAME`` are run as
written (only where files go and the broker's host name are set), and what they make is used
the way the docs say next."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
