"""``bnn-profile-layers{entry=forward}``: a profiling build that times every layer.

Input: the buffer level after ``bnn-plan-arena`` (before ``bnn-batch-entry``). ``@entry`` has
``k`` inputs, ``m`` outputs and the arena; its ``bnn`` ops carry their layer's module path as a
``NameLoc`` (see :func:`bnnmlir.report.layer_of`). Let ``L_0 .. L_{N-1}`` be the distinct layers
in order of their first ``bnn`` op. The pass

* adds one more output, ``%profile: memref<1x(N+1)xi64>``, after the other outputs (so
  ``bnn.num_outputs`` becomes ``m + 1``; its leading dimension 1 lets ``bnn-batch-entry`` give
  every image its own row) and records the layer names in ``bnn.profile_layers``;
* stores 0 into every slot at entry; reads the clock (``@bnnmlir_clock_ns() -> i64``, monotonic
  nanoseconds, from the runtime) before the first and after the last ``bnn`` op of each segment
  (a maximal run of ``bnn`` ops of one layer, the address ops between them included) and adds the
  difference to the layer's slot; stores the time from entry to return into slot ``N``.

So ``profile[0, i]`` is the wall time of layer ``L_i`` (the sum over its segments) and
``profile[0, N]`` that of the whole call: the slots of the layers add up to the total less the
clock reads and the few address computations between segments. The computation of every other
output is unchanged (the clock calls and slot updates touch only ``%profile``), so a profiling
build gives the same outputs, bit for bit, as the ordinary one.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, memref
from xdsl.dialects.builtin import (
    ArrayAttr,
    FunctionType,
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    i64,
)
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint
from xdsl.builder import Builder
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.report import layer_of

PASS_NAME = "bnn-profile-layers"
CLOCK_SYMBOL = "bnnmlir_clock_ns"
"""The runtime's clock (runtime/bnnmlir_runtime.h): ``int64_t bnnmlir_clock_ns(void)``."""
LAYERS_ATTR = "bnn.profile_layers"
"""Attribute of the profiled function: the layer of each slot of ``%profile``, in slot order."""


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"{PASS_NAME}: {message}")


def _segments(block: Block) -> list[tuple[str, Operation, Operation]]:
    """``(layer, first bnn op, last bnn op)`` of each maximal run of one layer's ``bnn`` ops."""
    segments: list[tuple[str, Operation, Operation]] = []
    for op in block.ops:
        if not op.name.startswith("bnn."):
            continue
        layer = layer_of(op)
        if segments and segments[-1][0] == layer:
            segments[-1] = (layer, segments[-1][1], op)
        else:
            segments.append((layer, op, op))
    return segments


def _declare_clock(module: ModuleOp) -> None:
    expected = FunctionType.from_lists([], [i64])
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == CLOCK_SYMBOL:
            if op.is_declaration and op.function_type == expected:
                return
            raise _fail(f"'@{CLOCK_SYMBOL}' already exists with another signature or a body")
    module.body.block.add_op(func.FuncOp.external(CLOCK_SYMBOL, [], [i64]))


class _Slots:
    """Reads the clock and updates the slots of ``%profile`` at a builder's insertion point."""

    def __init__(self, profile: SSAValue):
        self.profile = profile

    def clock(self, b: Builder) -> SSAValue:
        return b.insert(func.CallOp(CLOCK_SYMBOL, [], [i64])).results[0]

    def index(self, b: Builder, value: int) -> SSAValue:
        return b.insert(arith.ConstantOp(IntegerAttr(value, IndexType()))).result

    def store(self, b: Builder, value: SSAValue, slot: int) -> None:
        b.insert(memref.StoreOp.get(value, self.profile, [self.index(b, 0), self.index(b, slot)]))

    def add_elapsed(self, b: Builder, start: SSAValue, slot: int) -> None:
        elapsed = b.insert(arith.SubiOp(self.clock(b), start)).result
        old = b.insert(memref.LoadOp.get(self.profile, [self.index(b, 0), self.index(b, slot)]))
        self.store(b, b.insert(arith.AddiOp(old.res, elapsed)).result, slot)


def profile_function(fn: func.FuncOp) -> list[str]:
    """Instrument ``fn`` (see the module docstring); returns the layer of each slot."""
    name = fn.sym_name.data
    if LAYERS_ATTR in fn.attributes:
        raise _fail(f"@{name} is profiled already")
    counts = [fn.attributes.get(a) for a in ("bnn.num_inputs", "bnn.num_outputs", "bnn.arena_size")]
    if not all(isinstance(c, IntegerAttr) for c in counts):
        raise _fail(f"@{name} has no buffer signature: run bnn-bufferize and bnn-plan-arena first")
    k, m = (c.value.data for c in counts[:2])  # type: ignore[union-attr]
    block = fn.body.block
    if len(block.args) != k + m + 1 or fn.function_type.outputs.data:
        raise _fail(f"@{name} must take {k} inputs, {m} outputs and the arena, and return nothing")
    segments = _segments(block)
    layers = list(dict.fromkeys(layer for layer, _, _ in segments))
    slot_of = {layer: i for i, layer in enumerate(layers)}
    total = len(layers)

    profile = block.insert_arg(MemRefType(i64, [1, total + 1]), k + m)
    profile.name_hint = "profile"
    fn.function_type = FunctionType.from_lists([a.type for a in block.args], [])
    fn.attributes["bnn.num_outputs"] = IntegerAttr(m + 1, i64)
    fn.attributes[LAYERS_ATTR] = ArrayAttr([StringAttr(layer) for layer in layers])

    slots = _Slots(profile)
    assert block.first_op is not None and block.last_op is not None
    b = Builder(InsertPoint.before(block.first_op))
    zero = b.insert(arith.ConstantOp(IntegerAttr(0, i64))).result
    for slot in range(total + 1):
        slots.store(b, zero, slot)
    entry_time = slots.clock(b)
    for layer, first, last in segments:
        start = slots.clock(Builder(InsertPoint.before(first)))
        slots.add_elapsed(Builder(InsertPoint.after(last)), start, slot_of[layer])
    if not isinstance(block.last_op, func.ReturnOp):
        raise _fail(f"@{name} must end with func.return")
    end = Builder(InsertPoint.before(block.last_op))
    slots.store(end, end.insert(arith.SubiOp(slots.clock(end), entry_time)).result, total)
    return layers


@dataclass(frozen=True)
class ProfileLayersPass(ModulePass):
    """Time every layer of ``@entry`` into an extra ``%profile`` output; see the module
    docstring."""

    name = "bnn-profile-layers"

    entry: str = "forward"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        fn = next((f for f in op.ops if isinstance(f, func.FuncOp)
                   and f.sym_name.data == self.entry and not f.is_declaration), None)
        if fn is None:
            raise _fail(f"no function @{self.entry} in the module")
        _declare_clock(op)
        profile_function(fn)
