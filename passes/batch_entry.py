"""``bnn-batch-entry{entry=forward threads=1}``: one entry point for any batch size.

Input: the buffer level after ``bnn-plan-arena``. ``@entry`` computes ONE image:

    func.func @entry(%in_0: memref<1 x ...>, ..., %out_0: memref<1 x ...>, ...,
                     %arena: memref<A x i8>)
        attributes {bnn.num_inputs = k, bnn.num_outputs = m, bnn.arena_size = A}

Every input and output has the leading (batch) dimension 1; ``B_j`` is the byte size of argument
``j`` (one image of it). Output: that function, renamed ``@<entry>_image`` and made private (its
attributes kept), and a new ``@entry`` that takes the batch size first and every buffer as bytes:

    func.func @entry(%n: index, %in_0: memref<?xi8>, ..., %out_0: memref<?xi8>, ...,
                     %arena: memref<?xi8>)
        attributes {bnn.num_inputs = k, bnn.num_outputs = m, bnn.arena_size = A,
                    bnn.parallel_images = T}

with ``T = threads`` and ``P = min(n, T)`` slots:

    scf.parallel %s = 0 to P {                          // scf.for when T = 1
      %scratch = memref.view %arena[s * A][] : memref<?xi8> to memref<A x i8>
      scf.for %i = %s to %n step P {
        %x_j = memref.view %in_j[i * B_j][] : memref<?xi8> to memref<1 x ...>   (each buffer)
        func.call @<entry>_image(%x_0, ..., %y_0, ..., %scratch)
      }
    }

Why this computes the batch: the buffers hold the ``n`` images one after the other along dimension
0 (row-major), so image ``i`` of argument ``j`` is the ``B_j`` bytes at ``i * B_j``. Every image
``i`` in ``[0, n)`` is run exactly once, by slot ``i mod P``. Slot ``s`` owns the arena bytes
``[s * A, (s + 1) * A)``, disjoint from every other slot's; the images of one slot run one after
the other, so no two images that may run at the same time share scratch memory, and the outputs
of different images are disjoint byte ranges. The call on image ``i`` therefore computes exactly
what the batch-1 function computes on that image alone; that this is the model's result on image
``i`` of the batch (the images are independent) is the frontend's obligation
(:mod:`bnnmlir.frontend.batch`).

Arena: ``A * min(n, T)`` bytes (``A`` is a multiple of the arena alignment, so every slot's scratch
starts aligned as the batch-1 function's arena does). ``n <= 0`` runs nothing.

Threads: ``outline-parallel-loops`` turns the ``scf.parallel`` over slots into a call of the
runtime's parallel-for. With ``n = 1`` that call runs its only slot inline, and the parallel loops
of the image function use every thread; with ``n > 1`` the slots are spread over the threads and
the image function's own parallel loops, nested inside, run inline on the thread of their slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, memref, scf
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    IndexType,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    i8,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.ir_utils import byte_size

PASS_NAME = "bnn-batch-entry"
IMAGE_SUFFIX = "_image"
PARALLEL_IMAGES_ATTR = "bnn.parallel_images"
"""Attribute of the batch entry point: ``T``, the most images that run at the same time."""


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"{PASS_NAME}: {message}")


def _int_attr(fn: func.FuncOp, name: str) -> int:
    attr = fn.attributes.get(name)
    if not isinstance(attr, IntegerAttr):
        raise _fail(f"@{fn.sym_name.data} has no '{name}': run bnn-plan-arena first")
    return attr.value.data


def _check_image_function(fn: func.FuncOp) -> tuple[int, int, int]:
    name = fn.sym_name.data
    k, m = _int_attr(fn, "bnn.num_inputs"), _int_attr(fn, "bnn.num_outputs")
    arena = _int_attr(fn, "bnn.arena_size")
    types = fn.function_type.inputs.data
    if len(types) != k + m + 1 or fn.function_type.outputs.data:
        raise _fail(f"@{name} must take {k} inputs, {m} outputs and the arena, and return nothing")
    for index, t in enumerate(types[:-1]):
        if not isinstance(t, MemRefType) or not t.get_shape() or t.get_shape()[0] != 1:
            raise _fail(
                f"argument {index} of @{name} has type {t}: every input and output must be a "
                "memref whose leading (batch) dimension is 1"
            )
        if any(d < 0 for d in t.get_shape()):
            raise _fail(f"argument {index} of @{name} has the dynamic type {t}")
    return k, m, arena


def _emit(block: Block, op: Operation) -> SSAValue:
    block.add_op(op)
    return op.results[0]


def _index(block: Block, value: int) -> SSAValue:
    return _emit(block, arith.ConstantOp(IntegerAttr(value, IndexType())))


def _view(block: Block, bytes_: SSAValue, index: SSAValue, stride: int, t: MemRefType) -> SSAValue:
    """``t`` at byte ``index * stride`` of ``bytes_``."""
    offset = _emit(block, arith.MuliOp(index, _index(block, stride)))
    return _emit(block, memref.ViewOp(bytes_, offset, [], t))


def batch_entry(image: func.FuncOp, entry: str, image_name: str, threads: int) -> func.FuncOp:
    """The entry point ``@entry`` calling ``image`` (checked) on each image of a batch; see the
    module docstring; ``image`` is called by the name ``image_name``."""
    k, m, arena_size = _check_image_function(image)
    types = image.function_type.inputs.data
    buffers = [t for t in types[:-1] if isinstance(t, MemRefType)]
    dynamic_bytes = MemRefType(i8, [DYNAMIC_INDEX])
    body = Block(arg_types=[IndexType(), *[dynamic_bytes] * (k + m + 1)])
    n, arena = body.args[0], body.args[-1]
    n.name_hint, arena.name_hint = "n", "arena"
    zero, one = _index(body, 0), _index(body, 1)
    slots = _emit(body, arith.MinSIOp(n, _index(body, threads)))

    slot_block = Block(arg_types=[IndexType()])
    slot = slot_block.args[0]
    scratch = _view(slot_block, arena, slot, arena_size, MemRefType(i8, [arena_size]))
    image_block = Block(arg_types=[IndexType()])
    i = image_block.args[0]
    views = [_view(image_block, arg, i, byte_size(t), t)
             for arg, t in zip(body.args[1:-1], buffers)]
    image_block.add_ops([func.CallOp(image_name, [*views, scratch], []), scf.YieldOp()])
    slot_block.add_op(scf.ForOp(slot, n, slots, [], Region(image_block)))
    if threads > 1:
        slot_block.add_op(scf.ReduceOp())
        body.add_op(scf.ParallelOp([zero], [slots], [one], Region(slot_block)))
    else:
        slot_block.add_op(scf.YieldOp())
        body.add_op(scf.ForOp(zero, slots, one, [], Region(slot_block)))
    body.add_op(func.ReturnOp())

    wrapper = func.FuncOp(entry, (list(body.arg_types), []), Region(body))
    for name in ("bnn.num_inputs", "bnn.num_outputs", "bnn.arena_size"):
        wrapper.attributes[name] = image.attributes[name]
    wrapper.attributes[PARALLEL_IMAGES_ATTR] = IntegerAttr(threads, i64)
    return wrapper


@dataclass(frozen=True)
class BatchEntryPass(ModulePass):
    """Give ``@entry`` (a batch-1 function) a batch-size argument; see the module docstring."""

    name = "bnn-batch-entry"

    entry: str = "forward"
    threads: int = 1

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.threads < 1:
            raise _fail(f"threads must be at least 1, got {self.threads}")
        functions = {f.sym_name.data: f for f in op.ops if isinstance(f, func.FuncOp)}
        image = functions.get(self.entry)
        if image is None or image.is_declaration:
            raise _fail(f"no function @{self.entry} in the module")
        image_name = self.entry + IMAGE_SUFFIX
        if image_name in functions:
            raise _fail(f"the module already has a function @{image_name}")
        wrapper = batch_entry(image, self.entry, image_name, self.threads)
        image.sym_name = StringAttr(image_name)
        image.sym_visibility = StringAttr("private")
        op.body.block.insert_op_after(wrapper, image)
