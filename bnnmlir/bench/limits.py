"""The host's limit for binary and int8 arithmetic, measured by micro-benchmarks built with the
same backend (llvmlite, the host's CPU features) in this process.

* **binary**: :func:`bnnmlir.bench.limit.binary_ops_limit` (register-resident
  ``vpxorq; vpopcntq; vpaddq`` chains), the same number the layer table divides by.
* **int8**: ``A x W`` independent accumulator chains, ``A`` activation vectors read from L1
  every iteration (volatile loads, so nothing is hoisted) and ``W`` weight vectors kept in
  registers, with ``vpdpbusd`` (AVX-512 VNNI; ``4 * 16`` MACs per instruction) on
  hosts that have it, else ``vpmaddwd`` + ``vpaddd`` (``32`` i16 MACs); ``2`` ops per MAC.

:func:`machine_limit` is the one function the profile and the benchmark tables read; it is
measured once per process (the best of a few runs of about 20 ms).
"""

from __future__ import annotations

import ctypes
import time
from functools import cache

ACTIVATIONS = 4
WEIGHTS = 3
ITERATIONS = 200_000
RUNS = 5


def _kernel_ir(name: str, vector: str, body: list[str], accumulate: str, macs: int) -> str:
    """LLVM IR of ``i64 name(ptr acts, ptr weights, i64 n)``: ``n`` iterations of ``A x W``
    chains ``acc = accumulate(acc, a_i, w_j)``; returns a fold of the accumulators so that
    nothing is dead. ``body`` declares the intrinsics; ``macs`` is only documentation."""
    lines = [*body, f"; {macs} MACs per chain step",
             f"define i64 @{name}(ptr %acts, ptr %weights, i64 %n) {{", "entry:"]
    for j in range(WEIGHTS):
        lines.append(f"  %wp{j} = getelementptr {vector}, ptr %weights, i64 {j}")
        lines.append(f"  %w{j} = load {vector}, ptr %wp{j}, align 1")
    lines += ["  br label %loop", "loop:", "  %i = phi i64 [0, %entry], [%inext, %loop]"]
    for c in range(ACTIVATIONS * WEIGHTS):
        lines.append(f"  %acc{c} = phi {vector} [zeroinitializer, %entry], [%next{c}, %loop]")
    for i in range(ACTIVATIONS):
        lines.append(f"  %ap{i} = getelementptr {vector}, ptr %acts, i64 {i}")
        lines.append(f"  %a{i} = load volatile {vector}, ptr %ap{i}, align 1")
    for i in range(ACTIVATIONS):
        for j in range(WEIGHTS):
            c = i * WEIGHTS + j
            lines += [f"  {line}" for line in accumulate.format(c=c, a=f"%a{i}", w=f"%w{j}")
                      .splitlines()]
    lines += ["  %inext = add i64 %i, 1", "  %more = icmp ult i64 %inext, %n",
              "  br i1 %more, label %loop, label %done", "done:"]
    total = "%next0"
    for c in range(1, ACTIVATIONS * WEIGHTS):
        lines.append(f"  %sum{c} = add {vector} {total}, %next{c}")
        total = f"%sum{c}"
    lines += [f"  %flat = bitcast {vector} {total} to <8 x i64>",
              "  %r = extractelement <8 x i64> %flat, i64 0", "  ret i64 %r", "}"]
    return "\n".join(lines)


VNNI_KERNEL = _kernel_ir(
    "limit_int8", "<16 x i32>",
    ["declare <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32>, <16 x i32>, <16 x i32>)"],
    "%next{c} = call <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32> %acc{c}, "
    "<16 x i32> {a}, <16 x i32> {w})", 64)
PMADDWD_KERNEL = _kernel_ir(
    "limit_int8", "<16 x i32>",
    ["declare <16 x i32> @llvm.x86.avx512.pmaddw.d.512(<32 x i16>, <32 x i16>)"],
    "%a16_{c} = bitcast <16 x i32> {a} to <32 x i16>\n%w16_{c} = bitcast <16 x i32> {w} to "
    "<32 x i16>\n%m{c} = call <16 x i32> @llvm.x86.avx512.pmaddw.d.512(<32 x i16> %a16_{c}, "
    "<32 x i16> %w16_{c})\n%next{c} = add <16 x i32> %acc{c}, %m{c}", 32)


@cache
def _jit(ir: str, name: str):
    from bnnmlir.backend.jit import JitModule
    from bnnmlir.target import host_target

    target = host_target()
    module = JitModule(f'target triple = "{target.triple}"\n{ir}', link_runtime=False)
    return module.ctypes_function(name, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64],
                                  ctypes.c_int64)


def _ops_per_second(ir: str, name: str, ops_per_iteration: int) -> float:
    import numpy as np

    function = _jit(ir, name)
    data = np.random.default_rng(0).integers(0, 127, size=(ACTIVATIONS + WEIGHTS) * 64,
                                             dtype=np.int8)
    acts, weights = data[: ACTIVATIONS * 64], data[ACTIVATIONS * 64:]
    function(acts.ctypes.data, weights.ctypes.data, 1000)  # warm-up
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        function(acts.ctypes.data, weights.ctypes.data, ITERATIONS)
        best = min(best, time.perf_counter() - start)
    return ops_per_iteration * ITERATIONS / best


@cache
def machine_limit(kind: str) -> float | None:
    """Ops per second one host core can reach for ``kind`` (``binary`` or ``int8``; 2 ops per
    MAC), or ``None`` where there is no such micro-benchmark (not an AVX-512 host; other kinds).
    """
    from bnnmlir.target import host_target

    target = host_target()
    chains = ACTIVATIONS * WEIGHTS
    if target.vector_bytes != 64 or target.popcount != "ctpop":
        return None
    if kind == "binary":
        from bnnmlir.bench.limit import binary_ops_limit

        limit = binary_ops_limit()
        return None if limit is None else limit.ops_per_second
    if kind == "int8":
        if target.int8_dot == "vnni":
            return _ops_per_second(VNNI_KERNEL, "limit_int8", chains * 64 * 2)
        return _ops_per_second(PMADDWD_KERNEL, "limit_int8", chains * 32 * 2)
    return None


def describe_limits() -> str:
    """One line naming the measured limits, for table captions."""
    parts = []
    for kind in ("binary", "int8"):
        limit = machine_limit(kind)
        if limit is not None:
            parts.append(f"{kind} {limit / 1e9:,.0f} GOPS")
    return ("machine limit per core (micro-benchmark, same backend): " + ", ".join(parts)
            if parts else "no machine-limit micro-benchmark for this host")
