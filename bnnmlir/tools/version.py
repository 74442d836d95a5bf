"""The ``--version`` text of the command-line tools: bnnmlir's version and those of the libraries
whose behaviour a bug report depends on (PyTorch, xDSL, llvmlite), plus Python's."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = ("torch", "xdsl", "llvmlite")


def _version_of(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def version_text(prog: str) -> str:
    """``PROG VERSION`` then one line per library, e.g. ``torch 2.13.0+cpu``."""
    lines = [f"{prog} {_version_of('bnnmlir')}"]
    lines += [f"{name} {_version_of(name)}" for name in LIBRARIES]
    lines.append(f"python {platform.python_version()} ({platform.machine()})")
    return "\n".join(lines)
