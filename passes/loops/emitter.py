"""A small IR emitter for loop nests: constants hoisted to the function entry, loops, arithmetic.

Only ops of the loop level (docs/lowering.md, level 3) are created here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xdsl.builder import Builder
from xdsl.dialects import arith, llvm, memref, scf, vector
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    UnrealizedConversionCastOp,
    VectorType,
    f32,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

LoopBody = Callable[["Emitter", SSAValue, Sequence[SSAValue]], Sequence[SSAValue]]
"""``body(emitter, induction_variable, iter_args) -> values yielded``."""


def _signed(value: int, width: int) -> int:
    """``value`` modulo ``2**width`` as a signed ``width``-bit integer (0xFF -> -1 for i8)."""
    return (value + 2 ** (width - 1)) % 2**width - 2 ** (width - 1)


class ConstantPool:
    """Constants and global addresses of one function, created once at its entry."""

    def __init__(self, entry: Block):
        self._entry = entry
        self._last: Operation | None = None
        self._cache: dict[tuple, SSAValue] = {}
        self.index_values: dict[SSAValue, int] = {}
        """The value of every ``index`` constant of the pool."""

    def get(self, key: tuple, make: Callable[[], Operation]) -> SSAValue:
        if key not in self._cache:
            op = make()
            point = (
                InsertPoint.at_start(self._entry)
                if self._last is None
                else InsertPoint.after(self._last)
            )
            Rewriter.insert_op(op, point)
            self._last = op
            value = op.results[0]
            self._cache[key] = value
            if key[0] == "index":
                self.index_values[value] = key[1]
        return self._cache[key]


class Emitter:
    """Inserts ops at one point; constants go to the shared :class:`ConstantPool`."""

    def __init__(self, point: InsertPoint, pool: ConstantPool):
        self.builder = Builder(point)
        self.pool = pool

    def at(self, block: Block) -> Emitter:
        return Emitter(InsertPoint.at_end(block), self.pool)

    def emit(self, op: Operation) -> SSAValue:
        self.builder.insert(op)
        return op.results[0] if op.results else None  # type: ignore[return-value]

    # Constants -------------------------------------------------------------------------------
    def index(self, value: int) -> SSAValue:
        return self.pool.get(
            ("index", value), lambda: arith.ConstantOp(IntegerAttr(value, IndexType()))
        )

    def int(self, value: int, type: IntegerType) -> SSAValue:
        width = type.width.data
        value = _signed(value, width)
        return self.pool.get(
            ("int", value, width), lambda: arith.ConstantOp(IntegerAttr(value, type))
        )

    def f32_zero(self) -> SSAValue:
        return self.f32(0.0)

    def f32(self, value: float) -> SSAValue:
        return self.pool.get(("f32", value), lambda: arith.ConstantOp(FloatAttr(value, f32)))

    def vector_const(self, values: Sequence[int], elem: IntegerType) -> SSAValue:
        width = elem.width.data
        wrapped = tuple(_signed(v, width) for v in values)
        vtype = VectorType(elem, [len(values)])
        return self.pool.get(
            ("vector", wrapped, width),
            lambda: arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(vtype, wrapped)),
        )

    def get_global(self, name: str, type: MemRefType) -> SSAValue:
        return self.pool.get(("global", name), lambda: memref.GetGlobalOp(name, type))

    # Arithmetic ------------------------------------------------------------------------------
    def known(self, value: SSAValue) -> int | None:
        """The value of an ``index`` constant, ``None`` if not a constant."""
        return self.pool.index_values.get(value)

    def add(self, a: SSAValue, b: SSAValue) -> SSAValue:
        ka, kb = self.known(a), self.known(b)
        if ka is not None and kb is not None:
            return self.index(ka + kb)
        if ka == 0 or kb == 0:
            return b if ka == 0 else a
        return self.emit(arith.AddiOp(a, b))

    def sub(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.SubiOp(a, b))

    def mul(self, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.MuliOp(a, b))

    def cmpi(self, a: SSAValue, b: SSAValue, predicate: str) -> SSAValue:
        return self.emit(arith.CmpiOp(a, b, predicate))

    def select(self, cond: SSAValue, a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(arith.SelectOp(cond, a, b))

    def affine(self, base: SSAValue, scale: int, offset: int) -> SSAValue:
        """``base * scale + offset`` on ``index`` values, without the trivial ops."""
        if (k := self.known(base)) is not None:
            return self.index(k * scale + offset)
        value = base if scale == 1 else self.mul(base, self.index(scale))
        return value if offset == 0 else self.add(value, self.index(offset))

    # Memory ----------------------------------------------------------------------------------
    def load(self, ref: SSAValue, indices: Sequence[SSAValue]) -> SSAValue:
        return self.emit(memref.LoadOp.get(ref, indices))

    def store(self, value: SSAValue, ref: SSAValue, indices: Sequence[SSAValue]) -> None:
        self.emit(memref.StoreOp.get(value, ref, indices))

    def stack_buffer(self, count: int, elem: IntegerType) -> SSAValue:
        """A ``memref<count x elem>`` on the stack (an ``llvm.alloca`` aligned to 64 bytes, seen
        as a memref through an unrealized cast); bracket it with ``llvm.stacksave`` /
        ``llvm.stackrestore`` inside a loop."""
        size = self.emit(llvm.ConstantOp(IntegerAttr(count, i64), i64))
        raw = self.emit(llvm.AllocaOp(size, elem, alignment=64))
        opaque = self.emit(llvm.BitcastOp(raw, llvm.LLVMPointerType()))  # opaque again
        cast = UnrealizedConversionCastOp.get([opaque], [MemRefType(elem, [count])])
        return self.emit(cast)

    def vload(self, ref: SSAValue, indices: Sequence[SSAValue], lanes: int) -> SSAValue:
        elem = ref.type.get_element_type()  # type: ignore[attr-defined]
        return self.emit(vector.LoadOp(ref, indices, VectorType(elem, [lanes])))

    # Loops -----------------------------------------------------------------------------------
    def loop(
        self,
        lower: int,
        upper: int,
        body: LoopBody,
        iter_args: Sequence[SSAValue] = (),
        step: int = 1,
    ) -> list[SSAValue]:
        """``scf.for`` over ``lower, lower + step, ... < upper``; one iteration is emitted inline,
        none leaves ``iter_args`` unchanged."""
        if upper <= lower:
            return list(iter_args)
        if upper - lower <= step:
            return list(body(self, self.index(lower), list(iter_args)))
        block = Block(arg_types=[IndexType(), *(v.type for v in iter_args)])
        inner = self.at(block)
        yielded = body(inner, block.args[0], list(block.args[1:]))
        inner.emit(scf.YieldOp(*yielded))
        op = scf.ForOp(
            self.index(lower), self.index(upper), self.index(step), list(iter_args), Region(block)
        )
        self.builder.insert(op)
        return list(op.results)

    def if_else(
        self,
        cond: SSAValue,
        then_body: Callable[[Emitter], None],
        else_body: Callable[[Emitter], None],
    ) -> None:
        """``scf.if`` without results: ``then_body`` when ``cond`` (``i1``) holds, else
        ``else_body``."""
        regions = []
        for body in (then_body, else_body):
            block = Block()
            inner = self.at(block)
            body(inner)
            inner.emit(scf.YieldOp())
            regions.append(Region(block))
        self.builder.insert(scf.IfOp(cond, [], regions[0], regions[1]))

    def parallel(self, upper: int, body: Callable[[Emitter, SSAValue], None]) -> None:
        """``scf.parallel`` over ``[0, upper)`` with one induction variable and no reductions."""
        block = Block(arg_types=[IndexType()])
        inner = self.at(block)
        body(inner, block.args[0])
        inner.emit(scf.ReduceOp())
        self.builder.insert(
            scf.ParallelOp([self.index(0)], [self.index(upper)], [self.index(1)], Region(block))
        )
