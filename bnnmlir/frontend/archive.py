"""Loading a saved ``torch.export`` archive (``.pt2``) without running pickled code.

``torch.export.load`` falls back to unpickling (``weights_only=False``) for tensor subclasses,
custom and opaque objects, legacy ``.pt`` payloads and sample inputs that fail a safe load; that
executes whatever the file says. :func:`load_exported_program` inspects the archive first and
refuses any entry that would take such a path, then verifies every remaining ``.pt`` payload with
``torch.load(weights_only=True)``; only then does it call ``torch.export.load``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from bnnmlir.errors import CompileError, UnsafeArchiveError


def _unsafe_entries(archive: zipfile.ZipFile) -> list[str]:
    import torch
    from torch.export.pt2_archive import constants as pt2

    problems: list[str] = []
    names = archive.namelist()
    for name in names:
        base = name.rsplit("/", 1)[-1]
        in_constants = f"/{pt2.CONSTANTS_DIR}" in f"/{name}"
        if in_constants and base.startswith((pt2.CUSTOM_OBJ_FILENAME_PREFIX, pt2.OPAQUE_OBJ_FILENAME_PREFIX)):
            problems.append(f"{name}: a pickled object")
        elif name.endswith(".json") and "config" in base:
            try:
                config = json.loads(archive.read(name))
            except ValueError:
                problems.append(f"{name}: not valid JSON")
                continue
            for fqn, meta in (config.get("config") or {}).items():
                if isinstance(meta, dict) and meta.get("use_pickle"):
                    problems.append(f"{name}: '{fqn}' is stored pickled")
        elif name.endswith(".pt"):
            try:
                torch.load(io.BytesIO(archive.read(name)), weights_only=True)
            except Exception as e:  # noqa: BLE001 - any failure means it is not plain data
                problems.append(f"{name}: not loadable as plain tensors ({type(e).__name__})")
    if not any(n.endswith("archive_format") for n in names):
        problems.append("not a PT2 archive (legacy torch.export zip format)")
    return problems


def load_exported_program(path: str | Path):
    """Load ``path`` (written by ``torch.export.save``) safely; :class:`CompileError` otherwise."""
    import torch

    import bnnmlir.custom_ops  # noqa: F401 - registers the custom ops the graph may call

    path = Path(path)
    if not path.is_file():
        raise CompileError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            problems = _unsafe_entries(archive)
    except zipfile.BadZipFile:
        raise CompileError(f"{path}: not a torch.export archive (not a zip file)") from None
    if problems:
        raise UnsafeArchiveError(
            f"{path}: refusing to load, it would unpickle untrusted data:\n  "
            + "\n  ".join(problems)
        )
    try:
        return torch.export.load(str(path))
    except Exception as e:  # noqa: BLE001 - torch raises many types for malformed archives
        raise CompileError(f"{path}: cannot load the exported program: {e}") from None
