"""``outline-parallel-loops``: turn ``scf.parallel`` into calls of the runtime's parallel-for.

Input: the loop level (docs/lowering.md, level 3). Every outermost ``scf.parallel`` must have one
induction variable running from the constant 0 to some ``n`` with the constant step 1, and no
reductions (its ``scf.reduce`` terminator is empty). Its body is moved into a new private function

    func.func private @<parent>_task<K>(%ctx: !llvm.ptr, %begin: i64, %end: i64)

that runs the body for every ``i`` in ``[begin, end)``. The values the body uses but does not
define are passed through a context struct on the caller's stack: the caller stores them into an
``llvm.alloca`` of ``!llvm.struct<(T1, ..., Tk)>`` (``Ti`` the LLVM-level type of the i-th value:
``index`` is ``i64``, a memref is a ``!llvm.ptr``), the task loads them back. Values of constant
ops (``arith.constant``, ``memref.get_global``, ...) are re-created inside the task instead, so
LLVM still sees them as constants. The loop itself becomes

    llvm.call @bnnmlir_parallel_for(addressof @<parent>_task<K>, %ctx, n)

with the external declaration ``llvm.func @bnnmlir_parallel_for(!llvm.ptr, !llvm.ptr, i64)`` (C:
``void bnnmlir_parallel_for(void (*)(void *, int64_t, int64_t), void *, int64_t)``). The runtime
calls the task on disjoint chunks covering ``[0, n)``, so every iteration runs exactly once, as in
the loop; iterations of an ``scf.parallel`` are independent by definition, so any split is valid.

``scf.parallel`` loops nested inside another one run sequentially inside the outer task (they
become ``scf.for`` nests): the runtime parallelizes one level only.

The memref and index values cross the struct through ``builtin.unrealized_conversion_cast`` to
their LLVM types; ``convert-bnn-to-llvm`` (which runs this pass first) resolves those casts.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, llvm, memref, scf
from xdsl.dialects.builtin import (
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    UnrealizedConversionCastOp,
    VectorType,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

PARALLEL_FOR_SYMBOL = "bnnmlir_parallel_for"
"""The runtime entry point (runtime/bnnmlir_runtime.h)."""

_REMATERIALIZABLE = (arith.ConstantOp, memref.GetGlobalOp, llvm.ConstantOp, llvm.AddressOfOp)
"""Operand-free pure ops whose values are re-created in the task instead of passed."""


def context_field_type(t: Attribute) -> Attribute:
    """The type a captured value of type ``t`` has in the context struct (its LLVM type)."""
    if isinstance(t, IndexType):
        return i64
    if isinstance(t, MemRefType):
        return llvm.LLVMPointerType()
    if isinstance(t, VectorType) and isinstance(t.element_type, IndexType):
        return VectorType(i64, t.get_shape())
    return t


def _constant_int(value: SSAValue) -> int | None:
    op = value.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, IntegerAttr):
        return op.value.value.data
    return None


def _cast(value: SSAValue, to: Attribute) -> tuple[list[Operation], SSAValue]:
    if value.type == to:
        return [], value
    cast = UnrealizedConversionCastOp.get([value], [to])
    return [cast], cast.results[0]


def _captured_values(loop: scf.ParallelOp) -> list[SSAValue]:
    """Values used inside ``loop`` but defined outside it, in order of first use."""
    seen: dict[SSAValue, None] = {}
    for op in loop.body.walk():
        for operand in op.operands:
            owner = operand.owner
            defining = owner if isinstance(owner, Operation) else owner.parent_op()
            if defining is not None and not loop.is_ancestor(defining):
                seen.setdefault(operand, None)
    return list(seen)


def serialize_parallel(loop: scf.ParallelOp) -> None:
    """Replace ``loop`` (no reductions) by a nest of ``scf.for`` with the same bounds and steps."""
    if loop.res or loop.initVals:
        raise PassFailedException(
            "outline-parallel-loops: 'scf.parallel' with reductions is not supported"
        )
    body = loop.body.block
    reduce_op = body.last_op
    assert isinstance(reduce_op, scf.ReduceOp)
    Rewriter.erase_op(reduce_op)
    outermost: scf.ForOp | None = None
    innermost: Block | None = None
    for lb, ub, step, iv in zip(loop.lowerBound, loop.upperBound, loop.step, body.args):
        block = Block(arg_types=[IndexType()])
        for_op = scf.ForOp(lb, ub, step, [], Region(block))
        if innermost is None:
            outermost = for_op
        else:
            innermost.add_ops([for_op, scf.YieldOp()])
        iv.replace_all_uses_with(block.args[0])
        innermost = block
    assert outermost is not None and innermost is not None
    for op in list(body.ops):
        op.detach()
        innermost.add_op(op)
    innermost.add_op(scf.YieldOp())
    Rewriter.replace_op(loop, outermost, [])


def _check_outlinable(loop: scf.ParallelOp) -> None:
    if len(loop.body.block.args) != 1:
        raise PassFailedException(
            f"outline-parallel-loops: 'scf.parallel' must have one induction variable, "
            f"got {len(loop.body.block.args)}"
        )
    if loop.res or loop.initVals:
        raise PassFailedException(
            "outline-parallel-loops: 'scf.parallel' with reductions is not supported"
        )
    if _constant_int(loop.lowerBound[0]) != 0 or _constant_int(loop.step[0]) != 1:
        raise PassFailedException(
            "outline-parallel-loops: 'scf.parallel' must run from the constant 0 with the "
            "constant step 1"
        )


def _unique_symbol(module: ModuleOp, base: str) -> str:
    taken = {
        op.sym_name.data for op in module.ops if isinstance(op, func.FuncOp | llvm.FuncOp)
    }
    k = 0
    while f"{base}{k}" in taken:
        k += 1
    return f"{base}{k}"


def _declare_parallel_for(module: ModuleOp) -> None:
    ptr = llvm.LLVMPointerType()
    expected = llvm.LLVMFunctionType([ptr, ptr, i64])
    for op in module.ops:
        if isinstance(op, func.FuncOp | llvm.FuncOp) and op.sym_name.data == PARALLEL_FOR_SYMBOL:
            if isinstance(op, llvm.FuncOp) and op.function_type == expected:
                return
            raise PassFailedException(
                f"outline-parallel-loops: '@{PARALLEL_FOR_SYMBOL}' is already defined with "
                "another signature"
            )
    module.body.block.add_op(
        llvm.FuncOp(PARALLEL_FOR_SYMBOL, expected, linkage=llvm.LinkageAttr("external"))
    )


def outline_parallel_loop(loop: scf.ParallelOp, parent: func.FuncOp, module: ModuleOp) -> None:
    """Move the body of ``loop`` into a task function and call the runtime instead."""
    _check_outlinable(loop)
    ptr = llvm.LLVMPointerType()
    captured = _captured_values(loop)
    recreated = [v for v in captured if isinstance(v.owner, _REMATERIALIZABLE)]
    passed = [v for v in captured if not isinstance(v.owner, _REMATERIALIZABLE)]
    fields = [context_field_type(v.type) for v in passed]
    struct = llvm.LLVMStructType.from_type_list(fields)

    # The task: unpack the context, then run the body over [begin, end).
    entry = Block(arg_types=[ptr, i64, i64])
    ctx, begin, end = entry.args
    inside: dict[SSAValue, SSAValue] = {}
    for value in recreated:
        clone = value.owner.clone()
        entry.add_op(clone)
        inside[value] = clone.results[0]
    for k, value in enumerate(passed):
        field = llvm.GEPOp(ctx, [0, k], struct)
        load = llvm.LoadOp(field, fields[k])
        casts, inside[value] = _cast(load.dereferenced_value, value.type)
        entry.add_ops([field, load, *casts])
    lower = arith.IndexCastOp(begin, IndexType())
    upper = arith.IndexCastOp(end, IndexType())
    one = arith.ConstantOp(IntegerAttr(1, IndexType()))

    body = loop.body.block
    reduce_op = body.last_op
    assert isinstance(reduce_op, scf.ReduceOp)
    Rewriter.erase_op(reduce_op)
    loop_block = Block(arg_types=[IndexType()])
    body.args[0].replace_all_uses_with(loop_block.args[0])
    for op in list(body.ops):
        op.detach()
        loop_block.add_op(op)
    loop_block.add_op(scf.YieldOp())
    for_op = scf.ForOp(lower, upper, one, [], Region(loop_block))
    moved = set(for_op.walk())  # a set: a captured value may have thousands of uses outside
    for value, replacement in inside.items():
        value.replace_uses_with_if(replacement, lambda use: use.operation in moved)
    entry.add_ops([lower, upper, one, for_op, func.ReturnOp()])

    name = _unique_symbol(module, f"{parent.sym_name.data}_task")
    task = func.FuncOp(name, ([ptr, i64, i64], []), Region(entry), visibility="private")
    module.body.block.insert_op_after(task, parent)

    # The caller: pack the context (allocated once, in the entry block) and call the runtime.
    call_site: list[Operation] = []
    if passed:
        size = llvm.ConstantOp(IntegerAttr(1, i64), i64)
        alloca = llvm.AllocaOp(size, struct, alignment=64)
        parent_entry = parent.body.blocks.first
        assert parent_entry is not None
        # A no-op cast: xDSL's llvmlite translation types an alloca as a typed pointer and then
        # rejects stores of other types through it; a cast ``ptr`` is opaque again.
        opaque = llvm.BitcastOp(alloca, ptr)
        Rewriter.insert_op([size, alloca, opaque], InsertPoint.at_start(parent_entry))
        context = opaque.results[0]
        for k, value in enumerate(passed):
            casts, stored = _cast(value, fields[k])
            field = llvm.GEPOp(context, [0, k], struct)
            call_site += [*casts, field, llvm.StoreOp(stored, field)]
    else:
        null = llvm.ZeroOp(result_types=[ptr])
        call_site.append(null)
        context = null.res
    task_address = llvm.AddressOfOp(name, ptr)
    trip_count = arith.IndexCastOp(loop.upperBound[0], i64)
    call = llvm.CallOp(PARALLEL_FOR_SYMBOL, task_address, context, trip_count)
    call_site += [task_address, trip_count, call]
    Rewriter.insert_op(call_site, InsertPoint.before(loop))
    Rewriter.erase_op(loop)


def _inside_parallel(op: Operation) -> bool:
    parent = op.parent_op()
    while parent is not None:
        if isinstance(parent, scf.ParallelOp):
            return True
        parent = parent.parent_op()
    return False


@dataclass(frozen=True)
class OutlineParallelLoopsPass(ModulePass):
    """Outline every outermost ``scf.parallel`` into a task run by ``bnnmlir_parallel_for``.

    See the module docstring for the task signature, the context struct and the preconditions.
    """

    name = "outline-parallel-loops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        needs_runtime = False
        for function in [f for f in op.ops if isinstance(f, func.FuncOp)]:
            loops = [p for p in function.walk() if isinstance(p, scf.ParallelOp)]
            nested = [p for p in loops if _inside_parallel(p)]
            for loop in reversed(nested):
                serialize_parallel(loop)
            for loop in loops:
                if loop not in nested:
                    outline_parallel_loop(loop, function, op)
                    needs_runtime = True
        if needs_runtime:
            _declare_parallel_for(op)
