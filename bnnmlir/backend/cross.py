"""Running aarch64 code under qemu: a harness for tests and demos.

Given an aarch64 ELF object and the name of a function ``void entry(void *, ...)`` that takes
buffers in the order of the lowering contract (inputs, outputs, then optionally the arena; integer
arguments such as a batch size may come first), a
small C ``main`` is generated that reads every buffer from a file, calls the function, and writes
the outputs back. It is linked statically with the runtime (``aarch64-linux-gnu-gcc -static``)
and run with ``qemu-aarch64``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bnnmlir import runtime
from bnnmlir.backend.runtime_build import build_static_library

CROSS_CC = "aarch64-linux-gnu-gcc"
CROSS_AR = "aarch64-linux-gnu-ar"
QEMU = "qemu-aarch64"
REQUIRED_TOOLS = (CROSS_CC, CROSS_AR, QEMU)


class CrossToolError(RuntimeError):
    """A tool of the aarch64 harness is missing, or building or running the program failed."""


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def available() -> bool:
    """Whether the cross compiler, archiver and qemu-aarch64 are all on PATH."""
    return not missing_tools()


def _require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise CrossToolError(
            f"aarch64 execution needs {', '.join(missing)} on PATH "
            "(Debian: apt-get install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)"
        )


def generate_main(
    entry: str,
    sizes: Sequence[int],
    num_outputs: int,
    arena_bytes: int | None,
    num_threads: int = 1,
    scalar_args: Sequence[int] = (),
    repeat: int = 1,
) -> str:
    """C source of a ``main`` whose arguments are one file per buffer (inputs then outputs): it
    reads them all, calls ``entry`` with ``scalar_args`` (as ``int64_t``, e.g. a batch size),
    the buffers (and a zeroed arena of ``arena_bytes`` when given), and writes the last
    ``num_outputs`` buffers back to their files. With ``repeat > 1`` it calls ``entry`` that
    many times and each output file holds the outputs of every call, one after the other."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", entry):
        raise ValueError(f"entry point '{entry}' is not a C identifier")
    count = len(sizes)
    params = ["int64_t"] * len(scalar_args) + ["void *"] * (count + (arena_bytes is not None))
    lines = [
        "#include <stdio.h>",
        "#include <stdlib.h>",
        '#include "bnnmlir_runtime.h"',
        "",
        f"void {entry}({', '.join(params) or 'void'});",
        "",
        "static void *read_buffer(const char *path, int64_t bytes) {",
        "    void *data = bnnmlir_arena_alloc(bytes);",
        '    FILE *file = fopen(path, "rb");',
        "    if (data == NULL || file == NULL || fread(data, 1, (size_t)bytes, file) != (size_t)bytes) {",
        '        fprintf(stderr, "cannot read %lld bytes from %s\\n", (long long)bytes, path);',
        "        exit(2);",
        "    }",
        "    fclose(file);",
        "    return data;",
        "}",
        "",
        "static void write_buffer(const char *path, const void *data, int64_t bytes, int call) {",
        '    FILE *file = fopen(path, call == 0 ? "wb" : "ab");',
        "    if (file == NULL || fwrite(data, 1, (size_t)bytes, file) != (size_t)bytes || fclose(file) != 0) {",
        '        fprintf(stderr, "cannot write %s\\n", path);',
        "        exit(3);",
        "    }",
        "}",
        "",
        "int main(int argc, char **argv) {",
        f"    if (argc != {count + 1}) {{",
        f'        fprintf(stderr, "usage: %s <{count} buffer files>\\n", argv[0]);',
        "        return 1;",
        "    }",
        f"    bnnmlir_set_num_threads({num_threads});",
    ]
    for index, size in enumerate(sizes):
        lines.append(f"    void *buffer{index} = read_buffer(argv[{index + 1}], {size});")
    args = [f"INT64_C({int(value)})" for value in scalar_args]
    args += [f"buffer{index}" for index in range(count)]
    if arena_bytes is not None:
        lines.append(f"    void *arena = bnnmlir_arena_alloc({arena_bytes});")
        lines.append(
            '    if (arena == NULL) { fprintf(stderr, "arena allocation failed\\n"); return 4; }'
        )
        args.append("arena")
    lines.append(f"    for (int call = 0; call < {repeat}; call++) {{")
    lines.append(f"        {entry}({', '.join(args)});")
    for index in range(count - num_outputs, count):
        lines.append(
            f"        write_buffer(argv[{index + 1}], buffer{index}, {sizes[index]}, call);"
        )
    lines += ["    }", "    return 0;", "}", ""]
    return "\n".join(lines)


def _run(command: list[str], what: str, cwd: Path, timeout: float | None = None) -> None:
    try:
        result = subprocess.run(
            command, check=False, capture_output=True, text=True, cwd=cwd, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:
        raise CrossToolError(f"{what} timed out after {timeout} s: {' '.join(command)}") from error
    if result.returncode != 0:
        raise CrossToolError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"{result.stdout}{result.stderr}"
        )


def link_program(obj: bytes, main_source: str, workdir: Path) -> Path:
    """Link ``main_source`` with the object and the aarch64 runtime into ``workdir/prog``."""
    _require_tools()
    library = build_static_library(CROSS_CC, CROSS_AR)
    (workdir / "kernel.o").write_bytes(obj)
    (workdir / "main.c").write_text(main_source)
    program = workdir / "prog"
    command = [
        CROSS_CC,
        "-std=c11",
        "-O2",
        "-static",
        f"-I{runtime.source_dir()}",
        "main.c",
        "kernel.o",
        str(library),
        "-lpthread",
        "-o",
        str(program),
    ]
    _run(command, "linking the aarch64 program", workdir)
    return program


def run_aarch64(
    obj: bytes,
    entry: str,
    inputs: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    arena_bytes: int | None = None,
    *,
    num_threads: int = 1,
    timeout: float | None = 600,
    workdir: str | Path | None = None,
    scalar_args: Sequence[int] = (),
    repeat: int = 1,
) -> list[np.ndarray]:
    """Call ``entry(scalar_args..., inputs..., outputs..., [arena])`` from an aarch64 object
    under qemu (``scalar_args`` as ``int64_t``).

    ``outputs`` give the shape, dtype and initial contents of the output buffers; the results
    come back as new arrays. ``workdir`` (kept afterwards) defaults to a temporary directory.
    ``repeat > 1`` calls ``entry`` that many times in one process; each result then has a
    leading dimension ``repeat`` (the outputs of every call).
    """
    _require_tools()
    buffers = [np.ascontiguousarray(a) for a in [*inputs, *outputs]]
    main_source = generate_main(
        entry, [a.nbytes for a in buffers], len(outputs), arena_bytes, num_threads, scalar_args,
        repeat,
    )
    with tempfile.TemporaryDirectory(prefix="bnnmlir-aarch64-") as scratch:
        directory = Path(workdir) if workdir is not None else Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        program = link_program(obj, main_source, directory)
        files = []
        for index, array in enumerate(buffers):
            path = directory / f"buffer{index}.bin"
            array.tofile(path)
            files.append(path.name)
        _run([QEMU, str(program), *files], f"running {entry} under {QEMU}", directory, timeout)
        results = []
        for array, name in zip(buffers[len(inputs) :], files[len(inputs) :]):
            data = np.fromfile(directory / name, dtype=array.dtype)
            results.append(data.reshape(((repeat,) if repeat > 1 else ()) + array.shape))
        return results
