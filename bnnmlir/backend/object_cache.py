"""A compile cache of object code on disk, so compiling the same model again skips LLVM.

An entry is the object code made from one LLVM IR text for one target machine. Its key hashes
everything the bytes depend on: the IR text, the triple, CPU and features, the code generation
options (JIT or position-independent, speed level), and the versions of bnnmlir, llvmlite and LLVM.

Entries live in ``<cache dir>/objects`` (the cache dir is that of the runtime builds:
``$BNNMLIR_CACHE_DIR``, else ``$XDG_CACHE_HOME/bnnmlir``, else ``~/.cache/bnnmlir``). A file is

    magic (8 bytes) | format version (u32) | payload length (u64) | sha256(payload) | payload

and is written to a temporary file in the same directory, then renamed over the entry
(``os.replace``), so concurrent writers never expose a partial file. An entry whose magic,
version, length or checksum does not match is treated as absent, removed and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from bnnmlir.backend.runtime_build import cache_dir

MAGIC = b"BNNOBJ\0\1"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQ32s")

CacheOption = bool | str | os.PathLike | None
"""What ``cache=`` accepts: ``None``/``True`` (the default directory), ``False`` (no cache), or a
directory."""


def cache_key(ir: str, triple: str, cpu: str, features: str, options: str) -> str:
    """Hex digest naming the object code of ``ir`` for this target machine and these options."""
    digest = hashlib.sha256()
    from bnnmlir import __version__

    versions = (__version__, llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)))
    for part in (*versions, triple, cpu, features, options):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(ir.encode())
    return digest.hexdigest()


def encode_entry(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest()) + payload


def decode_entry(data: bytes) -> bytes | None:
    """The payload of a cache file, or ``None`` if the file is damaged or of another format."""
    if len(data) < _HEADER.size:
        return None
    magic, version, length, checksum = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if magic != MAGIC or version != FORMAT_VERSION or length != len(payload):
        return None
    if hashlib.sha256(payload).digest() != checksum:
        return None
    return payload


class ObjectCache:
    """Object code by key in ``directory`` (created when the first entry is written)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.o.bnn"

    def load(self, key: str) -> bytes | None:
        """The cached bytes, or ``None`` (absent or damaged: a damaged entry is removed)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        payload = decode_entry(data)
        if payload is None:
            try:
                path.unlink()
            except OSError:
                pass
        return payload

    def store(self, key: str, payload: bytes) -> None:
        """Write an entry atomically; a cache that cannot be written is skipped silently."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f"{key}.", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encode_entry(payload))
            os.replace(tmp, self.path(key))
        except OSError:
            pass
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def get_or_make(self, key: str, make: Callable[[], bytes]) -> tuple[bytes, bool]:
        """``(bytes, hit)``: the cached entry, else ``make()`` stored under ``key``."""
        payload = self.load(key)
        if payload is not None:
            return payload, True
        payload = make()
        self.store(key, payload)
        return payload, False


def resolve_cache(cache: CacheOption) -> ObjectCache | None:
    """The cache that ``cache=`` names: ``False`` none, ``None``/``True`` the default directory
    (``<cache dir>/objects``), a path that directory."""
    if cache is False:
        return None
    if cache is None or cache is True:
        return ObjectCache(cache_dir() / "objects")
    return ObjectCache(cache)
