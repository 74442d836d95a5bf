"""Import a PyTorch model into tensor-level ``bnn`` IR.

Graph capture: ``torch.export.export(model.eval(), example_inputs)`` then
``run_decompositions(table)`` with the default table minus the decompositions of ops that map 1:1
onto ``bnn`` ops (``conv2d``, ``linear``, ``prelu``, ``max_pool2d``, ``adaptive_avg_pool2d``...):
decomposing them would only scatter one layer over several nodes (``linear`` into ``permute`` +
``addmm``, ``prelu`` into ``gt`` + ``mul`` + ``where``). The decomposed spellings are accepted too.
A model whose exported graph the decomposition would only respell skips it
(:mod:`bnnmlir.frontend.inference_graph`: a second trace saved).
``torch.export`` is used rather than ``torch.fx.symbolic_trace`` because it records, per node, the
module path (``nn_module_stack``), the source line (``stack_trace``) and the exact shapes, and it
inlines custom ``autograd.Function`` STEs into ATen ops the importer recognizes.

Walk: every node whose tensor inputs are all constants (parameters, buffers, lifted constants, and
nodes computed from them only) is evaluated with PyTorch (so ``sign(W)`` becomes a +-1 constant);
the other nodes are translated by :mod:`bnnmlir.frontend.patterns`, which tracks what is known
about each value (:mod:`bnnmlir.frontend.values`).

Signature: the function takes the model's inputs in the model's layout (NCHW ``f32``) and returns
its outputs in the model's layout as ``f32``; rank-4 activations are channels-last inside, with a
``bnn.transpose`` after each rank-4 input and before each rank-4 output, and a ``bnn.cast`` for
integer-valued outputs.
"""

from __future__ import annotations

import functools
import operator
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.export.graph_signature import InputKind
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    FileLineColLoc,
    IntAttr,
    ModuleOp,
    NameLoc,
    StringAttr,
    UnknownLoc,
    f32,
)
from xdsl.ir import Block, Region

import bnnmlir
from bnnmlir.errors import UnsupportedModuleError, UnsupportedOperationError
from bnnmlir.frontend.bias import check_biased_layers
from bnnmlir.frontend.builder import BodyBuilder, LayerInfo, tensor
from bnnmlir.frontend.inference_graph import inference_program
from bnnmlir.frontend.modules import innermost_module, unsupported_module
from bnnmlir.frontend.values import FLOAT, Act

__all__ = ["ImportedModel", "LayerInfo", "TensorSpec", "import_model"]


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one model input or output (PyTorch layout and dtype)."""

    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass
class ImportedModel:
    """The result of :func:`import_model`."""

    module: ModuleOp
    input_specs: list[TensorSpec]
    output_specs: list[TensorSpec]
    layers: list[LayerInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dynamic_batch: bool = False
    """Whether ``module`` computes one image of a dynamic batch (see
    :mod:`bnnmlir.frontend.batch`): every input and output spec then has batch 1."""
    #: Layers compiled as their intended binary meaning (``exact=False``), with proven bounds.
    approximations: list[Approximation] = field(default_factory=list)
    #: The exported program (its inference graph: decomposed, or respelled by
    #: :mod:`bnnmlir.frontend.inference_graph`), for :meth:`bnnmlir.api.CompiledModel.compare`; see
    #: :meth:`exported_program`.
    program: torch.export.ExportedProgram | None = None
    #: Makes :attr:`program` again when it was not kept (an import in a forked process).
    export_again: Callable[[], torch.export.ExportedProgram] | None = field(
        default=None, repr=False, compare=False)

    def exported_program(self) -> torch.export.ExportedProgram | None:
        """:attr:`program`, made again (once) by :attr:`export_again` if it was not kept."""
        if self.program is None and self.export_again is not None:
            self.program = self.export_again()
        return self.program


@dataclass(frozen=True)
class Approximation:
    """A layer whose compiled value is PyTorch's only up to ``bound`` (``exact=False``).

    ``kind``: ``layer`` (an approximate binary layer: ``bound`` on each of its outputs) or
    ``binarization`` (a binarization of a value ``node`` that deviates from PyTorch's by at most
    ``bound``: it can flip only where ``|x| <= bound``; ``domain``: the deviation bounds hold for
    ``|x| <= domain`` upstream; ``zero_as_plus``: ``torch.sign(0) = 0`` runs as +1)."""

    module_path: str
    idiom: str
    bound: float
    kind: str = "layer"
    node: str = ""
    domain: float = float("inf")
    zero_as_plus: bool = False

    def describe(self) -> str:
        what = "each output" if self.kind == "layer" else "its input"
        text = (f"{self.module_path or '<root>'}: {self.idiom}: |compiled - PyTorch| <= "
                f"{self.bound:.3g} on {what}")
        if self.kind == "binarization":
            text += f" (a binarization can flip only where |x| <= {self.bound:.3g})"
        if self.domain < 3e38:
            text += f", for activations |x| <= {self.domain:.3g}"
        if self.zero_as_plus:
            text += ", except where an input of torch.sign is exactly 0 (it runs as +1, not 0)"
        return text


def decomposition_table() -> dict:
    """The default decompositions minus those of ops that map onto one ``bnn`` op."""
    table = torch.export.default_decompositions()
    aten = torch.ops.aten
    for op in (
        aten.conv2d.default,
        aten.linear.default,
        aten.prelu.default,
        aten.max_pool2d.default,
        aten.adaptive_avg_pool2d.default,
        aten.hardtanh.default,
        aten.relu.default,
        aten.flatten.using_ints,
    ):
        if op in table:
            del table[op]
    return table


def import_model(model: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], *,
                 dynamic_batch: bool = False, exact: bool = True) -> ImportedModel:
    """Import ``model`` (put in eval mode) traced on ``example_inputs`` (fixing every shape, or
    every shape but the batch with ``dynamic_batch``: see :mod:`bnnmlir.frontend.batch`).

    Raises :class:`~bnnmlir.frontend.UnsupportedOperationError` for a node that has no exact
    translation. Binary-looking layers that stay in float are listed in ``warnings``.
    ``exact=False``: layers whose PyTorch value is their binary meaning only up to rounding
    (detach straight-through estimators, scaled binary weights, ``torch.sign(0)``) become binary
    kernels, each listed in ``approximations`` with its proven bound.
    """
    from bnnmlir.frontend.batch import export_dynamic_batch

    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # torch.export's own deprecation chatter (pytree LeafSpec) is not the user's concern.
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        if dynamic_batch:
            program = export_dynamic_batch(model, tuple(example_inputs))
        else:
            program = torch.export.export(model, tuple(example_inputs))
            # Our own export: its graph may be made the inference graph in place.
            direct = inference_program(program)
            if direct is not None:
                return _import_inference_program(direct, exact)
    return import_exported_program(program, exact=exact)


def import_exported_program(program: torch.export.ExportedProgram, *,
                            exact: bool = True) -> ImportedModel:
    """Import an exported program (e.g. loaded from a ``.pt2`` archive). Its shapes are static,
    or every shape but a symbolic batch (a ``torch.export.Dim`` on dimension 0 of the inputs):
    the result is then the per-image program, ``dynamic_batch`` set. ``exact``: see
    :func:`bnnmlir.api.compile`."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        program = program.run_decompositions(decomposition_table())
    return _import_inference_program(program, exact)


def _import_inference_program(program: torch.export.ExportedProgram,
                              exact: bool) -> ImportedModel:
    from bnnmlir.frontend.batch import prepare_batch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        dynamic = prepare_batch(program)
        imported = GraphImporter(program, exact=exact).run()
        imported.dynamic_batch = dynamic
        imported.program = program
        return imported


# ---------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in ')
_LIBRARY_DIRS = tuple(os.path.dirname(os.path.realpath(m.__file__)) + os.sep
                      for m in (torch, bnnmlir))
"""Frames in these directories are PyTorch's or bnnmlir's, never the user's source."""


def module_path(node: torch.fx.Node) -> str:
    """Dotted path of the innermost module that created ``node`` (``""`` for the root)."""
    frame = innermost_module(node)
    return frame.path if frame else ""


def module_type(node: torch.fx.Node) -> str:
    """Class of the innermost module that created ``node`` (``nn.GELU``, ``mymodel.Block``)."""
    frame = innermost_module(node)
    return frame.display_name if frame else ""


def source_line(node: torch.fx.Node) -> tuple[str, int] | None:
    """Innermost frame of the node's stack trace in the user's source: outside PyTorch and
    bnnmlir. ``None`` when every frame is theirs (a ``torch.nn.Sequential`` of library layers
    has no line of its own: the module path names the layer)."""
    frames = [(f, int(line)) for f, line in _FRAME.findall(node.meta.get("stack_trace") or "")]
    user = [fr for fr in frames if not _is_library_file(fr[0])]
    return user[-1] if user else None


@functools.cache
def _is_library_file(path: str) -> bool:
    return os.path.realpath(path).startswith(_LIBRARY_DIRS)


def node_location(node: torch.fx.Node):
    path = module_path(node) or "<root>"
    src = source_line(node)
    inner = (
        FileLineColLoc(StringAttr(src[0]), IntAttr(src[1]), IntAttr(0)) if src else UnknownLoc()
    )
    return NameLoc(StringAttr(path), inner)


def describe_source(node: torch.fx.Node) -> str:
    src = source_line(node)
    return f"{src[0]}:{src[1]}" if src else ""


def op_name(node: torch.fx.Node) -> str:
    if node.op == "placeholder":
        return f"model input '{node.name}'"
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    if isinstance(target, torch._ops.OpOverload):
        name = str(target)
        return name if name.startswith(("aten.", "bnnmlir.")) else f"aten.{name}"
    return name


# ---------------------------------------------------------------------------------------------
# The graph walk
# ---------------------------------------------------------------------------------------------

_SHAPE_ONLY = {
    torch.ops.aten.full_like.default,
    torch.ops.aten.ones_like.default,
    torch.ops.aten.zeros_like.default,
}


class GraphImporter:
    """Walks one exported program and emits ``func.func @forward``."""

    def __init__(self, program: torch.export.ExportedProgram, *, exact: bool = True):
        self.program = program
        self.exact = exact
        self.approximations: list[Approximation] = []
        self.graph = program.graph_module.graph
        self.env: dict[torch.fx.Node, object] = {}
        self.block = Block()
        self.emit = BodyBuilder(self.block)
        self.warnings: list[str] = []
        self.node: torch.fx.Node | None = None
        self.biased_layers: list = []  # bnnmlir.frontend.bias.BiasedLayer

    # ---- helpers used by the patterns ---------------------------------------------------------
    def error(self, reason: str, node: torch.fx.Node | None = None) -> UnsupportedOperationError:
        node = node or self.node
        assert node is not None
        whole = unsupported_module(node)
        if whole is not None:
            frame, why = whole
            return UnsupportedModuleError(op_name(node), frame.path, describe_source(node), why,
                                          frame.display_name)
        return UnsupportedOperationError(op_name(node), module_path(node), describe_source(node),
                                         reason, module_type(node))

    def warn(self, message: str, node: torch.fx.Node | None = None) -> None:
        node = node or self.node
        assert node is not None
        where = module_path(node) or "<root>"
        src = describe_source(node)
        self.warnings.append(f"{where} ({op_name(node)}{', ' + src if src else ''}): {message}")

    def approximate(self, idiom: str, bound: float, **kwargs) -> None:
        """Record an approximate layer or binarization (``exact=False``) of the current node."""
        assert self.node is not None
        self.approximations.append(Approximation(module_path(self.node), idiom, bound, **kwargs))

    def value_of(self, arg):
        if isinstance(arg, torch.fx.Node):
            return self.env[arg]
        if isinstance(arg, (list, tuple)):
            return type(arg)(self.value_of(a) for a in arg)
        return arg

    # ---- walk ----------------------------------------------------------------------------------
    def run(self) -> ImportedModel:
        from bnnmlir.frontend.patterns import CONVERTERS, to_model_output

        from bnnmlir.frontend.ste import find_ste

        constants = self._constants()
        self.ste = find_ste(self.graph, self._runtime_nodes(constants))
        skipped = set().union(*(e.skipped for e in self.ste.values()))
        inputs: list[TensorSpec] = []
        input_types = []
        for node in self.graph.nodes:
            self.node = node
            if node in skipped:
                continue
            if node in self.ste:
                from bnnmlir.frontend.patterns import straight_through

                with self.emit.at(node_location(node), module_path(node)):
                    self.env[node] = straight_through(self, self.ste[node])
                continue
            if node.op == "placeholder":
                if node.name in constants:
                    self.env[node] = constants[node.name]
                    continue
                self.env[node] = self._input(node, inputs, input_types)
            elif node.op == "call_function":
                with self.emit.at(node_location(node), module_path(node)):
                    self.env[node] = self._call(node, CONVERTERS)
            elif node.op == "output":
                outputs, specs = [], []
                with self.emit.at(node_location(node), ""):
                    for res in node.args[0]:
                        self.node = res if isinstance(res, torch.fx.Node) else node
                        value = self.value_of(res)
                        outputs.append(to_model_output(self, value))
                        val = res.meta.get("val") if isinstance(res, torch.fx.Node) else None
                        shape = tuple(val.shape) if val is not None else ()
                        specs.append(TensorSpec(shape, torch.float32))
                        if val is not None and val.dtype != torch.float32:
                            raise self.error(f"model output of dtype {val.dtype}: only float32 "
                                             "outputs are supported")
                    self.block.add_op(func.ReturnOp(*outputs))
                check_biased_layers(self)
                ftype = ([t for t in input_types], [o.type for o in outputs])
                fn = func.FuncOp("forward", ftype, Region(self.block))
                return ImportedModel(ModuleOp([fn]), inputs, specs, self.emit.layers,
                                     self.warnings, approximations=self.approximations)
            else:
                raise self.error(f"graph node kind '{node.op}' is not supported")
        raise AssertionError("exported graph without output")

    def _runtime_nodes(self, constants: dict) -> set:
        """The nodes computed at run time (from a model input)."""
        runtime: set = set()
        for node in self.graph.nodes:
            if node.op == "placeholder":
                if node.name not in constants:
                    runtime.add(node)
            elif any(a in runtime for a in node.all_input_nodes):
                runtime.add(node)
        return runtime

    def constant_values(self) -> dict:
        """``{node: tensor}`` of the constant nodes evaluated so far."""
        return {n: v for n, v in self.env.items() if isinstance(v, torch.Tensor)}

    def _constants(self) -> dict[str, torch.Tensor]:
        program = self.program
        values = {}
        for spec in program.graph_signature.input_specs:
            if spec.kind == InputKind.USER_INPUT:
                continue
            if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                source = program.state_dict if spec.target in program.state_dict else program.constants
                values[spec.arg.name] = source[spec.target].detach()
            else:
                raise UnsupportedOperationError(
                    str(spec.kind), "", "", "only parameters, buffers and tensor constants are "
                    "supported as graph inputs besides the model inputs"
                )
        return values

    def _input(self, node: torch.fx.Node, specs: list, types: list) -> Act:
        val = node.meta["val"]
        if val.dtype != torch.float32:
            raise self.error(f"model input '{node.name}' has dtype {val.dtype}: only float32 "
                             "inputs are supported")
        shape = tuple(int(d) for d in val.shape)
        specs.append(TensorSpec(shape, val.dtype))
        types.append(tensor(shape, f32))
        arg = self.block.insert_arg(types[-1], len(self.block.args))
        arg.name_hint = node.name
        value = arg
        if len(shape) == 4:
            with self.emit.at(NameLoc(StringAttr("<input>"), UnknownLoc()), ""):
                value = self.emit.transpose(arg, (0, 2, 3, 1))
        return Act(value, shape, FLOAT)

    def _call(self, node: torch.fx.Node, converters):
        target = node.target
        if target is operator.getitem:
            seq, index = self.value_of(node.args[0]), node.args[1]
            item = seq[index]
            if item is None:
                raise self.error(f"output {index} of {op_name(node.args[0])} is not supported")
            return item
        args = self.value_of(node.args)
        kwargs = {k: self.value_of(v) for k, v in node.kwargs.items()}
        if _all_constant(args) and _all_constant(kwargs):
            return self._fold(node, args, kwargs)
        if target in _SHAPE_ONLY:
            val = node.meta["val"]
            fill = {torch.ops.aten.ones_like.default: 1, torch.ops.aten.zeros_like.default: 0}
            value = fill.get(target, args[1] if len(args) > 1 else kwargs.get("fill_value"))
            return torch.full(tuple(val.shape), value, dtype=val.dtype)
        self._check_operand_dtypes(node)
        convert = converters.get(target)
        if convert is None:
            raise self.error(
                "no translation to the bnn op set (supported: the layers of docs/ops.md and the "
                "bnnmlir.nn layers); rewrite the model with supported layers or add a pattern"
            )
        result = convert(self, node, *args, **kwargs)
        from bnnmlir.frontend.deviation import propagate

        propagate(node, args, kwargs, result)
        return result

    def _check_operand_dtypes(self, node: torch.fx.Node) -> None:
        """Run-time operands of any dtype but float32 (and the bool of a comparison) reach only
        conversions and data movement (``patterns.DTYPE_AGNOSTIC``)."""
        from bnnmlir.frontend.patterns import DTYPE_AGNOSTIC, node_dtype

        if node.target in DTYPE_AGNOSTIC:
            return
        for arg in node.all_input_nodes:
            dtype = node_dtype(arg)
            if dtype in (None, torch.float32, torch.bool) or isinstance(self.env.get(arg),
                                                                         torch.Tensor):
                continue
            raise self.error(
                f"operand '{arg.name}' has dtype {dtype}: the compiled program computes in "
                "float32 (holding integers exactly), so a tensor of another dtype may only be "
                "reshaped or converted back to float32 (e.g. with .float()) before other ops"
            )

    def _fold(self, node, args, kwargs):
        try:
            result = node.target(*args, **kwargs)
        except Exception as e:
            raise self.error(f"constant folding failed: {e}") from e
        return result


def _all_constant(value) -> bool:
    from bnnmlir.frontend.values import Act, Compare, PaddedSign, Sign

    if isinstance(value, (Act, Sign, PaddedSign, Compare)):
        return False
    if isinstance(value, (list, tuple)):
        return all(_all_constant(v) for v in value)
    if isinstance(value, dict):
        return all(_all_constant(v) for v in value.values())
    return True
