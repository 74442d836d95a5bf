"""``lower-bnn-to-loops``: buffer-form bnn ops (level 2) to loop nests (level 3, docs/lowering.md).

Input: ``func.func``s whose ``bnn.binarize``, ``bnn.bconv2d``, ``bnn.clip8`` and ``bnn.threshold``
ops are in buffer form on memrefs of static shape and identity layout. Each op is replaced, in
place, by a loop nest that writes its ``into`` buffer; constants (``arith.constant``,
``memref.get_global``) are created once at the function entry. Anything else (value form, dynamic
shapes, strided layouts) fails the pass with a diagnostic naming the op.

* ``bnn.binarize``: per row and word, byte = OR of ``(x[c] < 0) << (c % 8)`` over the word's
  channels (``cmpf olt`` for f32, ``cmpi slt`` for ints); the last word only has ``C % 8``.
* ``bnn.threshold``: the same packing with bit 1 iff ``x < t[c]`` (``d[c] = +1``) or ``x > t[c]``
  (``d[c] = -1``); ``t`` and ``d`` are private constant ``memref.global``s.
* ``bnn.clip8``: ``trunci(minsi(maxsi(x, -127), 127))``.
* ``bnn.bconv2d``: direct convolution, the reduction over each tap's packed bytes a chain of
  ``bnn.narrow_acc`` on ``M``-byte vectors chosen from the target's vector width, see
  :mod:`bnnmlir.passes.loops.bconv2d`. A fused output transform is applied to each ``i32``
  result before its store: ``clip8`` and ``threshold`` as the standalone ops, ``requant8`` with
  the per-element code of ``bnn.requant8`` (its arrays private constant ``memref.global``s).

Narrow accumulation, the proof (details in :mod:`bnnmlir.passes.accumulator_width`): one output is
a chain of ``S = KH*KW*Q`` steps (``Q`` chunks per tap). A step adds at most ``8*G`` to a lane of
``G`` bytes, so ``A``-bit lanes are exact for ``n`` steps iff ``n*8*G <= 2**A - 1``. The pass takes
8-bit lanes if ``S`` steps fit, else 16-bit lanes, else 16-bit lanes flushed into an ``i32`` total
after every row of taps or every tap, else 32-bit lanes; every ``narrow_acc`` carries the length
of its uninterrupted chain as ``max_steps``, which the op verifier re-checks. The lanes are summed
in ``i32`` (extended lane by lane), or in the lane type when that sum is provably at most
``2**A - 1`` (a whole output's popcount is at most ``K = KH*KW*C``); the sum of all lanes is at
most ``8*KH*KW*Q*M < 2**31`` (checked), and ``K - 2*popcount`` is the exact output, ``|out| <= K``.

Options: ``target`` (``host`` or ``aarch64``, :func:`bnnmlir.target.get_target`) gives the
vector width and the popcount kind; ``parallel`` makes the outer loop of every convolution, over the ``N*OH`` output
rows, an ``scf.parallel`` with one induction variable and no reductions.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    i8,
    i32,
)
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.dialects.bnn import BConv2dOp, BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.ir_utils import static_memref
from bnnmlir.passes.loops.bconv2d import ThresholdTables, lower_bconv2d
from bnnmlir.passes.loops.elementwise import lower_binarize, lower_clip8, lower_threshold
from bnnmlir.passes.loops.emitter import ConstantPool, Emitter
from bnnmlir.passes.loops.support import (
    SUPPORT_LOWERED_OPS,
    lower_support_op,
    requant8_epilogue,
)
from bnnmlir.target import TargetInfo, get_target

CORE_LOWERED_OPS = (BinarizeOp, BConv2dOp, Clip8Op, ThresholdOp)
LOWERED_OPS = (*CORE_LOWERED_OPS, *SUPPORT_LOWERED_OPS)


class _ModuleGlobals:
    """Private constant ``memref.global``s added to the module, with fresh names."""

    def __init__(self, module: ModuleOp):
        self.module = module
        self.taken = {
            op.sym_name.data
            for op in module.ops
            if isinstance(getattr(op, "sym_name", None), StringAttr)
        }

    def add(self, stem: str, values: list[int], mtype: MemRefType, before: Operation) -> str:
        k = 0
        while f"{stem}_{k}" in self.taken:
            k += 1
        name = f"{stem}_{k}"
        self.taken.add(name)
        tensor = TensorType(mtype.get_element_type(), mtype.get_shape())
        glob = memref.GlobalOp.get(
            StringAttr(name),
            mtype,
            DenseIntOrFPElementsAttr.from_list(tensor, values),
            sym_visibility=StringAttr("private"),
            constant=UnitAttr(),
        )
        self.module.body.block.insert_op_before(glob, before)
        return name


def _fail(op: Operation, fn: func.FuncOp, why: str) -> PassFailedException:
    return PassFailedException(
        f"lower-bnn-to-loops: cannot lower '{op.name}' in @{fn.sym_name.data}: {why}"
    )


def _check_buffer_form(op: Operation, fn: func.FuncOp) -> None:
    if op.results or getattr(op, "out", None) is None:
        raise _fail(
            op,
            fn,
            "expected the buffer form (memref operands, 'into' buffer); run bnn-bufferize first",
        )
    for value in op.operands:
        try:
            static_memref(value.type)
        except ValueError as e:
            raise _fail(op, fn, str(e)) from None


@dataclass(frozen=True)
class LowerBnnToLoopsPass(ModulePass):
    """Buffer-form bnn ops to loop nests with narrow accumulation (see the module docstring)."""

    name = "lower-bnn-to-loops"

    target: str = "host"
    parallel: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        try:
            target = get_target(self.target)
        except ValueError as e:
            raise PassFailedException(f"lower-bnn-to-loops: {e}") from None
        module_globals = _ModuleGlobals(op)
        for fn in list(op.ops):
            if isinstance(fn, func.FuncOp) and not fn.is_declaration:
                self._lower_function(fn, module_globals, target)

    def _lower_function(
        self, fn: func.FuncOp, module_globals: _ModuleGlobals, target: TargetInfo
    ) -> None:
        targets = [o for o in fn.walk() if isinstance(o, LOWERED_OPS)]
        for bnn_op in targets:
            _check_buffer_form(bnn_op, fn)
        if not targets:
            return
        pool = ConstantPool(fn.body.blocks[0])
        for bnn_op in targets:
            em = Emitter(InsertPoint.before(bnn_op), pool)
            try:
                self._lower_op(bnn_op, em, fn, module_globals, target)
            except ValueError as e:
                raise _fail(bnn_op, fn, str(e)) from None
            Rewriter.erase_op(bnn_op)

    @staticmethod
    def _threshold_tables(
        thresholds: list[int],
        directions: list[int],
        em: Emitter,
        fn: func.FuncOp,
        module_globals: _ModuleGlobals,
    ) -> ThresholdTables:
        """Per-channel thresholds (and directions, unless all equal) as constant globals."""
        t_type = MemRefType(i32, [len(thresholds)])
        t_name = module_globals.add("__bnn_thresholds", thresholds, t_type, fn)
        d_ref = None
        uniform = directions[0] if len(set(directions)) == 1 else None
        if uniform is None:
            d_type = MemRefType(i8, [len(directions)])
            d_name = module_globals.add("__bnn_directions", directions, d_type, fn)
            d_ref = em.get_global(d_name, d_type)
        return ThresholdTables(em.get_global(t_name, t_type), d_ref, uniform)

    def _lower_op(
        self,
        bnn_op: Operation,
        em: Emitter,
        fn: func.FuncOp,
        module_globals: _ModuleGlobals,
        target: TargetInfo,
    ) -> None:
        if isinstance(bnn_op, BConv2dOp):
            tables = None
            if bnn_op.output_kind == "threshold":
                assert bnn_op.thresholds is not None and bnn_op.directions is not None
                tables = self._threshold_tables(
                    list(bnn_op.thresholds.get_values()), list(bnn_op.directions.get_values()),
                    em, fn, module_globals,
                )
            requant = None
            if bnn_op.output_kind == "requant8":
                channels = bnn_op.output_type().get_shape()[-1]
                requant = requant8_epilogue(
                    em, lambda stem, values, mtype: module_globals.add(stem, values, mtype, fn),
                    bnn_op.requant_params, channels,
                )
            lower_bconv2d(em, bnn_op, target, self.parallel, tables, requant)
        elif isinstance(bnn_op, BinarizeOp):
            lower_binarize(em, bnn_op.input, bnn_op.out)  # type: ignore[arg-type]
        elif isinstance(bnn_op, Clip8Op):
            lower_clip8(em, bnn_op.input, bnn_op.out)  # type: ignore[arg-type]
        elif isinstance(bnn_op, SUPPORT_LOWERED_OPS):
            lower_support_op(
                em, bnn_op, lambda stem, values, mtype: module_globals.add(stem, values, mtype, fn)
            )
        elif isinstance(bnn_op, ThresholdOp):
            directions = list(bnn_op.directions.get_values())
            tables = self._threshold_tables(
                list(bnn_op.thresholds.get_values()), directions, em, fn, module_globals
            )
            lower_threshold(
                em,
                bnn_op.input,
                bnn_op.out,
                directions,  # type: ignore[arg-type]
                tables.thresholds,
                tables.directions,
            )
