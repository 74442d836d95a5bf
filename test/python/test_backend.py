"""The llvmlite backend: LLVM IR, optimization, host JIT, host/aarch64 code, qemu execution."""

from __future__ import annotations

import ctypes
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_cross, requires_gcc
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.dialects.llvm import LLVM
from xdsl.parser import Parser
from xdsl.utils.arg_spec import parse_spec

from bnnmlir.backend import cross, llvm_codegen
from bnnmlir.backend.jit import JitModule
from bnnmlir.backend.llvm_codegen import (
    emit_assembly,
    emit_object,
    optimize,
    to_llvm_ir,
)
from bnnmlir.backend.targets import bnnmlir_targets, write_object
from bnnmlir.target import AARCH64, host_target

BYTES = 128
ROWS = 37

# out = popcount(a ^ b) per byte, three ways: a plain loop over 16-byte vectors, the same work
# split by rows over bnnmlir_parallel_for (the shape of an outlined scf.parallel), and through
# a scratch arena.
XOR_POPCOUNT = f"""
builtin.module {{
  llvm.func @bnnmlir_parallel_for(!llvm.ptr, !llvm.ptr, i64)

  llvm.func @xor_popcount(%a: !llvm.ptr, %b: !llvm.ptr, %out: !llvm.ptr) {{
    %zero = llvm.mlir.constant(0 : i64) : i64
    llvm.br ^loop(%zero : i64)
  ^loop(%i: i64):
    %pa = llvm.getelementptr %a[%i] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %pb = llvm.getelementptr %b[%i] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %po = llvm.getelementptr %out[%i] : (!llvm.ptr, i64) -> !llvm.ptr, i8
    %va = llvm.load %pa {{alignment = 1 : i64}} : !llvm.ptr -> vector<16xi8>
    %vb = llvm.load %pb {{alignment = 1 : i64}} : !llvm.ptr -> vector<16xi8>
    %x = llvm.xor %va, %vb : vector<16xi8>
    %c = llvm.call_intrinsic "llvm.ctpop.v16i8"(%x) : (vector<16xi8>) -> vector<16xi8>
    llvm.store %c, %po {{alignment = 1 : i64}} : vector<16xi8>, !llvm.ptr
    %step = llvm.mlir.constant(16 : i64) : i64
    %next = llvm.add %i, %step : i64
    %n = llvm.mlir.constant({BYTES} : i64) : i64
    %more = llvm.icmp "ult" %next, %n : i64
    llvm.cond_br %more, ^loop(%next : i64), ^done
  ^done:
    llvm.return
  }}

  llvm.func @rows_task(%ctx: !llvm.ptr, %begin: i64, %end: i64) {{
    %a = llvm.load %ctx : !llvm.ptr -> !llvm.ptr
    %pb = llvm.getelementptr %ctx[1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
    %b = llvm.load %pb : !llvm.ptr -> !llvm.ptr
    %pout = llvm.getelementptr %ctx[2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
    %out = llvm.load %pout : !llvm.ptr -> !llvm.ptr
    %empty = llvm.icmp "sge" %begin, %end : i64
    llvm.cond_br %empty, ^done, ^loop(%begin : i64)
  ^loop(%r: i64):
    %pa = llvm.getelementptr %a[%r] : (!llvm.ptr, i64) -> !llvm.ptr, vector<16xi8>
    %pbr = llvm.getelementptr %b[%r] : (!llvm.ptr, i64) -> !llvm.ptr, vector<16xi8>
    %po = llvm.getelementptr %out[%r] : (!llvm.ptr, i64) -> !llvm.ptr, vector<16xi8>
    %va = llvm.load %pa {{alignment = 1 : i64}} : !llvm.ptr -> vector<16xi8>
    %vb = llvm.load %pbr {{alignment = 1 : i64}} : !llvm.ptr -> vector<16xi8>
    %x = llvm.xor %va, %vb : vector<16xi8>
    %c = llvm.call_intrinsic "llvm.ctpop.v16i8"(%x) : (vector<16xi8>) -> vector<16xi8>
    llvm.store %c, %po {{alignment = 1 : i64}} : vector<16xi8>, !llvm.ptr
    %one = llvm.mlir.constant(1 : i64) : i64
    %next = llvm.add %r, %one : i64
    %more = llvm.icmp "slt" %next, %end : i64
    llvm.cond_br %more, ^loop(%next : i64), ^done
  ^done:
    llvm.return
  }}

  llvm.func @xor_popcount_rows(%a: !llvm.ptr, %b: !llvm.ptr, %out: !llvm.ptr) {{
    %three = llvm.mlir.constant(3 : i64) : i64
    %ctx = llvm.alloca %three x !llvm.ptr : (i64) -> !llvm.ptr
    llvm.store %a, %ctx : !llvm.ptr, !llvm.ptr
    %cb = llvm.getelementptr %ctx[1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
    llvm.store %b, %cb : !llvm.ptr, !llvm.ptr
    %co = llvm.getelementptr %ctx[2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
    llvm.store %out, %co : !llvm.ptr, !llvm.ptr
    %task = llvm.mlir.addressof @rows_task : !llvm.ptr
    %rows = llvm.mlir.constant({ROWS} : i64) : i64
    llvm.call @bnnmlir_parallel_for(%task, %ctx, %rows) : (!llvm.ptr, !llvm.ptr, i64) -> ()
    llvm.return
  }}

  llvm.func @xor_popcount_arena(%a: !llvm.ptr, %b: !llvm.ptr, %out: !llvm.ptr, %arena: !llvm.ptr) {{
    %va = llvm.load %a {{alignment = 1 : i64}} : !llvm.ptr -> vector<16xi8>
    %vb = llvm.load %b {{alignment = 1 : i64}} : !llvm.ptr -> vector<16xi8>
    %x = llvm.xor %va, %vb : vector<16xi8>
    %scratch = llvm.getelementptr %arena[64] : (!llvm.ptr) -> !llvm.ptr, i8
    %untouched = llvm.load %arena {{alignment = 1 : i64}} : !llvm.ptr -> vector<16xi8>
    llvm.store %x, %scratch {{alignment = 1 : i64}} : vector<16xi8>, !llvm.ptr
    %y = llvm.load %scratch {{alignment = 1 : i64}} : !llvm.ptr -> vector<16xi8>
    %c = llvm.call_intrinsic "llvm.ctpop.v16i8"(%y) : (vector<16xi8>) -> vector<16xi8>
    %s = llvm.add %c, %untouched : vector<16xi8>
    llvm.store %s, %out {{alignment = 1 : i64}} : vector<16xi8>, !llvm.ptr
    llvm.return
  }}
}}
"""


def parse(text: str = XOR_POPCOUNT) -> ModuleOp:
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(LLVM)
    return Parser(ctx, text).parse_module()


def popcount_bytes(values: np.ndarray) -> np.ndarray:
    return np.unpackbits(values.reshape(-1, 1), axis=1).sum(axis=1).astype(np.uint8)


def random_bytes(rng, count: int) -> np.ndarray:
    return rng.integers(0, 256, count, dtype=np.uint8)


@pytest.fixture(scope="module")
def jit():
    return JitModule(parse())


@pytest.fixture(scope="module")
def aarch64_object() -> bytes:
    return emit_object(parse(), AARCH64)


def host_has_byte_popcount() -> bool:
    features = host_target().features.split(",")
    return "+avx512bitalg" in features and "+avx512vl" in features


# ---- LLVM IR -------------------------------------------------------------------------------


def test_llvm_ir_carries_target_triple_and_layout():
    ir = to_llvm_ir(parse(), AARCH64)
    assert 'target triple = "aarch64-unknown-linux-gnu"' in ir
    assert "target datalayout" in ir
    host = to_llvm_ir(parse(), host_target())
    assert f'target triple = "{host_target().triple}"' in host


def test_optimize_verifies_and_keeps_functions():
    module = optimize(to_llvm_ir(parse(), host_target()), host_target())
    names = {f.name for f in module.functions if not f.is_declaration}
    assert {"xor_popcount", "rows_task", "xor_popcount_rows", "xor_popcount_arena"} <= names
    # LLVM's unrolling is off by default: the fixed 8-iteration loop stays a loop.
    assert "phi" in str(module.get_function("xor_popcount"))


def test_pipeline_unrolling_is_an_option_and_part_of_the_cache_key(monkeypatch):
    unrolling = llvm_codegen.Pipeline(loop_unrolling=True)
    assert unrolling.describe() != llvm_codegen.PIPELINE.describe()
    monkeypatch.setattr(llvm_codegen, "PIPELINE", unrolling)
    module = optimize(to_llvm_ir(parse(), host_target()), host_target())
    # With unrolling, O3 unrolls the fixed 8-iteration loop fully: no branch back remains.
    assert "phi" not in str(module.get_function("xor_popcount"))


def test_optimize_rejects_invalid_ir():
    with pytest.raises(ValueError, match="LLVM rejects"):
        optimize("define void @f() {\n  ret i32 0\n}\n", host_target())


# ---- host JIT ------------------------------------------------------------------------------


def test_jit_xor_popcount_matches_numpy(jit):
    rng = np.random.default_rng(7)
    function = jit.ctypes_function("xor_popcount", [ctypes.c_void_p] * 3)
    for _ in range(5):
        a, b = random_bytes(rng, BYTES), random_bytes(rng, BYTES)
        out = np.zeros(BYTES, dtype=np.uint8)
        function(a.ctypes.data, b.ctypes.data, out.ctypes.data)
        np.testing.assert_array_equal(out, popcount_bytes(a ^ b))


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_jit_parallel_rows_through_runtime(jit, threads):
    rng = np.random.default_rng(threads)
    function = jit.ctypes_function("xor_popcount_rows", [ctypes.c_void_p] * 3)
    jit.runtime.bnnmlir_set_num_threads(threads)
    try:
        a, b = random_bytes(rng, ROWS * 16), random_bytes(rng, ROWS * 16)
        out = np.zeros(ROWS * 16, dtype=np.uint8)
        function(a.ctypes.data, b.ctypes.data, out.ctypes.data)
    finally:
        jit.runtime.bnnmlir_set_num_threads(1)
    np.testing.assert_array_equal(out, popcount_bytes(a ^ b))


def test_jit_from_llvm_ir_text():
    module = JitModule(to_llvm_ir(parse(), host_target()))
    function = module.ctypes_function("xor_popcount", [ctypes.c_void_p] * 3)
    a = np.arange(BYTES, dtype=np.uint8)
    b = np.full(BYTES, 0x0F, dtype=np.uint8)
    out = np.zeros(BYTES, dtype=np.uint8)
    function(a.ctypes.data, b.ctypes.data, out.ctypes.data)
    np.testing.assert_array_equal(out, popcount_bytes(a ^ b))


def test_jit_function_lookup_errors(jit):
    with pytest.raises(KeyError, match="no function"):
        jit.function_address("missing")
    with pytest.raises(KeyError, match="only declared"):
        jit.function_address("bnnmlir_parallel_for")
    assert jit.function_address("xor_popcount") != 0


# ---- assembly ------------------------------------------------------------------------------


def test_host_assembly_uses_vector_popcount_when_the_cpu_has_it():
    # The target machine gets the host's features: vpopcntb exactly when AVX-512 BITALG is there.
    asm = emit_assembly(parse(), host_target())
    assert ("vpopcntb" in asm) == host_has_byte_popcount()


def test_aarch64_assembly_uses_cnt():
    asm = emit_assembly(parse(), AARCH64)
    assert "cnt\tv0.16b, v0.16b" in asm or "cnt\tv" in asm
    assert "eor\tv" in asm
    assert "bl\tbnnmlir_parallel_for" in asm


def test_aarch64_object_is_elf_for_aarch64(aarch64_object):
    assert aarch64_object[:4] == b"\x7fELF"
    assert int.from_bytes(aarch64_object[18:20], "little") == 183  # EM_AARCH64


# ---- targets -------------------------------------------------------------------------------


def emit_with(spec_text: str) -> str:
    spec = parse_spec(spec_text)
    target = bnnmlir_targets()[spec.name]().from_spec(spec)
    out = io.StringIO()
    target.emit(Context(), parse(), out)
    return out.getvalue()


def test_text_targets():
    assert "cnt\tv" in emit_with("aarch64-asm")
    assert "xor_popcount:" in emit_with("host-asm")
    ir = emit_with("llvm{target=aarch64}")
    assert 'target triple = "aarch64-unknown-linux-gnu"' in ir and "@llvm.ctpop.v16i8" in ir
    assert "br label" in emit_with("llvm{optimize=false}")


def test_object_targets(tmp_path):
    path = tmp_path / "k.o"
    assert emit_with(f'aarch64-obj{{path="{path}"}}') == ""
    assert path.read_bytes()[18] == 183
    with pytest.raises(ValueError, match="binary object"):
        emit_with("host-obj")
    write_object(parse(), host_target(), tmp_path / "h.o")
    assert (tmp_path / "h.o").read_bytes()[:4] == b"\x7fELF"


# ---- aarch64 under qemu ----------------------------------------------------------------------


@requires_gcc
def test_generated_main_compiles_cleanly(tmp_path):
    compiler = shutil.which("gcc") or "gcc"
    from bnnmlir import runtime

    source = tmp_path / "main.c"
    source.write_text(cross.generate_main("entry", [16, 16, 16], 1, 128, num_threads=2))
    result = subprocess.run(
        [
            compiler,
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{runtime.source_dir()}",
            "-fsyntax-only",
            str(source),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(ValueError, match="C identifier"):
        cross.generate_main("not-a-name", [1], 1, None)


@requires_cross
def test_qemu_xor_popcount(aarch64_object):
    rng = np.random.default_rng(11)
    a, b = random_bytes(rng, BYTES), random_bytes(rng, BYTES)
    (out,) = cross.run_aarch64(aarch64_object, "xor_popcount", [a, b], [np.zeros(BYTES, np.uint8)])
    np.testing.assert_array_equal(out, popcount_bytes(a ^ b))


@requires_cross
def test_qemu_parallel_rows(aarch64_object):
    rng = np.random.default_rng(12)
    a = random_bytes(rng, ROWS * 16).reshape(ROWS, 16)
    b = random_bytes(rng, ROWS * 16).reshape(ROWS, 16)
    (out,) = cross.run_aarch64(
        aarch64_object,
        "xor_popcount_rows",
        [a, b],
        [np.zeros((ROWS, 16), np.uint8)],
        num_threads=3,
    )
    assert out.shape == (ROWS, 16)
    np.testing.assert_array_equal(out.ravel(), popcount_bytes(a ^ b))


@requires_cross
def test_qemu_arena_is_zeroed_scratch(aarch64_object):
    rng = np.random.default_rng(13)
    a, b = random_bytes(rng, 16), random_bytes(rng, 16)
    (out,) = cross.run_aarch64(
        aarch64_object,
        "xor_popcount_arena",
        [a, b],
        [np.full(16, 0xFF, np.uint8)],
        arena_bytes=256,
    )
    np.testing.assert_array_equal(out, popcount_bytes(a ^ b))


@requires_cross
def test_qemu_failure_is_reported(aarch64_object):
    with pytest.raises(cross.CrossToolError, match="linking"):
        cross.run_aarch64(aarch64_object, "no_such_function", [], [np.zeros(1, np.uint8)])


# ---- the cnt + uadalp accumulation (test/targets/aarch64-popcount-accumulate.mlir) ----------

ACCUMULATE = Path(__file__).resolve().parents[1] / "targets" / "aarch64-popcount-accumulate.mlir"


def accumulate_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    counts = popcount_bytes(a ^ b).astype(np.uint16).reshape(4, 8, 2)
    return counts.sum(axis=(0, 2), dtype=np.uint16)


def test_foreign_intrinsic_is_a_python_error():
    module = parse(ACCUMULATE.read_text())
    with pytest.raises(ValueError, match="specific to aarch64"):
        emit_assembly(module, host_target())
    with pytest.raises(ValueError, match="specific to aarch64"):
        JitModule(module)


@requires_cross
def test_qemu_popcount_accumulate_uadalp():
    obj = emit_object(parse(ACCUMULATE.read_text()), AARCH64)
    rng = np.random.default_rng(14)
    for a, b in [
        (random_bytes(rng, 64), random_bytes(rng, 64)),
        (np.zeros(64, np.uint8), np.full(64, 0xFF, np.uint8)),  # every bit differs: 4*16 per lane
    ]:
        (out,) = cross.run_aarch64(obj, "popcount_accumulate", [a, b], [np.zeros(8, np.uint16)])
        np.testing.assert_array_equal(out, accumulate_reference(a, b))


def test_missing_cross_tools_are_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not cross.available()
    assert set(cross.missing_tools()) == {
        "aarch64-linux-gnu-gcc",
        "aarch64-linux-gnu-ar",
        "qemu-aarch64",
    }
    with pytest.raises(cross.CrossToolError, match="qemu-aarch64"):
        cross.run_aarch64(b"", "f", [], [np.zeros(1, np.uint8)])
