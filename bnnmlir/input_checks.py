"""What a compiled model accepts at call time, checked before the machine code runs.

The contract of a compiled model is "equal to PyTorch, or a clear error". Two kinds of input
would break it silently, so they are refused with an exception that names the input:

* **Tensors the compiled code cannot read as a dense CPU array** (:func:`tensor_to_array`): a
  meta tensor (no data), a sparse, MKL-DNN or other non-strided layout, a quantized tensor, a
  tensor on another device, a tensor subclass (its ``__torch_function__`` would not run).
  ``TypeError``. What is harmless is made to work: ``requires_grad`` (detached), a non-contiguous
  view (copied), a negative-bit view (``torch._neg_view``: resolved; negation is exact).
* **Non-finite floats** (:func:`check_finite`). NaN is always refused: PyTorch carries it
  through ``QuantizeInput``/``Clip8`` (``clamp`` keeps NaN) while the int8 stream of the compiled
  code has no NaN. An infinity is exact where the input is first binarized (``sign(+-inf) =
  +-1``) or quantized to the int8 stream (``clamp(round(+-inf)) = +-127``; the compiled code
  clamps, then converts with saturation), possibly after a layout change or a finite affine map
  (``QuantizeInput``'s division); it is refused for an input that reaches float arithmetic first
  (a float convolution of ``+inf`` and ``-inf`` is NaN, which the next Clip8 cannot reproduce).
  :func:`infinity_exact_inputs` decides this per input from the imported IR. ``ValueError``
  with the count of offending values and the first index; one vectorized pass over each float
  input, small next to the network.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from bnnmlir.dialects.bnn import BinarizeOp, Clip8Op
from bnnmlir.dialects.bnn_support import AffineOp, ReshapeOp, TransposeOp

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from bnnmlir.compiler import ArgumentSpec


def _entry_function(module: ModuleOp, entry: str | None) -> func.FuncOp:
    """Function ``@entry`` of the module; without ``entry``, its first defined function."""
    functions = [op for op in module.ops if isinstance(op, func.FuncOp) and not op.is_declaration]
    found = next((fn for fn in functions if entry is None or fn.sym_name.data == entry), None)
    if found is None:
        raise ValueError(f"no function @{entry} in the module")
    return found


def input_names(module: ModuleOp, entry: str | None = None) -> list[str]:
    """``input i`` for each argument of the entry function, with its name when it has one
    (``input 0 ('x')``)."""
    fn = _entry_function(module, entry)
    return [
        f"input {i}" + (f" ('{arg.name_hint}')" if arg.name_hint else "")
        for i, arg in enumerate(fn.body.block.args)
    ]


def _finite_affine(op: AffineOp) -> bool:
    """``+-inf`` stays an infinity (never NaN): every scale or divisor finite and non-zero, and
    every bias finite."""
    factors = op.scale if op.scale is not None else op.divisor
    assert factors is not None
    return all(math.isfinite(v) and v != 0 for v in factors.get_values()) and all(
        math.isfinite(v) for v in op.bias.get_values()
    )


def _infinity_exact(value: SSAValue) -> bool:
    """Every path from ``value`` reaches a binarize or a clip8 through layout changes and finite
    affine maps only, so an infinity in it gives exactly PyTorch's finite result."""
    for use in value.uses:
        op = use.operation
        if isinstance(op, BinarizeOp | Clip8Op):
            continue
        passes_infinity = isinstance(op, TransposeOp | ReshapeOp) or (
            isinstance(op, AffineOp) and _finite_affine(op)
        )
        if not passes_infinity or op.result is None or not _infinity_exact(op.result):
            return False
    return True


def infinity_exact_inputs(module: ModuleOp, entry: str | None = None) -> tuple[bool, ...]:
    """Per argument of the entry function of tensor-level IR: whether +-inf in it is computed
    exactly as PyTorch does (see the module docstring)."""
    fn = _entry_function(module, entry)
    return tuple(_infinity_exact(arg) for arg in fn.body.block.args)


def check_finite(array: np.ndarray, name: str, *, allow_infinity: bool) -> None:
    """``ValueError`` if the float ``array`` holds NaN (or an infinity, unless
    ``allow_infinity``), naming ``name``, the count and the first index; integers pass."""
    if array.dtype.kind != "f":
        return
    if allow_infinity:
        if not np.isnan(array).any():
            return
        bad, what = np.isnan(array), "NaN"
    else:
        if np.isfinite(array).all():
            return
        bad, what = ~np.isfinite(array), "NaN or infinite"
    first = np.unravel_index(int(np.argmax(bad)), array.shape)
    index = [int(i) for i in first]
    raise ValueError(
        f"{name} holds {int(bad.sum())} {what} value(s) (the first at index {index}, "
        f"{array[tuple(index)]}); the compiled model computes PyTorch's result only for "
        + ("values that are not NaN" if allow_infinity else "finite values")
        + " (compile with check_finite=False to skip this check)"
    )


def check_shape(name: str, got: tuple, expected: tuple, dynamic_batch: bool) -> None:
    """``ValueError`` unless an input of shape ``got`` fits ``expected`` (per image when
    ``dynamic_batch``); a batch size other than the example's says how to allow any."""
    if dynamic_batch:
        if len(got) == len(expected) and got[1:] == expected[1:] and got[0] >= 1:
            return
        raise ValueError(f"{name} must have shape {['n', *expected[1:]]} with a batch n "
                         f">= 1, got {list(got)}")
    if got == expected:
        return
    message = f"{name} must have shape {list(expected)}, got {list(got)}"
    if len(got) == len(expected) and got[1:] == expected[1:]:
        message += (f": the model was compiled for batch {expected[0]}; compile it with "
                    "bnnmlir.compile(model, example_inputs, dynamic_batch=True) to accept any "
                    "batch size")
    raise ValueError(message)


def tensor_to_array(arg: object, name: str, spec: ArgumentSpec,
                    dynamic_batch: bool = False) -> np.ndarray:
    """The C-contiguous numpy array of the dense CPU tensor ``arg`` (detached, negative bit
    resolved); ``TypeError``/``ValueError`` naming ``name`` if ``arg`` cannot be one.
    ``dynamic_batch``: any batch size (dimension 0) is accepted."""
    import torch

    if not isinstance(arg, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(arg).__name__}")
    if arg.is_meta:
        raise TypeError(f"{name} is a meta tensor (it has no data): pass a CPU tensor")
    if arg.device.type != "cpu":
        raise TypeError(f"{name} is on device '{arg.device}': pass a CPU tensor (x.cpu())")
    if type(arg) not in (torch.Tensor, torch.nn.Parameter):
        raise TypeError(
            f"{name} is a {type(arg).__name__} (a torch.Tensor subclass): pass a plain tensor "
            "(x.as_subclass(torch.Tensor))"
        )
    if arg.layout != torch.strided:
        raise TypeError(
            f"{name} has layout {arg.layout}: pass a dense (torch.strided) tensor (x.to_dense())"
        )
    if arg.is_quantized:
        raise TypeError(
            f"{name} is a quantized tensor ({arg.dtype}): pass a {spec.dtype} tensor"
        )
    if arg.dtype != spec.dtype:
        raise TypeError(f"{name} must have dtype {spec.dtype}, got {arg.dtype}")
    check_shape(name, tuple(arg.shape), tuple(spec.shape), dynamic_batch)
    return arg.detach().resolve_neg().resolve_conj().contiguous().numpy()
