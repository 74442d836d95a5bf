"""``CompiledModel.compare``: the compiled model against PyTorch on given inputs.

With ``exact=False`` an approximate layer differs from PyTorch by at most its proven bound, and a
binarization downstream can differ only where its input lies within the propagated bound of the
threshold (``|x| <= bound``), where ``torch.sign`` sees an exact 0 (run as +1), or where an
activation lies outside the domain of a straight-through estimator's bound. :func:`compare` runs
PyTorch's exported graph on the inputs, counts those near-threshold values, and reports the
largest output difference and the top-1 agreement (rows of a rank-2 output).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.export.graph_signature import InputKind


@dataclass
class Comparison:
    """Result of :func:`compare`."""

    max_abs_diff: float
    #: Rows whose argmax agree (rank-2 output; ``None`` otherwise).
    top1_agreement: float | None
    #: Near-threshold values per approximation (module path and idiom -> count).
    near_threshold: dict[str, int] = field(default_factory=dict)

    @property
    def near_threshold_total(self) -> int:
        return sum(self.near_threshold.values())

    def __str__(self) -> str:
        top1 = "-" if self.top1_agreement is None else f"{100 * self.top1_agreement:.2f}%"
        return (f"max |compiled - PyTorch| = {self.max_abs_diff:.3g}, top-1 agreement {top1}, "
                f"{self.near_threshold_total} near-threshold values")


class _Recorder(torch.fx.Interpreter):
    def __init__(self, module, wanted: set[str]):
        super().__init__(module)
        self.wanted = wanted
        self.values: dict[str, torch.Tensor] = {}

    def run_node(self, n):
        out = super().run_node(n)
        if n.name in self.wanted:
            self.values[n.name] = out
        return out


def _graph_arguments(program, inputs) -> list:
    user = iter(inputs)
    args = []
    for spec in program.graph_signature.input_specs:
        if spec.kind == InputKind.USER_INPUT:
            args.append(next(user))
        elif spec.target in program.state_dict:
            args.append(program.state_dict[spec.target])
        else:
            args.append(program.constants[spec.target])
    return args


def compare(compiled, inputs) -> Comparison:
    """Run ``inputs`` through ``compiled`` and through PyTorch (see the module docstring)."""
    imported = compiled.imported
    program = imported.exported_program()
    if program is None:
        raise ValueError("compare needs the exported program (compile from a torch model)")
    records = imported.approximations
    wanted = {a.node for a in records if a.node}
    recorder = _Recorder(program.graph_module, wanted)
    with torch.no_grad():
        expected = recorder.run(*_graph_arguments(program, inputs))
        got = compiled(*inputs)
    expected = expected[0] if isinstance(expected, (list, tuple)) and len(expected) == 1 \
        else expected
    if isinstance(got, tuple):
        diff = max(float((g - e).abs().max()) for g, e in zip(got, expected))
        first, ref = got[0], expected[0]
    else:
        diff, first, ref = float((got - expected).abs().max()), got, expected
    top1 = None
    if first.dim() == 2:
        top1 = float((first.argmax(1) == ref.argmax(1)).float().mean())
    near: dict[str, int] = {}
    for a in records:
        x = recorder.values.get(a.node)
        if x is None:
            continue
        count = 0
        if a.kind == "binarization":
            count += int((x.abs() <= a.bound).sum())
        if a.zero_as_plus:
            count += int((x == 0).sum())
        if a.domain < 3e38:
            count += int((x.abs() > a.domain).sum())
        key = f"{a.module_path or '<root>'}: {a.idiom}"
        near[key] = near.get(key, 0) + count
    return Comparison(diff, top1, near)
