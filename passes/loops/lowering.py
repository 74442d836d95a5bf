"""What every loop lowering of ``lower-bnn-to-loops`` shares: the module's constant globals, the
failure of an op that cannot be lowered, the buffer-form check, and the signature of a lowering.

A lowering is ``lower(emitter, op, context)``: it emits the loop nest of the buffer-form ``op``
at ``emitter`` (the pass erases ``op`` afterwards); ``context`` gives the target, the
``parallel`` option and :meth:`LoweringContext.add_global` for per-channel parameter arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import Operation
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.ir_utils import numpy_to_dense, static_memref
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.target import TargetInfo

AddGlobal = Callable[[str, list, MemRefType], str]
"""``add_global(stem, values, memref_type) -> symbol name`` of a new private constant global."""

MIN_UNCHECKED_ROWS_MACS = 1 << 24
"""MACs of a convolution's interior rows below which they run the row-checked code too
(:func:`rows_without_checks`). A copy of the kernel without row checks saves a compare and
select per kernel row and output block (and, for a binary convolution, a few correction loads
per output); on small layers that is microseconds at run time (the 9.7 M-MAC ``c37`` bench
layer: about 5 us, 10%) against a second copy of the kernel to compile (on the 32x32 demo
network, whose binary layers have 1 to 19 M MACs, about a third of its compile time)."""


MIN_BLOCKED_MACS = 1 << 20
"""Binary MACs below which a binary convolution does not get the register-blocked kernel
(:mod:`~bnnmlir.passes.loops.bconv_blocks`) but the compact per-pixel code: a microsecond of work
or less, where the blocked kernel's unrolled blocks, tiles and per-channel outputs are mostly code
to compile (Bi-Real-Net-18's 512 -> 1000 binary head, 0.5 M MACs: 15% of the network's LLVM IR,
the same speed without it: 2.93 vs 2.95 ms per image in alternating calls)."""


def interior_range(
    size: int, out_size: int, kernel: int, stride: int, dilation: int, pad_lo: int
) -> tuple[int, int]:
    """``(lo, hi)``: the outputs along one axis whose taps all lie in ``[0, size)`` (``lo == hi``
    when there are none)."""
    lo = min(out_size, -(-pad_lo // stride))
    hi = min(out_size, (size - 1 + pad_lo - (kernel - 1) * dilation) // stride + 1)
    return lo, max(lo, hi)


def large_enough_to_block(macs: int, threshold: int = -1) -> bool:
    """A binary convolution of ``macs`` MACs gets the blocked kernel: at least ``threshold``
    (-1: :data:`MIN_BLOCKED_MACS`)."""
    return macs >= (MIN_BLOCKED_MACS if threshold < 0 else threshold)


def rows_without_checks(interior: tuple[int, int], out_rows: int, layer_macs: int,
                        threshold: int = -1) -> tuple[int, int]:
    """The output rows a convolution computes with a copy of its kernel that has no row bounds
    checks: ``interior`` (the rows whose taps all lie inside the input), or none (``(0, 0)``)
    when the layer has border rows and its interior rows carry fewer than ``threshold`` MACs
    (-1: :data:`MIN_UNCHECKED_ROWS_MACS`) of its ``layer_macs`` over ``out_rows`` rows. Every
    row then runs the row-checked code, which is exact on interior rows too (its checks pass),
    and the kernel is emitted once instead of twice."""
    lo, hi = interior
    limit = MIN_UNCHECKED_ROWS_MACS if threshold < 0 else threshold
    if lo < hi and (lo, hi) != (0, out_rows) and layer_macs // out_rows * (hi - lo) < limit:
        return (0, 0)
    return interior


GlobalValues = Sequence[int | float] | np.ndarray
"""The values of a new global: a list (small per-channel parameters) or a numpy array, stored as
its bytes without a Python object per element (weights)."""


class ModuleGlobals:
    """Private constant ``memref.global``s added to one module, named ``{stem}{tag}_{k}`` with
    the first ``k`` that no symbol of the module takes (``tag``: empty, or a distinct suffix per
    process when parts of a module are lowered in several processes)."""

    def __init__(self, module: ModuleOp, tag: str = ""):
        self.module = module
        self.tag = tag
        self.taken = {
            op.sym_name.data
            for op in module.ops
            if isinstance(getattr(op, "sym_name", None), StringAttr)
        }

    def add(self, stem: str, values: GlobalValues, mtype: MemRefType, before: Operation) -> str:
        """Add the global of ``values`` (shape and element type of ``mtype``) before ``before``,
        an op of the module's body; return its name."""
        stem = stem + self.tag
        k = 0
        while f"{stem}_{k}" in self.taken:
            k += 1
        name = f"{stem}_{k}"
        self.taken.add(name)
        tensor = TensorType(mtype.get_element_type(), mtype.get_shape())
        glob = memref.GlobalOp.get(
            StringAttr(name),
            mtype,
            numpy_to_dense(values.reshape(mtype.get_shape()), tensor)
            if isinstance(values, np.ndarray)
            else DenseIntOrFPElementsAttr.from_list(tensor, values),
            sym_visibility=StringAttr("private"),
            constant=UnitAttr(),
        )
        self.module.body.block.insert_op_before(glob, before)
        return name


@dataclass(frozen=True)
class LoweringContext:
    """What a lowering needs beyond its op: the target, the ``parallel`` option, and the module's
    globals, new ones placed before ``function`` (the function being lowered)."""

    target: TargetInfo
    parallel: bool
    globals: ModuleGlobals
    function: func.FuncOp
    min_unchecked_rows_macs: int = -1
    """See :class:`~bnnmlir.passes.lower_bnn_to_loops.LowerBnnToLoopsPass` (-1: the default)."""
    min_blocked_macs: int = -1
    """See :class:`~bnnmlir.passes.lower_bnn_to_loops.LowerBnnToLoopsPass` (-1: the default)."""

    def add_global(self, stem: str, values: list, mtype: MemRefType) -> str:
        return self.globals.add(stem, values, mtype, self.function)


Lowering = Callable[[Emitter, Operation, LoweringContext], None]
"""``lower(emitter, op, context)``: emit the loop nest of the buffer-form ``op``."""


def cannot_lower(op: Operation, why: str) -> PassFailedException:
    """The failure of ``lower-bnn-to-loops`` on ``op``, naming the op and its function."""
    fn = op.parent_op()
    while fn is not None and not isinstance(fn, func.FuncOp):
        fn = fn.parent_op()
    where = f" in @{fn.sym_name.data}" if fn is not None else ""
    return PassFailedException(f"lower-bnn-to-loops: cannot lower '{op.name}'{where}: {why}")


def check_buffer_form(op: Operation) -> None:
    """``op`` writes an ``into`` buffer, every operand a memref of static shape and identity
    layout; else :func:`cannot_lower`."""
    if op.results or getattr(op, "out", None) is None:
        raise cannot_lower(
            op, "expected the buffer form (memref operands, 'into' buffer); run bnn-bufferize first"
        )
    for value in op.operands:
        try:
            static_memref(value.type)
        except ValueError as e:
            raise cannot_lower(op, str(e)) from None
