"""The C runtime: parallel_for, aligned allocation, buffer descriptors and input bit-packing."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import require_sanitizers, requires_cross_gcc, requires_gcc

from bnnmlir import runtime
from bnnmlir.backend.runtime_build import RuntimeBuildError, build_host_shared_library
from bnnmlir.bits import pack_bits, packed_words

TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
PACK_ARGS = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]


@pytest.fixture(scope="module")
def rt():
    lib = ctypes.CDLL(str(build_host_shared_library()))
    lib.bnnmlir_parallel_for.argtypes = [TASK, ctypes.c_void_p, ctypes.c_int64]
    lib.bnnmlir_parallel_for.restype = None
    lib.bnnmlir_set_num_threads.argtypes = [ctypes.c_int]
    lib.bnnmlir_set_local_num_threads.argtypes = [ctypes.c_int]
    lib.bnnmlir_get_num_threads.restype = ctypes.c_int
    lib.bnnmlir_arena_alloc.argtypes = [ctypes.c_int64]
    lib.bnnmlir_arena_alloc.restype = ctypes.c_void_p
    lib.bnnmlir_arena_free.argtypes = [ctypes.c_void_p]
    lib.bnnmlir_packed_bytes.argtypes = [ctypes.c_int64]
    lib.bnnmlir_packed_bytes.restype = ctypes.c_int64
    for name in ("bnnmlir_pack_f32", "bnnmlir_pack_i8", "bnnmlir_pack_i32"):
        getattr(lib, name).argtypes = PACK_ARGS
        getattr(lib, name).restype = ctypes.c_int
    yield lib
    lib.bnnmlir_set_num_threads(1)
    lib.bnnmlir_set_local_num_threads(0)


PIECES = 4
"""Pieces per home chunk (``SUBCHUNKS`` of runtime/parallel.c)."""


def expected_pieces(n: int, threads: int) -> list[tuple[int, int]]:
    """The calls of a parallel loop over ``n`` with ``threads`` threads: ``min(n, threads)``
    home chunks whose sizes differ by at most 1, each cut into ``min(size, PIECES)``
    contiguous pieces."""
    chunks = min(n, threads)
    if chunks == 0:
        return []
    base, extra = divmod(n, chunks)
    pieces = []
    for c in range(chunks):
        begin = c * base + min(c, extra)
        size = base + (1 if c < extra else 0)
        parts = min(size, PIECES) if chunks > 1 else 1
        pieces += [(begin + size * k // parts, begin + size * (k + 1) // parts)
                   for k in range(parts)]
    return pieces


def run_parallel_for(rt, n: int, threads: int, body=None):
    """Call bnnmlir_parallel_for and return the (begin, end, thread id) of every chunk."""
    chunks = []
    lock = threading.Lock()

    def task(ctx, begin, end):
        with lock:
            chunks.append((begin, end, threading.get_ident()))
        if body is not None:
            body(begin, end)

    callback = TASK(task)
    rt.bnnmlir_set_num_threads(threads)
    rt.bnnmlir_parallel_for(callback, None, n)
    return sorted(chunks)


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 64, 1001])
def test_parallel_for_covers_each_index_once(rt, n, threads):
    chunks = run_parallel_for(rt, n, threads)
    covered = np.zeros(n, dtype=np.int64)
    for begin, end, _ in chunks:
        assert 0 <= begin < end <= n
        covered[begin:end] += 1
    assert (covered == 1).all()
    assert [c[:2] for c in chunks] == expected_pieces(n, threads)
    assert len({ident for *_, ident in chunks}) <= min(n, threads)


def test_every_thread_runs_its_own_chunk_when_all_are_running(rt):
    """Each piece takes 20 ms (asleep: the threads need no core): every thread claims its home
    chunk's first piece, the caller chunk 0's."""
    import time

    chunks = run_parallel_for(rt, 8, 4, lambda begin, end: time.sleep(0.02))
    first = {begin: ident for begin, _, ident in chunks}
    assert first[0] == threading.get_ident()
    assert len({first[b] for b in (0, 2, 4, 6)}) == 4


def test_a_descheduled_thread_loses_its_pieces_to_the_others(rt):
    """Home chunk 1's thread stuck in its first piece: the caller runs chunk 1's other pieces
    instead of waiting for it (the loop takes about one piece of the stuck thread, not its whole
    chunk)."""
    import time

    release = threading.Event()
    stuck = []

    def body(begin, end):
        if begin < 8:  # the caller's chunk: 4 x 100 ms, time for the worker to claim its own
            time.sleep(0.1)
        elif begin == 8:  # home chunk 1's first piece: its thread waits
            stuck.append(threading.get_ident())
            release.wait(5)

    timer = threading.Timer(1.0, release.set)
    timer.start()
    start = time.perf_counter()
    chunks = run_parallel_for(rt, 16, 2, body)
    timer.cancel()
    assert time.perf_counter() - start < 4
    caller = threading.get_ident()
    assert stuck and stuck[0] != caller
    others = [c for c in chunks if c[0] > 8]  # chunk 1's later pieces
    assert others and all(ident == caller for *_, ident in others)


def test_parallel_for_reuses_pool_across_calls_and_resizes(rt):
    import time

    def idents(threads):  # every thread takes part: the pieces sleep (see above)
        chunks = run_parallel_for(rt, 4 * threads, threads, lambda b, e: time.sleep(0.01))
        return {ident for *_, ident in chunks}

    first, second = idents(4), idents(4)
    assert first == second and len(first) == 4
    assert len(idents(2)) == 2
    assert len(idents(5)) == 5


def test_nested_parallel_for_runs_inline(rt):
    inner_calls = []

    def body(begin, end):
        inner = []

        def inner_task(ctx, b, e):
            inner.append((b, e, threading.get_ident()))

        rt.bnnmlir_parallel_for(TASK(inner_task), None, 10)
        inner_calls.append((threading.get_ident(), inner))

    run_parallel_for(rt, 6, 3, body)
    assert len(inner_calls) == len(expected_pieces(6, 3))
    for ident, inner in inner_calls:
        assert inner == [(0, 10, ident)]


def test_num_threads(rt):
    rt.bnnmlir_set_num_threads(0)
    assert rt.bnnmlir_get_num_threads() == 1
    rt.bnnmlir_set_num_threads(6)
    assert rt.bnnmlir_get_num_threads() == 6
    rt.bnnmlir_set_num_threads(1)


def test_local_num_threads_overrides_the_global_count_on_this_thread_only(rt):
    rt.bnnmlir_set_num_threads(2)
    try:
        rt.bnnmlir_set_local_num_threads(3)
        assert rt.bnnmlir_get_num_threads() == 3
        seen_elsewhere = []
        other = threading.Thread(target=lambda: seen_elsewhere.append(rt.bnnmlir_get_num_threads()))
        other.start()
        other.join()
        assert seen_elsewhere == [2]
        chunks = []

        def task(ctx, begin, end):
            chunks.append((begin, end))

        callback = TASK(task)
        rt.bnnmlir_parallel_for(callback, None, 30)
        assert sorted(chunks) == expected_pieces(30, 3)
        rt.bnnmlir_set_local_num_threads(0)
        assert rt.bnnmlir_get_num_threads() == 2
    finally:
        rt.bnnmlir_set_local_num_threads(0)
        rt.bnnmlir_set_num_threads(1)


def test_parallel_for_from_concurrent_threads(rt):
    """Python threads with different thread counts submit loops at once (each call waits for
    the shared pool); every loop covers its range exactly once with its own count of chunks."""
    errors: list[str] = []
    done = []

    def submitter(index: int, local: int):
        rt.bnnmlir_set_local_num_threads(local)
        for round_ in range(40):
            n = 3 + (round_ * 5 + index) % 29
            covered = np.zeros(n, dtype=np.int64)
            chunks = []

            def task(ctx, begin, end, covered=covered, chunks=chunks):
                covered[begin:end] += 1
                chunks.append(begin)

            rt.bnnmlir_parallel_for(TASK(task), None, n)
            if not (covered == 1).all() or len(chunks) != len(expected_pieces(n, local)):
                errors.append(f"thread {index} round {round_}: {covered.tolist()} {chunks}")
        done.append(index)

    threads = [
        threading.Thread(target=submitter, args=(i, 2 + i % 3), daemon=True) for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(done) == [0, 1, 2, 3], "parallel_for deadlocked (a submitter did not finish)"
    assert not errors, errors[:3]


def run_in_forked_child(check) -> int:
    """Fork; the child runs ``check()`` (True: exit 0) under a 30 s alarm. Returns its status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.alarm(30)
            code = 0 if check() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_parallel_for_after_fork(rt):
    """A child forked after the pool started has none of its workers: it must build its own."""
    expected = expected_pieces(64, 4)
    assert [c[:2] for c in run_parallel_for(rt, 64, 4)] == expected  # the pool is running

    status = run_in_forked_child(lambda: [c[:2] for c in run_parallel_for(rt, 64, 4)] == expected)
    assert os.WIFEXITED(status), f"the child did not finish (status {status}: deadlock?)"
    assert os.WEXITSTATUS(status) == 0
    assert [c[:2] for c in run_parallel_for(rt, 64, 4)] == expected  # the parent's pool still works


STRESS_SOURCE = Path(__file__).with_name("runtime_stress.c")


@requires_gcc
@pytest.mark.parametrize("sanitizer", [None, "thread"])
def test_parallel_for_stress_in_c(sanitizer, tmp_path):
    """runtime_stress.c: 4 submitting threads, per-thread and changing process-wide counts,
    nested loops; built with -Werror, optionally under ThreadSanitizer (races fail the run)."""
    compiler = shutil.which("gcc") or "gcc"
    flags = ["-O2"]
    if sanitizer is not None:
        require_sanitizers(compiler, sanitizer, tmp_path)
        flags = ["-O1", "-g", f"-fsanitize={sanitizer}"]
    program = tmp_path / "stress"
    build = subprocess.run(
        [compiler, "-std=c11", *flags, "-Wall", "-Wextra", "-Werror", "-pthread",
         f"-I{runtime.source_dir()}", str(STRESS_SOURCE),
         *[str(p) for p in runtime.source_files()], "-o", str(program)],
        check=False, capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    try:
        run = subprocess.run(
            [str(program)], check=False, capture_output=True, text=True, timeout=120,
            env={"TSAN_OPTIONS": "halt_on_error=1 exitcode=66"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the stress program deadlocked")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failures" in run.stdout


LIMITS_SOURCE = Path(__file__).with_name("runtime_limits.c")


@requires_gcc
def test_size_limits_in_c_under_sanitizers(tmp_path):
    """runtime_limits.c: overflowing element counts and byte sizes, negative extents and counts
    are refused (-1) by the buffer descriptor and packing functions; built with ASan and UBSan
    (no recovery), so a signed overflow or a bad access fails the run."""
    compiler = shutil.which("gcc") or "gcc"
    require_sanitizers(compiler, "address,undefined", tmp_path)
    program = tmp_path / "limits"
    build = subprocess.run(
        [compiler, "-std=c11", "-O1", "-g", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror", "-pthread",
         f"-I{runtime.source_dir()}", str(LIMITS_SOURCE),
         *[str(p) for p in runtime.source_files()], "-o", str(program)],
        check=False, capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(program)], check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failures" in run.stdout


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000, 1 << 20])
def test_arena_alloc_is_aligned_and_zeroed(rt, size):
    ptr = rt.bnnmlir_arena_alloc(size)
    assert ptr is not None and ptr % 64 == 0
    if size:
        view = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(ptr))
        assert not view.any()
    rt.bnnmlir_arena_free(ptr)


def test_arena_alloc_rejects_negative_size(rt):
    assert rt.bnnmlir_arena_alloc(-1) is None


class Buffer(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("rank", ctypes.c_int32),
        ("elem_size", ctypes.c_int32),
        ("shape", ctypes.c_int64 * 8),
    ]


def test_buffer_descriptor(rt):
    buf = Buffer()
    shape = (ctypes.c_int64 * 4)(2, 3, 5, 7)
    assert rt.bnnmlir_buffer_init(ctypes.byref(buf), None, 4, shape, 4) == 0
    rt.bnnmlir_buffer_num_elements.restype = ctypes.c_int64
    rt.bnnmlir_buffer_size_bytes.restype = ctypes.c_int64
    assert rt.bnnmlir_buffer_num_elements(ctypes.byref(buf)) == 210
    assert rt.bnnmlir_buffer_size_bytes(ctypes.byref(buf)) == 840
    assert list(buf.shape) == [2, 3, 5, 7, 1, 1, 1, 1]
    assert rt.bnnmlir_buffer_init(ctypes.byref(buf), None, 9, shape, 4) == -1
    assert rt.bnnmlir_buffer_init(ctypes.byref(buf), None, 2, shape, 0) == -1
    for refused, elem_size in [((2, -3), 4), ((1 << 62, 2), 1), ((1 << 61, 1), 4),
                               ((1 << 22, 1 << 21, 1 << 21), 1)]:
        extents = (ctypes.c_int64 * len(refused))(*refused)
        status = rt.bnnmlir_buffer_init(ctypes.byref(buf), None, len(refused), extents, elem_size)
        assert status == -1, refused
    assert list(buf.shape) == [2, 3, 5, 7, 1, 1, 1, 1]  # untouched by the refused calls
    buf.shape[0] = 1 << 62
    assert rt.bnnmlir_buffer_num_elements(ctypes.byref(buf)) == -1
    assert rt.bnnmlir_buffer_size_bytes(ctypes.byref(buf)) == -1


def random_values(rng, dtype, rows, channels):
    if dtype == np.float32:
        values = rng.standard_normal((rows, channels)).astype(np.float32)
        special = np.array([0.0, -0.0, -1e-30, 1e-30, -np.inf, np.inf], dtype=np.float32)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, (rows, channels), endpoint=True, dtype=dtype)
        special = np.array([0, -1, 1, info.min, info.max], dtype=dtype)
    mask = rng.random((rows, channels)) < 0.2
    values[mask] = rng.choice(special, size=int(mask.sum()))
    return values


@pytest.mark.parametrize(
    "dtype, function",
    [
        (np.float32, "bnnmlir_pack_f32"),
        (np.int8, "bnnmlir_pack_i8"),
        (np.int32, "bnnmlir_pack_i32"),
    ],
)
def test_packing_matches_bits_convention(rt, dtype, function):
    rng = np.random.default_rng(1234)
    pack = getattr(rt, function)
    for channels in range(1, 301):
        rows = int(rng.integers(1, 5))
        values = random_values(rng, dtype, rows, channels)
        words = packed_words(channels)
        assert rt.bnnmlir_packed_bytes(channels) == words
        # Guard bytes after the packed rows must stay untouched.
        out = np.full(rows * words + 16, 0xA5, dtype=np.uint8)
        assert pack(values.ctypes.data, out.ctypes.data, rows, channels) == 0
        np.testing.assert_array_equal(out[: rows * words].reshape(rows, words), pack_bits(values))
        assert (out[rows * words :] == 0xA5).all()


def test_negative_zero_is_plus_one(rt):
    values = np.array([[-0.0, 0.0, -0.0, -1.0]], dtype=np.float32)
    out = np.zeros(1, dtype=np.uint8)
    rt.bnnmlir_pack_f32(values.ctypes.data, out.ctypes.data, 1, 4)
    assert out[0] == 0b1000


@pytest.mark.parametrize(
    "compiler",
    [
        pytest.param("gcc", marks=requires_gcc),
        pytest.param("aarch64-linux-gnu-gcc", marks=requires_cross_gcc),
    ],
)
def test_runtime_compiles_without_warnings(compiler, tmp_path):
    for source in runtime.source_files():
        result = subprocess.run(
            [
                compiler,
                "-std=c11",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-c",
                str(source),
                "-o",
                str(tmp_path / (source.stem + ".o")),
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr


def test_missing_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("BNNMLIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-c-compiler")
    with pytest.raises(RuntimeBuildError, match="no C compiler found.*no-such-c-compiler"):
        build_host_shared_library()


def test_failing_compiler_reports_its_output(monkeypatch, tmp_path):
    script = tmp_path / "broken-cc"
    script.write_text("#!/bin/sh\necho 'broken-cc: cannot compile' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("BNNMLIR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(script))
    with pytest.raises(RuntimeBuildError, match="broken-cc: cannot compile"):
        build_host_shared_library()
    assert not list((tmp_path / "cache").glob("*.so"))


def test_build_is_cached_by_content(monkeypatch, tmp_path):
    monkeypatch.setenv("BNNMLIR_CACHE_DIR", str(tmp_path))
    first = build_host_shared_library()
    mtime = first.stat().st_mtime_ns
    assert build_host_shared_library() == first and first.stat().st_mtime_ns == mtime
    assert first.parent == tmp_path
