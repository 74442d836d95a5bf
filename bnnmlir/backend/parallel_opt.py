"""LLVM optimization of a module of several functions on several cores.

llvmlite holds one lock around LLVM, so threads do not help: the module's functions are split
into ``parts`` groups of about equal size (LLVM IR lines); this process optimizes the first group
and one worker process (``python -m bnnmlir.backend.parallel_opt``, which imports llvmlite
alone) each other group; the optimized groups are linked back into one module.

Each group is the module's IR text with every function of the other groups turned into a
declaration, and every global: the internal globals (weights, tables) stay internal, so a group
optimizes its loads of constant data as the whole module does (folds them, drops the globals no
function of the group reads); one read by functions of two groups has a copy in each (the linker
renames the second). Internal functions become external for the link, then internal again.
The linked module may hold more globals than the whole module's optimization leaves: equal
constants of two groups are not merged.

The functions are optimized one by one in both ways (a function calls the others only through
the runtime's ``bnnmlir_parallel_for``, by address), so the code of each is the code of the whole
module's optimization; only the order of the globals in the linked module may differ.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import llvmlite.binding as llvm

from bnnmlir.backend.llvm_pipeline import (
    MachineSpec,
    Pipeline,
    machine_of,
    parse_ir,
    run_pipeline,
)

_NAME = re.compile(r'@("[^"]+"|[-\w.$]+)')


@dataclass
class _Function:
    name: str
    lines: list[str]


@dataclass
class SplitModule:
    """LLVM IR text taken apart at the top level (see :func:`split_module`)."""

    header: list[str]
    """Lines before the first global or function (module id, triple, data layout)."""
    globals: list[str]
    """Global variables, one line each."""
    declarations: list[str]
    functions: list[_Function]
    internal_functions: frozenset[str]
    """The names of the functions that were internal (external in the groups)."""

    def group_text(self, group: frozenset[str]) -> str:
        """The module with the bodies of the functions named in ``group`` only."""
        lines = [*self.header, *self.globals, *self.declarations]
        for function in self.functions:
            if function.name in group:
                lines += function.lines
            else:
                lines.append("declare" + function.lines[0][len("define"):])
        return "\n".join(lines) + "\n"


def _symbol(line: str) -> str:
    match = _NAME.search(line)
    if match is None:
        raise ValueError(f"no symbol name in LLVM IR line: {line[:80]}")
    return match.group(1).strip('"')


def split_module(text: str) -> SplitModule:
    """Take LLVM IR text as llvmlite prints it apart: header, globals (one line each),
    declarations (one line each), function definitions (``define`` ... ``}``)."""
    header: list[str] = []
    globals_: list[str] = []
    declarations: list[str] = []
    functions: list[_Function] = []
    internal: set[str] = set()
    current: _Function | None = None
    for line in text.splitlines():
        if current is not None:
            current.lines.append(line)
            if line == "}":
                current = None
        elif line.startswith("define "):
            name = _symbol(line)
            if line.startswith("define internal "):
                internal.add(name)
                line = "define " + line[len("define internal "):]
            current = _Function(name, [line])
            functions.append(current)
        elif line.startswith("declare "):
            declarations.append(line)
        elif line.startswith("@"):
            globals_.append(line)
        elif line and (globals_ or declarations or functions):
            raise ValueError(f"unexpected top-level LLVM IR line: {line[:80]}")
        else:
            header.append(line)
    if current is not None:
        raise ValueError(f"function @{current.name} has no closing brace")
    return SplitModule(header, globals_, declarations, functions, frozenset(internal))


def balanced_groups(functions: list[_Function], parts: int) -> list[frozenset[str]]:
    """The function names in ``parts`` groups of about equal line counts (largest first, each
    into the smallest group); empty groups are left out."""
    loads = [0] * parts
    groups: list[set[str]] = [set() for _ in range(parts)]
    for function in sorted(functions, key=lambda f: (-len(f.lines), f.name)):
        k = loads.index(min(loads))
        loads[k] += len(function.lines)
        groups[k].add(function.name)
    return [frozenset(g) for g in groups if g]


def _optimize_text(text: str, spec: MachineSpec, pipeline: Pipeline) -> llvm.ModuleRef:
    """Parse, verify and optimize ``text``."""
    module = parse_ir(text)
    run_pipeline(module, machine_of(spec), pipeline, spec.triple)
    return module


def _run_worker(text: str, spec: MachineSpec, pipeline: Pipeline) -> bytes:
    """Optimize ``text`` in a worker process; its bitcode."""
    config = json.dumps({"machine": asdict(spec), "pipeline": asdict(pipeline)})
    process = subprocess.run(
        [sys.executable, "-m", "bnnmlir.backend.parallel_opt"],
        input=(config + "\n" + text).encode(), capture_output=True, check=False,
    )
    if process.returncode != 0:
        raise RuntimeError(
            f"LLVM optimization worker failed: {process.stderr.decode(errors='replace')[-2000:]}"
        )
    return process.stdout


def optimize_in_parts(text: str, spec: MachineSpec, pipeline: Pipeline,
                      parts: int) -> llvm.ModuleRef:
    """Optimize the LLVM IR ``text`` in up to ``parts`` processes (each part verified before its
    optimization); the linked, verified module (see the module docstring)."""
    split = split_module(text)
    groups = balanced_groups(split.functions, parts)
    texts = [split.group_text(g) for g in groups]
    with ThreadPoolExecutor(max_workers=max(1, len(texts) - 1)) as pool:
        others = [pool.submit(_run_worker, t, spec, pipeline) for t in texts[1:]]
        module = _optimize_text(texts[0], spec, pipeline)
        for future in others:
            module.link_in(llvm.parse_bitcode(future.result()))
    for name in split.internal_functions:
        module.get_function(name).linkage = llvm.Linkage.internal
    module.verify()
    return module


def _worker_main() -> None:
    """Read a JSON configuration line and LLVM IR text on stdin; write the optimized bitcode."""
    data = sys.stdin.buffer.read()
    config_line, _, text = data.partition(b"\n")
    config = json.loads(config_line)
    spec = MachineSpec(**config["machine"])
    module = _optimize_text(text.decode(), spec, Pipeline(**config["pipeline"]))
    sys.stdout.buffer.write(module.as_bitcode())


if __name__ == "__main__":
    _worker_main()
