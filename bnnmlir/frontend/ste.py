"""Straight-through estimators written with ``detach``: ``hard.detach() - soft.detach() + soft``.

``hard`` is a binarization of ``x`` (``torch.sign(x)``, ``where(x >= 0, 1, -1)``,
``bnnmlir::sign``) and ``soft`` any differentiable approximation computed from ``x`` alone
(Bi-Real's piecewise quadratic built from ``x < c`` masks, ``tanh``, ``clamp``, a
polynomial...). In eval mode the value is ``r = fl(fl(h - q) + q)`` with ``h = hard(x)``,
``q = soft(x)``: ``h`` up to rounding.

Recognition (:func:`find_ste`) is structural, on the exported graph, before the walk: the ``soft``
nodes used only by the estimator are skipped (they have no ``bnn`` translation and need none).

Bound (:func:`deviation_bound`): with ``u = 2**-24`` (float32 unit roundoff) and ``|h| = 1``,
``d = fl(h - q) = (h - q)(1 + e1)``, ``|e1| <= u``, and
``r = fl(d + q) = (h + (h - q) e1)(1 + e2)``, so
``|r - h| <= u (1 + |q|) + u (1 + u (1 + |q|))``. For ``h = 0`` (``torch.sign(0)``),
``fl(0 - q) = -q`` and ``fl(-q + q) = 0``: exact. ``|q|`` is bounded by interval arithmetic over
``soft``'s nodes on pieces of the real line split at every comparison constant of ``soft`` (masks
are constant on a piece) and at 0, each result widened by one float32 rounding. The domain is
``|x| <= L`` with the largest ``L`` in :data:`DOMAINS` for which no intermediate overflows
float32 (Bi-Real's ``x * x`` overflows for ``|x| > 1.8e19``, and then ``inf * 0`` is NaN).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch

aten = torch.ops.aten
U = 2.0**-24
F32_MAX = float(np.finfo(np.float32).max)
#: Candidate domains ``|x| <= L`` tried in order (the first is every finite float32).
DOMAINS = (F32_MAX, 2.0**60, 2.0**30, 2.0**15, 2.0**8, 2.0**4)
#: A bound above this is no binarization: ``r`` may not even have the sign of ``h``.
MAX_DEVIATION = 2.0**-8
#: Sub-pieces of each bounded piece (tightens the interval bound of smooth ``soft`` functions).
SUBDIVISIONS = 64

_TRANSPARENT = {aten.alias.default, aten.detach.default, aten.clone.default,
                aten.contiguous.default}


@dataclass(frozen=True)
class STE:
    """One recognized estimator: ``add`` node = ``hard(x) - soft(x) + soft(x)``."""

    add: torch.fx.Node
    hard: torch.fx.Node
    source: torch.fx.Node
    soft: torch.fx.Node
    skipped: frozenset


@dataclass(frozen=True)
class Bound:
    """``|r - hard(x)| <= deviation`` for every ``|x| <= domain``."""

    deviation: float
    domain: float

    def describe(self) -> str:
        where = ("every finite x" if self.domain >= F32_MAX
                 else f"|x| <= 2**{int(math.log2(self.domain))}")
        return f"{self.deviation:.3g} (for {where})"


def strip(node):
    while isinstance(node, torch.fx.Node) and node.op == "call_function" and \
            node.target in _TRANSPARENT:
        node = node.args[0]
    return node


def hard_source(node) -> torch.fx.Node | None:
    """``x`` if ``node`` binarizes ``x`` (torch.sign, bnnmlir::sign, where(x >= 0, 1, -1))."""
    from bnnmlir.custom_ops import SIGN_OP

    if not isinstance(node, torch.fx.Node) or node.op != "call_function":
        return None
    if node.target in (aten.sign.default, SIGN_OP):
        return node.args[0]
    if node.target in (aten.where.self, aten.where.ScalarSelf, aten.where.ScalarOther,
                       aten.where.Scalar):
        cond, a, b = node.args[:3]
        if isinstance(cond, torch.fx.Node) and cond.target in (aten.ge.Scalar, aten.lt.Scalar) \
                and cond.args[1] == 0 and {a, b} == {1, -1}:
            return cond.args[0]
    return None


def find_ste(graph: torch.fx.Graph, runtime: set) -> dict[torch.fx.Node, STE]:
    """Every ``add(sub(hard, soft), soft)`` of the graph, keyed by its ``add`` node.

    ``runtime``: the nodes computed at run time (the rest are constants)."""
    found = {}
    for node in graph.nodes:
        if node.op != "call_function" or node.target != aten.add.Tensor or len(node.args) != 2 \
                or node.kwargs.get("alpha", 1) != 1:
            continue
        diff, soft = strip(node.args[0]), strip(node.args[1])
        if not isinstance(diff, torch.fx.Node) or diff.target != aten.sub.Tensor or \
                diff.kwargs.get("alpha", 1) != 1 or len(diff.args) != 2:
            continue
        hard, soft2 = strip(diff.args[0]), strip(diff.args[1])
        x = hard_source(hard)
        if x is None or soft2 is not soft or not isinstance(soft, torch.fx.Node):
            continue
        region = _soft_region(soft, x, runtime)
        if region is None:
            continue
        checks = {u for n in region | {x} for u in n.users
                  if u.target == aten._assert_tensor_metadata.default and not u.users
                  and all(a in region or a not in runtime for a in u.all_input_nodes)}
        inside = region | checks | {node, diff} | _chain(node.args[0], diff) \
            | _chain(node.args[1], soft) | _chain(diff.args[1], soft) | _chain(diff.args[0], hard)
        inside |= {hard}
        skipped = frozenset(n for n in inside - {node, x} if all(u in inside for u in n.users))
        found[node] = STE(node, hard, x, soft, skipped)
    return found


def _chain(start, end) -> set:
    out = set()
    while isinstance(start, torch.fx.Node) and start is not end:
        out.add(start)
        start = start.args[0]
    return out


def _soft_region(soft, x, runtime) -> set | None:
    """The run-time nodes of ``soft`` between ``x`` and ``soft``; ``None`` unless ``x`` is its
    only run-time input."""
    region, stack = set(), [soft]
    while stack:
        n = stack.pop()
        if n is x or n in region or n not in runtime:
            continue
        if n.op != "call_function":
            return None  # another model input
        region.add(n)
        stack.extend(n.all_input_nodes)
    return region


# ---------------------------------------------------------------------------------------------
# Interval bound
# ---------------------------------------------------------------------------------------------


class Unbounded(Exception):
    """The interval evaluation cannot bound ``soft`` (unknown op or float32 overflow)."""


def _widen(lo: float, hi: float) -> tuple[float, float]:
    if lo == hi and float(np.float32(lo)) == lo:
        return lo, hi
    if not (math.isfinite(lo) and math.isfinite(hi)) or max(abs(lo), abs(hi)) > F32_MAX:
        raise Unbounded("a float32 overflow")
    m = max(abs(lo), abs(hi)) * U + 2.0**-149
    return lo - m, hi + m


def _const_range(v) -> tuple[float, float]:
    if isinstance(v, torch.Tensor):
        t = v.detach().double()
        return float(t.min()), float(t.max())
    if isinstance(v, (int, float, bool)):
        return float(v), float(v)
    raise Unbounded(f"operand {v!r}")


def _mul(a, b):
    if a == (0.0, 0.0) or b == (0.0, 0.0):
        return 0.0, 0.0
    p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return min(p), max(p)


def _compare(op, a, c):
    true = {"lt": a[1] < c[0], "le": a[1] <= c[0], "gt": a[0] > c[1], "ge": a[0] >= c[1]}[op]
    false = {"lt": a[0] >= c[1], "le": a[0] > c[1], "gt": a[1] <= c[0], "ge": a[1] < c[0]}[op]
    return (1.0, 1.0) if true else (0.0, 0.0) if false else (0.0, 1.0)


def _monotone(fn, a):
    return float(fn(torch.tensor(a[0], dtype=torch.float64))), \
        float(fn(torch.tensor(a[1], dtype=torch.float64)))


def _eval_node(n, val):
    """Interval of node ``n`` from the intervals ``val`` of its inputs."""
    t = n.target
    args = [val(a) if isinstance(a, torch.fx.Node) else a for a in n.args]
    iv = [a if isinstance(a, tuple) else _const_range(a) for a in args]
    name = _name(n)
    if t in _TRANSPARENT or name in ("_to_copy", "to", "type_as", "_assert_tensor_metadata"):
        return iv[0]
    if name in ("lt", "le", "gt", "ge"):
        return _compare(name, iv[0], iv[1])
    if name == "add":
        return iv[0][0] + iv[1][0], iv[0][1] + iv[1][1]
    if name == "sub":
        return iv[0][0] - iv[1][1], iv[0][1] - iv[1][0]
    if name == "rsub":
        return iv[1][0] - iv[0][1], iv[1][1] - iv[0][0]
    if name == "neg":
        return -iv[0][1], -iv[0][0]
    if name == "mul":
        return _mul(iv[0], iv[1])
    if name == "div" and (iv[1][0] > 0 or iv[1][1] < 0):
        return _mul(iv[0], (1.0 / iv[1][1], 1.0 / iv[1][0]))
    if name == "abs":
        lo, hi = iv[0]
        return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))
    if name == "pow" and isinstance(args[1], int) and args[1] >= 1:
        out = iv[0]
        for _ in range(args[1] - 1):
            out = _mul(out, iv[0])
        return out
    if name in ("tanh", "sigmoid", "hardtanh", "clamp", "relu", "sign", "hardsigmoid", "erf"):
        rest = [a for a in args[1:]]
        fn = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
              "sign": torch.sign, "erf": torch.erf,
              "hardsigmoid": torch.nn.functional.hardsigmoid}.get(name)
        if fn is None:
            lo = rest[0] if rest and rest[0] is not None else -math.inf
            hi = rest[1] if len(rest) > 1 and rest[1] is not None else math.inf
            if name == "hardtanh" and not rest:
                lo, hi = -1.0, 1.0
            return min(max(iv[0][0], lo), hi), max(min(iv[0][1], hi), lo)
        return _monotone(fn, iv[0])
    if name == "where":
        c, a, b = iv
        if c == (1.0, 1.0):
            return a
        if c == (0.0, 0.0):
            return b
        return min(a[0], b[0]), max(a[1], b[1])
    raise Unbounded(f"no interval rule for {t}")


def _name(n) -> str:
    return getattr(n.target, "__name__", str(n.target)).split(".")[0]


def _rounds(n) -> bool:
    """Whether ``n``'s float32 result may be rounded (comparisons, casts, aliases are exact)."""
    return n.target not in _TRANSPARENT and _name(n) not in (
        "lt", "le", "gt", "ge", "_to_copy", "to", "type_as", "abs", "neg", "relu", "sign",
        "clamp", "hardtanh", "where")


def _below(v: float) -> float:
    """The largest float32 strictly below ``v``."""
    f = np.float32(v)
    if float(f) >= v:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _soft_range(ste: STE, piece: tuple[float, float], constants: dict) -> tuple[float, float]:
    memo: dict = {ste.source: piece}

    def val(n):
        if n in memo:
            return memo[n]
        if n in constants:
            return constants[n]
        if n.op != "call_function" or n.target is operator.getitem:
            raise Unbounded(f"node {n.name}")
        out = _eval_node(n, val)
        if _rounds(n):
            out = _widen(*out)
        memo[n] = out
        return out

    return val(ste.soft)


def _split_points(ste: STE, constants: dict) -> list[float]:
    points = {0.0}
    stack, seen = [ste.soft], set()
    while stack:
        n = stack.pop()
        if not isinstance(n, torch.fx.Node) or n in seen or n is ste.source:
            continue
        seen.add(n)
        name = _name(n) if n.op == "call_function" else ""
        if name in ("lt", "le", "gt", "ge", "clamp", "hardtanh"):
            for a in n.args[1:]:
                c = constants.get(a, a)
                if isinstance(c, (int, float)):
                    points.add(float(c))
                elif isinstance(c, torch.Tensor):
                    points.update(float(v) for v in c.detach().double().flatten()[:4096].tolist())
        stack.extend(n.all_input_nodes)
    return sorted(points)


def deviation_bound(ste: STE, constants: dict, lo: float = -math.inf,
                    hi: float = math.inf) -> Bound | None:
    """The proven :class:`Bound` of ``|r - h|`` (see the module docstring), or ``None``.

    ``constants``: the constant nodes' values (tensors); ``[lo, hi]``: the proven range of ``x``."""
    points = _split_points(ste, constants)
    for limit in DOMAINS:
        a, b = max(lo, -limit), min(hi, limit)
        cuts = [a] + [p for p in points if a < p < b] + [b]
        worst = 0.0
        try:
            for left, right in zip(cuts, cuts[1:]):
                if math.isfinite(left) and math.isfinite(right) and right - left <= 64.0:
                    sub = np.linspace(left, right, SUBDIVISIONS + 1).tolist()
                else:
                    sub = [left, right]
                for s0, s1 in zip(sub, sub[1:]):
                    s1 = s1 if s1 == b else _below(s1)  # x < s1 on this piece (x is float32)
                    if s1 < s0:
                        continue
                    q = _soft_range(ste, (s0, s1), constants)
                    worst = max(worst, _piece_deviation(q, s0, s1))
        except Unbounded:
            continue
        if worst <= MAX_DEVIATION:
            return Bound(worst, limit)
    return None
    return None


def _piece_deviation(q: tuple[float, float], left: float, right: float) -> float:
    """``max |r - h|`` over ``q`` for ``h = +-1`` (0 when ``q`` is exactly ``h``)."""
    hs = [h for h, ok in ((-1.0, left < 0), (1.0, right >= 0)) if ok]
    worst = 0.0
    for h in hs:
        if q == (h, h):
            continue
        m = max(abs(q[0]), abs(q[1]))
        e1 = U * (1.0 + m)
        worst = max(worst, e1 + U * (1.0 + e1))
    return worst * (1.0 + 2.0**-40)
