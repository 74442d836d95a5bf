"""A compile in several processes: the loops and llvm stages (bnnmlir.parallel_lowering: how the
layers are dealt, how the parts' LLVM IR is joined, outputs equal to one process's, errors of a
part) and the clip8 folds of bnn-fold-to-integer."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import torch
from xdsl.dialects import func
from xdsl.utils.exceptions import PassFailedException

import bnnmlir
from bnnmlir.compiler import compile_module, make_context, parse_mlir
from bnnmlir.errors import CompileError
from bnnmlir.forked import Patience
from bnnmlir.examples.models import bnn_clip_net
from bnnmlir.parallel_lowering import class_key, deal, join_llvm_texts, lowering_jobs
from bnnmlir.passes.layer_functions import OutlineLayersPass, is_layer_function
from bnnmlir.passes.lower_bnn_to_loops import LowerBnnToLoopsPass

from conftest import requires_cross


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(5)
    return bnn_clip_net().eval(), torch.randn(2, 3, 32, 32)


def _outlined(model, x) -> object:
    compiled = bnnmlir.compile(model, (x,), threads=1, cache=False, jit=False)
    module = compiled.program.mlir_module("buffers").clone()
    OutlineLayersPass().apply(make_context(), module)
    return module


def test_deal_keeps_equal_layers_together_and_the_rest_in_the_first_part(network):
    module = _outlined(*network)
    parts = deal(module, 2)
    functions = [op for op in module.ops if isinstance(op, func.FuncOp)]
    assert len(parts) == 2 and not parts[0] & parts[1]
    assert parts[0] | parts[1] == {f.sym_name.data for f in functions}
    for f in functions:
        if not is_layer_function(f):
            assert f.sym_name.data in parts[0]
    part_of = {name: k for k, part in enumerate(parts) for name in part}
    classes: dict[object, set[int]] = {}
    for f in functions:
        if is_layer_function(f):
            classes.setdefault(class_key(f), set()).add(part_of[f.sym_name.data])
    assert all(len(where) == 1 for where in classes.values())
    assert any(len([f for f in functions if class_key(f) == key]) > 1 for key in classes)
    assert deal(module, 2) == parts  # deterministic


def test_join_defines_each_function_and_global_once():
    first = ('target triple = "x86_64-unknown-linux-gnu"\n\n'
             '@"w" = internal constant [2 x i8] c"\\01\\02"\n'
             'declare void @"g"(ptr %".1")\n'
             'declare void @"memset"(ptr %".1")\n\n'
             'define void @"f"(ptr %".1")\n{\n  call void @"g"(ptr %".1")\n  ret void\n}\n')
    second = ('target triple = "x86_64-unknown-linux-gnu"\n\n'
              '@"w" = internal constant [2 x i8] c"\\01\\02"\n'
              'declare void @"memset"(ptr %".1")\n\n'
              'define internal void @"g"(ptr %".1")\n{\n  ret void\n}\n')
    text = join_llvm_texts([first, second])
    assert text.count('@"w" = ') == 1 and text.count("declare") == 1
    assert 'define internal void @"g"' in text and 'define void @"f"' in text
    from bnnmlir.backend.llvm_codegen import parse_ir

    parse_ir(text)
    clash = second.replace('c"\\01\\02"', 'c"\\01\\03"')
    with pytest.raises(CompileError, match="global @w differently"):
        join_llvm_texts([first, clash])


def test_parts_compute_what_one_process_computes(network, monkeypatch):
    """Bit for bit with PyTorch both ways, from the same LLVM IR text."""
    model, x = network
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "1")
    serial = bnnmlir.compile(model, (x,), threads=1, cache=False)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    parallel = bnnmlir.compile(model, (x,), threads=1, cache=False)
    assert "other processes" in parallel.program.compile_times
    assert "other processes" not in serial.program.compile_times
    text = parallel.program.llvm_text()
    assert "_shared" in text  # a merged layer's body
    assert text == serial.program.llvm_text()  # the same module, however the layers were dealt
    for seed in range(3):
        torch.manual_seed(seed)
        inputs = torch.randn(2, 3, 32, 32)
        want = model(inputs)
        assert torch.equal(serial(inputs), want) and torch.equal(parallel(inputs), want)


@requires_cross
def test_parts_compute_what_one_process_computes_on_aarch64(network, monkeypatch):
    model, x = network
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    compiled = bnnmlir.compile(model, (x,), target="aarch64", cache=False)
    assert "other processes" in compiled.program.compile_times
    inputs = torch.randn(2, 3, 32, 32)
    assert torch.equal(compiled(inputs), model(inputs))  # under qemu-aarch64


def test_text_made_again_from_a_program_entry_is_the_compiled_one(network, monkeypatch, tmp_path):
    model, x = network
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    first = bnnmlir.compile(model, (x,), target="aarch64", cache=tmp_path)
    again = bnnmlir.compile(model, (x,), target="aarch64", cache=tmp_path)
    assert again.program.llvm_text() == first.program.llvm_text()


def test_few_layers_stay_in_one_process(monkeypatch):
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    text = ("func.func @k(%x: tensor<1x4x4x8xi16>) -> tensor<1x4x4x8xi8> {\n"
            "  %y = bnn.clip8 %x : tensor<1x4x4x8xi16> -> tensor<1x4x4x8xi8>\n"
            "  func.return %y : tensor<1x4x4x8xi8>\n}\n")
    program = compile_module(parse_mlir(text), threads=1, cache=False, jit=False)
    assert lowering_jobs(program.mlir_module("buffers")) == 0


def _failing_lowering(name: str, how: str):
    original = LowerBnnToLoopsPass._lower_function

    def lower(ctx):
        if ctx.function.sym_name.data == name:
            if how == "crash":
                os._exit(3)
            if how == "hang":
                time.sleep(120)  # far past the test's patience; bounded if that broke
            raise PassFailedException("injected failure")
        return original(ctx)

    return staticmethod(lower)


@pytest.mark.parametrize("how, expected", [
    ("error", "injected failure"),
    ("crash", "exit code 3"),
    ("hang", r"part 1: no result [\d.]+ s after the start \(part 0 ended after [\d.]+ s\) "
             r"\(its process was stopped\) \(its functions: forward_"),
])
def test_an_error_in_another_part_is_a_compile_error(network, monkeypatch, how, expected):
    """A part that fails, dies or is stuck (here: far longer than its estimated share allows)
    is a compile error naming the part; the stuck one is stopped."""
    model, x = network
    module = _outlined(model, x)
    other = sorted(deal(module, 2)[1])[0]  # a layer lowered by the other process
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    monkeypatch.setattr(LowerBnnToLoopsPass, "_lower_function", _failing_lowering(other, how))
    monkeypatch.setattr("bnnmlir.parallel_lowering.Patience",
                        lambda costs: Patience(2.0, 1.0, costs))
    start = time.monotonic()
    with pytest.raises(CompileError, match=expected):
        bnnmlir.compile(model, (x,), threads=1, cache=False, jit=False)
    assert time.monotonic() - start < 120


def test_clip8_folds_in_processes_give_the_same_ir(network, monkeypatch):
    """The clip8 folds computed ahead in forked processes (PyTorch on one thread there) give
    the optimized IR of one process; the parent folded none of them (it waits)."""
    from bnnmlir.passes import fold_to_integer

    model, x = network
    monkeypatch.setattr(fold_to_integer, "PREFETCH_MIN_ELEMENTS", 0)
    original = fold_to_integer._fold_clip8_chain
    texts, folded_here = [], []
    for jobs in ("1", "2"):
        calls = []
        monkeypatch.setattr(fold_to_integer, "_fold_clip8_chain",
                            lambda *a, calls=calls: calls.append(1) or original(*a))
        monkeypatch.setenv("BNNMLIR_LLVM_JOBS", jobs)
        compiled = bnnmlir.compile(model, (x,), threads=1, cache=False, jit=False)
        texts.append(compiled.mlir("optimized", elide_larger_than=None))
        folded_here.append(len(calls))
    assert texts[0] == texts[1]
    assert "requant" in texts[0]  # the folds happened
    assert folded_here[0] > 0 and folded_here[1] == 0


def _compile_small_network() -> bool:
    """Run in a pool worker (a daemonic process, which may not fork children)."""
    torch.manual_seed(5)
    model = bnn_clip_net().eval()
    x = torch.randn(2, 3, 32, 32)
    return torch.equal(bnnmlir.compile(model, (x,), threads=1, cache=False)(x), model(x))


def test_a_compile_in_a_pool_worker_stays_in_one_process():
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_compile_small_network)


def test_no_child_is_forked_while_another_thread_is_inside_llvm():
    """A child forked while another thread holds llvmlite's lock would wait for it forever at
    its first LLVM call; the fork waits for the lock instead."""
    import threading
    import time

    import llvmlite.binding as llvm

    from bnnmlir.forked import run_forked

    lock = llvm.ffi.lib._lock
    held = threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    result: list = []
    worker = threading.Thread(
        target=lambda: result.append(run_forked([lambda: 0, llvm.get_process_triple])))
    worker.start()
    worker.join(timeout=60)
    holder.join()
    assert not worker.is_alive() and result and result[0][1] == llvm.get_process_triple()


def test_clip8_folds_fall_back_to_one_process_when_children_fail(network, monkeypatch):
    from bnnmlir import forked
    from bnnmlir.passes import fold_to_integer

    model, x = network
    monkeypatch.setattr(fold_to_integer, "PREFETCH_MIN_ELEMENTS", 0)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "1")
    want = bnnmlir.compile(model, (x,), threads=1, cache=False, jit=False).mlir(
        "optimized", elide_larger_than=None)

    def broken(calls, child_setup=None, **_):
        raise forked.ChildFailure("part 1: its process ended without a result (exit code -9)")

    monkeypatch.setattr(forked, "run_forked", broken)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    monkeypatch.setattr("bnnmlir.parallel_lowering.run_forked",
                        lambda calls, **_: [c() for c in calls])
    got = bnnmlir.compile(model, (x,), threads=1, cache=False, jit=False)
    assert got.mlir("optimized", elide_larger_than=None) == want


def _part(globals_: dict[str, str], functions: dict[str, str]) -> str:
    lines = ['target triple = "x86_64-unknown-linux-gnu"', ""]
    lines += [f'@"{name}" = internal constant [1 x i8] c"\\{value}"' for name, value in
              globals_.items()]
    for name, read in functions.items():
        lines += [f'define void @"{name}"()', "{", f'  %a = load i8, ptr @"{read}"', "  ret void",
                  "}"]
    return "\n".join(lines) + "\n"


def test_join_names_the_lowering_globals_whatever_the_parts():
    """The same functions dealt two ways (each part numbering its own globals, the second part
    tagging them) join into one text: the numbered globals renamed in order of first use by
    the functions sorted by name."""
    one = join_llvm_texts([
        _part({"__bnn_w_0": "01", "__bnn_w_1": "02"}, {"f_b": "__bnn_w_0", "f_a": "__bnn_w_1"}),
        _part({"__bnn_w_p1_0": "03"}, {"f_c": "__bnn_w_p1_0"}),
    ])
    other = join_llvm_texts([
        _part({"__bnn_w_0": "02"}, {"f_a": "__bnn_w_0"}),
        _part({"__bnn_w_p1_0": "01", "__bnn_w_p1_1": "03"},
              {"f_b": "__bnn_w_p1_0", "f_c": "__bnn_w_p1_1"}),
    ])
    assert one == other
    assert '@"__bnn_w_0" = internal constant [1 x i8] c"\\02"' in one  # first read, by f_a
    from bnnmlir.backend.llvm_codegen import parse_ir

    parse_ir(one)


def test_run_forked_can_leave_this_process_idle():
    """With ``first_here=False`` every call runs in a child (the lowering's IR never fills this
    process's heap); results and errors come back in the order of the calls."""
    from bnnmlir.forked import run_forked

    here = os.getpid()
    assert run_forked([os.getpid, os.getpid], first_here=True)[0] == here
    pids = run_forked([os.getpid, os.getpid], first_here=False)
    assert here not in pids and len(set(pids)) == 2

    def fails() -> None:
        raise ValueError("second part")

    with pytest.raises(ValueError, match="second part"):
        run_forked([os.getpid, fails], first_here=False)


def _after(seconds: float, value):
    def run():
        time.sleep(seconds)
        if isinstance(value, BaseException):
            raise value
        return value
    return run


def test_run_forked_orders_results_and_errors_by_call_not_by_end():
    """Parts that end in another order than the calls' still come back in the calls' order,
    and the error raised is the first call's, not the first to happen."""
    from bnnmlir.forked import run_forked

    calls = [_after(0.4, "a"), _after(0.0, "b"), _after(0.2, "c")]
    assert run_forked(calls, first_here=False) == ["a", "b", "c"]
    assert run_forked(calls, first_here=True) == ["a", "b", "c"]
    with pytest.raises(KeyError, match="first call"):
        run_forked([_after(0.4, KeyError("first call")), _after(0.0, ValueError("second"))],
                   first_here=False)


@pytest.mark.parametrize("first_here", [False, True])
def test_patience_stops_a_part_far_slower_than_the_first(first_here: bool):
    """With ``Patience(factor, floor)``, once one part has ended the others get ``factor``
    times that long, at least ``floor`` seconds; a part past that is stopped (a ChildFailure
    naming it) and its process is gone; parts within it are waited for."""
    from bnnmlir.forked import ChildFailure, Patience, run_forked

    patience = Patience(factor=3.0, floor=2.0)
    assert run_forked([_after(0.1, 1), _after(0.5, 2)], first_here=first_here,
                      patience=patience) == [1, 2]
    start = time.monotonic()
    with pytest.raises(ChildFailure, match=r"part 1: no result [\d.]+ s after the start"):
        run_forked([_after(0.1, 1), _after(120, 2)], first_here=first_here, patience=patience)
    assert time.monotonic() - start < 30
    assert not multiprocessing.active_children()


def test_patience_scales_with_the_estimated_costs():
    """A part estimated at 20x the first one's cost gets 20x as long: not stopped at the first
    one's allowance."""
    from bnnmlir.forked import Patience, run_forked

    assert run_forked([_after(0.05, 1), _after(1.5, 2)], first_here=False,
                      patience=Patience(factor=2.0, floor=0.3, costs=(1.0, 20.0))) == [1, 2]


def test_a_quick_error_is_raised_and_a_stuck_part_stopped():
    """A part that fails starts the clock too: a stuck part is stopped, and the error raised is
    the failed part's own, not the stopped part's ChildFailure."""
    from bnnmlir.forked import Patience, run_forked

    start = time.monotonic()
    with pytest.raises(ValueError, match="quick error"):
        run_forked([_after(120, 1), _after(0.0, ValueError("quick error"))], first_here=False,
                   patience=Patience(factor=1.0, floor=0.5))
    assert time.monotonic() - start < 30
    assert not multiprocessing.active_children()


def test_a_stuck_part_with_its_own_sigterm_handler_is_stopped():
    """A child inherits this process's signal handlers: a handler that ignores SIGTERM must
    not keep a stuck part alive (the child restores the default action)."""
    import signal

    from bnnmlir.forked import ChildFailure, run_forked

    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        start = time.monotonic()
        with pytest.raises(ChildFailure, match="part 0: no result in time"):
            run_forked([_after(120, 1)], first_here=False, timeout=0.5)
        assert time.monotonic() - start < 30
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_patience_leaves_a_hard_timeout_in_force():
    from bnnmlir.forked import ChildFailure, Patience, run_forked

    with pytest.raises(ChildFailure, match="part 0: no result in time"):
        run_forked([_after(120, 1)], first_here=False, timeout=0.5, patience=Patience())


def test_release_memory_returns_the_free_heap():
    from bnnmlir.memory import _malloc_trim, release_memory

    release_memory()
    if os.uname().sysname == "Linux":
        assert _malloc_trim() is not None, "glibc's malloc_trim is found"
