"""``convert-bnn-to-llvm{target=...}``: the loop level (level 3) to the ``llvm`` dialect (level 4).

See docs/lowering.md for both levels. The pass runs, in order:

1. a check that every op belongs to the loop level (an op outside it fails the pass, naming it);
2. ``outline-parallel-loops`` (``scf.parallel`` -> task function + ``bnnmlir_parallel_for``);
3. xDSL's ``convert-scf-to-cf`` (``scf.for`` / ``scf.if`` -> blocks and branches);
4. the block arguments retyped, the op patterns below, then the function and global
   conversion;
5. ``reconcile-unrealized-casts``, a check that only ``llvm`` ops remain, and
   ``llvm.target_triple`` from the target.

Types: ``index`` is ``i64``; a memref is a bare ``!llvm.ptr`` to its first element. Memrefs have
static shapes and the identity layout, so element ``[i0, ..., ik]`` of ``memref<d0 x ... x dk x T>``
is at ``base + sum_j i_j * prod_{l > j} d_l`` elements (``llvm.getelementptr`` on ``T``);
``memref.view %arena[%off][]`` is ``base + off`` bytes. While ops are converted, values keep their
old types for their not-yet-converted users through ``builtin.unrealized_conversion_cast``; every
cast pair cancels once all ops are converted.

Memory: ``vector.load`` / ``vector.store`` carry alignment 1 (the loop level promises none); scalar
accesses use the natural alignment of their element type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from xdsl.context import Context
from xdsl.dialects import arith, builtin, cf, func, llvm, math, memref, vector
from xdsl.dialects.builtin import (
    AffineMapAttr,
    DenseIntOrFPElementsAttr,
    Float32Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    NoneAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    UnrealizedConversionCastOp,
    VectorType,
    i1,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.ir.affine import AffineMap
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable
from xdsl.transforms.convert_scf_to_cf import ConvertScfToCf
from xdsl.transforms.dead_code_elimination import is_trivially_dead
from xdsl.transforms.reconcile_unrealized_casts import reconcile_unrealized_casts
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.dialects.bnn import NarrowAccOp
from bnnmlir.passes.llvm.narrow_acc import (
    LowerNarrowAcc,
    intrinsic_suffix,
    shuffle_mask,
    vector_type,
)
from bnnmlir.passes.layer_functions import LAYER_ATTR
from bnnmlir.passes.outline_parallel_loops import OutlineParallelLoopsPass
from bnnmlir.target import TARGET_ATTR, TargetInfo, get_target

PASS_NAME = "convert-bnn-to-llvm"

LOOP_LEVEL_OPS = frozenset(
    {
        "builtin.module",
        "builtin.unrealized_conversion_cast",
        "func.func",
        "func.return",
        "func.call",
        "scf.for",
        "scf.if",
        "scf.yield",
        "scf.parallel",
        "scf.reduce",
        "cf.br",
        "cf.cond_br",
        *(
            f"arith.{name}"
            for name in (
                "constant", "addi", "subi", "muli", "divui", "remui", "divsi", "remsi", "andi",
                "ori", "xori", "shli", "shrui", "shrsi", "cmpi", "cmpf", "select", "extui",
                "extsi", "trunci", "index_cast", "maxsi", "minsi", "addf", "subf", "mulf", "divf",
                "maximumf", "minimumf", "negf", "sitofp", "fptosi",
            )
        ),
        "math.roundeven",
        "math.fma",
        "memref.load",
        "memref.store",
        "memref.view",
        "memref.get_global",
        "memref.global",
        "vector.load",
        "vector.maskedload",
        "vector.maskedstore",
        "vector.store",
        "vector.broadcast",
        "vector.insert",
        "vector.extract",
        "vector.shuffle",
        "vector.reduction",
        "bnn.narrow_acc",
    }
)
"""Ops this pass accepts (docs/lowering.md, level 3), besides any ``llvm`` op."""


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"{PASS_NAME}: {message}")


# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------


@cache
def convert_type(t: Attribute) -> Attribute:
    """The LLVM-level type of ``t``: ``index`` -> ``i64``, memref -> ``!llvm.ptr`` (remembered:
    a module has few types and many values, and making a type costs more than looking it up)."""
    if isinstance(t, IndexType):
        return i64
    if isinstance(t, MemRefType):
        return llvm.LLVMPointerType()
    if isinstance(t, VectorType):
        if len(t.get_shape()) != 1 or t.get_num_scalable_dims():
            raise _fail(f"only fixed 1-D vectors are supported, got {t}")
        return VectorType(convert_type(t.element_type), t.get_shape())
    return t


def _llvm_value(rewriter: PatternRewriter, value: SSAValue) -> SSAValue:
    """``value`` with its LLVM-level type (a cast inserted before the matched op if needed)."""
    target = convert_type(value.type)
    if target == value.type:
        return value
    owner = value.owner
    if (isinstance(owner, UnrealizedConversionCastOp) and len(owner.inputs) == 1
            and owner.inputs[0].type == target):
        return owner.inputs[0]  # a converted value cast back for unconverted users: no new cast
    cast = UnrealizedConversionCastOp.get([value], [target])
    rewriter.insert(cast)
    return cast.results[0]


def _replace(rewriter: PatternRewriter, op: Operation, new_results: list[SSAValue]) -> None:
    """Replace ``op`` (whose new ops are already inserted) by ``new_results``.

    A result whose type changed is cast back to the old type for users not yet converted.
    """
    values: list[SSAValue] = []
    for old, new in zip(op.results, new_results, strict=True):
        if new.type != old.type:
            cast = UnrealizedConversionCastOp.get([new], [old.type])
            rewriter.insert(cast)
            new = cast.results[0]
        values.append(new)
    rewriter.replace(op, [], values)


def _emit(rewriter: PatternRewriter, op: Operation) -> SSAValue:
    rewriter.insert(op)
    return op.results[0]


@cache
def _i64_attr(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


_I64_POOL: dict[Block, dict[int, SSAValue]] = {}
"""``i64`` constants made by the conversion, once per function: entry block -> value -> SSA
value (filled and emptied by one run of the pass)."""


def _i64(rewriter: PatternRewriter, value: int) -> SSAValue:
    """The ``i64`` constant ``value`` at the start of the function's entry block (one per
    function and value: address strides and lane indices repeat thousands of times)."""
    region = rewriter.insertion_point.block.parent
    while region is not None and not isinstance(region.parent, func.FuncOp | llvm.FuncOp):
        region = region.parent.parent_region() if region.parent is not None else None
    if region is None:
        return _emit(rewriter, llvm.ConstantOp(_i64_attr(value), i64))
    entry = region.blocks.first
    assert entry is not None
    pool = _I64_POOL.setdefault(entry, {})
    if value not in pool:
        constant = llvm.ConstantOp(_i64_attr(value), i64)
        Rewriter.insert_op(constant, InsertPoint.at_start(entry))
        pool[value] = constant.results[0]
    return pool[value]




GEP_INBOUNDS_FLAGS = 3
"""Upstream MLIR's ``noWrapFlags`` for ``inbounds`` (inbounds_flag | nusw); xDSL reads the
``inbounds`` unit property, upstream reads the flags, so both are set."""


def _inbounds_gep(
    rewriter: PatternRewriter, base: SSAValue, offset: SSAValue, elem: Attribute
) -> SSAValue:
    """``base + offset`` elements of type ``elem``; the address stays inside the buffer."""
    gep = llvm.GEPOp.create(operands=[base, offset], result_types=[llvm.LLVMPointerType()],
                            properties=_inbounds_gep_properties(elem))
    return _emit(rewriter, gep)


@cache
def _inbounds_gep_properties(elem: Attribute) -> dict[str, Attribute]:
    """The properties of an inbounds ``llvm.getelementptr`` of one dynamic index over ``elem``
    (made once per element type; attributes are immutable, so the ops share them)."""
    ptr, index = UnrealizedConversionCastOp.get([], [llvm.LLVMPointerType(), i64]).results
    gep = llvm.GEPOp.from_mixed_indices(ptr, [index], elem, inbounds=True)
    gep.properties["noWrapFlags"] = IntegerAttr(GEP_INBOUNDS_FLAGS, 32)
    return dict(gep.properties)


# ---------------------------------------------------------------------------------------------
# arith
# ---------------------------------------------------------------------------------------------

_ARITH_BINARY: dict[type[Operation], type[Operation]] = {
    arith.AddiOp: llvm.AddOp,
    arith.SubiOp: llvm.SubOp,
    arith.MuliOp: llvm.MulOp,
    arith.DivUIOp: llvm.UDivOp,
    arith.DivSIOp: llvm.SDivOp,
    arith.RemUIOp: llvm.URemOp,
    arith.RemSIOp: llvm.SRemOp,
    arith.AndIOp: llvm.AndOp,
    arith.OrIOp: llvm.OrOp,
    arith.XOrIOp: llvm.XOrOp,
    arith.ShLIOp: llvm.ShlOp,
    arith.ShRUIOp: llvm.LShrOp,
    arith.ShRSIOp: llvm.AShrOp,
}

_ARITH_INTRINSIC: dict[type[Operation], str] = {
    arith.MaxSIOp: "llvm.smax",
    arith.MinSIOp: "llvm.smin",
}


class ArithBinaryToLLVM(RewritePattern):
    """Integer binary ops (scalars and 1-D vectors) map one to one; max/min to intrinsics."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter, /):
        lowered = _ARITH_BINARY.get(type(op))
        intrinsic = _ARITH_INTRINSIC.get(type(op))
        if lowered is None and intrinsic is None:
            return
        lhs, rhs = (_llvm_value(rewriter, v) for v in op.operands)
        if lowered is not None:
            result = _emit(rewriter, lowered(lhs, rhs))  # type: ignore[call-arg]
        else:
            name = f"{intrinsic}.{intrinsic_suffix(lhs.type)}"  # type: ignore[arg-type]
            result = _emit(rewriter, llvm.CallIntrinsicOp(name, [lhs, rhs], [lhs.type]))
        _replace(rewriter, op, [result])


def _convert_constant_value(value: Attribute, t: Attribute) -> Attribute:
    if isinstance(value, IntegerAttr):
        return IntegerAttr(value.value.data, t)  # type: ignore[arg-type]
    if isinstance(value, DenseIntOrFPElementsAttr) and isinstance(t, VectorType):
        if isinstance(value.get_element_type(), IndexType):
            return DenseIntOrFPElementsAttr.from_list(t, value.get_values())  # type: ignore[arg-type]
        return value
    if isinstance(value, FloatAttr):
        return value
    raise _fail(f"unsupported constant {value}")


class ConstantToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: arith.ConstantOp, rewriter: PatternRewriter, /):
        t = convert_type(op.result.type)
        result = _emit(rewriter, llvm.ConstantOp(_convert_constant_value(op.value, t), t))
        _replace(rewriter, op, [result])


class CmpiToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: arith.CmpiOp, rewriter: PatternRewriter, /):
        name = arith.CMPI_COMPARISON_OPERATIONS[op.predicate.value.data]
        predicate = IntegerAttr(llvm.ICmpPredicateFlag(name).to_int(), i64)
        lhs, rhs = _llvm_value(rewriter, op.lhs), _llvm_value(rewriter, op.rhs)
        _replace(rewriter, op, [_emit(rewriter, llvm.ICmpOp(lhs, rhs, predicate))])


class CmpfToLLVM(RewritePattern):
    """Scalar float compares; the constant predicates ``false``/``true`` become constants."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: arith.CmpfOp, rewriter: PatternRewriter, /):
        name = arith.CMPF_COMPARISON_OPERATIONS[op.predicate.value.data]
        if name in ("false", "true"):
            result = _emit(rewriter, llvm.ConstantOp(IntegerAttr(int(name == "true"), i1), i1))
        else:
            result = _emit(rewriter, llvm.FCmpOp(op.lhs, op.rhs, name))
        _replace(rewriter, op, [result])


class SelectToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: arith.SelectOp, rewriter: PatternRewriter, /):
        lhs, rhs = _llvm_value(rewriter, op.lhs), _llvm_value(rewriter, op.rhs)
        _replace(rewriter, op, [_emit(rewriter, llvm.SelectOp(op.cond, lhs, rhs))])


def _int_bits(t: Attribute) -> int:
    t = convert_type(t)
    if isinstance(t, VectorType):
        t = t.element_type
    assert isinstance(t, IntegerType)
    return t.width.data


class IntCastToLLVM(RewritePattern):
    """``extui``/``extsi``/``trunci``/``index_cast`` by the widths of their LLVM types.

    ``index_cast`` sign-extends or truncates (``index`` is ``i64``); equal widths are no-ops.
    """

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter, /):
        if not isinstance(op, arith.ExtUIOp | arith.ExtSIOp | arith.TruncIOp | arith.IndexCastOp):
            return
        source = _llvm_value(rewriter, op.input)
        target = convert_type(op.result.type)
        src_bits, dst_bits = _int_bits(op.input.type), _int_bits(op.result.type)
        if src_bits == dst_bits:
            result = source
        elif src_bits > dst_bits:
            result = _emit(rewriter, llvm.TruncOp(source, target))
        elif isinstance(op, arith.ExtUIOp):
            result = _emit(rewriter, llvm.ZExtOp(source, target))
        else:
            result = _emit(rewriter, llvm.SExtOp(source, target))
        _replace(rewriter, op, [result])


# ---------------------------------------------------------------------------------------------
# func and cf
# ---------------------------------------------------------------------------------------------


class ReturnToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.ReturnOp, rewriter: PatternRewriter, /):
        if len(op.arguments) > 1:
            raise _fail("functions with more than one result are not supported")
        value = _llvm_value(rewriter, op.arguments[0]) if op.arguments else None
        rewriter.replace(op, llvm.ReturnOp(value))


class CallToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.CallOp, rewriter: PatternRewriter, /):
        if len(op.res) > 1:
            raise _fail("calls with more than one result are not supported")
        args = [_llvm_value(rewriter, a) for a in op.arguments]
        ret = convert_type(op.res[0].type) if op.res else None
        call = llvm.CallOp(op.callee, *args, return_type=ret)
        rewriter.insert(call)
        _replace(rewriter, op, list(call.results))


class BranchToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: cf.BranchOp, rewriter: PatternRewriter, /):
        args = [_llvm_value(rewriter, a) for a in op.arguments]
        rewriter.replace(op, llvm.BrOp(op.successor, *args))


class CondBranchToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: cf.ConditionalBranchOp, rewriter: PatternRewriter, /):
        then_args = [_llvm_value(rewriter, a) for a in op.then_arguments]
        else_args = [_llvm_value(rewriter, a) for a in op.else_arguments]
        rewriter.replace(
            op, llvm.CondBrOp(op.cond, op.then_block, then_args, op.else_block, else_args)
        )


def _retype_block_arguments(rewriter: PatternRewriter, block: Block) -> None:
    """Give ``block``'s arguments their LLVM types; old-typed users go through a cast."""
    for arg in block.args:
        target = convert_type(arg.type)
        if target == arg.type:
            continue
        old_type = arg.type
        new_arg = rewriter.replace_value_with_new_type(arg, target)
        cast = UnrealizedConversionCastOp.get([new_arg], [old_type])
        rewriter.insert(cast, InsertPoint.at_start(block))
        rewriter.replace_uses_with_if(
            new_arg, cast.results[0], lambda use, cast=cast: use.operation is not cast
        )


class RetypeBlockArguments(RewritePattern):
    """Block arguments get their LLVM types before the ops that use them are converted: each
    argument is then cast back once, at the start of its block, and the converted users take
    the argument itself (:func:`_llvm_value`), instead of one cast per use."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.FuncOp, rewriter: PatternRewriter, /):
        for block in op.body.blocks:
            _retype_block_arguments(rewriter, block)


class FuncToLLVM(RewritePattern):
    """``func.func`` -> ``llvm.func`` with the same name; private functions become internal.

    Memref arguments become ``ptr``; function attributes (``bnn.*``) are dropped, except that
    a layer function (``bnn.layer``, see :mod:`bnnmlir.passes.layer_functions`) is ``noinline``
    and keeps its argument attributes (``llvm.noalias``).
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.FuncOp, rewriter: PatternRewriter, /):
        outputs = op.function_type.outputs.data
        if len(outputs) > 1:
            raise _fail(f"'@{op.sym_name.data}' has more than one result")
        for block in op.body.blocks:
            _retype_block_arguments(rewriter, block)
        private = op.sym_visibility is not None and op.sym_visibility.data == "private"
        defined = bool(op.body.blocks)
        linkage = "internal" if private and defined else "external"
        signature = llvm.LLVMFunctionType(
            [convert_type(t) for t in op.function_type.inputs.data],
            convert_type(outputs[0]) if outputs else None,
        )
        body = rewriter.move_region_contents_to_new_regions(op.body)
        new = llvm.FuncOp(op.sym_name.data, signature, llvm.LinkageAttr(linkage), body=body)
        if LAYER_ATTR in op.attributes:
            new.no_inline = UnitAttr()
            new.arg_attrs = op.arg_attrs
        rewriter.replace(op, new, [])


# ---------------------------------------------------------------------------------------------
# memref
# ---------------------------------------------------------------------------------------------


def _static_identity_shape(t: Attribute) -> tuple[int, ...]:
    if not isinstance(t, MemRefType):
        raise _fail(f"expected a memref, got {t}")
    shape = tuple(t.get_shape())
    if any(d < 0 for d in shape):
        raise _fail(f"memref shapes must be static, got {t}")
    layout = t.layout
    if not isinstance(layout, NoneAttr):
        identity = isinstance(layout, AffineMapAttr) and layout.data == AffineMap.identity(
            len(shape)
        )
        if not identity:
            raise _fail(f"memrefs must have the identity layout, got {t}")
    return shape


def element_address(rewriter: PatternRewriter, ref: SSAValue, indices: list[SSAValue]) -> SSAValue:
    """Address of ``ref[indices]``: base + row-major linear index, in elements."""
    shape = _static_identity_shape(ref.type)
    base = _llvm_value(rewriter, ref)
    linear: SSAValue | None = None
    stride = 1
    for dim, index in reversed(list(zip(shape, indices, strict=True))):
        term = _llvm_value(rewriter, index)
        if stride != 1:
            term = _emit(rewriter, llvm.MulOp(term, _i64(rewriter, stride)))
        linear = term if linear is None else _emit(rewriter, llvm.AddOp(term, linear))
        stride *= dim
    if linear is None:
        return base
    elem = convert_type(ref.type.get_element_type())  # type: ignore[attr-defined]
    return _inbounds_gep(rewriter, base, linear, elem)


class MemrefLoadToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.LoadOp, rewriter: PatternRewriter, /):
        address = element_address(rewriter, op.memref, list(op.indices))
        result = _emit(rewriter, llvm.LoadOp(address, convert_type(op.res.type)))
        _replace(rewriter, op, [result])


class MemrefStoreToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.StoreOp, rewriter: PatternRewriter, /):
        address = element_address(rewriter, op.memref, list(op.indices))
        rewriter.replace(op, llvm.StoreOp(_llvm_value(rewriter, op.value), address))


class ViewToLLVM(RewritePattern):
    """``memref.view %arena[%off][]`` -> ``%arena + %off`` bytes."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.ViewOp, rewriter: PatternRewriter, /):
        if op.sizes:
            raise _fail("'memref.view' with dynamic sizes is not supported")
        _static_identity_shape(op.result.type)
        base = _llvm_value(rewriter, op.source)
        offset = _llvm_value(rewriter, op.byte_shift)
        _replace(rewriter, op, [_inbounds_gep(rewriter, base, offset, IntegerType(8))])


class GetGlobalToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.GetGlobalOp, rewriter: PatternRewriter, /):
        _static_identity_shape(op.memref.type)
        ptr = llvm.LLVMPointerType()
        address = _emit(rewriter, llvm.AddressOfOp(op.name_, ptr))
        target = SymbolTable.lookup_symbol(op, op.name_)
        if isinstance(target, memref.GlobalOp) and target.constant is None:
            # Writable global: xDSL's llvmlite translation gives ``addressof`` a typed pointer
            # and rejects stores of other types through it; a no-op cast makes it opaque.
            address = _emit(rewriter, llvm.BitcastOp(address, ptr))
        _replace(rewriter, op, [address])


class GlobalToLLVM(RewritePattern):
    """``memref.global`` with a dense initializer -> ``llvm.mlir.global`` of a flat array.

    The row-major element order of the dense attribute is the memory order of the memref.
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: memref.GlobalOp, rewriter: PatternRewriter, /):
        shape = _static_identity_shape(op.type)
        init = op.initial_value
        if not isinstance(init, DenseIntOrFPElementsAttr):
            raise _fail(f"memref.global '@{op.sym_name.data}' needs a dense initializer")
        count = 1
        for d in shape:
            count *= d
        elem = convert_type(op.type.get_element_type())
        # The same bytes (a splat stays one element), never one Python object per element.
        value = DenseIntOrFPElementsAttr(TensorType(elem, [count]), init.data)
        private = op.sym_visibility.data == "private"
        rewriter.replace(
            op,
            llvm.GlobalOp(
                llvm.LLVMArrayType(count, elem),
                op.sym_name,
                "internal" if private else "external",
                constant=op.constant is not None,
                value=value,
                alignment=op.alignment.value.data if op.alignment is not None else None,
            ),
        )


# ---------------------------------------------------------------------------------------------
# vector
# ---------------------------------------------------------------------------------------------


def _vector_type(t: Attribute) -> VectorType:
    converted = convert_type(t)
    assert isinstance(converted, VectorType)
    return converted


class VectorLoadToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.LoadOp, rewriter: PatternRewriter, /):
        address = element_address(rewriter, op.base, list(op.indices))
        load = llvm.LoadOp(address, _vector_type(op.result.type), alignment=1)
        _replace(rewriter, op, [_emit(rewriter, load)])


class MaskedLoadToLLVM(RewritePattern):
    """``vector.maskedload`` -> ``llvm.masked.load`` (alignment 1): lane ``i`` is loaded where
    ``mask[i]`` is set, else it is ``pass_thru[i]`` and its address is not accessed."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.MaskedLoadOp, rewriter: PatternRewriter, /):
        address = element_address(rewriter, op.base, list(op.indices))
        result_type = _vector_type(op.result.type)
        align = _emit(rewriter, llvm.ConstantOp(IntegerAttr(1, i32), i32))
        args = [address, align, _llvm_value(rewriter, op.mask), _llvm_value(rewriter, op.pass_thru)]
        name = f"llvm.masked.load.{intrinsic_suffix(result_type)}.p0"
        load = llvm.CallIntrinsicOp(name, args, [result_type])
        _replace(rewriter, op, [_emit(rewriter, load)])


class MaskedStoreToLLVM(RewritePattern):
    """``vector.maskedstore`` -> ``llvm.masked.store`` (alignment 1): lane ``i`` is stored where
    ``mask[i]`` is set; the addresses of the other lanes are not accessed."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.MaskedStoreOp, rewriter: PatternRewriter, /):
        address = element_address(rewriter, op.base, list(op.indices))
        value_type = _vector_type(op.value_to_store.type)
        align = _emit(rewriter, llvm.ConstantOp(IntegerAttr(1, i32), i32))
        args = [_llvm_value(rewriter, op.value_to_store), address, align,
                _llvm_value(rewriter, op.mask)]
        name = f"llvm.masked.store.{intrinsic_suffix(value_type)}.p0"
        rewriter.replace(op, llvm.CallIntrinsicOp(name, args, []))


class VectorStoreToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.StoreOp, rewriter: PatternRewriter, /):
        address = element_address(rewriter, op.base, list(op.indices))
        value = _llvm_value(rewriter, op.vector)
        rewriter.replace(op, llvm.StoreOp(value, address, alignment=1))


class BroadcastToLLVM(RewritePattern):
    """Scalar to 1-D vector: insert at lane 0, then a shuffle with the all-zero mask."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.BroadcastOp, rewriter: PatternRewriter, /):
        result_type = _vector_type(op.vector.type)
        if isinstance(op.source.type, VectorType):
            if op.source.type != op.vector.type:
                raise _fail(f"'vector.broadcast' from {op.source.type} is not supported")
            rewriter.replace(op, [], [op.source])
            return
        scalar = _llvm_value(rewriter, op.source)
        undef = _emit(rewriter, llvm.UndefOp(result_type))
        first = _emit(rewriter, llvm.InsertElementOp(undef, scalar, _i64(rewriter, 0)))
        lanes = result_type.get_shape()[0]
        splat = llvm.ShuffleVectorOp(
            first, first, shuffle_mask((0,) * lanes), result_type
        )
        _replace(rewriter, op, [_emit(rewriter, splat)])


def _static_lane(op: vector.InsertOp | vector.ExtractOp, vec: Attribute) -> int:
    position = tuple(op.static_position.iter_values())
    if op.dynamic_position or len(position) != 1 or not isinstance(vec, VectorType):
        raise _fail(f"'{op.name}' needs one static position into a 1-D vector")
    if len(vec.get_shape()) != 1:
        raise _fail(f"'{op.name}' on {vec} is not supported (1-D vectors only)")
    return position[0]


class InsertToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.InsertOp, rewriter: PatternRewriter, /):
        lane = _static_lane(op, op.dest.type)
        dest, value = _llvm_value(rewriter, op.dest), _llvm_value(rewriter, op.source)
        insert = llvm.InsertElementOp(dest, value, _i64(rewriter, lane))
        _replace(rewriter, op, [_emit(rewriter, insert)])


class ExtractToLLVM(RewritePattern):
    """``vector.extract %v[k]`` -> shuffle lane ``k`` into a one-lane vector, bitcast to scalar.

    (xDSL's llvmlite translation has no ``extractelement``; LLVM folds this pair back into one.)
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.ExtractOp, rewriter: PatternRewriter, /):
        lane = _static_lane(op, op.vector.type)
        source = _llvm_value(rewriter, op.vector)
        elem = _vector_type(op.vector.type).element_type
        single = llvm.ShuffleVectorOp(
            source, source, shuffle_mask((lane,)),
            vector_type(elem, 1),
        )
        scalar = llvm.BitcastOp(_emit(rewriter, single), elem)
        _replace(rewriter, op, [_emit(rewriter, scalar)])


class ShuffleToLLVM(RewritePattern):
    """1-D ``vector.shuffle %a, %b [mask]`` -> ``llvm.shufflevector`` with the same mask (lane
    ``i`` of the result is lane ``mask[i]`` of the concatenation of ``%a`` and ``%b``)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.ShuffleOp, rewriter: PatternRewriter, /):
        result_type = _vector_type(op.result.type)
        mask = op.mask.get_values()
        if len(_vector_type(op.v1.type).get_shape()) != 1 or any(i < 0 for i in mask):
            raise _fail("'vector.shuffle' supports 1-D vectors without poison lanes")
        shuffle = llvm.ShuffleVectorOp(
            _llvm_value(rewriter, op.v1), _llvm_value(rewriter, op.v2),
            shuffle_mask(tuple(mask)), result_type,
        )
        _replace(rewriter, op, [_emit(rewriter, shuffle)])


class ReductionToLLVM(RewritePattern):
    """``vector.reduction <add>`` on integers -> ``llvm.vector.reduce.add`` (+ the accumulator)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: vector.ReductionOp, rewriter: PatternRewriter, /):
        vt = _vector_type(op.vector.type)
        if op.kind.data != vector.CombiningKindFlag.ADD or not isinstance(
            vt.element_type, IntegerType
        ):
            raise _fail(f"'vector.reduction' supports <add> on integers, got {op.kind}")
        source = _llvm_value(rewriter, op.vector)
        name = f"llvm.vector.reduce.add.{intrinsic_suffix(vt)}"
        result = _emit(rewriter, llvm.CallIntrinsicOp(name, [source], [vt.element_type]))
        if op.acc is not None:
            result = _emit(rewriter, llvm.AddOp(result, _llvm_value(rewriter, op.acc)))
        _replace(rewriter, op, [result])


# ---------------------------------------------------------------------------------------------
# Floats (IEEE single operations: no fast-math flags, no contraction into fused multiply-adds)
# ---------------------------------------------------------------------------------------------

_FLOAT_BINARY: dict[type[Operation], type[Operation]] = {
    arith.AddfOp: llvm.FAddOp,
    arith.SubfOp: llvm.FSubOp,
    arith.MulfOp: llvm.FMulOp,
    arith.DivfOp: llvm.FDivOp,
}

_FLOAT_INTRINSIC: dict[type[Operation], str] = {
    arith.MaximumfOp: "llvm.maximum",
    arith.MinimumfOp: "llvm.minimum",
    math.RoundEvenOp: "llvm.roundeven",
    math.FmaOp: "llvm.fma",
}


def _float_suffix(t: Attribute) -> str:
    if isinstance(t, VectorType):
        return f"v{t.get_shape()[0]}{_float_suffix(t.element_type)}"
    if isinstance(t, Float32Type):
        return "f32"
    raise _fail(f"unsupported float type {t}")


class FloatToLLVM(RewritePattern):
    """Float arithmetic one to one; ``maximumf``/``minimumf`` (NaN-propagating, ``-0 < +0``)
    and ``math.roundeven`` (ties to even) to their LLVM intrinsics; ``sitofp`` to a cast and
    ``fptosi`` to the saturating ``llvm.fptosi.sat`` (exact on values that fit)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter, /):
        if not isinstance(op, (*_FLOAT_BINARY, *_FLOAT_INTRINSIC, arith.NegfOp, arith.SIToFPOp,
                               arith.FPToSIOp, math.FmaOp)):
            return
        args = [_llvm_value(rewriter, v) for v in op.operands]
        if (lowered := _FLOAT_BINARY.get(type(op))) is not None:
            result = _emit(rewriter, lowered(*args))  # type: ignore[call-arg]
        elif (intrinsic := _FLOAT_INTRINSIC.get(type(op))) is not None:
            t = args[0].type
            name = f"{intrinsic}.{_float_suffix(t)}"
            result = _emit(rewriter, llvm.CallIntrinsicOp(name, args, [t]))
        elif isinstance(op, arith.NegfOp):
            result = _emit(rewriter, llvm.FNegOp(args[0]))
        elif isinstance(op, arith.SIToFPOp):
            result = _emit(rewriter, llvm.SIToFPOp(args[0], convert_type(op.result.type)))
        else:
            target = convert_type(op.results[0].type)
            name = f"llvm.fptosi.sat.{intrinsic_suffix(target)}.{_float_suffix(args[0].type)}"  # type: ignore[arg-type]
            result = _emit(rewriter, llvm.CallIntrinsicOp(name, args, [target]))
        _replace(rewriter, op, [result])


# ---------------------------------------------------------------------------------------------
# The pass
# ---------------------------------------------------------------------------------------------


def body_patterns(target: TargetInfo) -> dict[type[Operation], RewritePattern]:
    """The pattern of each op type inside functions (everything but ``func.func`` and globals)."""
    arith_binary, int_cast, floats = ArithBinaryToLLVM(), IntCastToLLVM(), FloatToLLVM()
    return {
        **dict.fromkeys((*_ARITH_BINARY, *_ARITH_INTRINSIC), arith_binary),
        arith.ConstantOp: ConstantToLLVM(),
        arith.CmpiOp: CmpiToLLVM(),
        arith.CmpfOp: CmpfToLLVM(),
        arith.SelectOp: SelectToLLVM(),
        **dict.fromkeys(
            (arith.ExtUIOp, arith.ExtSIOp, arith.TruncIOp, arith.IndexCastOp), int_cast
        ),
        **dict.fromkeys(
            (*_FLOAT_BINARY, *_FLOAT_INTRINSIC, arith.NegfOp, arith.SIToFPOp, arith.FPToSIOp),
            floats,
        ),
        func.ReturnOp: ReturnToLLVM(),
        func.CallOp: CallToLLVM(),
        cf.BranchOp: BranchToLLVM(),
        cf.ConditionalBranchOp: CondBranchToLLVM(),
        memref.LoadOp: MemrefLoadToLLVM(),
        memref.StoreOp: MemrefStoreToLLVM(),
        memref.ViewOp: ViewToLLVM(),
        memref.GetGlobalOp: GetGlobalToLLVM(),
        vector.LoadOp: VectorLoadToLLVM(),
        vector.MaskedLoadOp: MaskedLoadToLLVM(),
        vector.MaskedStoreOp: MaskedStoreToLLVM(),
        vector.StoreOp: VectorStoreToLLVM(),
        vector.BroadcastOp: BroadcastToLLVM(),
        vector.InsertOp: InsertToLLVM(),
        vector.ExtractOp: ExtractToLLVM(),
        vector.ShuffleOp: ShuffleToLLVM(),
        vector.ReductionOp: ReductionToLLVM(),
        NarrowAccOp: LowerNarrowAcc(target),
    }


def rewrite_by_op_type(
    module: ModuleOp, patterns: Mapping[type[Operation], RewritePattern]
) -> None:
    """One forward walk over the ops of ``module`` (those present when it starts): a trivially
    dead op is erased, any other gets the pattern of its type (none: it stays as it is).

    The same rewrites, in the same order, as ``PatternRewriteWalker(GreedyRewritePatternApplier(
    patterns), apply_recursively=False)``, without trying every pattern on every op and on the
    ops the patterns create (the conversion makes about three ops per op it converts). A
    pattern error is reported on its op, as the walker does.
    """
    ops = list(module.walk())
    rewriter = PatternRewriter(InsertPoint.at_start(module.body.block))
    for op in ops:
        if op.parent is None:
            continue  # erased
        if is_trivially_dead(op):
            rewriter.erase(op)
            continue
        pattern = patterns.get(type(op))
        if pattern is None:
            continue
        rewriter.has_done_action = False
        rewriter.current_operation = op
        rewriter.insertion_point = InsertPoint.before(op)
        rewriter.name_hint = None
        try:
            pattern.match_and_rewrite(op, rewriter)
        except Exception as err:
            op.emit_error(f"Error while applying pattern: {err}", underlying_error=err)


def check_loop_level(module: ModuleOp) -> None:
    """Fail, naming the op, if ``module`` holds an op outside the loop level."""
    for op in module.walk():
        if op.name not in LOOP_LEVEL_OPS and not op.name.startswith("llvm."):
            raise _fail(f"'{op.name}' is not an op of the loop level (docs/lowering.md)")


def check_llvm_only(module: ModuleOp) -> None:
    for op in module.walk():
        if op is not module and not op.name.startswith("llvm."):
            raise _fail(f"'{op.name}' was left after the conversion to the llvm dialect")


@dataclass(frozen=True)
class ConvertBnnToLLVMPass(ModulePass):
    """Lower the loop level to the ``llvm`` dialect for ``target`` (``host`` or ``aarch64``).

    See the module docstring for the steps and the type mapping, and
    :mod:`bnnmlir.passes.llvm.narrow_acc` for the per-target ``bnn.narrow_acc`` code.
    """

    name = "convert-bnn-to-llvm"

    target: str = "host"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        try:
            target = get_target(self.target)
        except ValueError as err:
            raise _fail(str(err)) from None
        check_loop_level(op)
        OutlineParallelLoopsPass().apply(ctx, op)
        ConvertScfToCf().apply(ctx, op)
        PatternRewriteWalker(RetypeBlockArguments(), apply_recursively=False,
                             walk_regions_first=False).rewrite_module(op)
        try:
            rewrite_by_op_type(op, body_patterns(target))
        finally:
            _I64_POOL.clear()
        rewrite_by_op_type(op, {func.FuncOp: FuncToLLVM(), memref.GlobalOp: GlobalToLLVM()})
        reconcile_unrealized_casts(op, warn_on_failure=False)
        check_llvm_only(op)
        op.attributes["llvm.target_triple"] = StringAttr(target.triple)
        op.attributes[TARGET_ATTR] = StringAttr(target.name)
