"""One function per layer, and one function for the layers that compile to the same code.

``bnn-outline-layers`` (buffer level) moves every buffer-form bnn op into a private function of
its own, ``@<function>_layer<k>_<op>``, marked ``bnn.layer``, and calls it:

    bnn.bconv2d %x, %w into %y            func.call @forward_layer3_bconv2d(%x, %y)
                                   -->    func.func private @forward_layer3_bconv2d(%a, %b) {
                                            %w = memref.get_global @w
                                            bnn.bconv2d %a, %w into %b
                                          }

An operand read from a ``memref.get_global`` is read again inside (the lowering then sees a
constant global, as before: weights are re-laid at compile time), every other operand becomes an
argument. The semantics are unchanged: the op runs on the same buffers, once, at the same point.

``bnn-merge-layer-functions`` (loop level, after ``lower-bnn-to-loops``) merges layer functions
whose loop nests are equal up to the globals they read. Two functions ``f`` and ``g`` are equal
up to their globals when their bodies are equal op for op (names, properties, attributes, types,
operand numbering, regions and successors) after each ``memref.get_global @s`` is replaced by a
placeholder of the same type. Such a group keeps its first function ``f``; its entry-block
``memref.get_global`` ops become trailing arguments (in their order), and every call of ``f`` or
``g`` passes the globals its own function read, in that order. As ``g``'s body reads its
``k``-th global exactly where ``f``'s reads its ``k``-th, each call computes what it did before.

Arguments are ``noalias`` (``llvm.noalias`` in ``arg_attrs``) where that is provable: an
argument that, at every call, is a ``memref.view`` at a constant offset of a base whose byte range
overlaps no other argument's (another view of the same base at a disjoint range, or a view of
another base that is a global), and a global read as an argument that is constant. Without it
LLVM must assume that a layer's stores may change its inputs and weights (Bi-Real-Net-18 ran 8%
slower than with it).

A network's layers of equal shapes (Bi-Real-Net-18: four 56x56x64 3x3 binary convolutions,
three at each other width) then compile to one kernel each: less IR for every later stage,
LLVM's optimizer and code generator included. Layer functions are never inlined
(``convert-bnn-to-llvm`` marks them ``noinline``), so each is optimized alone, and a module of
several functions can be optimized in several processes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, memref
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FunctionType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    SymbolTable,
    UnitAttr,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

LAYER_ATTR = "bnn.layer"
"""The unit attribute of a layer function."""


def is_layer_function(op: Operation) -> bool:
    return isinstance(op, func.FuncOp) and LAYER_ATTR in op.attributes


NOALIAS = "llvm.noalias"

_Extent = tuple[object, int, float]
"""Where a memref value's bytes are: ``(base, first byte, end)``; ``base`` is an SSA value or
``("global", name)``."""


def _extent(value: SSAValue) -> _Extent | None:
    """The bytes ``value`` covers, when known (module docstring)."""
    source = value.owner
    if isinstance(source, memref.GetGlobalOp):
        return ("global", source.name_.root_reference.data), 0, math.inf
    if isinstance(source, memref.ViewOp) and not source.sizes:
        offset = source.byte_shift.owner
        vtype = value.type
        if (isinstance(offset, arith.ConstantOp) and isinstance(offset.value, IntegerAttr)
                and isinstance(vtype, MemRefType) and vtype.has_static_shape()):
            bits = vtype.element_type.bitwidth  # type: ignore[attr-defined]
            start = offset.value.value.data
            return source.source, start, start + -(-math.prod(vtype.get_shape()) * bits // 8)
    if isinstance(value.owner, Block):
        return value, 0, math.inf
    return None


def _disjoint(a: _Extent | None, b: _Extent | None) -> bool:
    if a is None or b is None:
        return False
    if a[0] != b[0]:
        return isinstance(a[0], tuple) or isinstance(b[0], tuple)
    return a[2] <= b[1] or b[2] <= a[1]


def disjoint_arguments(values: Sequence[SSAValue]) -> list[bool]:
    """For each of ``values``: whether its bytes overlap none of the others'."""
    extents = [_extent(v) for v in values]
    return [all(_disjoint(e, f) for j, f in enumerate(extents) if j != k)
            for k, e in enumerate(extents)]


def _set_noalias(function: func.FuncOp, flags: Sequence[bool]) -> None:
    function.arg_attrs = ArrayAttr([DictionaryAttr({NOALIAS: UnitAttr()} if f else {})
                                    for f in flags])


def _noalias_flags(function: func.FuncOp) -> list[bool]:
    if function.arg_attrs is None:
        return [False] * len(function.function_type.inputs.data)
    return [NOALIAS in d.data for d in function.arg_attrs.data]


def _short_name(op: Operation) -> str:
    return op.name.split(".", 1)[-1]


def outline_layer(op: Operation, parent: func.FuncOp, name: str) -> func.FuncOp:
    """Move the buffer-form ``op`` (no results) into a new private function ``name`` placed
    before ``parent``; a ``func.call`` takes its place."""
    entry = Block()
    inside: list[SSAValue] = []
    passed: list[SSAValue] = []
    for operand in op.operands:
        source = operand.owner
        if isinstance(source, memref.GetGlobalOp):
            clone = source.clone()
            entry.add_op(clone)
            inside.append(clone.results[0])
        elif operand in passed:
            inside.append(entry.args[passed.index(operand)])
        else:
            passed.append(operand)
            inside.append(entry.insert_arg(operand.type, len(entry.args)))
    call = func.CallOp(name, passed, [])
    Rewriter.insert_op(call, InsertPoint.before(op))
    op.detach()
    for k, value in enumerate(inside):
        op.operands[k] = value
    entry.add_ops([op, func.ReturnOp()])
    layer = func.FuncOp(name, FunctionType.from_lists([v.type for v in passed], []),
                        Region(entry), visibility="private")
    layer.attributes[LAYER_ATTR] = UnitAttr()
    _set_noalias(layer, disjoint_arguments(passed))
    Rewriter.insert_op(layer, InsertPoint.before(parent))
    return layer


@dataclass(frozen=True)
class OutlineLayersPass(ModulePass):
    """Every buffer-form bnn op into a layer function of its own (module docstring)."""

    name = "bnn-outline-layers"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        taken = {f.sym_name.data for f in op.ops if isinstance(f, func.FuncOp)}
        for parent in [f for f in op.ops if isinstance(f, func.FuncOp)]:
            if parent.is_declaration or is_layer_function(parent):
                continue
            layers = [o for o in parent.walk() if o.dialect_name() == "bnn" and not o.results]
            for k, layer in enumerate(layers):
                name = f"{parent.sym_name.data}_layer{k}_{_short_name(layer)}"
                while name in taken:
                    name += "_"
                taken.add(name)
                outline_layer(layer, parent, name)


def body_key(function: func.FuncOp) -> tuple[Hashable, ...]:
    """``function``'s body as a tuple that two functions share exactly when their bodies are
    equal up to the names of the globals they read (module docstring)."""
    entry = function.body.blocks.first
    numbers: dict[SSAValue, int] = {}
    blocks: dict[Block, int] = {}
    key: list[Hashable] = []

    def number(value: SSAValue) -> int:
        return numbers.setdefault(value, len(numbers))

    def walk_region(region: Region) -> None:
        key.append(("region", len(region.blocks)))
        for block in region.blocks:
            blocks.setdefault(block, len(blocks))
        for block in region.blocks:
            key.append(("block", tuple(a.type for a in block.args)))
            for arg in block.args:
                number(arg)
            for inner in block.ops:
                walk_op(inner)

    def walk_op(inner: Operation) -> None:
        properties = inner.properties
        if isinstance(inner, memref.GetGlobalOp) and inner.parent_block() is entry:
            properties = {k: v for k, v in properties.items() if k != "name"}
        key.append((
            inner.name,
            tuple(numbers[o] if o in numbers else -1 for o in inner.operands),
            tuple(r.type for r in inner.results),
            tuple(sorted(properties.items())),
            tuple(sorted(inner.attributes.items())),
            tuple(blocks.get(s, -1) for s in inner.successors),
        ))
        for result in inner.results:
            number(result)
        for region in inner.regions:
            walk_region(region)

    walk_region(function.body)
    return tuple(key)


def _entry_globals(function: func.FuncOp) -> list[memref.GetGlobalOp]:
    entry = function.body.blocks.first
    assert entry is not None
    return [o for o in entry.ops if isinstance(o, memref.GetGlobalOp)]


def _globals_to_arguments(function: func.FuncOp, flags: list[bool]) -> None:
    """Make the entry-block ``memref.get_global`` ops of ``function`` trailing arguments,
    ``noalias`` when constant; ``flags``: the ``noalias`` of the existing arguments."""
    entry = function.body.blocks.first
    assert entry is not None
    for read in _entry_globals(function):
        glob = SymbolTable.lookup_symbol(function, read.name_)
        flags.append(isinstance(glob, memref.GlobalOp) and glob.constant is not None)
        arg = entry.insert_arg(read.memref.type, len(entry.args))
        read.memref.replace_all_uses_with(arg)
        Rewriter.erase_op(read)
    function.function_type = FunctionType.from_lists(
        [a.type for a in entry.args], list(function.function_type.outputs.data))
    _set_noalias(function, flags)


SHARED_SUFFIX = "_shared"
"""Suffix of the function that holds the one body of a group merged with ``wrappers``."""


def _wrapper(function: func.FuncOp, shared: func.FuncOp, reads: Sequence[str]) -> func.FuncOp:
    """``function`` as a call of ``shared`` with its own arguments and the globals it read."""
    entry = function.body.blocks.first
    assert entry is not None
    block = Block(arg_types=[a.type for a in entry.args])
    extra = [memref.GetGlobalOp(name, t) for name, t in zip(
        reads, shared.function_type.inputs.data[len(entry.args):], strict=True)]
    block.add_ops([*extra, func.CallOp(shared.sym_name.data,
                                       [*block.args, *(g.memref for g in extra)], []),
                   func.ReturnOp()])
    return func.FuncOp(function.sym_name.data, function.function_type, Region(block),
                       visibility="private")


@dataclass(frozen=True)
class MergeLayerFunctionsPass(ModulePass):
    """Layer functions equal up to their globals become one (module docstring).

    ``wrappers``: the callers are left as they are: the group's body moves to a new layer
    function ``@<first>_shared`` and every member becomes a small function that calls it with
    the globals it read (used when parts of a module are lowered in separate processes, where
    the callers may be in another part)."""

    name = "bnn-merge-layer-functions"

    wrappers: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        groups: dict[tuple[Hashable, ...], list[func.FuncOp]] = {}
        for function in op.ops:
            if is_layer_function(function) and not function.is_declaration:
                assert isinstance(function, func.FuncOp)
                for read in _entry_globals(function):
                    if not read.memref.uses:  # e.g. weights the lowering re-laid elsewhere
                        Rewriter.erase_op(read)
                groups.setdefault(body_key(function), []).append(function)
        merged = {f.sym_name.data: g for g in groups.values() if len(g) > 1 for f in g}
        if not merged:
            return
        reads = {f.sym_name.data: [r.name_.root_reference.data for r in _entry_globals(f)]
                 for group in merged.values() for f in group}
        keepers = list({id(g): g for g in merged.values()}.values())
        if self.wrappers:
            for group in keepers:
                flags = [all(f) for f in zip(*(_noalias_flags(g) for g in group), strict=True)]
                shared = group[0].clone()
                shared.sym_name = StringAttr(group[0].sym_name.data + SHARED_SUFFIX)
                Rewriter.insert_op(shared, InsertPoint.before(group[0]))
                _globals_to_arguments(shared, flags)
                for member in group:
                    Rewriter.insert_op(_wrapper(member, shared, reads[member.sym_name.data]),
                                       InsertPoint.before(member))
                    Rewriter.erase_op(member)
            return
        for group in keepers:
            flags = [all(f) for f in zip(*(_noalias_flags(g) for g in group), strict=True)]
            _globals_to_arguments(group[0], flags)
        callers = [f for f in op.ops if isinstance(f, func.FuncOp) and f.sym_name.data not in merged]
        for call in [o for f in callers for o in f.walk() if isinstance(o, func.CallOp)]:
            callee = call.callee.root_reference.data
            if callee not in merged:
                continue
            keeper = merged[callee][0]
            extra = [memref.GetGlobalOp(name, t) for name, t in zip(
                reads[callee], keeper.function_type.inputs.data[len(call.arguments):], strict=True)]
            Rewriter.insert_op(extra, InsertPoint.before(call))
            Rewriter.replace_op(call, func.CallOp(
                keeper.sym_name.data, [*call.arguments, *(g.memref for g in extra)], []))
        for group in keepers:
            for duplicate in group[1:]:
                Rewriter.erase_op(duplicate)


