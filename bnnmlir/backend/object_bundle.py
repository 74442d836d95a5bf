"""Several object files as one byte string: what the host JIT gets when a module's parts were
compiled in separate processes (:func:`bnnmlir.backend.parallel_opt.objects_in_parts`), stored
in the compile cache as one entry.

Format: :data:`MAGIC`, a line of JSON (the list of object sizes), the objects back to back. A
single object is stored as it is (an ELF object never starts with :data:`MAGIC`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

MAGIC = b"bnnmlir-objects-1\n"


def bundle(objects: Sequence[bytes]) -> bytes:
    """``objects`` as one byte string (a single object unchanged)."""
    if len(objects) == 1:
        return bytes(objects[0])
    sizes = json.dumps([len(o) for o in objects]).encode()
    return MAGIC + sizes + b"\n" + b"".join(objects)


def unbundle(data: bytes) -> list[bytes]:
    """The objects of :func:`bundle`'s ``data``; ``ValueError`` if it is truncated or padded."""
    if not data.startswith(MAGIC):
        return [data]
    header, newline, body = data[len(MAGIC):].partition(b"\n")
    try:
        sizes = json.loads(header) if newline else None
    except ValueError:
        sizes = None
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError("damaged object bundle: its sizes do not match its data")
    try:
        return split_by_sizes(body, sizes)
    except ValueError:
        raise ValueError("damaged object bundle: its sizes do not match its data") from None


def split_by_sizes(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut into consecutive pieces of ``sizes`` bytes; ``ValueError`` unless they add
    up to its length."""
    if sum(sizes) != len(data):
        raise ValueError(f"{len(data)} bytes, but the sizes add up to {sum(sizes)}")
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(data[offset:offset + size])
        offset += size
    return pieces
