"""Fused epilogues and the glue around the convolutions, bit for bit against the references.

* ``bnn.bconv2d`` with a residual: a tensor-level ``bconv2d (clip8 | requant8) -> bnn.add r ->
  bnn.clip8`` is compiled (the ``optimized`` stage fuses the add and the clip8 into the
  convolution); cases reach saturation (outputs of +-K with +-127 residuals), odd channel counts
  (not multiples of 8/16/64), stride 2 and 1x1 producers, batch 2, threads 1/2/3.
* the integer ``bnn.conv2d`` with a fused requant8 (affine: the vector epilogue; table: per
  element), every dot-product path;
* the input quantization moved before the NCHW -> NHWC transpose, and the support ops split over
  threads (a small Bi-Real-style network against PyTorch, threads 1/2/3).

Each compiled output runs on the host and on aarch64 under qemu and must equal
:func:`bnnmlir.reference.evaluate` of the unfused module (or PyTorch) exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnmlir.backend import cross
from bnnmlir.bits import pack_bits, packed_words
from bnnmlir.compiler import compile_module, parse_mlir
from bnnmlir.dialects.bnn import BConv2dOp
from bnnmlir.dialects.bnn_support import Conv2dOp, Requant8Op
from bnnmlir.reference import evaluate
from conftest import KERNEL_CODES, ROW_CODES, layer_code
from requant_cases import attr_text, random_requant

needs_qemu = pytest.mark.skipif(not cross.available(), reason="qemu-aarch64 / cross gcc missing")


def _dense(a: np.ndarray, elem: str = "i8") -> str:
    return f"dense<{a.tolist()}> : tensor<{'x'.join(map(str, a.shape))}x{elem}>".replace(" ", "")


def _module_text(case: dict, w: np.ndarray, rq: dict | None) -> str:
    n, h, c, o, k, s = (case[key] for key in ("n", "h", "c", "o", "k", "s"))
    p = k // 2
    oh = (h + 2 * p - k) // s + 1
    words = packed_words(c)
    xt, rt = f"tensor<{n}x{h}x{h}x{words}xi8>", f"tensor<{n}x{oh}x{oh}x{o}xi8>"
    at, st_ = f"tensor<{n}x{oh}x{oh}x{o}xi32>", f"tensor<{n}x{oh}x{oh}x{o}xi16>"
    conv = (f"bnn.bconv2d %x, %w {{in_channels = {c} : i64, strides = array<i64: {s}, {s}>, "
            f"dilations = array<i64: 1, 1>, padding = array<i64: {p}, {p}, {p}, {p}>, "
            f"pad_value = {case['pad']} : i64}} : {xt}, tensor<{o}x{k}x{k}x{words}xi8> -> {at}")
    if rq is None:
        out = f"%t = bnn.clip8 %a : {at} -> {rt}"
    else:
        arrays = ", ".join(f"{name} = array<i64: {', '.join(map(str, rq[name]))}>"
                           for name in ("multiplier", "offset", "shift"))
        out = f'%t = bnn.requant8 %a {{kind = "affine", {arrays}}} : {at} -> {rt}'
    tail = ""
    if case["residual"]:
        tail = f"  %s = bnn.add %t, %r : {rt}, {rt} -> {st_}\n  %y = bnn.clip8 %s : {st_} -> {rt}\n"
    else:
        out = out.replace("%t =", "%y =")
    return (f"func.func @kernel(%x: {xt}, %r: {rt}) -> {rt} {{\n"
            f"  %w = arith.constant {_dense(w)}\n  %a = {conv}\n  {out}\n{tail}"
            f"  func.return %y : {rt}\n}}\n")


@st.composite
def cases(draw):
    k = draw(st.sampled_from([1, 3]))
    return dict(
        n=draw(st.integers(1, 2)), h=draw(st.integers(3, 9)), k=k,
        c=draw(st.sampled_from([3, 8, 13, 37, 64, 70])),
        o=draw(st.sampled_from([1, 5, 16, 17, 33, 64, 70])),
        s=draw(st.sampled_from([1, 2])), pad=draw(st.sampled_from([-1, 0, 1])),
        requant=draw(st.booleans()), residual=draw(st.sampled_from([True, True, False])),
        extreme=draw(st.sampled_from(["random", "saturate"])),
        rows=draw(st.sampled_from(ROW_CODES)),
        kernel=draw(st.sampled_from(KERNEL_CODES)),
    )


def _operands(case: dict, rng: np.random.Generator):
    n, h, c, o, k = (case[key] for key in ("n", "h", "c", "o", "k"))
    x = rng.choice(np.array([-1, 1], np.int8), size=(n, h, h, c))
    w = rng.choice(np.array([-1, 1], np.int8), size=(o, k, k, c))
    x[0, : h // 2] = 1  # channel 0 (all +1) then reaches +K and channel 1 (all -1) -K
    w[0] = 1
    if o > 1:
        w[1] = -1
    rq = None
    if case["requant"]:
        fan_in = k * k * c
        rq = dict(multiplier=rng.integers(-(2**15), 2**15, o).tolist(),
                  offset=rng.integers(-(2**20), 2**20, o).tolist(),
                  shift=rng.integers(0, 16, o).tolist())
        rq["multiplier"][0] = max(1, 2**16 // fan_in)  # channel 0 saturates after the shift
        rq["shift"][0] = 8
    oh = (h + 2 * (k // 2) - k) // case["s"] + 1
    r_shape = (n, oh, oh, o)
    if case["extreme"] == "saturate":
        r = rng.choice(np.array([-127, 127], np.int8), size=r_shape)
    else:
        r = rng.integers(-127, 128, r_shape).astype(np.int8)
    return pack_bits(x).view(np.int8), pack_bits(w).view(np.int8), r, rq


def _run(program, inputs: list[np.ndarray]) -> np.ndarray:
    if program.target.is_host:
        return program(*inputs)[0]
    _, outputs, arena_bytes = program._call_arguments(inputs)
    return cross.run_aarch64(program.object_code(), program.signature.entry, inputs, outputs,
                             arena_bytes)[0]


def _check(case: dict, seed: int, target: str, threads: int = 1) -> None:
    rng = np.random.default_rng(seed)
    x, w, r, rq = _operands(case, rng)
    text = _module_text(case, w, rq)
    with layer_code(case.get("rows", "unchecked"), case.get("kernel", "blocked")):
        program = compile_module(parse_mlir(text), target=target, threads=threads)
    convs = [op for op in program.mlir_module("optimized").walk() if isinstance(op, BConv2dOp)]
    assert len(convs) == 1 and (convs[0].residual is not None) == case["residual"]
    want = evaluate(parse_mlir(text), [x, r])[0]
    got = _run(program, [x, r])
    assert got.dtype == np.int8 and np.array_equal(got, want)


@settings(max_examples=12, deadline=None)
@given(cases(), st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 3]))
def test_fused_residual_bit_exact_host(case, seed, threads):
    _check(case, seed, "host", threads)


@pytest.mark.parametrize("o", [1, 17, 33, 18])
@pytest.mark.parametrize("requant,residual", [(False, False), (True, False), (True, True)])
def test_last_vector_of_the_epilogue_writes_only_its_channels(o, requant, residual):
    """O = 16k + 1: the last vector of 16 channels has one lane (a truncating masked store with
    a one-lane mask is a 4-byte store in LLVM 22's x86 back end: the next pixel's channels 0-2
    were overwritten); 18: two lanes."""
    case = dict(n=2, h=4, k=1, c=3, o=o, s=1, pad=-1, requant=requant, residual=residual,
                extreme="random")
    _check(case, 0, "host")


@needs_qemu
@settings(max_examples=3, deadline=None)
@given(cases(), st.integers(0, 2**32 - 1))
def test_fused_residual_bit_exact_aarch64(case, seed):
    _check(case, seed, "aarch64")


# ---------------------------------------------------------------------------------------------
# int8 convolution with a fused requant8
# ---------------------------------------------------------------------------------------------


def _int8_text(case: dict, w: np.ndarray, rq: str) -> str:
    n, h, c, o, k, s = (case[key] for key in ("n", "h", "c", "o", "k", "s"))
    p = k // 2
    oh = (h + 2 * p - k) // s + 1
    xt, at = f"tensor<{n}x{h}x{h}x{c}xi8>", f"tensor<{n}x{oh}x{oh}x{o}xi32>"
    rt = f"tensor<{n}x{oh}x{oh}x{o}xi8>"
    return (f"func.func @kernel(%x: {xt}) -> {rt} {{\n  %w = arith.constant {_dense(w)}\n"
            f"  %a = bnn.conv2d %x, %w {{strides = array<i64: {s}, {s}>, dilations = array<i64: 1, 1>,"
            f" padding = array<i64: {p}, {p}, {p}, {p}>}} : {xt}, tensor<{o}x{k}x{k}x{c}xi8> -> {at}\n"
            f"  %q = bnn.requant8 %a {{{rq}}} : {at} -> {rt}\n  func.return %q : {rt}\n}}\n")


def _breakpoints(rng: np.random.Generator, o: int) -> str:
    """A breakpoints map (no lane-wise form: applied element by element from the scratch buffer)
    whose steps lie where int8 sums of a few dozen products fall (std about 5500 per product)."""
    return attr_text(random_requant(rng, "breakpoints", o, 5500**2 * 50))


def _int8_requant(rng: np.random.Generator, kind: str, o: int) -> str:
    def arr(elem: str, values) -> str:
        return f"array<{elem}: {', '.join(map(str, values))}>"

    if kind == "affine":
        return (f'kind = "affine", multiplier = {arr("i64", rng.integers(-(2**15), 2**15, o))}, '
                f'offset = {arr("i64", rng.integers(-(2**20), 2**20, o))}, '
                f'shift = {arr("i64", rng.integers(6, 20, o))}')
    if kind == "breakpoints":
        return _breakpoints(rng, o)
    return f'kind = "table", lo = -3 : i64, table = {arr("i8", rng.integers(-127, 128, o * 7))}'


@st.composite
def int8_cases(draw):
    return dict(n=draw(st.integers(1, 2)), h=draw(st.integers(3, 11)),
                c=draw(st.sampled_from([1, 3, 5, 17])), o=draw(st.sampled_from([1, 5, 16, 17, 33])),
                k=draw(st.sampled_from([1, 3, 7])), s=draw(st.sampled_from([1, 2])),
                kind=draw(st.sampled_from(["affine", "affine", "table", "breakpoints"])))


def _check_int8(case: dict, seed: int, target: str) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (case["n"], case["h"], case["h"], case["c"])).astype(np.int8)
    w = rng.integers(-128, 128, (case["o"], case["k"], case["k"], case["c"])).astype(np.int8)
    text = _int8_text(case, w, _int8_requant(rng, case["kind"], case["o"]))
    program = compile_module(parse_mlir(text), target=target, threads=2)
    fused = [op for op in program.mlir_module("optimized").walk()
             if isinstance(op, Conv2dOp | Requant8Op)]
    assert len(fused) == 1 and isinstance(fused[0], Conv2dOp) and fused[0].requant is not None
    got = _run(program, [x])
    assert got.dtype == np.int8 and np.array_equal(got, evaluate(parse_mlir(text), [x])[0])


@pytest.mark.parametrize("target", ["host", "host-novnni"])
@settings(max_examples=6, deadline=None)
@given(int8_cases(), st.integers(0, 2**32 - 1))
def test_int8_conv_fused_requant8_host(target, case, seed):
    _check_int8(case, seed, target)


@needs_qemu
@pytest.mark.parametrize("target", ["aarch64", "aarch64-dotprod"])
@settings(max_examples=2, deadline=None)
@given(int8_cases(), st.integers(0, 2**32 - 1))
def test_int8_conv_fused_requant8_aarch64(target, case, seed):
    _check_int8(case, seed, target)


# ---------------------------------------------------------------------------------------------
# A small network: quantization before the transpose, support ops split over threads
# ---------------------------------------------------------------------------------------------


def _glue_network():
    """A stem, max pooling, two residual blocks (one with a stride-2 1x1 shortcut) and the
    head at sizes where every support op (quantize, transpose, requant8, pooling, binarize) is
    large enough to be split over threads."""
    from torch import nn

    from bnnmlir.models.imagenet_blocks import BinaryHead, ClipBlock, int8_stem, randomize_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(int8_stem(24, 7, 2), nn.MaxPool2d(3, stride=2, padding=1),
                          ClipBlock(24, 24), ClipBlock(24, 37, stride=2), BinaryHead(37, 10))
    return randomize_batchnorm(model, torch.Generator().manual_seed(0)).eval()


def test_network_glue_bit_exact_threads():
    import bnnmlir

    model = _glue_network()
    x = torch.randn(2, 3, 160, 160) * 3
    compiled = bnnmlir.compile(model, (x,), threads=3)
    optimized = compiled.mlir("optimized")
    assert "bnn.add" not in optimized and optimized.count("residual %") == 2
    # the input's clip8 and its NCHW->NHWC transpose became one bnn.quantize
    assert "bnn.quantize" in optimized and "bnn.transpose" not in optimized
    loops = compiled.mlir("loops")
    assert loops.count("scf.parallel") >= 5
    want = model(x)
    for threads in (1, 2, 3):
        compiled.program.threads = threads
        assert torch.equal(compiled(x), want)


def _few_rows_network():
    """Layers of a few output rows and 256-300 channels (stage 4 of a ResNet in miniature):
    clip8 epilogues with an identity and a strided 1x1 shortcut, every one split over rows and
    channel parts when every layer is parallel."""
    from torch import nn

    from bnnmlir.models.imagenet_blocks import BinaryHead, ClipBlock, int8_stem, randomize_batchnorm

    torch.manual_seed(1)
    model = nn.Sequential(int8_stem(256, 3, 2), ClipBlock(256, 256), ClipBlock(256, 300, stride=2),
                          ClipBlock(300, 300), BinaryHead(300, 10))
    return randomize_batchnorm(model, torch.Generator().manual_seed(1)).eval()


@pytest.mark.parametrize("target", ["host", pytest.param("aarch64", marks=needs_qemu)])
def test_channel_parts_with_fused_epilogues(split_small_layers, monkeypatch, target):
    """Few-row layers cut into row x channel-part units (bconv2d.channel_parts) keep the fused
    clip8 / residual epilogues exact on 1 to 4 threads, batch 2."""
    import bnnmlir

    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "1")  # every lowering in this process, seen
    model = _few_rows_network()
    x = torch.randn(2, 3, 9, 9) * 3  # 2 x 5 rows, then 2 x 3
    compiled = bnnmlir.compile(model, (x,), target=target, threads=2, cache=False)
    counts = [parts.count for parts in split_small_layers]
    assert sum(count > 1 for count in counts) >= 2, counts
    want = model(x)
    for threads in (1, 2, 3, 4) if target == "host" else (2,):
        compiled.program.threads = threads
        assert torch.equal(compiled(x), want)


@needs_qemu
def test_network_glue_bit_exact_aarch64():
    import bnnmlir

    model = _glue_network()
    x = torch.randn(1, 3, 97, 97) * 3
    compiled = bnnmlir.compile(model, (x,), target="aarch64", threads=2)
    assert torch.equal(compiled(x), model(x))
