"""``bnn-plan-arena``: a static memory plan for the intermediate buffers of each function.

Every ``memref.alloc`` of a function (static shape) becomes a view into ONE arena, a new last
argument ``%arena: memref<B x i8>``; the function gets ``bnn.arena_size = B``.

Plan. The body is a straight-line block, so the live range of buffer ``b`` is the interval
``[def(b), last_use(b)]`` of op positions. Two buffers may share bytes iff their intervals are
disjoint. Buffers are placed largest first, each at the lowest offset (a multiple of
``alignment``, default 64 bytes) whose byte range does not overlap any already placed buffer with
an intersecting live range (first fit over the sorted occupied ranges). ``B`` is the highest end
offset. The plan is exact for straight-line code: no byte is used by two live buffers at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.builder import Builder, InsertPoint
from xdsl.context import Context
from xdsl.dialects import arith, func, memref
from xdsl.dialects.builtin import (
    FunctionType,
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    i8,
    i64,
)
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.ir_utils import byte_size


@dataclass(frozen=True)
class Interval:
    start: int
    end: int
    size: int


def plan_offsets(buffers: list[Interval], alignment: int = 64) -> tuple[list[int], int]:
    """First-fit placement, largest first; returns (offset per buffer, arena size)."""

    def align(x: int) -> int:
        return (x + alignment - 1) // alignment * alignment

    offsets = [0] * len(buffers)
    placed: list[int] = []
    for i in sorted(range(len(buffers)), key=lambda k: (-buffers[k].size, buffers[k].start)):
        b = buffers[i]
        busy = sorted(
            (offsets[j], offsets[j] + buffers[j].size)
            for j in placed
            if buffers[j].start <= b.end and b.start <= buffers[j].end
        )
        offset = 0
        for lo, hi in busy:
            if offset + b.size <= lo:
                break
            offset = max(offset, align(hi))
        offsets[i] = offset
        placed.append(i)
    size = max((offsets[i] + buffers[i].size for i in range(len(buffers))), default=0)
    return offsets, align(size)


def _plan_function(fn: func.FuncOp, alignment: int) -> None:
    block = fn.body.block
    position = {op: i for i, op in enumerate(block.ops)}
    allocs: list[memref.AllocOp] = []
    for op in fn.walk():
        if isinstance(op, memref.AllocOp):
            if op.parent_block() is not block:
                raise PassFailedException(
                    f"bnn-plan-arena: memref.alloc in @{fn.sym_name.data} must be at function level"
                )
            allocs.append(op)
    intervals = []
    for op in allocs:
        t = op.memref.type
        assert isinstance(t, MemRefType)
        if any(d < 0 for d in t.get_shape()):
            raise PassFailedException(f"bnn-plan-arena: dynamic buffer {t} in @{fn.sym_name.data}")
        last = position[op]
        for use in op.memref.uses:
            user: Operation | None = use.operation
            while user is not None and user.parent_block() is not block:
                user = user.parent_op()
            if user is not None:
                last = max(last, position[user])
        intervals.append(Interval(position[op], last, byte_size(t)))
    offsets, size = plan_offsets(intervals, alignment)

    arena = block.insert_arg(MemRefType(i8, [size]), len(block.args))
    arena.name_hint = "arena"
    for op, offset in zip(allocs, offsets):
        builder = Builder(InsertPoint.before(op))
        shift = builder.insert(arith.ConstantOp(IntegerAttr(offset, IndexType()))).result
        view = builder.insert(memref.ViewOp(arena, shift, [], op.memref.type))  # type: ignore[arg-type]
        Rewriter.replace_op(op, [], [view.result])
    for op in list(fn.walk()):
        if isinstance(op, memref.DeallocOp):
            Rewriter.erase_op(op)
    fn.function_type = FunctionType.from_lists([a.type for a in block.args], fn.function_type.outputs.data)
    fn.attributes["bnn.arena_size"] = IntegerAttr(size, i64)


@dataclass(frozen=True)
class PlanArenaPass(ModulePass):
    """Place every intermediate buffer at a compile-time offset of one arena, reused by liveness."""

    name = "bnn-plan-arena"

    alignment: int = 64

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.alignment < 1 or self.alignment & (self.alignment - 1):
            raise PassFailedException("bnn-plan-arena: alignment must be a power of two")
        for fn in op.ops:
            if isinstance(fn, func.FuncOp) and not fn.is_declaration:
                if "bnn.arena_size" in fn.attributes:
                    continue
                _plan_function(fn, self.alignment)
