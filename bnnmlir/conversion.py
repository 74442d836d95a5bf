"""``bnnmlir.convert``: a published PyTorch BNN rewritten into :mod:`bnnmlir.nn` layers.

The model (a deep copy; the user's model is never touched) is exported once and its graph read
with the recognizers of the importer (:mod:`bnnmlir.frontend.ste`,
:mod:`bnnmlir.frontend.scaled_weights`). Two kinds of modules are replaced, by their path:

* a **scaled binary convolution / dense layer**: a module whose whole run-time work is one
  ``conv2d`` / ``linear`` of a binarized input (``torch.sign``, ``where(x >= 0, 1, -1)`` or a
  detach estimator) with weights computed from parameters alone that equal ``+-alpha_o`` per output
  channel. It becomes ``Sequential(BinaryConv2d | BinaryLinear, ChannelScale(alpha))``: the
  binary layer's exact integer sum ``A`` times ``alpha_o`` (one float32 product). PyTorch's
  ``sum(+-alpha_o)`` differs from ``fl(alpha_o A)`` by at most
  :func:`~bnnmlir.frontend.scaled_weights.layer_bound` (summation order, the estimator's
  deviation ``delta`` of the input from +-1, the weights' spread).
* a **binarizing activation** (an estimator ``hard - soft + soft`` or a plain ``torch.sign``) whose
  every consumer is a converted layer becomes ``nn.Identity``: the binary layer binarizes its input
  itself (``bnnmlir::sign``, ``sign(0) = +1``). Its value was ``sign(x)`` up to the proven
  deviation, which cannot change the sign of a +-1 value (and ``fl(0 - q + q) = 0``, like
  ``torch.sign(0)``, runs as +1: the zero case of the contract).

Everything else (float stems, shortcuts, BatchNorm, residual adds, learnable biases, RPReLU,
activation scaling) stays as written. The :class:`ConversionReport` lists each replaced module
(idiom, bound) and each module that stayed float although it computes a convolution, a dense layer
or a binarization, or that holds an operation the compiler has no translation for, with the
reason.

The converted model is returned in eval mode; ``.train()`` fine-tunes it: the straight-through
estimator of ``bnnmlir::sign`` (gradient 1 on ``|x| <= 1``) replaces the published one, the latent
weights are the model's own (their signs are the binary weights), ``alpha`` is a buffer. Then the
BNN-Clip recipe (BatchNorm + :class:`~bnnmlir.nn.Clip8` after each binary layer) applies, and
``bnnmlir.compile(converted, inputs)`` compiles it with ``exact=True``.
"""

from __future__ import annotations

import copy
import operator
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.export.graph_signature import InputKind

from bnnmlir.forked import EXPORT_LOCK
from bnnmlir.frontend import scaled_weights
from bnnmlir.frontend.importer import decomposition_table, op_name
from bnnmlir.frontend.modules import module_stack
from bnnmlir.frontend.ste import _TRANSPARENT, deviation_bound, find_ste, hard_source, strip

aten = torch.ops.aten
_CONV = aten.conv2d.default
_LINEAR = aten.linear.default
_CHECKS = {aten._assert_tensor_metadata.default}


@dataclass(frozen=True)
class Converted:
    """A replaced module: ``idiom``, what it became (``into``) and the bound of the change."""

    path: str
    idiom: str
    into: str
    bound: float
    note: str = ""

    def describe(self) -> str:
        text = (f"{self.path}: {self.idiom} -> {self.into}, "
                f"|converted - original| <= {self.bound:.3g}")
        return text + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Kept:
    """A module left as written, and why."""

    path: str
    reason: str

    def describe(self) -> str:
        return f"{self.path or '<root>'}: not converted: {self.reason}"


@dataclass
class ConversionReport:
    converted: list[Converted] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([c.describe() for c in self.converted] + [k.describe() for k in self.kept])


@dataclass
class _Layer:
    node: torch.fx.Node
    path: str
    source: torch.fx.Node  # the binarized activation (estimator add or hard sign node)
    delta: float
    note: str
    idiom: str


def _graph_values(program, inputs) -> tuple[dict, set]:
    """Every node's value on ``inputs`` and the set of nodes that depend on a user input."""
    args, runtime_inputs = [], set()
    user = iter(inputs)
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    for node, spec in zip(placeholders, program.graph_signature.input_specs):
        if spec.kind == InputKind.USER_INPUT:
            args.append(next(user))
            runtime_inputs.add(node)
        elif spec.target in program.state_dict:
            args.append(program.state_dict[spec.target])
        else:
            args.append(program.constants[spec.target])
    interpreter = torch.fx.Interpreter(program.graph_module, garbage_collect_values=False)
    with torch.no_grad():
        interpreter.run(*args)
    runtime = set(runtime_inputs)
    for node in program.graph.nodes:
        if any(a in runtime for a in node.all_input_nodes):
            runtime.add(node)
    return interpreter.env, runtime


def _paths(node) -> list[str]:
    return [f.path for f in module_stack(node)]


def _owned(graph, path: str, runtime: set) -> set:
    """The run-time nodes created inside the module at ``path`` (or its submodules)."""
    return {n for n in graph.nodes if n in runtime and path in _paths(n)}


def _consumers(node) -> set:
    """The users of ``node``, seen through transparent ops (alias, detach, clone)."""
    out = set()
    for u in node.users:
        if u.op == "call_function" and u.target in _TRANSPARENT:
            out |= _consumers(u)
        elif u.target not in _CHECKS:
            out.add(u)
    return out


class _Converter:
    def __init__(self, model: nn.Module, inputs: tuple):
        self.model = model
        with EXPORT_LOCK, torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            self.program = torch.export.export(model, inputs).run_decompositions(
                decomposition_table())
        self.graph = self.program.graph
        self.values, self.runtime = _graph_values(self.program, inputs)
        self.stes = find_ste(self.graph, self.runtime)
        self.constants = {n: v for n, v in self.values.items() if n not in self.runtime}
        self.report = ConversionReport()
        self.layers: dict[torch.fx.Node, _Layer] = {}

    # -- binary layers ------------------------------------------------------------------------

    def _activation(self, x) -> tuple[torch.fx.Node, float, str, str] | None:
        """The binarization feeding a layer: (node, deviation, note, idiom) or ``None``."""
        x = strip(x)
        ste = self.stes.get(x)
        if ste is not None:
            bound = deviation_bound(ste, self.constants)
            if bound is None:
                return None
            note = "" if bound.domain >= 3e38 else f"for activations |x| <= {bound.domain:.3g}"
            return x, bound.deviation, note, "detach straight-through estimator"
        if hard_source(x) is not None:
            zero = x.target == aten.sign.default
            return x, 0.0, "torch.sign(0) = 0 runs as +1" if zero else "", "binarization"
        return None

    def _why_not_layer(self, node, path) -> str | None:
        """``None`` if the layer ``node`` (in the module at ``path``) converts, else the reason."""
        kind = "convolution" if node.target == _CONV else "dense layer"
        w = node.args[1]
        if w in self.runtime:
            return f"its {kind} weights are computed from the input"
        if scaled_weights.recognize(self.values[w]) is None:
            return f"float {kind}: its weights are not +-alpha per output channel"
        bias = node.args[2] if len(node.args) > 2 else None
        if bias is not None:
            return f"the {kind} has a bias (write it as a BatchNorm or a bias after the layer)"
        if node.target == _CONV and (len(node.args) > 6 and node.args[6] != 1):
            return "grouped convolution (no binary kernel for groups > 1)"
        if self._activation(node.args[0]) is None:
            return f"float {kind}: its input is not binarized (or its estimator has no bound)"
        if not path:
            return (f"the {kind} is written in the model's own forward: put it in a submodule "
                    "to convert it")
        owned = _owned(self.graph, path, self.runtime)
        if owned - {node} - _checks_of(owned):
            extra = sorted(op_name(n) for n in owned - {node} - _checks_of(owned))
            return f"the module computes more than the {kind} ({', '.join(extra[:3])})"
        if sum(1 for n in self.graph.nodes if n.target in (_CONV, _LINEAR)
               and path in _paths(n)) != 1:
            return "the module is called more than once"
        return None

    def find_layers(self) -> None:
        seen = set()
        for node in self.graph.nodes:
            if node.op != "call_function" or node.target not in (_CONV, _LINEAR):
                continue
            paths = _paths(node)
            path = paths[-1] if paths else ""
            seen.add(path)
            reason = self._why_not_layer(node, path)
            if reason is not None:
                self.report.kept.append(Kept(path, reason))
                continue
            source, delta, note, idiom = self._activation(node.args[0])
            self.layers[node] = _Layer(node, path, source, delta, note, idiom)

    def _replacement(self, layer: _Layer) -> tuple[nn.Module, float]:
        from bnnmlir.nn import BinaryConv2d, BinaryLinear, ChannelScale

        node = layer.node
        w = self.values[node.args[1]]
        sw = scaled_weights.recognize(w)
        k = int(np.prod(w.shape[1:]))
        if node.target == _CONV:
            stride, padding, dilation = (list(node.args[i]) if len(node.args) > i else d
                                         for i, d in ((3, [1, 1]), (4, [0, 0]), (5, [1, 1])))
            binary = BinaryConv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=tuple(stride),
                                  padding=tuple(padding), dilation=tuple(dilation))
        else:
            binary = BinaryLinear(w.shape[1], w.shape[0])
        binary.weight.data.copy_(self._latent(layer.path, w, sw))
        bound = scaled_weights.layer_bound(sw.alpha, sw.dev, k, layer.delta, None)
        return nn.Sequential(binary, ChannelScale(torch.from_numpy(sw.alpha.copy()))), bound

    def _latent(self, path: str, w: torch.Tensor, sw) -> torch.Tensor:
        """The module's own latent weights when their signs are the binary weights, else ``w``."""
        params = list(self.model.get_submodule(path).parameters())
        signs = torch.from_numpy(sw.signs).to(w.dtype)
        if len(params) == 1 and params[0].numel() == w.numel():
            latent = params[0].detach().reshape(w.shape)
            if torch.equal(torch.where(latent >= 0, 1.0, -1.0), signs):
                return latent
        return w.detach().clone()

    # -- binarizing activations ----------------------------------------------------------------

    def _activation_path(self, source) -> tuple[str, str | None]:
        """The module of a binarization and ``None`` if it can become ``nn.Identity``, else the
        reason."""
        paths = _paths(source)
        path = paths[-1] if paths else ""
        converted = {n for n in self.layers}
        if not _consumers(source) <= converted:
            return path, "its output is also used by layers that stay float"
        if not path:
            return path, ("the binarization is written in the model's own forward: the binary "
                          "layer binarizes again (same value), the estimator stays float")
        ste = self.stes.get(source)
        inside = ({source} | set(ste.skipped)) if ste else {source}
        owned = _owned(self.graph, path, self.runtime)
        extra = owned - inside - _checks_of(owned) - {n for n in owned if n.target in _TRANSPARENT}
        if extra:
            return path, ("the module computes more than the binarization "
                          f"({', '.join(sorted(op_name(n) for n in extra)[:3])})")
        return path, None

    # -- the rewrite --------------------------------------------------------------------------

    def run(self) -> tuple[nn.Module, ConversionReport]:
        self.find_layers()
        replacements: dict[str, nn.Module] = {}
        for layer in self.layers.values():
            module, bound = self._replacement(layer)
            replacements[layer.path] = module
            kind = "BinaryConv2d" if layer.node.target == _CONV else "BinaryLinear"
            idiom = "scaled binary weights" + ("" if layer.idiom == "binarization"
                                               else " after a " + layer.idiom)
            self.report.converted.append(Converted(layer.path, idiom, f"{kind} + ChannelScale",
                                                   bound, layer.note))
        sources: dict[torch.fx.Node, list[_Layer]] = {}
        for layer in self.layers.values():
            sources.setdefault(layer.source, []).append(layer)
        for source, layers in sources.items():
            path, reason = self._activation_path(source)
            if reason is not None:
                self.report.kept.append(Kept(path, reason))
                continue
            idiom = layers[0].idiom
            replacements[path] = nn.Identity()
            self.report.converted.append(Converted(
                path, idiom, "nn.Identity (the binary layer binarizes)", layers[0].delta,
                layers[0].note))
        self._report_other_binarizations(sources)
        self._report_untranslatable(replacements)
        for path, module in replacements.items():
            parent, _, name = path.rpartition(".")
            setattr(self.model.get_submodule(parent), name, module)
        return self.model, self.report

    def _report_other_binarizations(self, sources) -> None:
        for node in self.graph.nodes:
            if node in sources or node not in self.runtime:
                continue
            if node in self.stes or (hard_source(node) is not None and not any(
                    node in ste.skipped for ste in self.stes.values())):
                paths = _paths(node)
                self.report.kept.append(Kept(paths[-1] if paths else "",
                                             "a binarization that feeds no converted layer"))

    def _report_untranslatable(self, replacements) -> None:
        from bnnmlir.frontend.patterns import CONVERTERS

        skipped = set().union(*(ste.skipped for ste in self.stes.values())) if self.stes else set()
        for node in self.graph.nodes:
            if node.op != "call_function" or node not in self.runtime or node in skipped:
                continue
            if node.target is operator.getitem or node.target in CONVERTERS \
                    or node.target in _CHECKS:
                continue
            paths = _paths(node)
            if any(p in replacements for p in paths):
                continue
            self.report.kept.append(Kept(paths[-1] if paths else "",
                                         f"{op_name(node)} has no bnnmlir translation"))


def _checks_of(nodes) -> set:
    return {n for n in nodes if n.target in _CHECKS}


def convert(model: nn.Module, example_inputs) -> tuple[nn.Module, ConversionReport]:
    """A copy of ``model`` with its recognized binary idioms as :mod:`bnnmlir.nn` layers, and the
    :class:`ConversionReport` (see the module docstring). ``example_inputs``: a tensor or a tuple
    of tensors the model is traced on."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert expects a torch.nn.Module, got {type(model).__name__}")
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) \
        else tuple(example_inputs)
    work = copy.deepcopy(model).eval()
    return _Converter(work, inputs).run()
