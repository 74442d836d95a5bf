"""The inference graph of a freshly exported model, without tracing it a second time.

``torch.export.export`` returns the training IR: ATen ops before the decompositions of the
importer's table (:func:`bnnmlir.frontend.importer.decomposition_table`).
``run_decompositions`` applies them by tracing the whole program again with fake tensors, which
costs more than the rest of the import on the networks of this project (0.3-0.7 s on the 32x32
demo network and on Bi-Real-Net-18), while on such networks it changes only a few spellings.
:func:`inference_program` takes the program as it is when every node is

* an op that the decomposition leaves as it is (:data:`KEPT`);
* an op whose training spelling the importer reads exactly as the decomposed one
  (:data:`READ_ALIKE`: ``detach`` as ``alias``, ``reshape`` and ``flatten`` as ``view``,
  ``ones_like`` as ``full_like``);
* one of two ops rewritten here into what the decomposition makes of them, on the same
  arguments:

  - ``batch_norm(x, w, b, mean, var, training=False, momentum, eps, cudnn)`` ->
    ``getitem(_native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps), 0)``
    (the normalization with the running statistics; ``training=True`` is not rewritten);
  - ``pad(x, pads, "constant", value)`` -> ``constant_pad_nd(x, pads, value)`` (a missing
    ``value`` is 0, as in ``pad``; other modes are not rewritten).

Anything else (another op, a mutation, a symbolic size, a higher-order op, a node that is not a
placeholder, a call or the output) leaves the program to ``run_decompositions``. Like the
decomposition, the direct path drops the nodes whose results nothing uses (an auxiliary head that
only training returns), and the graph signature names the rewritten outputs. The rewritten nodes
keep the metadata the importer reads (module stack, source line, fake values), so the imported IR
and its locations are those of the decomposed program (tested on every network of the zoo and
the demo); warnings and approximations name a node as exported (``flatten`` where the
decomposition would say ``view``).
"""

from __future__ import annotations

import operator

import torch

aten = torch.ops.aten

KEPT = frozenset((
    aten._assert_tensor_metadata.default, aten.abs.default, aten.adaptive_avg_pool2d.default,
    aten.add.Tensor, aten.amax.default, aten.avg_pool2d.default, aten.cat.default,
    aten.clamp.default, aten.conv2d.default, aten.div.Tensor, aten.gt.Scalar,
    aten.hardtanh.default, aten.linear.default, aten.lt.Scalar, aten.max_pool2d.default,
    aten.mean.dim, aten.mul.Tensor, aten.neg.default, aten.prelu.default, aten.relu.default,
    aten.round.default, aten.sign.default, aten.sub.Tensor, aten.view.default, aten.where.self,
))
"""Ops that ``run_decompositions(decomposition_table())`` leaves as they are."""

READ_ALIKE = frozenset((
    aten.detach.default, aten.reshape.default, aten.flatten.using_ints, aten.ones_like.default,
))
"""Ops the decomposition respells (``alias``, ``view``, ``full_like``) that the importer reads
exactly as their respelling."""


def _custom(target: object) -> bool:
    """An op of this project's library (``bnnmlir::sign``, ``bnnmlir::clip8``...), which no
    decomposition touches."""
    return isinstance(target, torch._ops.OpOverload) and target.namespace == "bnnmlir"


def _eval_batch_norm(node: torch.fx.Node) -> bool:
    if node.target is not aten.batch_norm.default or node.kwargs or len(node.args) != 9:
        return False
    return node.args[5] is False


def _constant_pad(node: torch.fx.Node) -> bool:
    if node.target is not aten.pad.default or node.kwargs:
        return False
    mode = node.args[2] if len(node.args) > 2 else "constant"
    return mode == "constant" and len(node.args) <= 4


def _direct(node: torch.fx.Node) -> bool:
    if node.op in ("placeholder", "output"):
        return True
    if node.op != "call_function":
        return False
    t = node.target
    return t in KEPT or t in READ_ALIKE or _custom(t) or _eval_batch_norm(node) or _constant_pad(node)


def _rewrite_batch_norm(graph: torch.fx.Graph, node: torch.fx.Node) -> torch.fx.Node:
    x, w, b, mean, var, _, momentum, eps, _ = node.args
    val = node.meta.get("val")
    with graph.inserting_before(node):
        norm = graph.call_function(aten._native_batch_norm_legit_no_training.default,
                                   (x, w, b, mean, var, momentum, eps))
        first = graph.call_function(operator.getitem, (norm, 0))
    norm.meta = dict(node.meta)
    if isinstance(val, torch.Tensor):
        norm.meta["val"] = (val, val.new_empty((0,)), val.new_empty((0,)))
    first.meta = dict(node.meta)
    node.replace_all_uses_with(first)
    graph.erase_node(node)
    return first


def _rewrite_pad(graph: torch.fx.Graph, node: torch.fx.Node) -> torch.fx.Node:
    x, pads = node.args[0], node.args[1]
    value = node.args[3] if len(node.args) > 3 and node.args[3] is not None else 0.0
    with graph.inserting_before(node):
        padded = graph.call_function(aten.constant_pad_nd.default, (x, pads, value))
    padded.meta = dict(node.meta)
    node.replace_all_uses_with(padded)
    graph.erase_node(node)
    return padded


def inference_program(program: torch.export.ExportedProgram
                      ) -> torch.export.ExportedProgram | None:
    """``program`` (a training-IR export this caller owns: it is changed in place) made its
    inference graph by the rewrites of the module docstring, or ``None`` when it needs
    ``run_decompositions``."""
    graph = program.graph_module.graph
    if not all(_direct(node) for node in graph.nodes):
        return None
    graph.eliminate_dead_code()
    renamed: dict[str, str] = {}
    for node in list(graph.nodes):
        rewrite = (_rewrite_batch_norm if _eval_batch_norm(node)
                   else _rewrite_pad if _constant_pad(node) else None)
        if rewrite is not None:
            name = node.name
            renamed[name] = rewrite(graph, node).name
    for spec in program.graph_signature.output_specs:
        arg = spec.arg
        if isinstance(arg, torch.export.graph_signature.TensorArgument) and arg.name in renamed:
            spec.arg = torch.export.graph_signature.TensorArgument(name=renamed[arg.name])
    graph.lint()
    program.graph_module.recompile()
    return program
