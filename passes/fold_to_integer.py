"""``bnn-fold-to-integer``: fold float per-channel maps of integer values into integer ops.

Matched IR (value form), where ``x`` is an integer tensor ``[..., C]`` whose range ``[lo, hi]`` is
known (:mod:`bnnmlir.passes.value_range`) and ``chain`` is a non-empty sequence of per-channel
``f32`` ops (``bnn.batch_norm``, ``bnn.affine``, ``bnn.activation`` relu/hardtanh/prelu,
``bnn.cast`` f32 -> f32):

* ``bnn.binarize(chain(bnn.cast(x)))``   ->  ``bnn.threshold(x)``
* ``bnn.clip8(chain(bnn.cast(x)))`` (f32) ->  ``bnn.requant8(x)``
* ``bnn.binarize(bnn.cast(x))``          ->  ``bnn.binarize(x)``
* ``bnn.clip8(bnn.cast(x))`` (f32)        ->  ``bnn.clip8(x)`` (``i16``/``i32`` ``x``; an ``i8``
  ``x`` becomes a ``bnn.requant8`` since ``bnn.clip8`` takes no ``i8``)
* ``bnn.binarize(bnn.requant8(x))``      ->  ``bnn.threshold(x)``
* ``bnn.binarize(bnn.clip8(x))`` (integer ``x``) ->  ``bnn.threshold(x)`` (``t = 0``, ``d = +1``)

The last two drop the int8 stream between a convolution and the next binary layer (math in
:class:`FoldBinarizeOfInt8`); they apply after the first ones, so a BatchNorm -> Clip8 -> sign
chain ends as one threshold.

Method: the chain is a function ``f_c`` of the channel ``c`` applied to one element. It is
EVALUATED, op by op in ``float32`` with PyTorch, on every integer of ``[lo, hi]`` and every channel
(:mod:`bnnmlir.folding`), and the integer form is read off and verified against that evaluation
on the whole domain. Nothing is derived from algebra, so the rounding of every float operation is
reproduced exactly; when no exact integer form exists the IR is left unchanged and a
:class:`FoldNotApplied` warning names the op.

Why the forms exist:

* Threshold. ``binarize(y) = +1`` iff ``y >= 0``. BatchNorm is ``x * scale[c] + shift[c]`` with
  ``scale = gamma / sqrt(var + eps)``; each float operation is a monotone (non-decreasing) function
  of its input, so ``f_c`` is monotone in ``x``: non-decreasing for ``gamma > 0``, non-increasing
  for ``gamma < 0``. The set ``{x : f_c(x) >= 0}`` of a monotone function on integers is an upper
  set ``{x >= t}`` (``direction = +1``) or a lower set ``{x <= t}`` (``direction = -1``, negative
  gamma). ``gamma = 0`` (or a ``beta`` that dominates on ``[lo, hi]``) gives a constant channel,
  written as ``bnn.threshold`` documents (``t = -2**31``, direction ``+1`` always +1, ``-1`` always
  -1). A non-monotone chain (e.g. a prelu with a negative slope) may still have a single switching
  point; if it has several, the verification fails and nothing is folded.
* Requant. ``clip8(y) = clamp(round_half_even(y), -127, 127)`` composed with a monotone ``f_c``
  is a monotone step function of ``x`` with values in ``[-127, 127]``: at most 254 steps. It is
  written as the cheapest exact ``bnn.requant8`` kind the folding library finds (``affine``
  fixed-point multiplier, else ``breakpoints``, else ``table`` on domains of at most 256 values).
* Casts only. ``float(x)`` is monotone and keeps the sign, so ``binarize(float(x)) =
  binarize(x)``; integers are fixed by rounding and ``clamp`` commutes with a monotone map, so
  ``clip8(float(x)) = clip8(x)``.

The domain is limited to ``|x| <= 2**24`` (where every integer is exact in ``float32``); the cost
of a fold is a few passes of ``(hi - lo + 1) * C`` evaluations.

Option ``batch-norm`` selects how ``bnn.batch_norm`` is evaluated:

* ``torch`` (default): ``torch.nn.functional.batch_norm`` of the installed PyTorch: the
  ORIGINAL op, so the fold is exact with respect to the PyTorch model whatever rounding order its
  kernel uses;
* ``op``: the op's documented semantics (``fma(x, scale, shift)`` in float32), computed with
  PyTorch by :func:`bnnmlir.folding.torch_fns.batch_norm_op`, code of its own: the numpy
  reference that the tests compare folds with shares nothing with it. On CPUs where PyTorch's
  kernel uses fused multiply-adds (every AVX2/AVX-512 and NEON build) both modes give the same
  fold; the tests check it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import Float32Type, IntegerType, ModuleOp, TensorType, UnknownLoc
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.dialects.bnn import BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.dialects.bnn_support import ActivationOp, AffineOp, BatchNormOp, CastOp, Requant8Op
from bnnmlir.ir_utils import value_elem
from bnnmlir.passes.value_range import ValueRanges

BATCH_NORM_MODES = ("op", "torch")
CHAIN_OPS = (BatchNormOp, AffineOp, ActivationOp, CastOp)


class FoldNotApplied(UserWarning):
    """A foldable-looking op was left unchanged (no exact integer form, or no known range)."""


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a dependency of the frontend
        raise PassFailedException(
            "bnn-fold-to-integer evaluates float ops with PyTorch, which is not installed"
        ) from e
    return torch


# ---------------------------------------------------------------------------------------------
# The float chain and its channel function
# ---------------------------------------------------------------------------------------------


@dataclass
class FloatChain:
    """``ops`` (outermost last) applied to ``bnn.cast(source)``, ``source`` an integer tensor."""

    source: SSAValue
    ops: list[Operation] = field(default_factory=list)

    @property
    def channels(self) -> int:
        t = self.source.type
        assert isinstance(t, TensorType)
        return t.get_shape()[-1]

    @property
    def only_casts(self) -> bool:
        return all(isinstance(op, CastOp) for op in self.ops)


def float_chain(value: SSAValue) -> FloatChain | None:
    """The chain of per-channel f32 ops producing ``value`` from a cast of an integer tensor."""
    ops: list[Operation] = []
    while True:
        op = value.owner
        if not isinstance(op, CHAIN_OPS) or op.result is None:
            return None
        ops.append(op)
        source = op.input
        if isinstance(op, CastOp) and isinstance(value_elem(source), IntegerType):
            if not isinstance(source.type, TensorType):
                return None
            return FloatChain(source, ops[::-1])
        if not isinstance(value_elem(source), Float32Type):
            return None
        value = source


def _values(attr, channels: slice | None = None) -> list[float]:
    """The values of a per-channel array, those of ``channels`` only when given (an array of one
    value is shared by every channel and kept)."""
    values = list(attr.get_values())
    return values if channels is None or len(values) == 1 else values[channels]


def _step(op: Operation, batch_norm: str, channels: slice | None = None) -> Callable | None:
    """``op`` as a channel function evaluated by PyTorch (:mod:`bnnmlir.folding.torch_fns`), of
    the channels ``channels`` only when given."""
    _torch()
    from bnnmlir.folding import torch_fns as fns

    if isinstance(op, BatchNormOp):
        stats = [_values(a, channels) for a in (op.mean, op.var, op.gamma, op.beta)]
        make = fns.batch_norm_torch if batch_norm == "torch" else fns.batch_norm_op
        return make(*stats, eps=op.eps.value.data)
    if isinstance(op, AffineOp):
        if op.divides:
            return fns.divide_torch(_values(op.divisor, channels), _values(op.bias, channels))
        return fns.affine_torch(_values(op.scale, channels), _values(op.bias, channels))
    if isinstance(op, ActivationOp):
        kind = op.kind.data
        if kind == "relu":
            return fns.relu_torch()
        if kind == "hardtanh":
            return fns.hardtanh_torch(*op.bounds)
        return fns.prelu_torch(_values(op.slopes, channels))
    return None  # bnn.cast is the identity on integers of the domain (|x| <= 2**24) and on f32


def channel_function(chain: FloatChain, batch_norm: str = "torch",
                     channels: slice | None = None) -> Callable:
    """The chain as a folding channel function ``[D, C] float32 -> [D, C] float32`` (``C``: the
    channels of ``channels`` when given)."""
    steps = [step for op in chain.ops if (step := _step(op, batch_norm, channels)) is not None]

    def fn(x):
        for step in steps:
            x = step(x)
        return x

    return fn


# ---------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------


def _not_applied(op: Operation, why: str) -> None:
    where = "" if isinstance(op.location, UnknownLoc) else f"{op.location}: "
    warnings.warn(
        f"{where}bnn-fold-to-integer left '{op.name}' unchanged: {why}",
        FoldNotApplied,
        stacklevel=2,
    )


def _replace(rewriter: PatternRewriter, old: Operation, new: Operation, chain: FloatChain) -> None:
    """Replace ``old`` by ``new`` (same location) and erase the chain ops left without users."""
    new.location = old.location
    rewriter.replace(old, new)
    for op in reversed(chain.ops):
        if all(not r.uses for r in op.results):
            rewriter.erase(op)


@dataclass
class FoldFloatChain(RewritePattern):
    """Shared matching of ``terminal(chain(bnn.cast(x)))`` for binarize and f32 clip8."""

    ranges: ValueRanges
    batch_norm: str = "torch"

    def chain_and_domain(
        self, op: Operation, input: SSAValue
    ) -> tuple[FloatChain, int, int] | None:
        if not isinstance(value_elem(input), Float32Type) or not op.results:
            return None
        chain = float_chain(input)
        if chain is None:
            return None
        r = self.ranges.range_of(chain.source)
        if r is None:  # pragma: no cover - integer tensors always have a type range
            _not_applied(op, "no integer range is known for the input")
            return None
        return chain, r.lo, r.hi


class FoldBinarize(FoldFloatChain):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: BinarizeOp, rewriter: PatternRewriter) -> None:
        from bnnmlir.folding import FoldingError, fold_sign

        found = self.chain_and_domain(op, op.input)
        if found is None:
            return
        chain, lo, hi = found
        result_type = op.results[0].type
        if chain.only_casts:
            _replace(rewriter, op, BinarizeOp(chain.source, result_type), chain)
            return
        try:
            fn = channel_function(chain, self.batch_norm)
            thresholds, directions = fold_sign(fn, chain.channels, lo, hi)
        except FoldingError as e:
            _not_applied(op, str(e))
            return
        new = ThresholdOp(chain.source, [int(t) for t in thresholds],
                          [int(d) for d in directions], result_type)
        _replace(rewriter, op, new, chain)


def _fold_clip8_chain(chain: FloatChain, lo: int, hi: int, batch_norm: str,
                      channels: range | None = None):
    """The requant8 of ``clip8(chain)`` on ``[lo, hi]``, of the channels ``channels`` only when
    given (raises ``FoldingError``)."""
    from bnnmlir.folding import clip8_float, fold_clip8

    if channels is None:
        channels = range(chain.channels)
    fn = channel_function(chain, batch_norm, slice(channels.start, channels.stop))
    return fold_clip8(lambda x: clip8_float(fn(x)), len(channels), lo, hi)


def joined_affine(parts: Sequence[object]):
    """The requant8 of the channel ranges ``parts`` (in order) together, when every part is an
    affine fold: each channel's affine fit depends on that channel only, so the parts' arrays
    side by side are the fold of all channels. ``None`` otherwise (a part of another kind, or
    an error)."""
    from bnnmlir.folding import Requant, RequantKind

    if not all(isinstance(p, Requant) and p.kind is RequantKind.AFFINE for p in parts):
        return None
    first = parts[0]
    assert isinstance(first, Requant)
    return Requant(RequantKind.AFFINE, first.lo, first.hi,
                   **{name: np.concatenate([getattr(p, name) for p in parts])
                      for name in ("multiplier", "offset", "shift")})


FIT_COST = 50_000
"""The cost of fitting one channel, in domain values evaluated (see :meth:`FoldClip8.prefetch`)."""

PREFETCH_MIN_ELEMENTS = 1 << 22
"""Domain values x channels of all clip8 folds of a module below which they are folded in this
process only (a forked process costs tens of milliseconds)."""


@dataclass
class FoldClip8(FoldFloatChain):
    prefetched: dict[Operation, tuple[int, int, int, object]] = field(default_factory=dict)
    """Folds computed ahead (:meth:`prefetch`): op -> ``(lo, hi, channels, requant or error)``."""

    def _foldable(self, op: Clip8Op) -> tuple[FloatChain, int, int] | None:
        found = self.chain_and_domain(op, op.input)
        if found is None:
            return None
        source_elem = value_elem(found[0].source)
        assert isinstance(source_elem, IntegerType)
        if found[0].only_casts and source_elem.width.data > 8:
            return None  # an integer clip8, no fold
        return found

    def prefetch(self, module: ModuleOp, jobs: int) -> None:
        """Fold every clip8 of ``module`` ahead, in ``jobs`` forked processes while this one
        waits (PyTorch runs one thread in each child, which gives the same float results; the
        folds are independent; the tables of the domains never fill this process's heap).
        The rewrite then takes each result whose domain is still the one folded; when the
        children fail (no fork, a child killed or stuck: see ``Patience``), every clip8 is folded
        in this process."""
        from bnnmlir.folding import FoldingError
        from bnnmlir.forked import Patience, fork_available, least_loaded, run_forked

        work = [(op, *found) for op in module.walk()
                if isinstance(op, Clip8Op) and (found := self._foldable(op)) is not None]
        # Evaluating and tabulating the domain takes about 2 ns per value and channel, the
        # affine fit and its check about 100 us per channel (Bi-Real-Net-18: up to 255 runs per
        # channel; its stem's domain of 2.6M values x 64 channels takes 0.35 s, its other 19
        # folds, 22M values and 4736 channels, 0.5 s).
        costs = [(hi - lo + 1 + FIT_COST) * chain.channels for _, chain, lo, hi in work]
        if jobs < 2 or len(work) < 2 or sum(costs) < PREFETCH_MIN_ELEMENTS or not fork_available():
            return
        # Pieces: a fold costing more than a process's share is cut into channel ranges, one
        # per process (joined again when every range folds as affine, :func:`joined_affine`).
        pieces: list[tuple[int, range]] = []
        for k, (_, chain, _, _) in enumerate(work):
            cuts = jobs if costs[k] > sum(costs) / jobs and chain.channels >= jobs else 1
            bounds = [chain.channels * i // cuts for i in range(cuts + 1)]
            pieces += [(k, range(a, b)) for a, b in zip(bounds, bounds[1:], strict=False)]
        piece_costs = [costs[k] * len(r) // work[k][1].channels for k, r in pieces]
        order = sorted(range(len(pieces)), key=lambda i: -piece_costs[i])
        parts: list[list[int]] = [[] for _ in range(jobs)]
        for i, j in zip(order, least_loaded([piece_costs[i] for i in order], jobs), strict=True):
            parts[j].append(i)

        def fold(indices: list[int]) -> Callable[[], list[tuple[int, object]]]:
            def run() -> list[tuple[int, object]]:
                out: list[tuple[int, object]] = []
                for i in indices:
                    k, channels = pieces[i]
                    _, chain, lo, hi = work[k]
                    try:
                        out.append((i, _fold_clip8_chain(chain, lo, hi, self.batch_norm,
                                                         channels)))
                    except FoldingError as e:
                        out.append((i, e))
                return out
            return run

        torch = _torch()
        busy = [p for p in parts if p]
        patience = Patience(costs=tuple(float(sum(piece_costs[i] for i in p)) for p in busy))
        try:
            results = run_forked([fold(p) for p in busy],  # tables filled in children
                                 child_setup=lambda: torch.set_num_threads(1), first_here=False,
                                 patience=patience)
        except Exception:  # noqa: BLE001 - a child that died, stuck, or no fork: fold here
            return
        folded = dict(item for part in results for item in part)
        for k, (op, chain, lo, hi) in enumerate(work):
            ranges = [i for i, (kk, _) in enumerate(pieces) if kk == k]
            result = folded[ranges[0]] if len(ranges) == 1 else joined_affine(
                [folded[i] for i in ranges])
            if result is not None:  # else folded in this process by the rewrite
                self.prefetched[op] = (lo, hi, chain.channels, result)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: Clip8Op, rewriter: PatternRewriter) -> None:
        from bnnmlir.folding import FoldingError

        found = self.chain_and_domain(op, op.input)
        if found is None:
            return
        chain, lo, hi = found
        result_type = op.results[0].type
        source_elem = value_elem(chain.source)
        assert isinstance(source_elem, IntegerType)
        if chain.only_casts and source_elem.width.data > 8:
            _replace(rewriter, op, Clip8Op(chain.source, result_type), chain)
            return
        ahead = self.prefetched.pop(op, None)
        try:
            if ahead is not None and ahead[:3] == (lo, hi, chain.channels):
                if isinstance(ahead[3], FoldingError):
                    raise ahead[3]
                requant = ahead[3]
            else:
                requant = _fold_clip8_chain(chain, lo, hi, self.batch_norm)
        except FoldingError as e:
            _not_applied(op, str(e))
            return
        _replace(rewriter, op, Requant8Op.from_requant(chain.source, requant, result_type), chain)


def requant8_map(op: Requant8Op) -> dict[str, object]:
    """``kind`` and the arrays of ``op`` as numpy (rows ``[C, B]`` / ``[C, D]``), ``lo`` an int:
    the form :func:`bnnmlir.folding.fold_requant8_sign` takes."""
    found: dict[str, object] = {}
    for name, attr in op.params.items():
        if name == "kind":
            found[name] = attr.data  # type: ignore[attr-defined]
        elif name == "lo":
            found[name] = attr.value.data  # type: ignore[attr-defined]
        else:
            found[name] = np.asarray(attr.get_values(), dtype=np.int64)  # type: ignore[attr-defined]
    for name in ("breakpoints", "table"):
        if name in found:
            found[name] = found[name].reshape(op.channels, -1)  # type: ignore[union-attr]
    return found


@dataclass
class FoldBinarizeOfInt8(RewritePattern):
    """``bnn.binarize(bnn.requant8(x))`` / ``bnn.binarize(bnn.clip8(x))`` -> ``bnn.threshold(x)``.

    Both ops map channel ``c`` (the last dimension, which ``bnn.binarize`` packs) of the integer
    ``x`` onto ``[-127, 127]``; binarize gives +1 iff that value is ``>= 0``:

    * ``clip8(x) = min(max(x, -127), 127) >= 0`` iff ``x >= 0``: threshold 0, direction +1 for
      every channel, whatever the domain;
    * ``requant8_c(x) >= 0`` on the domain ``[lo, hi]`` of ``x`` (value ranges; ``[-K, K]`` for
      a ``bnn.bconv2d``) is an up-set ``{x >= t}`` or a down-set ``{x <= t}`` for the affine and
      breakpoints kinds (monotone), and for a table when its signs change at most once on the
      domain: exactly ``bnn.threshold`` with threshold ``t`` and direction ``+1`` / ``-1``
      (derivation per kind, constant channels: :mod:`bnnmlir.folding.int8_sign`).

    Preconditions: value form; the requant8/clip8 result has the binarize as its ONLY user
    (otherwise the int8 stream is still needed, e.g. by a residual addition, and nothing is
    folded); the input is an integer tensor (an ``f32`` clip8 rounds first: not folded here). When
    a table channel changes sign more than once the IR is left unchanged with a
    :class:`FoldNotApplied` warning.
    """

    ranges: ValueRanges

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: BinarizeOp, rewriter: PatternRewriter) -> None:
        from bnnmlir.folding import FoldingError, fold_requant8_sign

        producer = op.input.owner
        if not isinstance(producer, Requant8Op | Clip8Op) or not op.results:
            return
        if not producer.results or not producer.results[0].has_one_use():
            return
        source = producer.input
        if not isinstance(value_elem(source), IntegerType):
            return
        if isinstance(producer, Clip8Op):
            channels = producer.results[0].type.get_shape()[-1]  # type: ignore[union-attr]
            thresholds, directions = [0] * channels, [1] * channels
        else:
            r = self.ranges.range_of(source)
            if r is None:  # pragma: no cover - integer tensors always have a type range
                return
            try:
                thresholds, directions = fold_requant8_sign(requant8_map(producer), r.lo, r.hi)
            except FoldingError as e:
                _not_applied(op, str(e))
                return
        new = ThresholdOp(source, [int(t) for t in thresholds], [int(d) for d in directions],
                          op.results[0].type)
        new.location = op.location
        rewriter.replace(op, new)
        rewriter.erase(producer)


@dataclass(frozen=True)
class FoldToIntegerPass(ModulePass):
    """Fold float per-channel maps of integer values into ``bnn.threshold`` / ``bnn.requant8``,
    and the sign of an int8 stream into ``bnn.threshold`` (the math is in the module docstring
    and in :class:`FoldBinarizeOfInt8`)."""

    name = "bnn-fold-to-integer"

    batch_norm: str = "torch"
    """How ``bnn.batch_norm`` is evaluated: ``torch`` (the original op) or ``op`` (its documented
    semantics)."""
    jobs: int = 1
    """Processes for the clip8 folds (:meth:`FoldClip8.prefetch`); the results do not depend
    on it."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.batch_norm not in BATCH_NORM_MODES:
            raise PassFailedException(
                f"bnn-fold-to-integer: batch-norm must be one of {', '.join(BATCH_NORM_MODES)}, "
                f"got '{self.batch_norm}'"
            )
        _torch()
        ranges = ValueRanges()
        ranges.prime(op)
        clip8 = FoldClip8(ranges, self.batch_norm)
        clip8.prefetch(op, self.jobs)
        patterns = [FoldBinarize(ranges, self.batch_norm), clip8, FoldBinarizeOfInt8(ranges)]
        PatternRewriteWalker(
            GreedyRewritePatternApplier(patterns), apply_recursively=False
        ).rewrite_module(op)
