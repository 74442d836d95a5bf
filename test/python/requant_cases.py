"""Random ``bnn.requant8`` maps for the tests: every kind, shaped to move over ``[-K, K]``.

A map is ``(kind, arrays)`` with the arrays of :data:`bnnmlir.dialects.requant_map.REQUANT_PROPS`
as Python lists (``lo`` an int, breakpoints and tables as per-channel rows). :func:`attr_text`
writes it as the attribute entries of ``bnn.requant8`` (or of a ``requant = {...}`` dictionary),
:func:`apply` computes it with the numpy reference, :func:`build` gives the op.
"""

from __future__ import annotations

import numpy as np

from bnnmlir.dialects.bnn_support import BREAKPOINT_PAD, Requant8Op
from bnnmlir.reference import support as ref

KINDS = ("affine", "breakpoints", "table")


def random_requant(rng: np.random.Generator, kind: str, channels: int, fan_in: int) -> dict:
    """A random valid map of ``kind`` for ``channels`` channels of values in ``[-fan_in, fan_in]``
    (sums of ``fan_in`` products of +-1): its outputs vary over the values such sums take."""
    c, k = channels, fan_in
    # Sums of K random +-1 products mostly lie within 3*sqrt(K): put the steps and tables there.
    spread = min(k, int(3 * np.sqrt(k)) + 2)
    if kind == "affine":
        shift = rng.integers(0, 11, size=c)
        scale = rng.uniform(0.3, 3.0, size=c) * 127 / k
        multiplier = np.maximum(1, np.round(scale * 2.0**shift)).astype(np.int64)
        multiplier *= rng.choice([-1, 1], size=c)
        offset = rng.integers(-20, 21, size=c) * 2**shift + rng.integers(0, 2**shift)
        return {"kind": kind, "multiplier": multiplier.tolist(), "offset": offset.tolist(),
                "shift": shift.tolist()}
    if kind == "breakpoints":
        width = int(rng.integers(1, 8))
        rows = np.sort(rng.integers(-spread - 1, spread + 2, size=(c, width)), axis=1)
        rows[rng.random(c) < 0.3, -1] = BREAKPOINT_PAD  # a shorter row, padded
        return {"kind": kind, "base": rng.integers(-127, 128, size=c).tolist(),
                "step": rng.choice([-1, 1], size=c).tolist(), "breakpoints": rows.tolist()}
    if kind == "table":
        depth = int(rng.integers(1, min(2 * spread + 5, 80) + 1))
        lo = int(rng.integers(-spread - 2, spread + 3 - depth)) if depth < 2 * spread + 5 else -spread - 2
        table = rng.integers(-127, 128, size=(c, depth))
        return {"kind": kind, "lo": lo, "table": table.tolist()}
    raise ValueError(kind)


def _array(elem: str, rows) -> str:
    flat = np.asarray(rows, dtype=np.int64).reshape(-1)
    return f"array<{elem}: {', '.join(map(str, flat))}>"


def attr_text(rq: dict) -> str:
    """``kind = "...", name = array<...>, ...`` (the entries of the op's attribute dictionary)."""
    kind = rq["kind"]
    if kind == "affine":
        arrays = [f"{n} = {_array('i64', rq[n])}" for n in ("multiplier", "offset", "shift")]
    elif kind == "breakpoints":
        arrays = [f"base = {_array('i8', rq['base'])}", f"step = {_array('i8', rq['step'])}",
                  f"breakpoints = {_array('i32', rq['breakpoints'])}"]
    else:
        arrays = [f"lo = {rq['lo']} : i64", f"table = {_array('i8', rq['table'])}"]
    return ", ".join([f'kind = "{kind}"', *arrays])


def apply(acc: np.ndarray, rq: dict) -> np.ndarray:
    """The map on ``acc`` (channels last) by the numpy reference of ``bnn.requant8``."""
    kind = rq["kind"]
    if kind == "affine":
        return ref.requant8_affine(acc, rq["multiplier"], rq["offset"], rq["shift"])
    if kind == "breakpoints":
        return ref.requant8_breakpoints(acc, rq["base"], rq["step"], np.asarray(rq["breakpoints"]))
    return ref.requant8_table(acc, rq["lo"], np.asarray(rq["table"]))


def build(value, rq: dict, result_type) -> Requant8Op:
    """The ``bnn.requant8`` op of the map on ``value``."""
    kind = rq["kind"]
    if kind == "affine":
        return Requant8Op.affine(value, rq["multiplier"], rq["offset"], rq["shift"], result_type)
    if kind == "breakpoints":
        return Requant8Op.step_function(value, rq["base"], rq["step"], rq["breakpoints"],
                                        result_type)
    return Requant8Op.lookup(value, rq["lo"], rq["table"], result_type)
