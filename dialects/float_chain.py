"""Per-channel float chains: the steps of ``bnn.elementwise`` and of a ``bnn.bconv2d`` with
``output = "f32"``.

A chain is an ``ArrayAttr`` of step dictionaries, applied in order to one element ``x`` of
channel ``c`` (the last dimension). Every step is ONE IEEE-754 binary32 operation rounded to
nearest even (``fma`` rounds once), as the unfused ops compute it:

============== =================================== =========================================
``kind``        parameters                          ``x`` becomes
============== =================================== =========================================
``cast``        none (first step, integer input)    ``float(x)`` (``bnn.cast``)
``mul``         ``values``: ``f32`` array of ``C``  ``x * values[c]``
``div``         ``values``                          ``x / values[c]``
``add``         ``values``                          ``x + values[c]``
``fma``         ``scale``, ``shift``                ``fma(x, scale[c], shift[c])`` (``bnn.batch_norm``)
``add_input``   ``input``: ``i64`` index ``k >= 1``  ``x + inputs[k][i]`` (same element ``i``)
``max``         ``value``: ``f32``                  IEEE ``maximum(x, value)`` (NaN propagates)
``min``         ``value``                           IEEE ``minimum(x, value)``
``prelu``       ``values``                          ``x if x >= 0 else values[c] * x``
============== =================================== =========================================

``bnn.affine`` is ``mul`` (or ``div``) then ``add``; ReLU is ``max 0.0``, Hardtanh ``max lo``
then ``min hi``; a float residual ``bnn.add`` is ``add_input`` (IEEE addition is commutative,
so either operand may be the chain).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (ArrayAttr, DenseArrayBase, DictionaryAttr, Float32Type,
                                   FloatAttr, IntegerAttr, StringAttr, f32, i64)
from xdsl.ir import Attribute
from xdsl.utils.exceptions import VerifyException

from bnnmlir.dialects.common import is_int

STEP_PARAMS: dict[str, tuple[str, ...]] = {
    "cast": (),
    "mul": ("values",),
    "div": ("values",),
    "add": ("values",),
    "fma": ("scale", "shift"),
    "add_input": ("input",),
    "max": ("value",),
    "min": ("value",),
    "prelu": ("values",),
}
"""Every step kind and the parameters it takes (module docstring)."""

ARRAY_PARAMS = ("values", "scale", "shift")


def step(kind: str, **params: Sequence[float] | float | int) -> DictionaryAttr:
    """A step dictionary: arrays become ``f32`` dense arrays, ``value`` an ``f32``, ``input``
    an ``i64``."""
    entries: dict[str, Attribute] = {"kind": StringAttr(kind)}
    for name, v in params.items():
        if name in ARRAY_PARAMS:
            entries[name] = DenseArrayBase.from_list(f32, [float(x) for x in v])  # type: ignore[union-attr]
        elif name == "value":
            entries[name] = FloatAttr(float(v), f32)  # type: ignore[arg-type]
        else:
            entries[name] = IntegerAttr(int(v), i64)  # type: ignore[arg-type]
    return DictionaryAttr(entries)


def kind_of(s: DictionaryAttr) -> str:
    return s.data["kind"].data  # type: ignore[attr-defined]


def array_of(s: DictionaryAttr, name: str) -> list[float]:
    return [float(v) for v in s.data[name].get_values()]  # type: ignore[attr-defined]


def value_of(s: DictionaryAttr) -> float:
    return float(s.data["value"].value.data)  # type: ignore[attr-defined]


def input_of(s: DictionaryAttr) -> int:
    return int(s.data["input"].value.data)  # type: ignore[attr-defined]


def verify_steps(where: str, steps: ArrayAttr, channels: int, integer_input: bool,
                 inputs: int) -> None:
    """Check ``steps`` for an input of ``channels`` channels (an integer main input when
    ``integer_input``) and ``inputs`` operands in all (the main one included)."""
    if not steps.data:
        raise VerifyException(f"{where} needs at least one step")
    for k, s in enumerate(steps.data):
        if not isinstance(s, DictionaryAttr) or not isinstance(s.data.get("kind"), StringAttr):
            raise VerifyException(f"{where} step {k} must be a dictionary with a string 'kind'")
        kind = kind_of(s)
        if kind not in STEP_PARAMS:
            raise VerifyException(f"{where} step {k}: unknown kind '{kind}', expected one of "
                                  f"{', '.join(STEP_PARAMS)}")
        names = set(s.data) - {"kind"}
        if names != set(STEP_PARAMS[kind]):
            raise VerifyException(f"{where} step {k} ({kind}) takes exactly "
                                  f"{sorted(STEP_PARAMS[kind]) or 'no parameters'}, got "
                                  f"{sorted(names)}")
        if (kind == "cast") != (k == 0 and integer_input):
            raise VerifyException(f"{where} an integer input needs 'cast' as its first step, and "
                                  f"only it (step {k} is {kind})")
        for name in names:
            p = s.data[name]
            if name in ARRAY_PARAMS:
                if (not isinstance(p, DenseArrayBase) or not isinstance(p.elt_type, Float32Type)
                        or len(p.get_values()) != channels):
                    raise VerifyException(f"{where} step {k} ({kind}): '{name}' must be an f32 "
                                          f"array of {channels} values")
            elif name == "value":
                if not isinstance(p, FloatAttr) or not isinstance(p.type, Float32Type):
                    raise VerifyException(f"{where} step {k} ({kind}): 'value' must be an f32")
            elif (not isinstance(p, IntegerAttr) or not is_int(p.type, 64)
                  or not 1 <= p.value.data < inputs):
                raise VerifyException(f"{where} step {k} (add_input): 'input' must be an i64 "
                                      f"in [1, {inputs - 1}]")

