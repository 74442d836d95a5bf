"""Execution tests of ``convert-bnn-to-llvm``: lowered code run on the host JIT, checked bit-exactly
against numpy, and aarch64 code generation checked on its assembly."""

from __future__ import annotations

import ctypes
import itertools
import subprocess

import llvmlite.binding as llvm
import numpy as np
import pytest
from xdsl.backend.llvm.convert import convert_module
from xdsl.context import Context
from xdsl.dialects import get_all_dialects
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import PassFailedException

from bnnmlir.dialects import BNN
from bnnmlir.dialects.bnn import NarrowAccOp
from bnnmlir.passes.convert_to_llvm import ConvertBnnToLLVMPass
from bnnmlir.target import AARCH64, host_target

VECTOR_BYTES = (1, 2, 4, 8, 16, 32, 64)
LANE_BITS = (8, 16, 32)
NP_LANE = {8: np.uint8, 16: np.uint16, 32: np.uint32}


# ---------------------------------------------------------------------------------------------
# Helpers: parse + lower, translate, JIT
# ---------------------------------------------------------------------------------------------


def _context() -> Context:
    ctx = Context()
    for name, factory in get_all_dialects().items():
        ctx.register_dialect(name, factory)
    ctx.load_dialect(BNN)
    return ctx


def lower(source: str, target: str = "host") -> ModuleOp:
    ctx = _context()
    module = Parser(ctx, source).parse_module()
    ConvertBnnToLLVMPass(target=target).apply(ctx, module)
    module.verify()
    return module


def llvm_module(source: str, target: str = "host") -> llvm.ModuleRef:
    ir = convert_module(lower(source, target), fallback_target_triple=None)
    mod = llvm.parse_assembly(str(ir))
    mod.verify()
    return mod


def _target_machine(triple: str, cpu: str, features: str) -> llvm.TargetMachine:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_asmparser()
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=cpu, features=features, opt=3
    )


def _optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


class HostJIT:
    """A lowered module compiled for this machine; ``fn(name, *argtypes)`` gives a callable."""

    def __init__(self, source: str):
        host = host_target()
        tm = _target_machine(host.triple, host.cpu, host.features)
        mod = llvm_module(source, "host")
        _optimize(mod, tm)
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()

    def fn(self, name: str, *argtypes):
        address = self.engine.get_function_address(name)
        assert address, name
        return ctypes.CFUNCTYPE(None, *argtypes)(address)


def _ptr(array: np.ndarray) -> ctypes.c_void_p:
    assert array.flags["C_CONTIGUOUS"]
    return ctypes.c_void_p(array.ctypes.data)


P = ctypes.c_void_p


# ---------------------------------------------------------------------------------------------
# bnn.narrow_acc, every (M, L, lane width) on the host, bit-exact
# ---------------------------------------------------------------------------------------------


def narrow_acc_cases() -> list[tuple[int, int, int]]:
    """(bytes M, lanes L, lane bits A) for every legal bnn.narrow_acc with M in VECTOR_BYTES."""
    cases = []
    for m, bits in itertools.product(VECTOR_BYTES, LANE_BITS):
        for lanes in (d for d in range(1, m + 1) if m % d == 0):
            if NarrowAccOp.max_exact_steps(bits, m // lanes) >= 1:
                cases.append((m, lanes, bits))
    return cases


def narrow_acc_kernel(m: int, lanes: int, bits: int) -> str:
    """``@acc_M_L_A(a, b, acc)``: ``acc = narrow_acc(acc, a, b)`` on memrefs."""
    bt, at = f"vector<{m}xi8>", f"vector<{lanes}xi{bits}>"
    g = m // lanes
    steps = NarrowAccOp.max_exact_steps(bits, g)
    return f"""
  func.func @acc_{m}_{lanes}_{bits}(%a: memref<{m}xi8>, %b: memref<{m}xi8>, %acc: memref<{lanes}xi{bits}>) {{
    %c0 = arith.constant 0 : index
    %x = vector.load %a[%c0] : memref<{m}xi8>, {bt}
    %y = vector.load %b[%c0] : memref<{m}xi8>, {bt}
    %s = vector.load %acc[%c0] : memref<{lanes}xi{bits}>, {at}
    %r = bnn.narrow_acc %s, %x, %y max_steps = {steps} : {bt} into {at}
    vector.store %r, %acc[%c0] : memref<{lanes}xi{bits}>, {at}
    func.return
  }}"""


def narrow_acc_reference(acc: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The op's docstring semantics, by unpacking bits (shares nothing with the lowering)."""
    counts = np.unpackbits(np.bitwise_xor(a, b)).reshape(len(a), 8).sum(axis=1)
    per_lane = counts.reshape(len(acc), -1).sum(axis=1).astype(np.uint64)
    modulus = np.uint64(1) << np.uint64(8 * acc.itemsize)
    return ((acc.astype(np.uint64) + per_lane) % modulus).astype(acc.dtype)


@pytest.fixture(scope="module")
def narrow_acc_jit() -> HostJIT:
    body = "".join(narrow_acc_kernel(*case) for case in narrow_acc_cases())
    return HostJIT(f"builtin.module {{{body}\n}}")


def test_narrow_acc_cases_cover_the_widths():
    cases = narrow_acc_cases()
    assert (16, 8, 16) in cases and (64, 16, 32) in cases and (1, 1, 8) in cases
    assert (32, 1, 8) not in cases  # 8 * 32 > 255: not a legal op
    assert len(cases) > 60


@pytest.mark.parametrize("m,lanes,bits", narrow_acc_cases())
def test_narrow_acc_host_bit_exact(narrow_acc_jit: HostJIT, m: int, lanes: int, bits: int):
    kernel = narrow_acc_jit.fn(f"acc_{m}_{lanes}_{bits}", P, P, P)
    rng = np.random.default_rng(1000 * m + 10 * lanes + bits)
    dtype = NP_LANE[bits]
    for trial in range(4):
        a = rng.integers(0, 256, m, dtype=np.uint8)
        b = rng.integers(0, 256, m, dtype=np.uint8)
        if trial == 0:  # every bit differs: the largest per-lane sum
            b = np.bitwise_not(a)
        acc = rng.integers(0, 2**bits, lanes, dtype=np.uint64).astype(dtype)
        if trial == 1:  # lanes at the top of their range: the add wraps
            acc[:] = np.iinfo(dtype).max
        expected = narrow_acc_reference(acc, a, b)
        kernel(_ptr(a), _ptr(b), _ptr(acc))
        np.testing.assert_array_equal(acc, expected)


# ---------------------------------------------------------------------------------------------
# Scalars, memrefs, scf and vectors
# ---------------------------------------------------------------------------------------------

MIXED_PROGRAM = """
builtin.module {
  "memref.global"() <{sym_name = "table", sym_visibility = "private", type = memref<2x3xi16>,
      initial_value = dense<[[-7, 300, 5], [11, -2000, 9]]> : tensor<2x3xi16>, constant}> : () -> ()
  func.func @mixed(%x: memref<5x4xi32>, %f: memref<8xf32>, %out: memref<5x4xi32>,
                   %bits: memref<8xi8>, %red: memref<4xi32>, %arena: memref<192xi8>) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c5 = arith.constant 5 : index
    %c8 = arith.constant 8 : index
    %c64 = arith.constant 64 : index
    %k3 = arith.constant 3 : i32
    %k7 = arith.constant 7 : i32
    %kneg = arith.constant -100 : i32
    %kpos = arith.constant 100 : i32
    %zf = arith.constant 0.0 : f32
    %tbl = memref.get_global @table : memref<2x3xi16>
    %tmp = memref.view %arena[%c64][] : memref<192xi8> to memref<5x4xi32>
    scf.for %i = %c0 to %c5 step %c1 {
      scf.for %j = %c0 to %c4 step %c1 {
        %v = memref.load %x[%i, %j] : memref<5x4xi32>
        %ii = arith.index_cast %i : index to i32
        %q = arith.divsi %v, %k7 : i32
        %r = arith.remsi %v, %k7 : i32
        %u = arith.divui %v, %k3 : i32
        %w = arith.remui %v, %k3 : i32
        %s1 = arith.shli %q, %k3 : i32
        %s2 = arith.shrsi %v, %k3 : i32
        %s3 = arith.shrui %v, %k3 : i32
        %t1 = arith.addi %s1, %r : i32
        %t2 = arith.subi %t1, %s2 : i32
        %t3 = arith.xori %t2, %s3 : i32
        %t4 = arith.andi %t3, %u : i32
        %t5 = arith.ori %t4, %w : i32
        %t6 = arith.muli %t5, %ii : i32
        %lo = arith.maxsi %t6, %kneg : i32
        %cl = arith.minsi %lo, %kpos : i32
        %neg = arith.cmpi slt, %v, %ii : i32
        %sel = arith.select %neg, %cl, %t6 : i32
        %jj = arith.remui %j, %c2 : index
        %row = arith.index_cast %jj : index to i32
        %trow = arith.index_cast %row : i32 to index
        %jc = arith.remui %j, %c4 : index
        %col = arith.minsi %jc, %c2 : index
        %tv = memref.load %tbl[%trow, %col] : memref<2x3xi16>
        %tv32 = arith.extsi %tv : i16 to i32
        %tvu = arith.extui %tv : i16 to i32
        %n8 = arith.trunci %tvu : i32 to i8
        %n32 = arith.extsi %n8 : i8 to i32
        %a1 = arith.addi %sel, %tv32 : i32
        %a2 = arith.xori %a1, %n32 : i32
        memref.store %a2, %tmp[%i, %j] : memref<5x4xi32>
        %back = memref.load %tmp[%i, %j] : memref<5x4xi32>
        memref.store %back, %out[%i, %j] : memref<5x4xi32>
      }
    }
    %acc = arith.constant dense<0> : vector<8xi8>
    %bitsv = scf.for %i = %c0 to %c8 step %c1 iter_args(%vec = %acc) -> (vector<8xi8>) {
      %fv = memref.load %f[%i] : memref<8xf32>
      %isneg = arith.cmpf olt, %fv, %zf : f32
      %bit = arith.extui %isneg : i1 to i8
      %lane = vector.broadcast %bit : i8 to vector<8xi8>
      %e0 = vector.extract %vec[0] : i8 from vector<8xi8>
      %sum = arith.addi %e0, %bit : i8
      %upd = vector.insert %sum, %vec[0] : i8 into vector<8xi8>
      %mixed = scf.if %isneg -> (vector<8xi8>) {
        %o = arith.ori %upd, %lane : vector<8xi8>
        scf.yield %o : vector<8xi8>
      } else {
        scf.yield %upd : vector<8xi8>
      }
      scf.yield %mixed : vector<8xi8>
    }
    vector.store %bitsv, %bits[%c0] : memref<8xi8>, vector<8xi8>
    %rows = vector.load %x[%c1, %c0] : memref<5x4xi32>, vector<4xi32>
    %total = vector.reduction <add>, %rows : vector<4xi32> into i32
    %seed = arith.constant 1000 : i32
    %total2 = vector.reduction <add>, %rows, %seed : vector<4xi32> into i32
    %tv = vector.broadcast %total : i32 to vector<4xi32>
    %t2 = vector.insert %total2, %tv[3] : i32 into vector<4xi32>
    vector.store %t2, %red[%c0] : memref<4xi32>, vector<4xi32>
    func.return
  }
}
"""


def mixed_reference(x: np.ndarray, f: np.ndarray):
    table = np.array([[-7, 300, 5], [11, -2000, 9]], dtype=np.int64)
    out = np.zeros((5, 4), dtype=np.int32)

    def wrap32(v: int) -> int:
        return (v + 2**31) % 2**32 - 2**31

    for i, j in itertools.product(range(5), range(4)):
        v = int(x[i, j])
        vu = v % 2**32
        q = int(np.trunc(v / 7)) if v >= 0 else -((-v) // 7)
        r = v - 7 * q
        u, w = vu // 3, vu % 3
        t1 = wrap32((q << 3) + r)
        t2 = wrap32(t1 - (v >> 3))
        t3 = wrap32(t2 ^ (vu >> 3))
        t5 = wrap32((t3 & u) | w)
        t6 = wrap32(t5 * i)
        sel = min(max(t6, -100), 100) if v < i else t6
        tv = int(table[j % 2, min(j % 4, 2)])
        n32 = ((tv % 2**16) % 256 + 128) % 256 - 128
        out[i, j] = wrap32(wrap32(sel + tv) ^ n32)
    bits = np.zeros(8, dtype=np.uint8)
    for value in f:
        neg = 1 if value < 0 else 0
        bits[0] = (int(bits[0]) + neg) % 256
        if neg:
            bits |= 1
    total = int(x[1].astype(np.int64).sum())
    red = np.array([wrap32(total)] * 3 + [wrap32(total + 1000)], dtype=np.int32)
    return out, bits, red


def test_mixed_program_bit_exact():
    jit = HostJIT(MIXED_PROGRAM)
    mixed = jit.fn("mixed", P, P, P, P, P, P)
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.integers(-(2**31), 2**31, (5, 4), dtype=np.int64).astype(np.int32)
        x[0, :2] = [-1, 2**31 - 1]
        f = rng.standard_normal(8).astype(np.float32)
        f[:3] = [-0.0, 0.0, -1e-30]  # -0.0 >= 0 binarizes to +1 (bit 0)
        out = np.zeros((5, 4), dtype=np.int32)
        bits = np.zeros(8, dtype=np.uint8)
        red = np.zeros(4, dtype=np.int32)
        arena = np.zeros(192, dtype=np.uint8)
        mixed(_ptr(x), _ptr(f), _ptr(out), _ptr(bits), _ptr(red), _ptr(arena))
        ref_out, ref_bits, ref_red = mixed_reference(x, f)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(bits, ref_bits)
        np.testing.assert_array_equal(red, ref_red)


# ---------------------------------------------------------------------------------------------
# scf.parallel outlining, run through a stand-in runtime
# ---------------------------------------------------------------------------------------------

PARALLEL_PROGRAM = """
builtin.module {
  func.func @rows(%in: memref<7x16xi8>, %w: memref<16xi8>, %out: memref<7x2xi16>, %k: i16) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c7 = arith.constant 7 : index
    %zero = arith.constant dense<0> : vector<8xi16>
    "scf.parallel"(%c0, %c7, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
    ^bb0(%r: index):
      %a = vector.load %in[%r, %c0] : memref<7x16xi8>, vector<16xi8>
      %b = vector.load %w[%c0] : memref<16xi8>, vector<16xi8>
      %acc = bnn.narrow_acc %zero, %a, %b max_steps = 1 : vector<16xi8> into vector<8xi16>
      %s = vector.reduction <add>, %acc : vector<8xi16> into i16
      %ri = arith.index_cast %r : index to i16
      %t = arith.addi %s, %ri : i16
      %u = arith.muli %t, %k : i16
      memref.store %s, %out[%r, %c0] : memref<7x2xi16>
      memref.store %u, %out[%r, %c1] : memref<7x2xi16>
      "scf.reduce"() : () -> ()
    }) : (index, index, index) -> ()
    func.return
  }
}
"""

TASK_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
CHUNKS: list[tuple[int, int]] = []


@ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
def _parallel_for(fn: int, ctx: int, n: int) -> None:
    """Stand-in for the runtime: uneven chunks in reverse order, each iteration exactly once."""
    task = TASK_FN(fn)
    bounds = sorted({0, n, n // 3, (2 * n) // 3 + 1} & set(range(n + 1)))
    for begin, end in reversed(list(itertools.pairwise(bounds))):
        CHUNKS.append((begin, end))
        task(ctx, begin, end)


def test_parallel_loop_runs_every_row_once():
    llvm.add_symbol("bnnmlir_parallel_for", ctypes.cast(_parallel_for, ctypes.c_void_p).value)
    jit = HostJIT(PARALLEL_PROGRAM)
    rows = jit.fn("rows", P, P, P, ctypes.c_int16)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (7, 16), dtype=np.uint8)
    w = rng.integers(0, 256, 16, dtype=np.uint8)
    out = np.full((7, 2), -1, dtype=np.int16)
    CHUNKS.clear()
    rows(_ptr(x), _ptr(w), _ptr(out), ctypes.c_int16(-3))
    assert len(CHUNKS) > 1 and sum(e - b for b, e in CHUNKS) == 7
    pop = np.unpackbits(x ^ w, axis=1).sum(axis=1).astype(np.int64)
    expected_u = ((pop + np.arange(7)) * -3 + 2**15) % 2**16 - 2**15
    np.testing.assert_array_equal(out[:, 0], pop)
    np.testing.assert_array_equal(out[:, 1], expected_u)


MASKED_LOAD_PROGRAM = """
builtin.module {
  func.func @masked(%src: memref<2x8xi8>, %into: memref<16xi8>, %out: memref<16xi8>) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %cm3 = arith.constant -3 : index
    %mask = arith.constant dense<[false, false, false, true, true, true, true, true, true, true,
                                  true, false, false, false, false, false]> : vector<16xi1>
    %pass = vector.load %into[%c0] : memref<16xi8>, vector<16xi8>
    %v = vector.maskedload %src[%c1, %cm3], %mask, %pass
      : memref<2x8xi8>, vector<16xi1>, vector<16xi8> into vector<16xi8>
    vector.store %v, %out[%c0] : memref<16xi8>, vector<16xi8>
    func.return
  }
}"""


def test_masked_load_reads_only_the_masked_lanes():
    # The load starts 3 bytes before row 1 (flat byte 5): lanes 3..10 are row 1, the last 8
    # bytes of the buffer; lanes 11..15 would lie past its end and are masked off, like 0..2.
    jit = HostJIT(MASKED_LOAD_PROGRAM)
    kernel = jit.fn("masked", P, P, P)
    rng = np.random.default_rng(7)
    src = rng.integers(0, 256, (2, 8), dtype=np.uint8)
    into = rng.integers(0, 256, 16, dtype=np.uint8)
    out = np.zeros(16, dtype=np.uint8)
    kernel(_ptr(src), _ptr(into), _ptr(out))
    expected = into.copy()
    expected[3:11] = src[1]
    np.testing.assert_array_equal(out, expected)


def test_masked_load_is_one_masked_vector_load_on_avx512():
    host = host_target()
    if not host.masked_loads:
        pytest.skip("the host has no AVX-512 masked byte loads")
    tm = _target_machine(host.triple, host.cpu, host.features)
    mod = llvm_module(MASKED_LOAD_PROGRAM, "host")
    _optimize(mod, tm)
    asm = tm.emit_assembly(mod)
    assert "vmovdqu8" in asm and "{%k" in asm


@pytest.mark.parametrize("m,lanes,bits", [(64, 64, 8), (64, 32, 16), (64, 16, 32), (16, 8, 16)])
def test_host_lane_width_popcount_has_no_widening(m: int, lanes: int, bits: int):
    module = lower(f"builtin.module {{{narrow_acc_kernel(m, lanes, bits)}\n}}", "host")
    names = [op.name for op in module.walk()]
    intrinsics = [op.intrin.data for op in module.walk() if op.name == "llvm.call_intrinsic"]
    assert intrinsics == [f"llvm.ctpop.v{lanes}i{bits}"]
    assert "llvm.shufflevector" not in names and "llvm.zext" not in names


# ---------------------------------------------------------------------------------------------
# aarch64 code generation
# ---------------------------------------------------------------------------------------------


def aarch64_assembly(source: str) -> str:
    tm = _target_machine(AARCH64.triple, AARCH64.cpu, AARCH64.features)
    mod = llvm_module(source, "aarch64")
    assert mod.triple == AARCH64.triple
    _optimize(mod, tm)
    return tm.emit_assembly(mod)


def test_aarch64_narrow_acc_uses_cnt_and_uadalp():
    asm = aarch64_assembly(f"builtin.module {{{narrow_acc_kernel(16, 8, 16)}\n}}")
    assert "cnt\tv" in asm and "uadalp\tv" in asm and ".8h" in asm


@pytest.mark.parametrize("m,lanes,bits", narrow_acc_cases())
def test_aarch64_narrow_acc_compiles(m: int, lanes: int, bits: int):
    asm = aarch64_assembly(f"builtin.module {{{narrow_acc_kernel(m, lanes, bits)}\n}}")
    assert "cnt\tv" in asm


def test_aarch64_mixed_program_compiles():
    asm = aarch64_assembly(MIXED_PROGRAM)
    assert "mixed:" in asm


# ---------------------------------------------------------------------------------------------
# Rejected input
# ---------------------------------------------------------------------------------------------


SHUFFLE_PROGRAM = """
builtin.module {
  func.func @halves(%src: memref<16xi16>, %out: memref<8xi16>) {
    %c0 = arith.constant 0 : index
    %c8 = arith.constant 8 : index
    %a = vector.load %src[%c0] : memref<16xi16>, vector<8xi16>
    %b = vector.load %src[%c8] : memref<16xi16>, vector<8xi16>
    %lo = vector.shuffle %a, %b [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xi16>, vector<8xi16>
    %hi = vector.shuffle %a, %b [4, 5, 6, 7, 12, 13, 14, 15] : vector<8xi16>, vector<8xi16>
    %s = arith.addi %lo, %hi : vector<8xi16>
    %t = vector.shuffle %s, %s [7, 0] : vector<8xi16>, vector<8xi16>
    %u = vector.shuffle %t, %t [1, 0, 3, 2, 0, 1, 2, 3] : vector<2xi16>, vector<2xi16>
    vector.store %s, %out[%c0] : memref<8xi16>, vector<8xi16>
    vector.store %u, %src[%c0] : memref<16xi16>, vector<8xi16>
    func.return
  }
}"""


def test_vector_shuffle_bit_exact():
    """Two-source masks (lane ``i`` of the concatenation), a shorter result, a longer one."""
    jit = HostJIT(SHUFFLE_PROGRAM)
    kernel = jit.fn("halves", P, P)
    rng = np.random.default_rng(11)
    src = rng.integers(0, 2**15, 16, dtype=np.int16)
    a, b = src[:8].copy(), src[8:].copy()
    out = np.zeros(8, dtype=np.int16)
    kernel(_ptr(src), _ptr(out))
    s = np.concatenate([a[:4] + a[4:], b[:4] + b[4:]]).astype(np.int16)
    np.testing.assert_array_equal(out, s)
    t = np.array([s[7], s[0]])
    tt = np.concatenate([t, t])
    np.testing.assert_array_equal(src[:8], tt[[1, 0, 3, 2, 0, 1, 2, 3]])
    np.testing.assert_array_equal(src[8:], b)


@pytest.mark.parametrize(
    "body,message",
    [
        ("%m = memref.alloc() : memref<4xi8>", "'memref.alloc' is not an op of the loop level"),
        (
            "%c = arith.constant 1.0 : f32\n %d = math.sqrt %c : f32",
            "'math.sqrt' is not an op of the loop level",
        ),
    ],
)
def test_unsupported_ops_fail_with_their_name(body: str, message: str):
    source = f"builtin.module {{ func.func @f() {{ {body}\n func.return }} }}"
    with pytest.raises(PassFailedException, match=message):
        lower(source)


def test_unknown_target_fails():
    with pytest.raises(PassFailedException, match="unknown target 'riscv'"):
        lower("builtin.module {}", "riscv")


# ---------------------------------------------------------------------------------------------
# aarch64 execution under qemu: the neon lowering of every bnn.narrow_acc case, bit-exact
# ---------------------------------------------------------------------------------------------

from conftest import requires_aarch64 as needs_qemu


def _c_array(name: str, ctype: str, values: np.ndarray) -> str:
    return f"static {ctype} {name}[] = {{{', '.join(str(int(v)) for v in values)}}};"


@needs_qemu
def test_aarch64_narrow_acc_bit_exact_under_qemu(tmp_path):
    cases = narrow_acc_cases()
    body = "".join(narrow_acc_kernel(*case) for case in cases)
    tm = _target_machine(AARCH64.triple, AARCH64.cpu, AARCH64.features)
    mod = llvm_module(f"builtin.module {{{body}\n}}", "aarch64")
    _optimize(mod, tm)
    (tmp_path / "kernels.o").write_bytes(tm.emit_object(mod))

    rng = np.random.default_rng(11)
    ctypes_of = {8: "uint8_t", 16: "uint16_t", 32: "uint32_t"}
    lines = ["#include <stdint.h>", "#include <stdio.h>", "#include <string.h>"]
    calls = []
    for k, (m, lanes, bits) in enumerate(cases):
        a = rng.integers(0, 256, m, dtype=np.uint8)
        b = np.bitwise_not(a) if k % 3 == 0 else rng.integers(0, 256, m, dtype=np.uint8)
        acc = rng.integers(0, 2**bits, lanes, dtype=np.uint64).astype(NP_LANE[bits])
        expected = narrow_acc_reference(acc, a, b)
        name, ct = f"acc_{m}_{lanes}_{bits}", ctypes_of[bits]
        lines += [
            f"void {name}(void *, void *, void *);",
            _c_array(f"a{k}", "uint8_t", a),
            _c_array(f"b{k}", "uint8_t", b),
            _c_array(f"s{k}", ct, acc),
            _c_array(f"e{k}", ct, expected),
        ]
        calls.append(
            f'  {name}(a{k}, b{k}, s{k});\n'
            f'  if (memcmp(s{k}, e{k}, sizeof e{k})) {{ printf("MISMATCH {name}\\n"); bad++; }}'
        )
    lines += ["int main(void) {", "  int bad = 0;", *calls, '  printf("DONE %d\\n", bad);',
              "  return bad != 0;", "}"]
    (tmp_path / "main.c").write_text("\n".join(lines))
    exe = tmp_path / "narrow_acc"
    subprocess.run(
        ["aarch64-linux-gnu-gcc", "-O1", "-static", str(tmp_path / "main.c"),
         str(tmp_path / "kernels.o"), "-o", str(exe)],
        check=True,
    )
    run = subprocess.run(
        ["qemu-aarch64", str(exe)], check=False, capture_output=True, text=True, timeout=120
    )
    assert run.stdout.strip().endswith("DONE 0"), run.stdout
    assert run.returncode == 0
