"""Per-layer report of a compiled model, read off the optimized tensor-level IR.

Each op is attributed to the layer named by its location (``NameLoc("<module path>")``, set by the
importer and kept by the passes). A layer's kind is ``binary`` when it runs on packed bits, ``int8``
when it is integer arithmetic on the int8 stream, and ``float`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rich.table import Table
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import (
    Float32Type,
    ModuleOp,
    NameLoc,
    TensorType,
)
from xdsl.ir import Operation

from bnnmlir.dialects.bnn import BConv2dOp
from bnnmlir.ir_utils import byte_size
from bnnmlir.tables import (
    code_column,
    compact_table,
    number_column,
    render,
    si_count,
    text_column,
)
from bnnmlir.target import TargetInfo

BINARY_OPS = {"bnn.bconv2d", "bnn.binarize", "bnn.threshold"}
LAYOUT_OPS = {"bnn.reshape", "bnn.transpose", "bnn.concat", "bnn.cast"}


def layer_of(op: Operation) -> str:
    """The module path in ``op``'s location, or ``"<model>"`` when it has none."""
    loc = op.location
    if isinstance(loc, NameLoc):
        return loc.desc.data
    return "<model>"


def _type_name(t) -> str:
    if isinstance(t, TensorType):
        elem = t.get_element_type()
        dims = "x".join(str(d) for d in t.get_shape())
        return f"{elem}[{dims}]"
    return str(t)


def _macs(op: Operation) -> int:
    """Multiply-accumulates of one op (binary MACs for bnn.bconv2d)."""
    name = op.name
    if name in ("bnn.bconv2d", "bnn.conv2d") and op.results:
        out = op.results[0].type
        w = op.operands[1].type
        assert isinstance(out, TensorType) and isinstance(w, TensorType)
        n, oh, ow, _ = out.get_shape()
        o, kh, kw, _ = w.get_shape()
        channels = op.channels if isinstance(op, BConv2dOp) else w.get_shape()[3]
        return n * oh * ow * o * kh * kw * channels
    if name == "bnn.dense" and op.results:
        out = op.results[0].type
        w = op.operands[1].type
        assert isinstance(out, TensorType) and isinstance(w, TensorType)
        return out.get_shape()[0] * int(np.prod(w.get_shape()))
    return 0


def _kind(op: Operation) -> str:
    if op.name in BINARY_OPS:
        return "binary"
    types = [r.type for r in op.results] + [o.type for o in op.operands]
    if any(isinstance(t, TensorType) and isinstance(t.get_element_type(), Float32Type) for t in types):
        return "float"
    return "int8"


def _describe_plan(plan) -> str:
    flush = "" if plan.flush == "none" else f", flushed per {plan.flush}"
    return f"i{plan.lane_bits}x{plan.lanes}{flush}"


def _accumulator(op: BConv2dOp, target: TargetInfo) -> str:
    """The accumulator lanes the loop lowering uses: interior positions (whole-window vectors or
    kernel-row runs), then the border taps when they differ."""
    from bnnmlir.passes.loops.bconv2d import conv_plans, patch_plan

    tap_plan, run_plan = conv_plans(op, target)
    interior = patch_plan(op, target) or run_plan
    if interior is None or interior == tap_plan:
        return _describe_plan(tap_plan)
    return f"{_describe_plan(interior)}, border {_describe_plan(tap_plan)}"


@dataclass
class LayerRow:
    layer: str
    kind: str
    ops: list[str] = field(default_factory=list)
    accumulator: str = "-"
    output: str = "-"
    macs: int = 0
    weight_bytes: int = 0


@dataclass
class LayerReport:
    rows: list[LayerRow]
    target: str
    compile_times: dict[str, float] = field(default_factory=dict)
    """Wall seconds of each compile step (see ``CompiledProgram.compile_times``)."""
    model_cache: str = ""
    """What the model-level compile cache did (see ``CompiledModel.model_cache``)."""

    def table(self) -> Table:
        table = compact_table(f"bnnmlir per-layer report ({self.target})")
        text_column(table, "layer", min_width=min(max((len(r.layer) for r in self.rows),
                                                      default=5), 20))
        code_column(table, "kind")
        longest_op = max((len(op) for r in self.rows for op in r.ops), default=3)
        text_column(table, "ops", min_width=min(longest_op, 20))
        text_column(table, "acc lanes")
        code_column(table, "output")
        number_column(table, "MACs")
        number_column(table, "weight B")
        for r in self.rows:
            table.add_row(r.layer, r.kind, ", ".join(r.ops), r.accumulator, r.output,
                          si_count(r.macs) if r.macs else "-", f"{r.weight_bytes:,}")
        table.add_row("total", "", "", "", "", si_count(sum(r.macs for r in self.rows)),
                      f"{sum(r.weight_bytes for r in self.rows):,}", style="bold")
        table.caption = ("acc lanes: accumulator lanes of the interior (border taps when they "
                         "differ); MACs: multiply-accumulates; weight B: weight bytes")
        return table

    def __rich__(self) -> Table:
        return self.table()

    def __str__(self) -> str:
        out = render(self.table())
        if self.compile_times:
            from bnnmlir.compiler import format_compile_times

            out += format_compile_times(self.compile_times)
        if self.model_cache:
            out += f"model cache: {self.model_cache}\n"
        return out


def _op_label(op: Operation) -> str:
    """The op name without ``bnn.``; a fused convolution names its output transform."""
    label = op.name.removeprefix("bnn.")
    if isinstance(op, BConv2dOp) and op.output_kind != "i32":
        label += f"+{op.output_kind}"
    return label


def layer_report(module: ModuleOp, target: TargetInfo) -> LayerReport:
    """Rows in program order, one per layer (module path)."""
    rows: dict[str, LayerRow] = {}
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp) and not op.is_declaration)
    for op in fn.body.block.ops:
        if isinstance(op, arith.ConstantOp | func.ReturnOp) or not op.name.startswith("bnn."):
            continue
        layer = layer_of(op)
        row = rows.setdefault(layer, LayerRow(layer, _kind(op)))
        row.ops.append(_op_label(op))
        kind = _kind(op)
        if kind == "binary" or (kind == "float" and row.kind == "int8"):
            row.kind = kind if row.kind != "binary" else row.kind
        if isinstance(op, BConv2dOp):
            row.accumulator = _accumulator(op, target)
        if op.results and op.name not in LAYOUT_OPS:
            row.output = _type_name(op.results[0].type)
        row.macs += _macs(op)
        for operand in op.operands:
            owner = operand.owner
            if isinstance(owner, arith.ConstantOp) and isinstance(owner.result.type, TensorType):
                row.weight_bytes += byte_size(owner.result.type)
    return LayerReport(list(rows.values()), target.name)


__all__ = ["LayerReport", "LayerRow", "layer_of", "layer_report"]
