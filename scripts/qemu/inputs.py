"""Resolves, fetches and records the inputs of the QEMU OP-TEE image.

Two kinds of inputs (docs/qemu.md, "Inputs"):

* secure-world pins (scripts/qemu/secure.lock): OP-TEE OS and its TA dev kit,
  the OP-TEE client and test packages, the TF-A source. Exact version, sha256
  and pool path, moved only by ``pin-secure`` in a reviewed commit. A pin that
  has left the index is fetched from its pool path and checked against the
  recorded sha256; when that fails too, the build stops naming the package,
  the pin and the version the index serves now.
* floating inputs (scripts/qemu/userland): the guest userland and kernel,
  resolved from trixie, trixie-updates and trixie-security (newest version
  wins), and cp313/aarch64 wheels resolved from PyPI's simple API inside a
  version range.

Every download is checked against the sha256 from the signed Debian index
(apt verified its InRelease) or from PyPI, and kept in a cache addressed by
that hash, outside the work tree. What was resolved is written to
build/qemu/manifest.lock; drift against the committed reference manifest is a
warning, or an error in strict mode.

Runs under the project's virtualenv (``packaging`` for wheel tags); the
Debian version order comes from ``dpkg --compare-versions``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

DEBIAN = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
PYPI_SIMPLE = "https://pypi.org/simple"
GUEST_PYTHON = (3, 13)
ARCH = "arm64"

# Exit codes the build script acts on.
EXIT_ERROR = 1
EXIT_STALE_INDEX = 3  # a floating input vanished from the mirror: refresh the index, retry
EXIT_DRIFT = 4  # strict mode and the manifest drifted from the reference


class InputError(Exception):
    """An input cannot be resolved or fetched; the message names it and what to do."""

    exit_code = EXIT_ERROR


class StaleIndex(InputError):
    """The index names a file the mirror no longer serves."""

    exit_code = EXIT_STALE_INDEX


@dataclass(frozen=True)
class Input:
    """One resolved input: a .deb, a source package file or a wheel."""

    kind: str  # deb | src | wheel
    name: str
    version: str
    sha256: str
    url: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def line(self) -> str:
        return f"{self.kind} {self.name} {self.version} {self.sha256} {self.url}"


# ---------------------------------------------------------------- lock files

def read_lock(path: Path) -> list[Input]:
    """Inputs from a lock file (secure.lock, manifest.lock, manifest.ref)."""
    out = []
    for no, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.split()[0] in ("index", "toolchain"):
            continue
        parts = line.split()
        if len(parts) != 5 or parts[0] not in ("deb", "src", "wheel") \
                or not re.fullmatch(r"[0-9a-f]{64}", parts[3]):
            raise InputError(f"{path}:{no}: not 'KIND NAME VERSION SHA256 URL': {raw!r}")
        out.append(Input(*parts))
    return out


def read_meta(path: Path) -> dict[str, str]:
    """The index dates and toolchain lines of a manifest, keyed 'index trixie' etc."""
    meta = {}
    for raw in path.read_text().splitlines():
        parts = raw.split(None, 2)
        if len(parts) == 3 and parts[0] in ("index", "toolchain"):
            meta[f"{parts[0]} {parts[1]}"] = parts[2]
    return meta


def write_lock(path: Path, header: str, meta: dict[str, str], inputs: Iterable[Input]) -> None:
    lines = [f"# {h}" if h else "#" for h in header.splitlines()]
    lines += [f"{k} {v}" for k, v in meta.items()]
    lines += [i.line() for i in inputs]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------- the Debian index

def apt_list_name(base: str, suite: str, tail: str) -> str:
    """The file name apt gives a downloaded index file in its lists directory."""
    uri = re.sub(r"^[a-z]+://", "", f"{base}/dists/{suite}/{tail}")
    return uri.replace("/", "_")


def debian_version_key() -> object:
    @functools.cache
    def greater(a: str, b: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0

    def cmp(a: str, b: str) -> int:
        return 0 if a == b else (1 if greater(a, b) else -1)

    return functools.cmp_to_key(cmp)


VERSION_KEY = debian_version_key()


@dataclass(frozen=True)
class Candidate:
    """A binary or source package version the index offers."""

    name: str
    version: str
    suite: str
    files: tuple[Input, ...]  # one .deb; or the .dsc and its tarballs
    depends: str = ""


def _stanzas(text: str, wanted: set[str]) -> Iterator[dict[str, str]]:
    for block in text.split("\n\n"):
        if not block.startswith("Package: "):
            continue
        name = block[9:block.index("\n")] if "\n" in block else block[9:]
        if name not in wanted:
            continue
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t"):
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        yield fields


def _read_list(path: Path) -> str:
    # apt.sh sets Acquire::GzipIndexes=false: apt keeps its lists uncompressed.
    if path.exists():
        return path.read_text(errors="replace")
    raise InputError(f"apt index file {path.name} is missing in {path.parent}: the private "
                     "apt update did not run or failed (scripts/qemu/build.sh runs it)")


class AptIndex:
    """The arm64 Packages and the Sources of the trixie suites, from apt's lists directory.

    apt checked these files against the InRelease files it verified with the
    trixie archive key, so their sha256 fields are trusted.
    """

    def __init__(self, lists: Path, suites: Iterable[tuple[str, str]]) -> None:
        """``suites``: (archive base URL, suite name) pairs, as in apt's sources."""
        self.lists = lists
        self.suites = tuple(suites)

    def dates(self) -> dict[str, str]:
        """Each suite's InRelease date, ISO 8601 UTC."""
        out = {}
        for base, suite in self.suites:
            text = _read_list(self.lists / apt_list_name(base, suite, "InRelease"))
            m = re.search(r"^Date: (.+)$", text, re.M)
            if not m:
                raise InputError(f"no Date in the {suite} InRelease")
            out[suite] = parsedate_to_datetime(m.group(1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return out

    def binaries(self, names: set[str]) -> dict[str, list[Candidate]]:
        found: dict[str, list[Candidate]] = {n: [] for n in names}
        for base, suite in self.suites:
            text = _read_list(self.lists / apt_list_name(
                base, suite, f"main/binary-{ARCH}/Packages"))
            for f in _stanzas(text, names):
                if f.get("Architecture") not in (ARCH, "all"):
                    continue
                deb = Input("deb", f["Package"], f["Version"], f["SHA256"],
                            f"{base}/{f['Filename']}")
                found[f["Package"]].append(Candidate(
                    f["Package"], f["Version"], suite, (deb,), f.get("Depends", "")))
        return found

    def sources(self, names: set[str]) -> dict[str, list[Candidate]]:
        found: dict[str, list[Candidate]] = {n: [] for n in names}
        for base, suite in self.suites:
            text = _read_list(self.lists / apt_list_name(base, suite, "main/source/Sources"))
            for f in _stanzas(text, names):
                files = []
                for entry in f.get("Checksums-Sha256", "").split("\n"):
                    parts = entry.split()
                    if len(parts) == 3:
                        files.append(Input("src", f["Package"], f["Version"], parts[0],
                                           f"{base}/{f['Directory']}/{parts[2]}"))
                found[f["Package"]].append(Candidate(f["Package"], f["Version"], suite,
                                                     tuple(files)))
        return found

    @staticmethod
    def newest(cands: list[Candidate]) -> Candidate:
        return max(cands, key=lambda c: VERSION_KEY(c.version))


# ---------------------------------------------------------------- wheels

def guest_wheel_tags(glibc: tuple[int, int]) -> list[Tag]:
    """Wheel tags the guest's CPython 3.13 on aarch64 with this glibc accepts, best first."""
    platforms = [f"manylinux_{glibc[0]}_{minor}_aarch64" for minor in range(glibc[1], 16, -1)]
    platforms.append("manylinux2014_aarch64")
    py = GUEST_PYTHON
    abi = f"cp{py[0]}{py[1]}"
    return [*cpython_tags(py, [abi], platforms),
            *compatible_tags(py, abi, platforms)]


def glibc_of(libc6_version: str) -> tuple[int, int]:
    m = re.match(r"(?:\d+:)?(\d+)\.(\d+)", libc6_version)
    if not m:
        raise InputError(f"cannot read a glibc version from libc6 {libc6_version}")
    return int(m.group(1)), int(m.group(2))


def resolve_wheel(name: str, spec: str, tags: list[Tag], simple: str) -> Input:
    """The newest release in ``spec`` with a wheel for ``tags``, from a PEP 691 index."""
    url = f"{simple}/{canonicalize_name(name)}/"
    req = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    for attempt in range(3):
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                files = json.load(resp)["files"]
            break
        except urllib.error.HTTPError as exc:  # the index answered: retrying changes nothing
            raise InputError(f"wheel {name}: cannot read {url}: {exc}") from exc
        except (ValueError, KeyError) as exc:
            raise InputError(f"wheel {name}: {url} is not a PEP 691 index page: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:  # reset, refused, timed out, a
            # torn status line: an index under load drops some
            if attempt == 2:
                raise InputError(f"wheel {name}: cannot read {url}: {exc}") from exc
            time.sleep(1 + attempt)
    rank = {t: i for i, t in enumerate(tags)}
    specifier = SpecifierSet(spec)
    best: tuple[object, int, Input] | None = None
    for f in files:
        fname = f.get("filename", "")
        if not fname.endswith(".whl") or f.get("yanked"):
            continue
        try:
            _, version, _, ftags = parse_wheel_filename(fname)
        except ValueError:
            continue
        if version.is_prerelease or version not in specifier:
            continue
        score = min((rank[t] for t in ftags if t in rank), default=None)
        sha = f.get("hashes", {}).get("sha256")
        if score is None or not sha:
            continue
        cand = Input("wheel", str(canonicalize_name(name)), str(version), sha,
                     urllib.parse.urljoin(url, f["url"]))
        key = (version, -score)
        if best is None or key > best[:2]:
            best = (version, -score, cand)
    if best is None:
        raise InputError(f"wheel {name}{spec}: no release on {simple} has a wheel for "
                         f"cp{GUEST_PYTHON[0]}{GUEST_PYTHON[1]} on aarch64; widen the range "
                         "in scripts/qemu/userland")
    return best[2]


# ---------------------------------------------------------------- the cache

class Cache:
    """Downloads kept by sha256; a cached file is trusted by its hash, not its name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._verified: set[str] = set()  # hashed in this process already
        (root / "sha256").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256

    def get(self, item: Input) -> Path:
        """The verified local file of ``item``, downloaded when not cached."""
        path = self.path(item.sha256)
        if item.sha256 in self._verified and path.exists():
            return path
        if path.exists():
            if _sha256_file(path) == item.sha256:
                self._verified.add(item.sha256)
                return path
            path.unlink()  # damaged or substituted: fetch again
        self._download(item, path)
        self._verified.add(item.sha256)
        return path

    def _download(self, item: Input, dest: Path) -> None:
        last: Exception | None = None
        for attempt in range(3):
            try:
                with urllib.request.urlopen(item.url, timeout=120) as resp, \
                        tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
                    digest = hashlib.sha256()
                    while chunk := resp.read(1 << 20):
                        digest.update(chunk)
                        tmp.write(chunk)
                if digest.hexdigest() != item.sha256:
                    os.unlink(tmp.name)
                    raise InputError(
                        f"{item.kind} {item.name} {item.version}: {item.url} has sha256 "
                        f"{digest.hexdigest()}, expected {item.sha256}; refused")
                os.replace(tmp.name, dest)
                return
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise StaleIndex(f"{item.kind} {item.name} {item.version}: "
                                     f"{item.url}: not found (404)") from exc
                last = exc
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, FileNotFoundError):  # a file:// mirror
                    raise StaleIndex(f"{item.kind} {item.name} {item.version}: "
                                     f"{item.url}: not found") from exc
                last = exc
            except (OSError, http.client.HTTPException) as exc:
                last = exc
            time.sleep(1 + attempt)
        raise InputError(f"{item.kind} {item.name} {item.version}: cannot download "
                         f"{item.url}: {last}")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- resolution

@dataclass(frozen=True)
class FloatSpec:
    """A line of scripts/qemu/userland."""

    kind: str  # deb | kernel | wheel
    name: str
    spec: str = ""


def read_userland(path: Path) -> list[FloatSpec]:
    out = []
    for no, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if parts[0] not in ("deb", "kernel", "wheel") or len(parts) < 2 \
                or (parts[0] != "wheel" and len(parts) != 2):
            raise InputError(f"{path}:{no}: not 'deb NAME', 'kernel META' or "
                             f"'wheel NAME RANGE': {raw!r}")
        out.append(FloatSpec(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))
    return out


def check_secure(pins: list[Input], index: AptIndex, cache: Cache,
                 log: Callable[[str], None] = print) -> list[Path]:
    """Fetch every secure pin, from the index or else from its pool path, by its sha256."""
    debs = {p.name for p in pins if p.kind == "deb"}
    srcs = {p.name for p in pins if p.kind == "src"}
    # Keyed by kind too: optee-os is both a binary and a source package.
    served = {**{("deb", n): c for n, c in index.binaries(debs).items()},
              **{("src", n): c for n, c in index.sources(srcs).items()}}
    paths = []
    for pin in pins:
        offered = {f.url: f for c in served[pin.kind, pin.name] if c.version == pin.version
                   for f in c.files}
        if pin.url in offered and offered[pin.url].sha256 != pin.sha256:
            raise InputError(
                f"secure pin {pin.name} {pin.version}: the signed index says sha256 "
                f"{offered[pin.url].sha256} for {pin.filename}, the pin says {pin.sha256}; "
                "refused (review, then scripts/qemu/build.sh --pin secure)")
        try:
            paths.append(cache.get(pin))
        except InputError as exc:
            now = ", ".join(sorted({c.version for c in served[pin.kind, pin.name]},
                                   key=VERSION_KEY)) or "nothing"
            raise InputError(
                f"secure pin {pin.name} {pin.version} is in neither the index (which serves "
                f"{now}) nor the pool ({exc}); review the new version, then run "
                "scripts/qemu/build.sh --pin secure") from exc
        if pin.url not in offered:
            log(f"qemu/inputs: secure pin {pin.name} {pin.version} has left the index; "
                "taken from its pool path, sha256 checked")
    return paths


def resolve_floating(specs: list[FloatSpec], index: AptIndex, simple: str) -> list[Input]:
    """Today's versions of the guest userland, kernel and wheels."""
    names = {s.name for s in specs if s.kind in ("deb", "kernel")}
    served = index.binaries(names)
    out: list[Input] = []
    for s in specs:
        if s.kind == "wheel" or not served.get(s.name):
            if s.kind != "wheel":
                raise InputError(f"deb {s.name}: not in trixie/{ARCH} (scripts/qemu/userland)")
            continue
        cand = index.newest(served[s.name])
        if s.kind == "kernel":
            m = re.search(r"(linux-image-[^\s,|(]+-arm64)", cand.depends)
            if not m:
                raise InputError(f"kernel: {s.name} {cand.version} depends on no linux-image")
            image = index.binaries({m.group(1)})[m.group(1)]
            if not image:
                raise InputError(f"kernel: {s.name} names {m.group(1)}, not in the index")
            cand = index.newest(image)
        out.extend(cand.files)
    libc = next((i for i in out if i.name == "libc6"), None)
    if libc is None and any(s.kind == "wheel" for s in specs):
        raise InputError("scripts/qemu/userland: wheels need libc6 listed (its version "
                         "decides the manylinux tags)")
    tags = guest_wheel_tags(glibc_of(libc.version)) if libc else []
    out.extend(resolve_wheel(s.name, s.spec, tags, simple) for s in specs if s.kind == "wheel")
    return out


def drift(current: list[Input], reference: list[Input]) -> list[str]:
    """Human lines for every input whose version or bytes differ from the reference."""
    def by_name(items: list[Input]) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
        grouped: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        for i in items:  # a source package is several files of one version
            _, shas = grouped.get((i.kind, i.name), (i.version, ()))
            grouped[(i.kind, i.name)] = (i.version, tuple(sorted((*shas, i.sha256))))
        return grouped

    cur, ref = by_name(current), by_name(reference)
    lines = []
    for key in sorted(cur.keys() | ref.keys()):
        a, b = ref.get(key), cur.get(key)
        label = f"{key[0]} {key[1]}"
        if a is None:
            lines.append(f"{label}: new, {b[0]}")
        elif b is None:
            lines.append(f"{label}: gone (reference {a[0]})")
        elif a[0] != b[0]:
            lines.append(f"{label}: {a[0]} -> {b[0]}")
        elif a[1] != b[1]:
            lines.append(f"{label} {a[0]}: same version, other bytes")
    return lines


def link_inputs(dest: Path, cache: Cache, items: list[Input]) -> None:
    """dest/{debs,src/NAME,wheels}/FILENAME -> the cached, verified files."""
    shutil.rmtree(dest, ignore_errors=True)
    for item in items:
        sub = {"deb": Path("debs"), "src": Path("src") / item.name, "wheel": Path("wheels")}
        folder = dest / sub[item.kind]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / urllib.parse.unquote(item.filename)).symlink_to(cache.get(item))


def toolchain() -> str:
    try:
        out = subprocess.run(["aarch64-linux-gnu-gcc", "-dumpfullversion"], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "missing"
    return f"aarch64-linux-gnu-gcc {out}"


SECURE_HEADER = """\
Secure-world inputs of the QEMU image (OP-TEE OS and TA dev kit, OP-TEE client and
tests, TF-A source), hard-pinned: kind name version sha256 url, from the signed trixie
index. Move them only with `scripts/qemu/build.sh --pin secure`, in a reviewed commit."""

MANIFEST_HEADER = """\
Inputs of the QEMU OP-TEE image, as resolved by scripts/qemu/inputs.py.
kind name version sha256 url; index lines: the signed index's date per suite."""


# ---------------------------------------------------------------- commands

def _suites(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    return ((args.archive, "trixie"), (args.archive, "trixie-updates"),
            (args.security_archive, "trixie-security"))


def cmd_resolve(args: argparse.Namespace) -> int:
    cache = Cache(args.cache)
    index = AptIndex(args.lists, _suites(args))
    secure = read_lock(args.secure)
    check_secure(secure, index, cache)
    floating = resolve_floating(read_userland(args.userland), index, args.pypi)
    items = secure + floating
    meta = {f"index {k}": v for k, v in index.dates().items()}
    meta["toolchain cc"] = toolchain()
    return _finish(args, cache, items, meta)


def cmd_from_lock(args: argparse.Namespace) -> int:
    cache = Cache(args.cache)
    items = read_lock(args.lock)
    for item in items:
        cache.get(item)
    meta = read_meta(args.lock)
    meta["toolchain cc"] = toolchain()
    return _finish(args, cache, items, meta)


def _finish(args: argparse.Namespace, cache: Cache, items: list[Input],
            meta: dict[str, str]) -> int:
    link_inputs(args.inputs, cache, items)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_lock(args.out, MANIFEST_HEADER, meta, items)
    if not args.reference.exists():
        print(f"qemu/inputs: warning: no reference manifest {args.reference}", file=sys.stderr)
        return EXIT_DRIFT if args.strict else 0
    changes = drift(items, read_lock(args.reference))
    ref_cc = read_meta(args.reference).get("toolchain cc")
    if ref_cc and ref_cc != meta["toolchain cc"]:
        changes.append(f"toolchain: {ref_cc} -> {meta['toolchain cc']}")
    if changes:
        word = "error" if args.strict else "warning"
        print(f"qemu/inputs: {word}: {len(changes)} input(s) drifted from {args.reference}:",
              file=sys.stderr)
        for line in changes:
            print(f"qemu/inputs:   {line}", file=sys.stderr)
        if args.strict:
            print("qemu/inputs: strict mode (EDGE_QEMU_STRICT=1): refusing to build; build "
                  "from the reference with EDGE_QEMU_LOCK=scripts/qemu/manifest.ref, or "
                  "move it with scripts/qemu/build.sh --pin reference", file=sys.stderr)
            return EXIT_DRIFT
    return 0


def cmd_pin_secure(args: argparse.Namespace) -> int:
    index = AptIndex(args.lists, _suites(args))
    old = read_lock(args.secure)
    new: list[Input] = []
    for kind, name in dict.fromkeys((p.kind, p.name) for p in old):
        served = (index.binaries if kind == "deb" else index.sources)({name})[name]
        if not served:
            raise InputError(f"{kind} {name}: not in the index; cannot pin")
        new.extend(index.newest(served).files)
    write_lock(args.secure, SECURE_HEADER, {}, new)
    for line in drift(new, old) or ["(unchanged)"]:
        print(f"qemu/inputs: secure pins: {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/qemu/inputs.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    here = Path(__file__).resolve().parent
    cache_default = Path(os.environ.get("EDGE_QEMU_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge" / "qemu")

    def archives(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--lists", type=Path, required=True, help="apt's lists directory")
        sp.add_argument("--secure", type=Path, default=here / "secure.lock")
        sp.add_argument("--archive", default=DEBIAN, help="trixie, trixie-updates")
        sp.add_argument("--security-archive", default=DEBIAN_SECURITY, help="trixie-security")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cache", type=Path, default=cache_default)
        sp.add_argument("--inputs", type=Path, required=True,
                        help="folder to fill with links to the verified files")
        sp.add_argument("--out", type=Path, required=True, help="manifest.lock to write")
        sp.add_argument("--reference", type=Path, default=here / "manifest.ref")
        sp.add_argument("--strict", action="store_true",
                        default=os.environ.get("EDGE_QEMU_STRICT") == "1")

    r = sub.add_parser("resolve", help="resolve today's inputs, fetch, write the manifest")
    common(r)
    archives(r)
    r.add_argument("--userland", type=Path, default=here / "userland")
    r.add_argument("--pypi", default=PYPI_SIMPLE)
    r.set_defaults(func=cmd_resolve)

    f = sub.add_parser("from-lock", help="fetch exactly the inputs of a manifest")
    common(f)
    f.add_argument("lock", type=Path)
    f.set_defaults(func=cmd_from_lock)

    s = sub.add_parser("pin-secure", help="move secure.lock to the index's newest versions")
    archives(s)
    s.set_defaults(func=cmd_pin_secure)

    args = p.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"qemu/build: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
