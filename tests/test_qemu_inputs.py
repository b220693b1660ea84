"""The QEMU image's input resolver (scripts/qemu/inputs.py) against a fake mirror.

A fake Debian archive (apt lists + pool files on disk, file:// URLs) and a
fake PEP 691 index (a local HTTP server) stand in for trixie and PyPI, so the
point-release cases are reproduced exactly: a floating package moved on (the
build goes on and warns), a secure pin left the index (taken from the pool by
its sha256), a secure pin left index and pool (the build stops and names it).
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("qemu_inputs", ROOT / "scripts/qemu/inputs.py")
inputs = importlib.util.module_from_spec(_spec)
sys.modules["qemu_inputs"] = inputs
_spec.loader.exec_module(inputs)

if shutil.which("dpkg") is None:  # the build host is Debian; so is CI
    pytest.fail("dpkg is missing: the resolver orders Debian versions with dpkg "
                "(apt-get install dpkg)")

INRELEASE = "Origin: Debian\nDate: Sat, 21 Nov 2026 09:15:44 UTC\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Mirror:
    """A trixie archive on disk: pool files and the lists apt would have verified."""

    root: Path
    lists: Path
    packages: dict[str, list[str]] = field(default_factory=dict)  # suite -> stanzas
    sources: dict[str, list[str]] = field(default_factory=dict)

    @property
    def archive(self) -> str:
        return f"file://{self.root}/debian"

    @property
    def security(self) -> str:
        return f"file://{self.root}/debian-security"

    def base(self, suite: str) -> str:
        return self.security if suite == "trixie-security" else self.archive

    def add_deb(self, suite: str, name: str, version: str, *, depends: str = "",
                data: bytes | None = None, in_pool: bool = True,
                in_index: bool = True) -> inputs.Input:
        data = data if data is not None else f"{name} {version}".encode()
        rel = f"pool/main/{name[0]}/{name}/{name}_{version.split(':')[-1]}_arm64.deb"
        folder = "debian-security" if suite == "trixie-security" else "debian"
        if in_pool:
            path = self.root / folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if in_index:
            stanza = (f"Package: {name}\nVersion: {version}\nArchitecture: arm64\n"
                      f"Filename: {rel}\nSHA256: {sha(data)}\n")
            if depends:
                stanza += f"Depends: {depends}\n"
            self.packages.setdefault(suite, []).append(stanza)
        return inputs.Input("deb", name, version, sha(data), f"{self.base(suite)}/{rel}")

    def add_src(self, suite: str, name: str, version: str) -> list[inputs.Input]:
        rel = f"pool/main/{name[0]}/{name}"
        files = {f"{name}_{version}.dsc": b"dsc " + version.encode(),
                 f"{name}_{version}.orig.tar.xz": b"orig " + version.encode()}
        (self.root / "debian" / rel).mkdir(parents=True, exist_ok=True)
        lines = []
        for fname, data in files.items():
            (self.root / "debian" / rel / fname).write_bytes(data)
            lines.append(f" {sha(data)} {len(data)} {fname}")
        self.sources.setdefault(suite, []).append(
            f"Package: {name}\nVersion: {version}\nDirectory: {rel}\n"
            "Checksums-Sha256:\n" + "\n".join(lines) + "\n")
        return [inputs.Input("src", name, version, sha(d), f"{self.base(suite)}/{rel}/{f}")
                for f, d in files.items()]

    def write_lists(self) -> None:
        self.lists.mkdir(parents=True, exist_ok=True)
        for suite in ("trixie", "trixie-updates", "trixie-security"):
            base = self.base(suite)
            name = inputs.apt_list_name
            (self.lists / name(base, suite, "InRelease")).write_text(INRELEASE)
            (self.lists / name(base, suite, "main/binary-arm64/Packages")).write_text(
                "\n".join(self.packages.get(suite, [])))
            (self.lists / name(base, suite, "main/source/Sources")).write_text(
                "\n".join(self.sources.get(suite, [])))


class FakePyPI:
    """A PEP 691 simple index on 127.0.0.1 serving wheels from memory."""

    def __init__(self) -> None:
        self.projects: dict[str, list[dict]] = {}
        self.blobs: dict[str, bytes] = {}
        self.drops: dict[str, int] = {}  # path -> connections still to close unanswered
        self.garbles: dict[str, int] = {}  # path -> answers still to start with a torn line
        pypi = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if pypi.drops.get(self.path, 0) > 0:  # what a loaded index does now and then
                    pypi.drops[self.path] -= 1
                    self.close_connection = True
                    return
                if pypi.garbles.get(self.path, 0) > 0:
                    pypi.garbles[self.path] -= 1
                    self.wfile.write(b"HTTP/1.1 2\r\n\r\n")
                    self.close_connection = True
                    return
                parts = self.path.strip("/").split("/")
                if parts[0] == "simple" and len(parts) == 2 and parts[1] in pypi.projects:
                    body = json.dumps({"files": pypi.projects[parts[1]]}).encode()
                elif parts[0] == "files" and parts[-1] in pypi.blobs:
                    body = pypi.blobs[parts[-1]]
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def add(self, project: str, filename: str, *, yanked: bool = False,
            data: bytes | None = None, claimed: str | None = None) -> str:
        data = data if data is not None else filename.encode()
        self.blobs[filename] = data
        self.projects.setdefault(project, []).append({
            "filename": filename, "url": f"../../files/{filename}",
            "hashes": {"sha256": claimed or sha(data)}, "yanked": yanked})
        return sha(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pypi() -> Iterator[FakePyPI]:
    server = FakePyPI()
    yield server
    server.close()


@dataclass
class Setup:
    mirror: Mirror
    pypi: FakePyPI
    tmp: Path

    def files(self, secure: list[inputs.Input], userland: str,
              reference: list[inputs.Input] | None) -> None:
        inputs.write_lock(self.tmp / "secure.lock", "secure", {}, secure)
        (self.tmp / "userland").write_text(userland)
        if reference is not None:
            inputs.write_lock(self.tmp / "manifest.ref", "ref", {}, reference)

    def run(self, *extra: str, cmd: str = "resolve") -> int:
        args = [cmd, "--cache", str(self.tmp / "cache"), "--inputs", str(self.tmp / "inputs"),
                "--out", str(self.tmp / "manifest.lock"),
                "--reference", str(self.tmp / "manifest.ref")]
        if cmd == "resolve":
            args += ["--lists", str(self.mirror.lists), "--secure", str(self.tmp / "secure.lock"),
                     "--userland", str(self.tmp / "userland"), "--pypi", self.pypi.url,
                     "--archive", self.mirror.archive,
                     "--security-archive", self.mirror.security]
        return inputs.main([*args, *extra])

    def manifest(self) -> dict[str, inputs.Input]:
        return {i.name: i for i in inputs.read_lock(self.tmp / "manifest.lock")}


@pytest.fixture
def setup(tmp_path: Path, pypi: FakePyPI, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.delenv("EDGE_QEMU_STRICT", raising=False)
    monkeypatch.setattr(inputs.time, "sleep", lambda _s: None)
    return Setup(Mirror(tmp_path / "mirror", tmp_path / "lists"), pypi, tmp_path)


def _point_release(s: Setup, *, secure_in_index: bool = True,
                   secure_in_pool: bool = True) -> tuple[list[inputs.Input], inputs.Input]:
    """libc6 moved from 2.41-1 (the reference) to 2.41-2 in trixie-security."""
    m = s.mirror
    pin = m.add_deb("trixie", "optee-os", "4.5.0-2", in_index=secure_in_index,
                    in_pool=secure_in_pool)
    if not secure_in_index:
        m.add_deb("trixie", "optee-os", "4.6.0-1")  # what the index serves now
    src = m.add_src("trixie", "arm-trusted-firmware", "2.12.1+dfsg-1")
    old_libc = m.add_deb("trixie", "libc6", "2.41-1", in_index=False, in_pool=False)
    m.add_deb("trixie", "libc6", "2.41-1")
    m.add_deb("trixie-security", "libc6", "2.41-2")
    m.write_lists()
    return [pin, *src], old_libc


def test_a_point_release_of_the_userland_is_a_warning_not_an_error(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    secure, old_libc = _point_release(setup)
    setup.files(secure, "deb libc6\n", [*secure, old_libc])
    assert setup.run() == 0
    got = setup.manifest()
    assert got["libc6"].version == "2.41-2"
    assert got["libc6"].url.startswith(setup.mirror.security)
    err = capsys.readouterr().err
    assert "warning: 1 input(s) drifted" in err
    assert "deb libc6: 2.41-1 -> 2.41-2" in err
    # Every input is linked, verified, into the inputs folder.
    debs = sorted(p.name for p in (setup.tmp / "inputs/debs").iterdir())
    assert debs == ["libc6_2.41-2_arm64.deb", "optee-os_4.5.0-2_arm64.deb"]
    assert (setup.tmp / "inputs/debs/libc6_2.41-2_arm64.deb").read_bytes() == b"libc6 2.41-2"
    lock = (setup.tmp / "manifest.lock").read_text()
    assert "index trixie-security 2026-11-21T09:15:44Z" in lock
    assert "toolchain cc " in lock


def test_strict_mode_makes_drift_fatal(setup: Setup, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    secure, old_libc = _point_release(setup)
    setup.files(secure, "deb libc6\n", [*secure, old_libc])
    monkeypatch.setenv("EDGE_QEMU_STRICT", "1")
    assert setup.run("--strict") == inputs.EXIT_DRIFT
    err = capsys.readouterr().err
    assert "error: 1 input(s) drifted" in err and "strict mode" in err


def test_no_drift_no_warning(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup)
    setup.files(secure, "deb libc6\n", None)
    assert setup.run() == 0
    (setup.tmp / "manifest.lock").rename(setup.tmp / "manifest.ref")
    capsys.readouterr()
    assert setup.run("--strict") == 0
    assert "drift" not in capsys.readouterr().err


def test_secure_pin_gone_from_index_is_taken_from_the_pool_by_hash(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup, secure_in_index=False)
    setup.files(secure, "deb libc6\n", None)
    assert setup.run() == 0
    assert setup.manifest()["optee-os"].version == "4.5.0-2"
    assert "secure pin optee-os 4.5.0-2 has left the index" in capsys.readouterr().out


def test_secure_pin_gone_from_index_and_pool_stops_with_one_named_line(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup, secure_in_index=False, secure_in_pool=False)
    setup.files(secure, "deb libc6\n", None)
    assert setup.run() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("qemu/build: error: secure pin optee-os 4.5.0-2 is in neither "
                             "the index (which serves 4.6.0-1) nor the pool")
    assert "--pin secure" in err[0]
    assert not (setup.tmp / "manifest.lock").exists()


def test_secure_pin_with_other_bytes_in_the_pool_is_refused(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup, secure_in_index=False)
    pool = setup.mirror.root / secure[0].url.split(setup.mirror.root.name + "/", 1)[1]
    pool.write_bytes(b"a substituted optee-os")
    setup.files(secure, "deb libc6\n", None)
    assert setup.run() == 1
    err = capsys.readouterr().err
    assert "secure pin optee-os 4.5.0-2" in err and "expected " + secure[0].sha256 in err


def test_index_disagreeing_with_a_secure_pin_is_refused(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup)
    forged = inputs.Input("deb", "optee-os", "4.5.0-2", "ab" * 32, secure[0].url)
    setup.files([forged, *secure[1:]], "deb libc6\n", None)
    assert setup.run() == 1
    assert "the signed index says sha256" in capsys.readouterr().err


def test_kernel_follows_the_metapackage(setup: Setup) -> None:
    secure, _ = _point_release(setup)
    m = setup.mirror
    m.add_deb("trixie", "linux-image-arm64", "6.12.57-1",
              depends="linux-image-6.12.57+deb13-arm64 (= 6.12.57-1)")
    m.add_deb("trixie", "linux-image-6.12.57+deb13-arm64", "6.12.57-1")
    m.add_deb("trixie-security", "linux-image-arm64", "6.12.118-1",
              depends="linux-image-6.12.118+deb13-arm64 (= 6.12.118-1)")
    m.add_deb("trixie-security", "linux-image-6.12.118+deb13-arm64", "6.12.118-1")
    m.write_lists()
    setup.files(secure, "kernel linux-image-arm64\ndeb libc6\n", None)
    assert setup.run() == 0
    got = setup.manifest()
    assert got["linux-image-6.12.118+deb13-arm64"].version == "6.12.118-1"
    assert "linux-image-arm64" not in got


def test_wheels_resolved_for_the_guest_interpreter(setup: Setup, pypi: FakePyPI) -> None:
    secure, _ = _point_release(setup)
    want = pypi.add("numpy", "numpy-2.5.5-cp313-cp313-manylinux_2_27_aarch64.whl")
    pypi.add("numpy", "numpy-2.5.5-cp311-cp311-manylinux_2_27_aarch64.whl")  # host's Python
    pypi.add("numpy", "numpy-2.4.6-cp313-cp313-manylinux_2_27_aarch64.whl")
    pypi.add("numpy", "numpy-2.6.0-cp313-cp313-manylinux_2_27_x86_64.whl")  # wrong arch
    pypi.add("numpy", "numpy-2.7.0-cp313-cp313-manylinux_2_27_aarch64.whl", yanked=True)
    pypi.add("numpy", "numpy-2.8.0rc1-cp313-cp313-manylinux_2_27_aarch64.whl")
    pypi.add("numpy", "numpy-2.9.0-cp313-cp313-manylinux_2_45_aarch64.whl")  # glibc too new
    pypi.add("numpy", "numpy-3.0.0-cp313-cp313-manylinux_2_27_aarch64.whl")  # out of range
    pure = pypi.add("paho-mqtt", "paho_mqtt-2.2.0-py3-none-any.whl")
    setup.files(secure, "deb libc6\nwheel numpy >=2,<3\nwheel paho-mqtt >=2.1\n", None)
    assert setup.run() == 0
    got = setup.manifest()
    assert (got["numpy"].version, got["numpy"].sha256) == ("2.5.5", want)
    assert got["numpy"].filename == "numpy-2.5.5-cp313-cp313-manylinux_2_27_aarch64.whl"
    assert (got["paho-mqtt"].version, got["paho-mqtt"].sha256) == ("2.2.0", pure)
    assert (setup.tmp / "inputs/wheels" / got["numpy"].filename).read_bytes() == \
        b"numpy-2.5.5-cp313-cp313-manylinux_2_27_aarch64.whl"


def test_an_index_page_dropped_or_torn_twice_is_read_on_the_third_try(
        setup: Setup, pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup)
    want = pypi.add("pyserial", "pyserial-3.5-py2.py3-none-any.whl")
    pypi.drops["/simple/pyserial/"] = 2
    setup.files(secure, "deb libc6\nwheel pyserial >=3.5\n", None)
    assert setup.run() == 0
    assert setup.manifest()["pyserial"].sha256 == want and pypi.drops["/simple/pyserial/"] == 0
    pypi.drops["/simple/pyserial/"] = pypi.garbles["/simple/pyserial/"] = 1  # a torn answer too
    assert setup.run() == 0 and pypi.garbles["/simple/pyserial/"] == 0
    pypi.drops["/simple/pyserial/"] = 3  # a third drop is an outage, named
    assert setup.run() == 1
    assert "wheel pyserial: cannot read" in capsys.readouterr().err


def test_a_wheel_whose_bytes_do_not_match_the_index_is_refused(
        setup: Setup, pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup)
    pypi.add("pyserial", "pyserial-3.5-py2.py3-none-any.whl", claimed="cd" * 32)
    setup.files(secure, "deb libc6\nwheel pyserial >=3.5\n", None)
    assert setup.run() == 1
    assert "expected " + "cd" * 32 in capsys.readouterr().err


def test_no_compatible_wheel_names_the_range(setup: Setup, pypi: FakePyPI,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup)
    pypi.add("tflite-runtime", "tflite_runtime-2.14.0-cp311-cp311-manylinux_2_34_aarch64.whl")
    setup.files(secure, "deb libc6\nwheel tflite-runtime >=2.14\n", None)
    assert setup.run() == 1
    assert "wheel tflite-runtime>=2.14: no release" in capsys.readouterr().err


def test_the_cache_is_trusted_by_hash_and_serves_a_rebuild_offline(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    secure, _ = _point_release(setup)
    setup.files(secure, "deb libc6\n", None)
    assert setup.run() == 0
    lock = setup.tmp / "manifest.lock"
    saved = setup.tmp / "saved.lock"
    shutil.copy(lock, saved)
    libc = setup.manifest()["libc6"]
    cached = setup.tmp / "cache/sha256" / libc.sha256
    assert cached.read_bytes() == b"libc6 2.41-2"
    # The mirror is gone: the cache alone rebuilds the same inputs.
    shutil.rmtree(setup.mirror.root)
    assert setup.run(str(saved), cmd="from-lock") == 0
    assert lock.read_text().splitlines()[2:] == saved.read_text().splitlines()[2:]
    # A cached file whose bytes no longer match its hash is not used.
    cached.write_bytes(b"libc6 2.41-2 with a backdoor")
    assert setup.run(str(saved), cmd="from-lock") == inputs.EXIT_STALE_INDEX
    assert "libc6 2.41-2" in capsys.readouterr().err
    assert not cached.exists()


def test_floating_file_gone_from_the_mirror_asks_for_a_fresh_index(setup: Setup) -> None:
    secure, _ = _point_release(setup)
    setup.files(secure, "deb libc6\n", None)
    (setup.mirror.root / "debian-security/pool/main/l/libc6/libc6_2.41-2_arm64.deb").unlink()
    assert setup.run() == inputs.EXIT_STALE_INDEX


def test_pin_secure_moves_every_secure_pin_to_the_newest(setup: Setup) -> None:
    secure, _ = _point_release(setup)
    setup.mirror.add_deb("trixie-updates", "optee-os", "4.5.0-3")
    setup.mirror.write_lists()
    setup.files(secure, "", None)
    assert inputs.main(["pin-secure", "--lists", str(setup.mirror.lists),
                        "--secure", str(setup.tmp / "secure.lock"),
                        "--archive", setup.mirror.archive,
                        "--security-archive", setup.mirror.security]) == 0
    pins = inputs.read_lock(setup.tmp / "secure.lock")
    assert [(p.kind, p.name, p.version) for p in pins] == [
        ("deb", "optee-os", "4.5.0-3"),
        ("src", "arm-trusted-firmware", "2.12.1+dfsg-1"),
        ("src", "arm-trusted-firmware", "2.12.1+dfsg-1")]
    assert "--pin secure" in (setup.tmp / "secure.lock").read_text()


def test_lock_lines_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "x.lock"
    bad.write_text("deb libc6 2.41-1 nothex http://x\n")
    with pytest.raises(inputs.InputError, match=r"x.lock:1: not 'KIND NAME VERSION"):
        inputs.read_lock(bad)


def test_committed_inputs_parse_and_pin_the_secure_world() -> None:
    here = ROOT / "scripts/qemu"
    pins = inputs.read_lock(here / "secure.lock")
    assert {p.name for p in pins} == {
        "optee-os", "optee-os-dev", "optee-test-qemu", "tee-supplicant", "libteec2",
        "libckteec0t64", "optee-client-dev", "arm-trusted-firmware"}
    floating = inputs.read_userland(here / "userland")
    assert not {f.name for f in floating} & {p.name for p in pins}
    ref = {(i.kind, i.name) for i in inputs.read_lock(here / "manifest.ref")}
    assert {(p.kind, p.name) for p in pins} <= ref
