"""LLVM optimization and code generation of a module of several functions on several cores.

llvmlite holds one lock around LLVM, so threads do not help: the module's functions are split
into ``parts`` groups of about equal size (LLVM IR lines), each optimized in a worker process
(``python -m bnnmlir.backend.parallel_opt``, which imports llvmlite alone). What comes back
depends on what the caller needs:

- :func:`optimize_in_parts`: the optimized module, linked in this process (to print it);
- :func:`objects_in_parts`: one object per group (code generation in the workers too), which the
  host JIT loads side by side;
- :func:`object_in_parts`: one object of the whole module: the workers' objects merged into one
  (:mod:`bnnmlir.backend.elf_merge`), as a linker's ``-r`` would.

The last two keep LLVM's memory out of this process: it holds the text and the objects only.

Each group is the module's IR text with every function of the other groups turned into a
declaration, and every global: the internal globals (weights, tables) stay internal, so a group
optimizes its loads of constant data as the whole module does (folds them, drops the globals no
function of the group reads); one read by functions of two groups has a copy in each (the linker
renames the second; two objects each keep a local copy). Internal functions become external for
the link (or for the other objects), then internal again in a linked module (local symbols in
a merged object).
The linked module or merged object may hold more globals than the whole module's optimization
leaves: equal constants of two groups are not merged.

The functions are optimized one by one in both ways (a function calls the others only through
the runtime's ``bnnmlir_parallel_for``, by address, or, the entry point, once per layer), so the
code of each is the code of the whole module's optimization; only the order and names of the
globals differ, and the parameter attributes LLVM infers from callees of another group (the
entry point's output pointer is ``writeonly`` when the layers writing it are in its group).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import llvmlite.binding as llvm

from bnnmlir.backend.elf_merge import merge_objects
from bnnmlir.backend.llvm_pipeline import (
    MachineSpec,
    Pipeline,
    machine_of,
    parse_ir,
    run_pipeline,
)
from bnnmlir.backend.object_bundle import split_by_sizes

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
        """The module with the bodies of the functions named in ``group`` only, and the globals
        they (or the globals they read) refer to."""
        bodies, heads = [], []
        for function in self.functions:
            if function.name in group:
                bodies += function.lines
            else:
                heads.append("declare" + function.lines[0][len("define"):])
        wanted = _referenced_names(bodies)
        by_name = {_symbol(line): line for line in self.globals}
        pending = list(wanted & by_name.keys())
        while pending:  # a global may point to another one
            for name in _referenced_names([by_name[pending.pop()]]) & by_name.keys() - wanted:
                wanted.add(name)
                pending.append(name)
        globals_ = [line for line in self.globals if _symbol(line) in wanted]
        return "\n".join([*self.header, *globals_, *self.declarations, *heads, *bodies]) + "\n"


_CONSTANT_GLOBAL = re.compile(
    r'^@(?:"[^"]+"|[-\w.$]+) = (?:internal|private) (?:(?:local_)?unnamed_addr )?constant ')


def only_internal_constants(text: str) -> bool:
    """Whether every global variable of LLVM IR ``text`` is an internal (or private) constant:
    then each group may hold its own copy of those it reads (a writable global would be two
    variables, an exported one would be defined twice or by no group)."""
    return all(_CONSTANT_GLOBAL.match(line)
               for line in text.splitlines() if line.startswith("@"))


def _referenced_names(lines: list[str]) -> set[str]:
    """Every ``@name`` the lines mention."""
    return {m.strip('"') for line in lines if "@" in line for m in _NAME.findall(line)}


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


TASKS = ("bitcode", "object")
"""What a worker makes: the optimized bitcode of IR text, or its object code."""


def _run_worker(task: str, payloads: list[bytes], spec: MachineSpec, pipeline: Pipeline) -> bytes:
    """Run ``task`` on ``payloads`` in a worker process; its output bytes."""
    config = json.dumps({"task": task, "machine": asdict(spec), "pipeline": asdict(pipeline),
                         "sizes": [len(p) for p in payloads]})
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([sys.executable, "-m", "bnnmlir.backend.parallel_opt"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
        try:  # the worker reads all of its input before it writes: no deadlock
            for chunk in (config.encode() + b"\n", *payloads):
                process.stdin.write(chunk)
            process.stdin.close()
        except BrokenPipeError:
            pass  # the worker failed early: its exit code and message say why
        result = process.stdout.read()
        process.stdout.close()
        if process.wait() != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"LLVM worker failed: {message}")
    return result


def _groups(text: str, parts: int) -> tuple[SplitModule, list[bytes]]:
    split = split_module(text)
    return split, [split.group_text(g).encode() for g in balanced_groups(split.functions, parts)]


def _in_workers(task: str, texts: list[bytes], spec: MachineSpec,
                pipeline: Pipeline) -> list[bytes]:
    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        futures = [pool.submit(_run_worker, task, [t], spec, pipeline) for t in texts]
        return [f.result() for f in futures]


def _restore_internal(module: llvm.ModuleRef, internal: frozenset[str]) -> None:
    for name in internal:
        module.get_function(name).linkage = llvm.Linkage.internal
    module.verify()


def optimize_in_parts(text: str, spec: MachineSpec, pipeline: Pipeline,
                      parts: int) -> llvm.ModuleRef:
    """Optimize the LLVM IR ``text`` in up to ``parts`` processes (each part verified before its
    optimization); the linked, verified module (see the module docstring), its functions in the
    order of ``text`` (linking puts each group's together), as printed IR and assembly show them."""
    split, texts = _groups(text, parts)
    with ThreadPoolExecutor(max_workers=max(1, len(texts) - 1)) as pool:
        others = [pool.submit(_run_worker, "bitcode", [t], spec, pipeline) for t in texts[1:]]
        module = _optimize_text(texts[0].decode(), spec, pipeline)
        for future in others:
            module.link_in(llvm.parse_bitcode(future.result()))
    _restore_internal(module, split.internal_functions)
    linked = str(module)
    ordered = in_function_order(linked, [f.name for f in split.functions])
    return module if ordered == linked else parse_ir(ordered)


def in_function_order(text: str, order: list[str]) -> str:
    """LLVM IR ``text`` with its function definitions (each with LLVM's ``; Function Attrs:``
    comment above it) moved into the places of the definitions so that they follow ``order``;
    every other line stays where it is. Functions not in ``order`` go last."""
    lines = text.split("\n")
    blocks: list[tuple[int, int, str]] = []
    k = 0
    while k < len(lines):
        if lines[k].startswith("define "):
            start = k
            while start > 0 and lines[start - 1].startswith("; Function Attrs:"):
                start -= 1
            end = lines.index("}", k) + 1
            blocks.append((start, end, _symbol(lines[k])))
            k = end
        else:
            k += 1
    rank = {name: r for r, name in enumerate(order)}
    wanted = sorted(blocks, key=lambda b: (rank.get(b[2], len(rank)), b[0]))
    out, position = [], 0
    for (start, end, _), (from_, to, _) in zip(blocks, wanted, strict=True):
        out += lines[position:start] + lines[from_:to]
        position = end
    return "\n".join(out + lines[position:])


def objects_in_parts(text: str, spec: MachineSpec, pipeline: Pipeline,
                     parts: int) -> list[bytes]:
    """The object code of each of up to ``parts`` groups of ``text``, optimized and compiled in
    its own process. The internal functions of ``text`` are external symbols of these objects
    (an object calls another's functions); load them all into one JIT."""
    _, texts = _groups(text, parts)
    return _in_workers("object", texts, spec, pipeline)


def object_in_parts(text: str, spec: MachineSpec, pipeline: Pipeline, parts: int) -> bytes:
    """The object code of the whole of ``text``: its groups optimized and compiled in up to
    ``parts`` processes, their objects merged into one (:mod:`bnnmlir.backend.elf_merge`;
    internal functions local symbols again)."""
    split, texts = _groups(text, parts)
    return merge_objects(_in_workers("object", texts, spec, pipeline), split.internal_functions)


def run_task(task: str, payloads: list[bytes], spec: MachineSpec, pipeline: Pipeline) -> bytes:
    """What a worker process does (see :data:`TASKS`)."""
    if task == "bitcode":
        (text,) = payloads
        return _optimize_text(text.decode(), spec, pipeline).as_bitcode()
    if task == "object":
        (text,) = payloads
        module = _optimize_text(text.decode(), spec, pipeline)
        return machine_of(spec).emit_object(module)
    raise ValueError(f"unknown LLVM worker task {task!r}: expected one of {', '.join(TASKS)}")


def _worker_main() -> None:
    """Read a JSON configuration line and the payloads on stdin; write the result."""
    data = sys.stdin.buffer.read()
    config_line, _, payload = data.partition(b"\n")
    config = json.loads(config_line)
    result = run_task(config["task"], split_by_sizes(payload, config["sizes"]),
                      MachineSpec(**config["machine"]), Pipeline(**config["pipeline"]))
    sys.stdout.buffer.write(result)


if __name__ == "__main__":
    _worker_main()
