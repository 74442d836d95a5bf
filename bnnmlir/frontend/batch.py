"""A dynamic batch: one per-image program that serves every batch size.

``torch.export.export(model, (x,), dynamic_shapes=({0: Dim("batch")},))`` (what
``bnnmlir.compile(..., dynamic_batch=True)`` runs, or what a saved ``.pt2`` archive holds) gives a
graph whose shapes carry a symbol ``s`` for the batch and ``aten.sym_size.int`` nodes that read it.
:func:`prepare_batch` checks that every image of the batch is computed independently of the
others, then specializes the graph to ONE image (``s = 1``); the importer then translates it as a
static graph, and the compiler wraps the per-image program in an entry point that takes the batch
size at run time (``passes/batch_entry.py``).

The rules (each violation is an error naming the node, its module and why):

1. The batch symbol is dimension 0 of the first model input, a plain symbol (not an expression
   such as ``2*s``); every model input has that same symbol as dimension 0, and no other dimension
   of any tensor in the graph is symbolic.
2. Every run-time tensor (one computed from a model input) has exactly ``s`` as dimension 0.
   Every constant (computed from parameters only) has a fixed shape.
3. Every op with a run-time operand is in :data:`PER_IMAGE_OPS`, with its extra condition met.
4. A symbolic size (``aten.sym_size.int`` and arithmetic on it) is used only as the size argument
   of a reshape (whose result shape the graph records), or by another symbolic size.

Why these rules make image ``i`` of the output a function of image ``i`` of the inputs only
(induction over the graph in order; "row ``i``" is the slice ``[i]`` along dimension 0):

* a model input: by definition;
* a constant: the same for every image (rule 2: its shape cannot follow the batch, and by rule 4
  its values cannot be computed from the batch size, e.g. ``arange(x.size(0))``);
* an op of :data:`PER_IMAGE_OPS` (rule 3) whose run-time operands all have dimension 0 equal to
  ``s`` (rule 2): row ``i`` of its result depends only on rows ``i`` of those operands and on
  constants (broadcast over dimension 0 unchanged, as a constant has no dimension ``s``): see the
  reason given with each op. Reductions and concatenations along dimension 0, a reshape that
  moves images into another dimension, or padding of dimension 0 all change dimension 0 of the
  result, which rule 2 refuses;
* a reshape keeping dimension 0 equal to ``s``: the tensors are row-major, so image ``i`` is the
  contiguous range ``[i * K, (i + 1) * K)`` of elements before and after (``K``, the product of
  the other dimensions, is the same on both sides).

Hence the batch-``n`` result is the per-image program run on each image, for every ``n >= 1``:
exactly what the batch entry point computes. The declared range of the batch symbol is not needed
beyond ``n >= 1`` and not enforced.

Specialization to one image: every node's recorded value (``meta["val"]``) is replaced by a tensor
on the ``meta`` device with ``s = 1`` substituted in its shape, and every symbolic size node is
replaced, in its users' arguments, by its value at ``s = 1`` (the importer reads reshape result
shapes from ``meta["val"]``, so those arguments only need to stay consistent).
"""

from __future__ import annotations

import operator

import sympy
import torch
from torch.export.graph_signature import InputKind
from torch.fx.node import map_arg

from bnnmlir.custom_ops import CLIP8_OP, SIGN_OP
from bnnmlir.errors import CompileError, UnsupportedOperationError

aten = torch.ops.aten

_ELEMENTWISE = "elementwise: element [i, ...] of the result uses elements [i, ...] of the operands"
_WINDOW = ("a window over the spatial dimensions of one image (dimension 0 is the batch, "
           "never reduced)")
_ROWS = "row i of the result is row i of the input times constant weights"
_RESHAPE = ("a reshape keeping dimension 0: image i is the same contiguous range of elements "
            "before and after")
_PER_CHANNEL = "elementwise with per-channel constants"

PER_IMAGE_OPS: dict = {
    **dict.fromkeys(
        (SIGN_OP, CLIP8_OP, aten.sign.default, aten.ge.Scalar, aten.ge.Tensor, aten.gt.Scalar,
         aten.gt.Tensor, aten.le.Scalar, aten.le.Tensor, aten.lt.Scalar, aten.lt.Tensor,
         aten.where.self, aten.where.ScalarSelf, aten.where.ScalarOther, aten.where.Scalar,
         aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar, aten.neg.default,
         aten.mul.Tensor, aten.mul.Scalar, aten.div.Tensor, aten.div.Scalar, aten.abs.default,
         aten.relu.default,
         aten.hardtanh.default, aten.clamp.default, aten._to_copy.default, aten.to.dtype,
         aten.to.dtype_layout, aten.to.device, aten.to.other, aten.type_as.default,
         aten.clone.default, aten.alias.default, aten.detach.default, aten.contiguous.default,
         aten.full_like.default, aten.ones_like.default, aten.zeros_like.default),
        _ELEMENTWISE,
    ),
    aten.dropout.default: "the identity in eval mode (the importer refuses training mode)",
    aten.prelu.default: _PER_CHANNEL,
    aten._native_batch_norm_legit_no_training.default: _PER_CHANNEL + " (running statistics)",
    aten.batch_norm.default: _PER_CHANNEL + " (running statistics, when not training)",
    **dict.fromkeys(
        (aten.convolution.default, aten.conv2d.default, aten.constant_pad_nd.default,
         aten.max_pool2d.default, aten.max_pool2d_with_indices.default, aten.avg_pool2d.default,
         aten.adaptive_avg_pool2d.default, aten._adaptive_avg_pool2d.default, aten.mean.dim),
        _WINDOW,
    ),
    **dict.fromkeys((aten.linear.default, aten.addmm.default, aten.mm.default), _ROWS),
    **dict.fromkeys(
        (aten.view.default, aten.reshape.default, aten._unsafe_view.default,
         aten.flatten.using_ints, aten.squeeze.dims, aten.squeeze.dim, aten.unsqueeze.default),
        _RESHAPE,
    ),
    aten.cat.default: "a concatenation of the images' channels (dimension 1)",
    aten._assert_tensor_metadata.default: "a check with no result",
    operator.getitem: "selects one result of a multi-result op",
}
"""Ops that keep the images of a batch independent, with the reason (see the module docstring)."""

SIZE_USERS = frozenset((aten.view.default, aten.reshape.default, aten._unsafe_view.default))
"""Ops that may take a symbolic size as an argument: reshapes, whose result shape is recorded."""

_WEIGHT_OPERAND = {aten.linear.default: 1, aten.mm.default: 1, aten.addmm.default: 2}
"""Position of the weight operand of the matrix products (it must be a constant)."""


def _dims(value) -> list:
    """The dimensions of a tensor value: ints, or sympy expressions for symbolic ones."""
    dims = []
    for d in value.shape:
        expr = d.node.expr if isinstance(d, torch.SymInt) else sympy.Integer(int(d))
        dims.append(int(expr) if expr.is_number else expr)
    return dims


def _is_symbolic_scalar(value) -> bool:
    return isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool)


def _scalar_expr(value):
    return value.node.expr


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    return []


def _symbols(value) -> set:
    if _is_symbolic_scalar(value):
        return set(_scalar_expr(value).free_symbols)
    found: set = set()
    for t in _tensors(value):
        for d in _dims(t):
            if not isinstance(d, int):
                found |= d.free_symbols
    return found


def _user_inputs(program: torch.export.ExportedProgram) -> list[torch.fx.Node]:
    names = {s.arg.name for s in program.graph_signature.input_specs
             if s.kind == InputKind.USER_INPUT}
    return [n for n in program.graph.nodes if n.op == "placeholder" and n.name in names]


def _node_error(node: torch.fx.Node, reason: str) -> UnsupportedOperationError:
    from bnnmlir.frontend.importer import describe_source, module_path, op_name

    return UnsupportedOperationError(op_name(node), module_path(node), describe_source(node),
                                     reason)


def find_batch_symbol(program: torch.export.ExportedProgram):
    """The batch symbol of ``program`` (rule 1), or ``None`` if every shape is static."""
    nodes = list(program.graph.nodes)
    if not any(_symbols(n.meta.get("val")) for n in nodes):
        return None
    inputs = _user_inputs(program)
    symbol = None
    for node in inputs:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            continue
        dims = _dims(val)
        for axis, d in enumerate(dims[1:], start=1):
            if not isinstance(d, int):
                raise CompileError(
                    f"model input '{node.name}' has the symbolic size {d} in dimension {axis}: "
                    "only the batch (dimension 0) may be dynamic"
                )
        first = dims[0] if dims else None
        if not isinstance(first, sympy.Symbol):
            what = "a fixed size" if isinstance(first, int) or first is None else f"'{first}'"
            raise CompileError(
                f"model input '{node.name}' has {what} in dimension 0: with a dynamic batch, "
                "dimension 0 of every model input must be the batch, a plain symbol (declare it "
                "with torch.export.Dim)"
            )
        if symbol is not None and first != symbol:
            raise CompileError(
                f"model inputs have different batch symbols ({symbol} and {first}): give every "
                "input the same torch.export.Dim on dimension 0"
            )
        symbol = first
    if symbol is None:
        culprit = next(n for n in nodes if _symbols(n.meta.get("val")))
        raise _node_error(culprit, "a symbolic size that is not the batch of a model input")
    return symbol


def _check_symbolic_size(node: torch.fx.Node, symbol) -> None:
    """Rule 4 for a node whose value is a symbolic size."""
    extra = _scalar_expr(node.meta["val"]).free_symbols - {symbol}
    if extra:
        raise _node_error(node, f"symbolic size {sorted(map(str, extra))}: only the batch "
                                f"({symbol}) may be dynamic")
    for user in node.users:
        if _is_symbolic_scalar(user.meta.get("val")) or user.target in SIZE_USERS:
            continue
        raise _node_error(
            user, f"uses the batch size ({node.name} = {symbol}) as a value: the images of a "
            "dynamic batch must be computed independently (the batch size may only be the size "
            "argument of a reshape)"
        )


def _check_tensor_shapes(node: torch.fx.Node, symbol, runtime: bool) -> None:
    """Rules 1 and 2 for a node with tensor value(s)."""
    val = node.meta.get("val")
    if not runtime:
        if _symbols(val):
            raise _node_error(node, f"a constant whose shape depends on the batch size ({symbol})"
                                    ": the images of a dynamic batch must be computed "
                                    "independently")
        return
    if not isinstance(val, torch.Tensor):
        return  # the results of a multi-result op are checked at their getitem
    dims = _dims(val)
    if not dims or dims[0] != symbol:
        got = list(map(str, dims))
        raise _node_error(
            node, f"result of shape {got} where dimension 0 should be the batch {symbol}: this op "
            "mixes the images of a batch (e.g. a reduction, a concatenation or a reshape across "
            "dimension 0), so the model cannot be compiled for a dynamic batch"
        )
    for axis, d in enumerate(dims[1:], start=1):
        if not isinstance(d, int):
            raise _node_error(node, f"symbolic size {d} in dimension {axis} of the result: only "
                                    f"the batch (dimension 0, {symbol}) may be dynamic")


def _check_per_image_op(node: torch.fx.Node, runtime: set) -> None:
    """Rule 3 for an op with a run-time operand."""
    reason = PER_IMAGE_OPS.get(node.target)
    if reason is None:
        raise _node_error(node, "not known to keep the images of a dynamic batch independent")
    if node.target is aten.batch_norm.default and (node.args[5:6] or [False])[0]:
        raise _node_error(node, "BatchNorm in training mode mixes the images of a batch (batch "
                                "statistics): call model.eval()")
    position = _WEIGHT_OPERAND.get(node.target)
    if position is not None and position < len(node.args) and node.args[position] in runtime:
        raise _node_error(node, "a matrix product with run-time weights mixes the images of a "
                                "batch")


def check_per_image(program: torch.export.ExportedProgram, symbol) -> None:
    """Check rules 2-4 on every node (rule 1 is :func:`find_batch_symbol`)."""
    runtime: set[torch.fx.Node] = set(_user_inputs(program))
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        val = node.meta.get("val")
        if _is_symbolic_scalar(val):
            _check_symbolic_size(node, symbol)
            continue
        if any(arg in runtime for arg in node.all_input_nodes):
            runtime.add(node)
            _check_per_image_op(node, runtime)
        _check_tensor_shapes(node, symbol, node in runtime)


def _one_image(value, symbol):
    """``value`` (a recorded tensor or size, or a tuple of them) with ``symbol`` = 1."""
    if _is_symbolic_scalar(value):
        number = _scalar_expr(value).subs(symbol, 1)
        return bool(number) if isinstance(value, torch.SymBool) else int(number)
    if isinstance(value, torch.Tensor):
        shape = [d if isinstance(d, int) else int(d.subs(symbol, 1)) for d in _dims(value)]
        return torch.empty(shape, dtype=value.dtype, device="meta")
    if isinstance(value, list | tuple):
        return type(value)(_one_image(v, symbol) for v in value)
    return value


def specialize_to_one_image(program: torch.export.ExportedProgram, symbol) -> None:
    """Set the batch symbol to 1 in every recorded value; drop the symbolic size nodes."""
    graph = program.graph
    sizes = []
    for node in graph.nodes:
        if "val" in node.meta:
            if _is_symbolic_scalar(node.meta["val"]):
                sizes.append(node)
            node.meta["val"] = _one_image(node.meta["val"], symbol)
    for node in reversed(sizes):
        value = node.meta["val"]
        for user in list(node.users):
            user.args = map_arg(user.args, lambda a, n=node, v=value: v if a is n else a)
            user.kwargs = map_arg(user.kwargs, lambda a, n=node, v=value: v if a is n else a)
        graph.erase_node(node)


def prepare_batch(program: torch.export.ExportedProgram) -> bool:
    """If ``program`` has a symbolic batch: check the rules, specialize it to one image (in
    place) and return True; return False for a static program."""
    symbol = find_batch_symbol(program)
    if symbol is None:
        return False
    check_per_image(program, symbol)
    specialize_to_one_image(program, symbol)
    return True


def export_dynamic_batch(model: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...]):
    """``torch.export`` of ``model`` with one ``Dim("batch")`` on dimension 0 of every input.

    The examples fix every other dimension. An example batch of 1 is repeated to 2 first:
    ``torch.export`` specializes a dimension whose example size is 1.
    """
    for index, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[0] == 0:
            raise CompileError(f"example input {index} must be a tensor with a non-empty batch "
                               "dimension (dimension 0) for dynamic_batch=True")
    examples = tuple(x.expand(2, *x.shape[1:]).clone() if x.shape[0] == 1 else x
                     for x in example_inputs)
    from torch._dynamo.exc import UserError

    batch = torch.export.Dim("batch")
    try:
        return torch.export.export(model, examples,
                                   dynamic_shapes=tuple({0: batch} for _ in examples))
    except UserError as e:
        details = [line.strip() for line in str(e).splitlines() if line.startswith("  - ")]
        raise CompileError(
            "the model cannot be exported with a dynamic batch: it fixes the batch size (e.g. "
            "with a hard-coded reshape; use x.size(0) or flatten(1))"
            + "".join(f"\n  {line}" for line in details or [str(e).splitlines()[0]])
        ) from None
