"""C sources of the bnnmlir runtime, shipped as package data.

The sources are found through the installed package (``importlib.resources``), so the runtime
can be built from a wheel install as well as from the source tree.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

HEADER = "bnnmlir_runtime.h"
SOURCES = ("parallel.c", "memory.c", "pack.c", "profile.c")


def source_dir() -> Path:
    """Directory holding the runtime header and C files."""
    root = resources.files(__name__)
    path = Path(str(root))
    if not (path / HEADER).is_file():
        raise FileNotFoundError(f"bnnmlir runtime sources not found in {path}")
    return path


def source_files() -> list[Path]:
    """The runtime's C files, in a fixed order."""
    directory = source_dir()
    return [directory / name for name in SOURCES]


def header_file() -> Path:
    return source_dir() / HEADER
