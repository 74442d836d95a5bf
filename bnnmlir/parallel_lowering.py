"""The ``loops`` and ``llvm`` stages and the LLVM IR text of a module, in several processes.

A compile spends most of its Python time after the ``buffers`` stage (lowering to loops, the
conversion to the ``llvm`` dialect, the LLVM IR text), and that work is per layer. With ``jobs``
processes (:func:`lowering_jobs`):

1. ``bnn-outline-layers`` runs here: every layer is a function ``@<fn>_layer<k>_<op>``.
2. The layer functions are dealt into ``jobs`` *parts* of about equal estimated cost
   (:func:`deal`). Functions whose layer ops differ at most in the values of their arrays
   (:func:`class_key`: weights and per-channel parameters, which the lowering turns into
   globals) go to one part, so that ``bnn-merge-layer-functions`` finds its groups in one part.
   The first part also holds every function that is not a layer (the entry point, the per-image
   function of a dynamic batch).
3. Each part runs in a forked copy of this process, which only waits (the loop-level IR, a few
   hundred MB on ``bireal_net18()``, is built and freed in the children; a single part runs
   here). A part
   makes the functions of the other parts declarations, then runs ``lower-bnn-to-loops`` (the
   globals it adds carry a per-part tag: ``__bnn_w_p1_0``), ``bnn-merge-layer-functions`` with
   wrappers (its callers may be in another part, so they keep calling the merged functions,
   which call the shared body), ``convert-bnn-to-llvm``, drops the globals none of its
   functions reads, and returns its LLVM IR text.
4. The texts are joined (:func:`join_llvm_texts`): each function is defined by its part and only
   declared by the others; a global read by several parts (weights of a layer function and of
   the call that passes them) is the same line in each and is kept once.

The joined text is the module's unoptimized LLVM IR: the same kernels as one process makes
(the lowering of a function depends on that function and the globals it reads only), with
wrappers for the merged layers. It does not depend on the number of parts (sorted functions,
declarations and globals; numbered globals renamed in order of first use), so a compile with
one job, which takes this path too without forking, gives the same text. ``compiled.mlir(
"loops")`` / ``mlir("llvm")`` show the one-process pipeline's IR, made again when asked for.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable

from xdsl.dialects import func, llvm
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    ModuleOp,
)
from xdsl.ir import Attribute, Operation
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import DiagnosticException

from bnnmlir.errors import CompileError
from bnnmlir.forked import ChildFailure, Patience, fork_available, least_loaded, run_forked
from bnnmlir.passes.convert_to_llvm import ConvertBnnToLLVMPass
from bnnmlir.passes.layer_functions import (
    MergeLayerFunctionsPass,
    OutlineLayersPass,
    is_layer_function,
)
from bnnmlir.passes.lower_bnn_to_loops import LowerBnnToLoopsPass
from bnnmlir.target import TargetInfo

MIN_LAYERS = 4
"""Fewer layer functions than this are lowered in one process (a fork costs tens of ms)."""

KERNEL_COST = {"bconv2d": 8.0, "conv2d": 4.0}
"""Estimated cost of lowering and converting a convolution with a kernel larger than 1x1,
relative to a support op (0.2: a copy or an elementwise loop, a few dozen ops): interior and
border paths of several thousand ops (a 1x1 kernel has no border: 1.5 at 128 channels)."""


def lowering_jobs(module: ModuleOp) -> int:
    """Processes for the stages after ``buffers``: one per core this process may run on
    (``$BNNMLIR_LLVM_JOBS`` if set), 1 where it may not fork; 0 for a module of fewer than
    :data:`MIN_LAYERS` layers, which takes the one-process path of the pipeline."""
    from bnnmlir.backend.llvm_codegen import compile_jobs

    layers = sum(1 for f in module.ops for o in f.walk() if _is_layer_op(o))
    if layers < MIN_LAYERS:
        return 0
    return compile_jobs() if fork_available() else 1


def _is_layer_op(op: Operation) -> bool:
    return op.name.startswith("bnn.") and not op.results


def _op_cost(op: Operation) -> float:
    kind = op.name.split(".", 1)[1]
    if kind not in KERNEL_COST:
        return 1.5 if kind == "dense" else 0.2
    shape = getattr(op.operands[1].type, "get_shape", lambda: ())()
    if len(shape) != 4:
        return 1.5
    if shape[1] * shape[2] == 1:  # no border paths; the epilogues grow with the channels
        return 1.5 * (shape[0] / 128) ** 0.8
    # Wider kernel rows unroll into more steps: Bi-Real-Net-18's 3x3 layers make about 2400
    # loop-level ops at 64 channels (8 bytes per tap) and 4200 at 512 (64 bytes).
    return KERNEL_COST[kind] * (0.6 + shape[3] / 160)


def _cost(function: func.FuncOp) -> float:
    return sum(_op_cost(o) for o in function.walk() if _is_layer_op(o))


def _skeleton(attr: Attribute) -> Hashable:
    """``attr`` with the values of its arrays left out (their type and length kept): per-channel
    parameters become globals in the lowering, so they do not tell two loop nests apart."""
    if isinstance(attr, DenseArrayBase):
        return ("array", attr.elt_type, len(attr))
    if isinstance(attr, DenseIntOrFPElementsAttr):
        return ("dense", attr.type)
    if isinstance(attr, DictionaryAttr):
        return tuple(sorted((k, _skeleton(v)) for k, v in attr.data.items()))
    if isinstance(attr, ArrayAttr):
        return tuple(_skeleton(a) for a in attr.data)
    return attr


def class_key(function: func.FuncOp) -> Hashable:
    """What a layer function's loop nest depends on, besides values that become globals: its
    layer ops' names, operand types and attribute skeletons (:func:`_skeleton`). Functions that
    ``bnn-merge-layer-functions`` would merge have equal keys."""
    return tuple(
        (o.name, tuple(v.type for v in o.operands),
         tuple(sorted((k, _skeleton(v)) for k, v in (*o.properties.items(),
                                                       *o.attributes.items()))))
        for o in function.walk() if _is_layer_op(o))


def deal(module: ModuleOp, jobs: int) -> list[frozenset[str]]:
    """The functions of ``module`` in at most ``jobs`` parts (see the module docstring): the
    classes of layer functions equal up to their globals, largest estimated cost first, each to
    the part with the least cost so far (the first part starts with the other functions)."""
    classes: dict[Hashable, list[func.FuncOp]] = {}
    others: list[str] = []
    for op in module.ops:
        if not isinstance(op, func.FuncOp) or op.is_declaration:
            continue
        if is_layer_function(op):
            classes.setdefault(class_key(op), []).append(op)
        else:
            others.append(op.sym_name.data)
    parts: list[set[str]] = [set(others)] + [set() for _ in range(jobs - 1)]

    # A class costs its conversion once (the merged body) and a lowering per member, which
    # costs about as much (Bi-Real-Net-18's classes of one 3x3 layer: 0.5 s, of three: 1.05 s).
    def class_cost(members: list[func.FuncOp]) -> float:
        return _cost(members[0]) * (1 + len(members)) / 2

    ordered = sorted(classes.values(), key=lambda c: (-class_cost(c), c[0].sym_name.data))
    chosen = least_loaded([class_cost(c) for c in ordered], jobs)
    for members, k in zip(ordered, chosen, strict=True):
        parts[k].update(f.sym_name.data for f in members)
    return [frozenset(p) for p in parts if p]


def part_costs(module: ModuleOp, parts: list[frozenset[str]]) -> tuple[float, ...]:
    """The estimated lowering cost of each part of :func:`deal`: its layer functions' op costs
    (a part of glue functions only counts as 5% of the largest part)."""
    cost = {op.sym_name.data: _cost(op) for op in module.ops
            if isinstance(op, func.FuncOp) and not op.is_declaration}
    raw = [sum(cost.get(name, 0.0) for name in part) for part in parts]
    top = max(raw, default=0.0)
    return tuple(max(c, 0.05 * top) for c in raw)


def _declare_others(module: ModuleOp, part: frozenset[str]) -> None:
    """Functions outside ``part`` become (public) declarations."""
    for op in list(module.ops):
        if isinstance(op, func.FuncOp) and not op.is_declaration and op.sym_name.data not in part:
            declaration = func.FuncOp.external(op.sym_name.data, op.function_type.inputs.data,
                                               op.function_type.outputs.data)
            Rewriter.replace_op(op, declaration)


def _drop_unread_globals(module: ModuleOp) -> None:
    read = {o.global_name.root_reference.data for o in module.walk()
            if isinstance(o, llvm.AddressOfOp)}
    for op in list(module.ops):
        if isinstance(op, llvm.GlobalOp) and op.sym_name.data not in read:
            Rewriter.erase_op(op)


def lower_part(module: ModuleOp, part: frozenset[str], index: int, info: TargetInfo,
               parallel: bool, verify: bool) -> tuple[str, dict[str, float]]:
    """The LLVM IR text of the functions ``part`` of ``module`` (consumed), and the seconds of
    its steps (``loops``, ``llvm``, ``LLVM IR``)."""
    from bnnmlir.backend.llvm_codegen import to_llvm_ir
    from bnnmlir.compiler import make_context

    ctx = make_context()
    times: dict[str, float] = {}
    tag = f"_p{index}" if index else ""
    stages = {
        "loops": [LowerBnnToLoopsPass(target=info.name, parallel=parallel, global_tag=tag),
                  MergeLayerFunctionsPass(wrappers=True)],
        "llvm": [ConvertBnnToLLVMPass(target=info.name)],
    }
    _declare_others(module, part)
    for stage, passes in stages.items():
        start = time.perf_counter()
        try:
            for p in passes:
                p.apply(ctx, module)
            if verify:
                module.verify()
        except DiagnosticException as e:
            raise CompileError(f"stage '{stage}' failed: {e}") from None
        times[stage] = time.perf_counter() - start
    _drop_unread_globals(module)
    start = time.perf_counter()
    text = to_llvm_ir(module, info)
    times["LLVM IR"] = time.perf_counter() - start
    return text, times


def lower_in_parts(module: ModuleOp, info: TargetInfo, parallel: bool, jobs: int,
                   verify: bool) -> tuple[str, dict[str, float]]:
    """The unoptimized LLVM IR text of the ``buffers``-stage ``module`` (consumed) made in
    ``jobs`` processes (module docstring), and the seconds of the first part's steps (``loops``
    with the outlining, ``llvm``, ``LLVM IR``) and of the wait for the others after it."""
    from bnnmlir.compiler import make_context

    start = time.perf_counter()
    try:
        OutlineLayersPass().apply(make_context(), module)
    except DiagnosticException as e:
        raise CompileError(f"stage 'loops' failed: {e}") from None
    outline = time.perf_counter() - start
    parts = deal(module, jobs)

    def part(index: int) -> Callable[[], tuple[str, dict[str, float]]]:
        return lambda: lower_part(module, parts[index], index, info, parallel, verify)

    patience = Patience(costs=part_costs(module, parts))
    start = time.perf_counter()
    try:  # every part in a child: the loop-level IR never fills this process's heap
        results = run_forked([part(k) for k in range(len(parts))], first_here=len(parts) == 1,
                             patience=patience)
    except ChildFailure as e:
        message = f"lowering in parts failed: {e}"
        if e.index is not None:
            names = sorted(parts[e.index])
            message += f" (its functions: {', '.join(names[:3])}{', ...' * (len(names) > 3)})"
        raise CompileError(message) from None
    wall = time.perf_counter() - start
    times = results[0][1]
    times["loops"] += outline
    if len(parts) > 1:
        times["other processes"] = max(0.0, wall - sum(times.values()) + outline)
    return join_llvm_texts([text for text, _ in results]), times


_NUMBERED = re.compile(r"^(?P<stem>.+?)(?:_p\d+)?_\d+$")
"""A global the lowering numbered (``{stem}_{k}``, ``{stem}_p{part}_{k}``)."""
_REFERENCE = re.compile(r'@"([^"]+)"|@([-\w.$]+)')


def _canonical_names(splits: list, globals_: dict[str, str]) -> dict[str, str]:
    """New names of the numbered globals: ``{stem}_{i}``, ``i`` counting per stem in the order
    of first reference by the functions sorted by name (independent of how they were dealt)."""
    order: list[str] = []
    seen: set[str] = set()
    functions = sorted((f for s in splits for f in s.functions), key=lambda f: f.name)
    for function in functions:
        for line in function.lines:
            for match in _REFERENCE.finditer(line):
                name = match.group(1) or match.group(2)
                if name in globals_ and name not in seen:
                    seen.add(name)
                    order.append(name)
    order += sorted(set(globals_) - seen)
    counts: dict[str, int] = {}
    renamed: dict[str, str] = {}
    for name in order:
        match = _NUMBERED.match(name)
        if match is None:
            continue
        stem = match.group("stem")
        renamed[name] = f"{stem}_{counts.get(stem, 0)}"
        counts[stem] = counts.get(stem, 0) + 1
    return renamed


def join_llvm_texts(texts: list[str]) -> str:
    """One LLVM IR module of the parts' texts: the header of the first, each global once (the
    same line in every part that has it), the declarations of functions no part defines, every
    part's definitions. The result does not depend on how the functions were dealt: functions,
    declarations and globals are sorted by name, and the numbered globals renamed in order of
    first use (:func:`_canonical_names`)."""
    from bnnmlir.backend.parallel_opt import split_module

    splits = [split_module(t) for t in texts]
    globals_: dict[str, str] = {}
    for split in splits:
        for line in split.globals:
            name = _global_name(line)
            if globals_.setdefault(name, line) != line:
                raise CompileError(f"two parts define the global @{name} differently")
    defined = {f.name for s in splits for f in s.functions}
    internal = frozenset().union(*(s.internal_functions for s in splits))
    declarations: dict[str, str] = {}
    for split in splits:
        for line in split.declarations:
            name = _function_name(line)
            if name not in defined:
                declarations.setdefault(name, line)
    renamed = _canonical_names(splits, globals_)

    def rename(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return f'@"{renamed[name]}"' if name in renamed else match.group(0)

    new_globals = {}
    for name, line in globals_.items():
        new = renamed.get(name, name)
        _, rest = line.split(" = ", 1)
        new_globals[new] = f'@"{new}" = {rest}' if name in renamed else line
    header = [line for line in splits[0].header if line.strip()] + [""]
    lines = [*header, *(new_globals[n] for n in sorted(new_globals)),
             *(declarations[n] for n in sorted(declarations))]
    for function in sorted((f for s in splits for f in s.functions), key=lambda f: f.name):
        head, *body = function.lines
        if function.name in internal:
            head = "define internal " + head[len("define "):]
        lines += [_REFERENCE.sub(rename, line) for line in (head, *body)]
    return "\n".join(lines) + "\n"


def _global_name(line: str) -> str:
    return line[1:].split(" = ", 1)[0].strip('"')


def _function_name(line: str) -> str:
    return line.split("@", 1)[1].split("(", 1)[0].strip('"')

