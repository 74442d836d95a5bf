"""Building the C runtime: a shared library for the host (JIT) and a static archive per C
cross-compiler (linked into aarch64 programs).

Builds are cached in ``$XDG_CACHE_HOME/bnnmlir`` (default ``~/.cache/bnnmlir``; override with
``BNNMLIR_CACHE_DIR``), keyed by a hash of the runtime sources, the compiler's identity and the
flags, so an edited source or another compiler gives a fresh build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from bnnmlir import runtime

C_FLAGS = ("-std=c11", "-O2", "-Wall", "-Wextra")
HOST_COMPILERS = ("cc", "gcc", "clang")


class RuntimeBuildError(RuntimeError):
    """The runtime could not be compiled (no C compiler, or the compiler failed)."""


def cache_dir() -> Path:
    explicit = os.environ.get("BNNMLIR_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bnnmlir"


def find_host_compiler() -> str:
    """Path of the host C compiler: ``$CC`` if set, else the first of cc, gcc, clang."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else list(HOST_COMPILERS)
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeBuildError(
        f"no C compiler found (looked for {', '.join(candidates)}); install gcc or set CC"
    )


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeBuildError(f"'{name}' is not on PATH")
    return path


@cache
def _compiler_identity(compiler: str) -> str:
    result = subprocess.run([compiler, "--version"], check=False, capture_output=True, text=True)
    return f"{compiler}\n{result.stdout}"


def _build_key(compiler: str, flags: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    digest.update(_compiler_identity(compiler).encode())
    digest.update("\0".join(flags).encode())
    for path in [runtime.header_file(), *runtime.source_files()]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeBuildError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{result.stderr}"
        )


def _publish(build, target: Path) -> Path:
    """Run ``build(tmp_path)`` in the cache dir and move the result to ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        build(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def build_host_shared_library(compiler: str | None = None) -> Path:
    """Compile the runtime into a shared library for the host and return its path."""
    compiler = compiler or find_host_compiler()
    flags = (*C_FLAGS, "-fPIC", "-shared", "-pthread")
    target = cache_dir() / f"libbnnmlir_runtime-{_build_key(compiler, flags)}.so"
    if target.is_file():
        return target
    sources = [str(p) for p in runtime.source_files()]

    def build(out: Path) -> None:
        _run([compiler, *flags, *sources, "-o", str(out)], "building the bnnmlir runtime")

    return _publish(build, target)


def build_static_library(compiler: str, archiver: str) -> Path:
    """Compile the runtime with ``compiler`` into a static archive (made with ``archiver``)."""
    compiler = require_tool(compiler)
    archiver = require_tool(archiver)
    flags = (*C_FLAGS, "-pthread")
    target = cache_dir() / f"libbnnmlir_runtime-{_build_key(compiler, flags)}.a"
    if target.is_file():
        return target

    def build(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="bnnmlir-rt-") as work:
            objects = []
            for source in runtime.source_files():
                obj = Path(work) / (source.stem + ".o")
                _run(
                    [compiler, *flags, "-c", str(source), "-o", str(obj)],
                    f"compiling {source.name}",
                )
                objects.append(str(obj))
            out.unlink()
            _run([archiver, "rcs", str(out), *objects], "archiving the bnnmlir runtime")

    return _publish(build, target)
