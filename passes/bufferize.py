"""``bnn-bufferize``: tensor-level functions to destination-passing functions on memrefs.

For ``func.func @f(%in_0..%in_k: tensor) -> (tensor_0..tensor_m)`` the result is
``func.func @f(%in_0..%in_k: memref, %out_0..%out_m: memref)`` returning nothing, with the
attributes ``bnn.num_inputs = k+1`` and ``bnn.num_outputs = m+1``:

* every tensor-level op in value form is rebuilt in buffer form, writing ``into`` a buffer: the
  output argument when its result is returned by the function (and returned once), else a fresh
  ``memref.alloc`` (placed later by ``bnn-plan-arena``);
* dense tensor constants become private constant ``memref.global``s read with
  ``memref.get_global``;
* a returned value that is not produced into its output buffer (a function argument, a constant,
  or a value returned twice) is copied into the output with a loop nest.

Preconditions: static shapes; the function body is one block of tensor-level ops (see
docs/lowering.md). Anything else fails the pass with a diagnostic naming the op.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.builder import Builder, InsertPoint
from xdsl.context import Context
from xdsl.dialects import arith, func, memref, scf
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FunctionType,
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.dialects.common import ShapedOpMixin

BUFFERIZABLE = ShapedOpMixin
"""Every op with a value form and a buffer form (see :class:`ShapedOpMixin`)."""


def memref_of(t: TensorType) -> MemRefType:
    return MemRefType(t.get_element_type(), t.get_shape())


def _buffer_form(op: Operation, operands: list[SSAValue], out: SSAValue) -> Operation:
    """Rebuild a value-form tensor op in buffer form, writing into ``out``.

    Buffer form = the same operands as memrefs, then the ``into`` operand, and no result; ops with
    several variadic operand groups record the split in ``operandSegmentSizes``.
    """
    if isinstance(op, ShapedOpMixin):
        return op.buffer_form(operands, out)
    return type(op).create(
        operands=[*operands, out],
        result_types=[],
        properties=dict(op.properties),
        attributes=dict(op.attributes),
    )


def _copy_loops(builder: Builder, src: SSAValue, dst: SSAValue, shape: tuple[int, ...]) -> None:
    """Emit ``dst[i...] = src[i...]`` as a loop nest."""
    zero = builder.insert(arith.ConstantOp.from_int_and_width(0, IndexType())).result
    one = builder.insert(arith.ConstantOp.from_int_and_width(1, IndexType())).result

    def nest(depth: int, indices: list[SSAValue], b: Builder) -> None:
        if depth == len(shape):
            value = b.insert(memref.LoadOp.get(src, indices)).res
            b.insert(memref.StoreOp.get(value, dst, indices))
            return
        upper = b.insert(arith.ConstantOp.from_int_and_width(shape[depth], IndexType())).result
        body = Block(arg_types=[IndexType()])
        inner = Builder(InsertPoint.at_end(body))
        nest(depth + 1, [*indices, body.args[0]], inner)
        inner.insert(scf.YieldOp())
        b.insert(scf.ForOp(zero, upper, one, [], Region(body)))

    nest(0, [], builder)


class _FunctionBufferizer:
    def __init__(self, module: ModuleOp, fn: func.FuncOp, globals_made: list[int]):
        self.module = module
        self.fn = fn
        self.globals_made = globals_made
        self.buffers: dict[SSAValue, SSAValue] = {}

    def fail(self, op: Operation, why: str) -> PassFailedException:
        return PassFailedException(f"bnn-bufferize: cannot bufferize '{op.name}' in @{self.fn.sym_name.data}: {why}")

    def run(self) -> None:
        fn = self.fn
        if len(fn.body.blocks) != 1:
            raise self.fail(fn, "the body must be a single block")
        block = fn.body.block
        ret = block.last_op
        if not isinstance(ret, func.ReturnOp):
            raise self.fail(fn, "the body must end with func.return")
        in_types = list(fn.function_type.inputs.data)
        out_types = list(fn.function_type.outputs.data)
        for t in [*in_types, *out_types]:
            if not isinstance(t, TensorType) or any(d < 0 for d in t.get_shape()):
                raise self.fail(fn, f"arguments and results must be static tensors, got {t}")

        # New arguments: the inputs become memrefs, one output buffer per result.
        for arg in block.args:
            new_type = memref_of(arg.type)  # type: ignore[arg-type]
            Rewriter.replace_value_with_new_type(arg, new_type)
        for arg in block.args:
            self.buffers[arg] = arg
        out_args = [block.insert_arg(memref_of(t), len(block.args)) for t in out_types]  # type: ignore[arg-type]
        for i, arg in enumerate(out_args):
            arg.name_hint = f"out{i}"

        # Results written straight into their output argument (each value once).
        destination: dict[SSAValue, SSAValue] = {}
        for value, out in zip(ret.arguments, out_args):
            if value not in destination and isinstance(value.owner, BUFFERIZABLE):
                destination[value] = out

        originals = list(block.ops)[:-1]
        for op in originals:
            self.bufferize_op(op, destination)

        builder = Builder(InsertPoint.before(ret))
        for value, out in zip(ret.arguments, out_args):
            if destination.get(value) is not out:
                _copy_loops(builder, self.buffers[value], out, tuple(out.type.get_shape()))  # type: ignore[union-attr]
        Rewriter.replace_op(ret, func.ReturnOp())
        for op in reversed(originals):
            if not (isinstance(op, arith.ConstantOp) and not isinstance(op.result.type, TensorType)):
                Rewriter.erase_op(op)

        fn.function_type = FunctionType.from_lists([a.type for a in block.args], [])
        fn.attributes["bnn.num_inputs"] = IntegerAttr(len(in_types), i64)
        fn.attributes["bnn.num_outputs"] = IntegerAttr(len(out_types), i64)

    def bufferize_op(self, op: Operation, destination: dict[SSAValue, SSAValue]) -> None:
        builder = Builder(InsertPoint.before(op))
        if isinstance(op, arith.ConstantOp) and isinstance(op.result.type, TensorType):
            self.buffers[op.result] = self.make_global(op, builder)
            return
        if isinstance(op, arith.ConstantOp):
            return  # scalar constants stay
        if not isinstance(op, BUFFERIZABLE):
            raise self.fail(op, "not a tensor-level bnn op (see docs/lowering.md)")
        if op.result is None:
            raise self.fail(op, "already in buffer form")
        operands = []
        for v in op.operands:
            if v not in self.buffers:
                raise self.fail(op, f"operand {v} has no buffer")
            operands.append(self.buffers[v])
        out = destination.get(op.result)
        if out is None:
            out = builder.insert(memref.AllocOp.get(op.result.type.get_element_type(), shape=op.result.type.get_shape())).memref  # type: ignore[union-attr]
        buffered = builder.insert(_buffer_form(op, operands, out))
        buffered.location = op.location  # the layer's module path, for reports and profiles
        self.buffers[op.result] = out

    def make_global(self, op: arith.ConstantOp, builder: Builder) -> SSAValue:
        value = op.value
        if not isinstance(value, DenseIntOrFPElementsAttr):
            raise self.fail(op, "only dense tensor constants are supported")
        mtype = memref_of(op.result.type)  # type: ignore[arg-type]
        name = f"__bnn_const_{self.globals_made[0]}"
        self.globals_made[0] += 1
        dense = DenseIntOrFPElementsAttr(mtype_to_tensor(mtype), value.data)
        glob = memref.GlobalOp.get(
            StringAttr(name), mtype, dense, sym_visibility=StringAttr("private"), constant=UnitAttr()
        )
        self.module.body.block.insert_op_before(glob, self.fn)
        return builder.insert(memref.GetGlobalOp(SymbolRefAttr(name), mtype)).memref


def mtype_to_tensor(t: MemRefType) -> TensorType:
    return TensorType(t.get_element_type(), t.get_shape())


@dataclass(frozen=True)
class BufferizePass(ModulePass):
    """Tensor-level bnn functions to destination-passing functions on memrefs."""

    name = "bnn-bufferize"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        counter = [0]
        for fn in list(op.ops):
            if isinstance(fn, func.FuncOp) and not fn.is_declaration:
                _FunctionBufferizer(op, fn, counter).run()
