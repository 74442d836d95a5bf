"""Zip-level limits of an archive inspection: entry counts, sizes and ratios, bounded reads.

Every number here is checked from the zip directory before a byte of an entry is inflated, and
every read stops at a cap while it reads (a directory can lie about sizes): the memory an
inspection takes is bounded by :attr:`Limits.max_read`, whatever the entries claim or hold.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

MiB = 1 << 20
GiB = 1 << 30

# End-of-central-directory records (APPNOTE.TXT 4.3.14-4.3.16).
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CHUNK = MiB
_RATIO_FLOOR = MiB  # entries this small may compress as well as they like (a zero buffer)
_MAX_NAME = 1024


class LimitExceeded(Exception):
    """An archive exceeds a size, count or ratio limit (the message names it)."""


class BadEntry(Exception):
    """An entry cannot be read back as the directory describes it."""


@dataclass(frozen=True)
class Limits:
    """Bounds of an archive inspection.

    ``max_bytes``: total inflated size of all entries (the loader holds the weights in memory).
    ``max_ratio``: inflated / stored size of one entry above 1 MiB. ``torch.export.save`` stores
    entries (1:1); deflated, ±1.0 float32 weights give ~20:1, a bomb of zeros ~1000:1 (a tensor
    that is 99% zeros gives ~300:1 and needs a higher limit).
    ``max_entries``: entries in the archive (a model has a few per tensor).
    ``max_read``: bytes of one entry the inspection itself holds (JSON configs, sample inputs).
    """

    max_bytes: int = 16 * GiB
    max_ratio: float = 100.0
    max_entries: int = 100_000
    max_read: int = 128 * MiB

    ENV_MAX_BYTES = "BNNMLIR_ARCHIVE_MAX_BYTES"
    ENV_MAX_RATIO = "BNNMLIR_ARCHIVE_MAX_RATIO"

    @classmethod
    def from_env(cls, max_bytes: int | None = None, max_ratio: float | None = None) -> Limits:
        """The defaults, overridden by the environment, overridden by the arguments."""
        if max_bytes is None:
            max_bytes = _env_number(cls.ENV_MAX_BYTES, int, cls.max_bytes)
        if max_ratio is None:
            max_ratio = _env_number(cls.ENV_MAX_RATIO, float, cls.max_ratio)
        if max_bytes <= 0 or max_ratio < 1:
            raise ValueError(f"archive limits must be positive (max_bytes={max_bytes}, max_ratio={max_ratio})")
        return cls(max_bytes=max_bytes, max_ratio=max_ratio)

    def raise_hint(self) -> str:
        return (f"(limits: {self.max_bytes} bytes in all, ratio {self.max_ratio:g}:1; raise them with "
                f"{self.ENV_MAX_BYTES} / {self.ENV_MAX_RATIO} if the archive is trusted and genuine)")


def _env_number(name: str, kind: type, default):
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None


def check_end_record(file: BinaryIO, limits: Limits) -> None:
    """Refuse a central directory too big to parse, judged from the end records alone."""
    file.seek(0, os.SEEK_END)
    size = file.tell()
    tail_size = min(size, _EOCD.size + 0xFFFF)
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise BadEntry("no end of central directory record (not a complete zip file)")
    *_, entries, directory_size, directory_at, _ = _EOCD.unpack_from(tail, at)
    directory_end = size - tail_size + at  # where the central directory must end
    if at >= _ZIP64_LOCATOR.size and tail[at - _ZIP64_LOCATOR.size:][:4] == b"PK\x06\x07":
        _, _, directory_end, _ = _ZIP64_LOCATOR.unpack_from(tail, at - _ZIP64_LOCATOR.size)
        file.seek(directory_end)
        record = file.read(_ZIP64_EOCD.size)
        if len(record) != _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
            raise BadEntry("the zip64 end record is not where its locator says")
        *_, entries, directory_size, directory_at = _ZIP64_EOCD.unpack(record)
    if directory_at + directory_size != directory_end:
        # Python's zipfile then shifts every offset, torch's reader does not: they would read
        # different bytes (data before the archive, or a second directory).
        raise BadEntry("the central directory is not where the end record says")
    if entries > limits.max_entries:
        raise LimitExceeded(f"{entries} entries (at most {limits.max_entries})")
    if directory_size > limits.max_entries * (46 + _MAX_NAME):
        raise LimitExceeded(f"a central directory of {directory_size} bytes for {entries} entries")


def check_directory(infos: list[zipfile.ZipInfo], limits: Limits, cap: int) -> None:
    """Names, duplicates, methods, declared sizes and ratios; ``cap`` bounds the total."""
    if len(infos) > limits.max_entries:
        raise LimitExceeded(f"{len(infos)} entries (at most {limits.max_entries})")
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if info.orig_filename != name or not name.isprintable() or "\\" in name or len(name) > _MAX_NAME:
            raise BadEntry(f"entry name {info.orig_filename!r} is not a plain printable path")
        if not name.isascii() and not info.flag_bits & 0x800:
            raise BadEntry(f"entry name {name!r} is not ASCII and not marked UTF-8")
        if name.lower() in seen:  # torch's zip reader looks names up ignoring case
            raise BadEntry(f"{name}: the name occurs twice, ignoring case (readers disagree on which counts)")
        seen.add(name.lower())
        if info.flag_bits & 0x1:
            raise BadEntry(f"{name}: encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BadEntry(f"{name}: compression method {info.compress_type} (only stored or deflated)")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise BadEntry(f"{name}: stored, yet declares {info.file_size} bytes in {info.compress_size}")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR and ratio > limits.max_ratio:
            raise LimitExceeded(
                f"{name}: inflates {info.compress_size} bytes to {info.file_size} (ratio {ratio:.0f}:1, "
                f"at most {limits.max_ratio:g}:1; no tensor data compresses like that)")
        total += info.file_size
        if total > cap:
            raise LimitExceeded(f"the entries inflate to more than {cap} bytes")


def read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """The bytes of ``info``, refusing more than ``cap`` whatever the directory says."""
    if info.file_size > cap:
        raise LimitExceeded(f"{info.filename}: {info.file_size} bytes (at most {cap} are read for inspection)")
    chunks: list[bytes] = []
    _stream(archive, info, cap, chunks.append)
    return b"".join(chunks)


def drain_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Inflate ``info`` chunk by chunk, keeping nothing: its size and checksum must hold."""
    _stream(archive, info, info.file_size, lambda chunk: None)


def _stream(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, sink) -> None:
    total = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                total += len(chunk)
                if total > min(cap, info.file_size):
                    raise LimitExceeded(f"{info.filename}: inflates past its declared {info.file_size} bytes")
                sink(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as e:
        raise BadEntry(f"{info.filename}: unreadable ({e})") from None
    if total != info.file_size:
        raise BadEntry(f"{info.filename}: holds {total} bytes, the directory says {info.file_size}")
