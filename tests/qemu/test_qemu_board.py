"""The board path on the QEMU board: the installed bundle, the daemon run exactly as its
systemd unit runs it, and `edge board provision/status` over the guest's serial console
(pyserial socket://), including a console that drops mid-transfer.

The image boots busybox as init, not systemd (docs/board.md says why), so the daemon is
started with the unit's own ExecStart=, Environment=, User= and WorkingDirectory= read
from deploy/systemd/edge-daemon.service, under a NOTIFY_SOCKET of the test's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from training_helpers import policy

from edge import errors
from edge.aggregator.registry import Registry
from edge.aggregator.store import Store
from edge.board.agent import bundle_version
from edge.board.provision import BoardAccess, provision, status
from edge.formats.device import DeviceRecord
from edge.formats.keys import key_id
from edge.formats.policy import policy_id

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "qemu"))
from guest import OUT, Guest, build_image  # noqa: E402

pytestmark = pytest.mark.qemu
UNIT = ROOT / "deploy" / "systemd" / "edge-daemon.service"
TA_UUID = "5441d9b6-a634-4050-9731-e70ae47dd281"


def unit_service(path: Path) -> dict[str, list[str]]:
    """The [Service] section's settings, each key with all of its values in order."""
    section, out = "", {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


@pytest.fixture(scope="module")
def image() -> None:
    build_image()


def test_bundle_is_installed_as_on_a_board(image: None, tmp_path: Path) -> None:
    tarball = next((OUT / "bundle").glob("edge-bundle-*-aarch64.tar.gz"))
    with Guest.boot(console_log=tmp_path / "console.log") as g:
        assert g.check("edge --version").split() == ["edge", bundle_version()]
        native = g.check("python3 -c 'import edge.native; print(edge.native.native_dir())'")
        assert native.strip() == "/opt/edge/lib/python3.13/site-packages/edge/_native"
        assert g.check("echo $EDGE_NATIVE_DIR").strip() == ""
        ta = g.check(f"sha256sum /lib/optee_armtz/{TA_UUID}.ta").split()[0]
        assert ta == hashlib.sha256((OUT / "ta" / f"{TA_UUID}.ta").read_bytes()).hexdigest()
        assert g.check("readlink /usr/local/bin/edge").strip() == "/opt/edge/bin/edge"
        assert "teeclnt" in g.check("id -nG edge").split()
        info = json.loads(g.check("edge tee info --json"))
        assert info["backend"] == "optee" and info["abi_version"] >= 1
        for heavy in ("amqtt", "dp_accounting", "scipy"):
            rc, _ = g.run(f"python3 -c 'import {heavy}'")
            assert rc != 0, f"{heavy} is installed on the board"
    assert tarball.stat().st_size > 0


NOTIFY_LISTENER = """
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o777)
with open(log, "a") as f:
    while True:
        msg = s.recv(4096).decode()
        f.write(msg.replace("\\n", " ") + "\\n")
        f.flush()
        if "STOPPING=1" in msg:
            break
"""


def test_daemon_runs_as_its_unit_says(image: None, tmp_path: Path) -> None:
    svc = unit_service(UNIT)
    exec_start = svc["ExecStart"][0]
    config = shlex.split(exec_start)[shlex.split(exec_start).index("--config") + 1]
    env = " ".join(shlex.quote(e) for v in svc.get("Environment", []) for e in shlex.split(v))
    user, workdir = svc["User"][0], svc["WorkingDirectory"][0]
    state = f"/var/lib/{svc['StateDirectory'][0]}"
    with Guest.boot(console_log=tmp_path / "console.log") as g:
        g.put(config, f"""
[device]
name = "qemu-unit"
fleet = "lab"
[broker]
url = "mqtt://10.0.2.100:1883"
[data]
source = "directory"
path = "{state}/incoming"
[paths]
work_dir = "{state}"
""".encode())
        g.put("/root/notify.py", NOTIFY_LISTENER.encode())
        # What systemd does for StateDirectory= and User=: the folder, owned by the user.
        g.check(f"mkdir -p {state}/incoming && chown -R {user}:{user} {state}")
        g.check("(python3 /root/notify.py /run/notify /run/notify.log &) ; "
                "i=0; while [ ! -S /run/notify ] && [ $i -lt 100 ]; do sleep 0.1; "
                "i=$((i+1)); done; [ -S /run/notify ]")
        inner = (f"echo $$ > /tmp/daemon.pid; exec env {env} NOTIFY_SOCKET=/run/notify "
                 f"WATCHDOG_USEC=2000000 {exec_start}")
        g.check(f"cd {workdir} && ( su -s /bin/sh {user} -c {shlex.quote(inner)} "
                f"> /run/daemon.log 2>&1; echo $? > /run/daemon.rc ) > /dev/null 2>&1 &")

        def notified(word: str, timeout: float) -> list[str]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                lines = g.check("cat /run/notify.log 2>/dev/null; true").splitlines()
                if any(word in line for line in lines):
                    return lines
                time.sleep(1)
            raise AssertionError(f"no {word}; daemon log:\n{g.check('cat /run/daemon.log')}")

        lines = notified("READY=1", 180)
        assert lines[0].startswith("READY=1 STATUS=device qemu-unit")
        notified("WATCHDOG=1", 30)
        owner = g.check(f"stat -c %U {state}/samples 2>/dev/null || stat -c %U {state}")
        assert owner.strip() == user
        g.check("kill -TERM $(cat /tmp/daemon.pid)")
        notified("STOPPING=1", 60)
        deadline = time.monotonic() + 60
        while g.run("[ -f /run/daemon.rc ]")[0] != 0:
            assert time.monotonic() < deadline, g.check("cat /run/daemon.log")
            time.sleep(1)
        assert g.check("cat /run/daemon.rc").strip() == "0", g.check("cat /run/daemon.log")
        assert "step=start" in g.check("cat /run/daemon.log")


class DroppingProxy:
    """A TCP relay to the guest's console that cuts the operator's connection after
    ``drop_after`` bytes from the operator (once), like a pulled cable."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drop_after: int | None = None
        self.drops = 0
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            done = threading.Event()
            threading.Thread(target=self._pump, args=(upstream, client, None, done),
                             daemon=True).start()
            self._pump(client, upstream, self, done)
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            done.wait(5)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, counter: DroppingProxy | None,
              done: threading.Event) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    return
                if counter is not None and counter.drop_after is not None \
                        and sent + len(data) > counter.drop_after:
                    dst.sendall(data[:counter.drop_after - sent])
                    counter.drop_after = None
                    counter.drops += 1
                    return
                sent += len(data)
                dst.sendall(data)
        except OSError:
            return
        finally:
            done.set()


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def console_board(image: None, tmp_path: Path) -> Iterator[tuple[Guest, DroppingProxy]]:
    g = Guest.boot(console_log=tmp_path / "console.log", cmdloop=False)
    proxy = DroppingProxy(g.port)
    g.release_console()
    try:
        yield g, proxy
    finally:
        proxy.close()
        g.close()


def test_provision_over_the_console_with_a_drop(console_board: tuple[Guest, DroppingProxy],
                                                 tmp_path: Path) -> None:
    _, proxy = console_board
    signer, aggregator = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pol = policy(signer)
    access = BoardAccess(url=proxy.url)
    before = status(access)
    assert before["provisioned"] is False and before["bundle_version"] == bundle_version()
    assert before["tee"]["backend"] == "optee"

    def run(retries: int) -> object:
        return provision(access, signer=_pem(signer), aggregator=_pem(aggregator), policy=pol,
                         expect_version=bundle_version(), retries=retries)

    # Cut inside the transfer (the files follow login and the version check).
    proxy.drop_after = 1500
    with pytest.raises(errors.ConsoleLost):
        run(retries=0)
    assert proxy.drops == 1
    middle = status(access)
    assert middle["provisioned"] is False and middle["policy_id"] is None  # nothing applied
    # Resumed, with one more drop handled by the retry loop.
    proxy.drop_after = 1200
    result = run(retries=2)
    assert proxy.drops == 2 and result.attempts == 2
    assert result.transfer.reused >= 1
    device = DeviceRecord.parse(result.record)
    after = status(access)
    assert after["provisioned"] is True
    assert after["tee"]["device_id"] == device.device_id.hex()
    assert after["tee"]["identity_public_key"] == device.ed25519_pub.hex()
    assert after["tee"]["model_signer_key_id"] == key_id(
        signer.public_key().public_bytes_raw()).hex()
    with Store(tmp_path / "aggregator.sqlite") as store:
        assert Registry(store).enroll(result.record).device_id == device.device_id

    # The CLI on the same console: status as JSON.
    out = subprocess.run([sys.executable, "-m", "edge.cli", "board", "status", "--port",
                          proxy.url, "--json"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tee"]["device_id"] == device.device_id.hex()
    assert json.loads(out.stdout)["policy_id"] == policy_id(pol).hex()
