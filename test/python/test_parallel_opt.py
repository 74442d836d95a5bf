"""LLVM optimization split over processes (bnnmlir.backend.parallel_opt), the op-type walk of
convert-bnn-to-llvm and the garbage-collector pause of a compile."""

from __future__ import annotations

import gc
import re

import numpy as np
import pytest
import torch
from conftest import requires_aarch64
from xdsl.dialects import func, memref
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriteWalker
from xdsl.transforms.convert_scf_to_cf import ConvertScfToCf

import bnnmlir
from bnnmlir.backend import llvm_codegen, object_bundle
from bnnmlir.backend.parallel_opt import (
    _referenced_names,
    balanced_groups,
    in_function_order,
    split_module,
)
from bnnmlir.compiler import StageRunner, make_context
from bnnmlir.gc_pause import paused_gc
from bnnmlir.models import cifar10_net
from bnnmlir.passes import convert_to_llvm as conversion
from bnnmlir.passes.outline_parallel_loops import OutlineParallelLoopsPass
from bnnmlir.target import host_target


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(3)
    return cifar10_net().eval(), torch.randn(2, 3, 32, 32)


@pytest.fixture(scope="module")
def loop_ir(network):
    """The loop-level IR and the LLVM IR text of the network for two threads (several
    functions: the outlined parallel loops)."""
    model, x = network
    compiled = bnnmlir.compile(model, (x,), threads=2, cache=False, jit=False)
    llvm_stage = compiled.program.mlir_module("llvm")  # the one-process pipeline's IR
    return compiled.program.mlir_module("loops"), llvm_codegen.to_llvm_ir(llvm_stage,
                                                                          host_target())


def test_split_module_groups_every_function_once(loop_ir):
    _, text = loop_ir
    split = split_module(text)
    names = [f.name for f in split.functions]
    assert len(names) > 2 and len(set(names)) == len(names)
    groups = balanced_groups(split.functions, 2)
    assert len(groups) == 2 and groups[0] | groups[1] == set(names)
    assert not groups[0] & groups[1]
    for group in groups:
        module = llvm_codegen.parse_ir(split.group_text(group))
        defined = {f.name for f in module.functions if not f.is_declaration}
        assert defined == group


def test_a_group_holds_the_globals_its_functions_read_and_no_other(loop_ir):
    """Globals are not copied into every group: a group's text has those its function bodies
    mention (and the globals these point to); LLVM would drop the others anyway."""
    _, text = loop_ir
    split = split_module(text)
    globals_ = {line[1:].split(" = ", 1)[0].strip('"') for line in split.globals}
    seen = set()
    for group in balanced_groups(split.functions, 2):
        module = llvm_codegen.parse_ir(split.group_text(group))
        kept = {g.name for g in module.global_variables}
        bodies = [line for f in split.functions if f.name in group for line in f.lines]
        assert kept == _referenced_names(bodies) & globals_
        seen |= kept
    every_body = [line for f in split.functions for line in f.lines]
    assert seen == _referenced_names(every_body) & globals_


def _linkages(module) -> dict[str, str]:
    return {f.name: str(f.linkage) for f in module.functions if not f.is_declaration}


def test_parallel_optimization_gives_the_serial_functions_and_linkage(loop_ir, monkeypatch):
    _, text = loop_ir
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "1")
    serial = llvm_codegen.optimize(text, host_target())
    monkeypatch.setattr(llvm_codegen, "PARALLEL_MIN_CHARS", 0)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    assert llvm_codegen.optimization_parts(text) == 2
    parallel = llvm_codegen.optimize(text, host_target())
    assert _linkages(parallel) == _linkages(serial)
    for name in _linkages(serial):
        assert _code(parallel.get_function(name)) == _code(serial.get_function(name))
    defined = [f.name for f in parallel.functions if not f.is_declaration]
    assert defined == [f.name for f in split_module(text).functions]  # the order of the text


def test_function_order_moves_only_definitions():
    text = "\n".join(["; header", "define void @b() {", "  ret void", "}", "",
                      "declare void @x()", "", "; Function Attrs: nounwind",
                      "define void @a() {", "  ret void", "}", "attributes #0 = { nounwind }"])
    assert in_function_order(text, ["a", "b"]).split("\n") == [
        "; header", "; Function Attrs: nounwind", "define void @a() {", "  ret void", "}", "",
        "declare void @x()", "", "define void @b() {", "  ret void", "}",
        "attributes #0 = { nounwind }"]
    assert in_function_order(text, ["b", "a"]) == text


def _code(function) -> str:
    """A function's body in LLVM IR up to the names of globals, the numbers of attribute groups
    and metadata, and comments (a group has fewer globals, attribute sets and loop metadata than
    the whole module); its ``define`` line is left out: LLVM infers parameter attributes from
    the callees it sees (the entry point's output is ``writeonly`` when the layers that write
    it are in its group)."""
    body = str(function).split("{\n", 1)[1]
    text = re.sub(r"@__bnn_[\w.]+", "@G", body)
    text = re.sub(r"[#!]\d+", "#N", text)  # attribute groups, metadata
    return re.sub(r";.*", "", text)


def test_parallel_optimization_computes_the_same_outputs(network, monkeypatch):
    model, x = network
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "1")
    serial = bnnmlir.compile(model, (x,), threads=2, cache=False)
    monkeypatch.setattr(llvm_codegen, "PARALLEL_MIN_CHARS", 0)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    parallel = bnnmlir.compile(model, (x,), threads=2, cache=False)
    for seed in range(3):
        torch.manual_seed(seed)
        inputs = torch.randn(2, 3, 32, 32)
        assert np.array_equal(np.asarray(serial(inputs)), np.asarray(parallel(inputs)))


def test_jit_of_parts_loads_one_object_per_part(network, monkeypatch):
    """Optimized and compiled in parts, the host JIT gets one object per part (a bundle), whose
    functions call each other across objects."""
    model, x = network
    monkeypatch.setattr(llvm_codegen, "PARALLEL_MIN_CHARS", 0)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    compiled = bnnmlir.compile(model, (x,), threads=2, cache=False)
    jit = compiled.program._host[0]
    assert len(object_bundle.unbundle(jit.object_code)) == 2
    assert "LLVM opt+codegen" in compiled.compile_times
    assert np.array_equal(np.asarray(compiled(x)), model(x).detach().numpy())


@requires_aarch64
def test_object_of_parts_for_aarch64_computes_the_serial_outputs(network, monkeypatch):
    """For a target object (one ELF file) each part is optimized and compiled by its worker and
    the objects merged into one: the same outputs as the one-process object, under qemu."""
    model, x = network
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "1")
    serial = bnnmlir.compile(model, (x,), target="aarch64", cache=False).program
    monkeypatch.setattr(llvm_codegen, "PARALLEL_MIN_CHARS", 0)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    parts = bnnmlir.compile(model, (x,), target="aarch64", cache=False).program
    code = parts.object_code()
    assert code.startswith(b"\x7fELF") and "LLVM opt+codegen" in parts.compile_times
    inputs = x.numpy()
    for got, want in zip(parts.run_aarch64(inputs), serial.run_aarch64(inputs), strict=True):
        assert np.array_equal(got, want)


def test_object_bundle_round_trip_and_damage():
    objects = [b"\x7fELF one", b"\x7fELF two", b"\x7fELF three"]
    data = object_bundle.bundle(objects)
    assert object_bundle.unbundle(data) == objects
    assert object_bundle.bundle(objects[:1]) == objects[0]  # one object is stored as it is
    assert object_bundle.unbundle(objects[0]) == objects[:1]
    for damaged in (data[:-1], data + b"x", object_bundle.MAGIC + b"[3, x]\n",
                    object_bundle.MAGIC + b"[0]\n", object_bundle.MAGIC):
        with pytest.raises(ValueError, match="damaged object bundle"):
            object_bundle.unbundle(damaged)


def test_object_cache_key_names_the_parts(loop_ir, monkeypatch, tmp_path):
    _, text = loop_ir
    keys_by_parts = []
    monkeypatch.setattr(llvm_codegen, "PARALLEL_MIN_CHARS", 0)
    for jobs in ("1", "2"):
        monkeypatch.setenv("BNNMLIR_LLVM_JOBS", jobs)
        keys: dict[str, str] = {}
        llvm_codegen.emit_object(text, host_target(), cache=tmp_path, keys=keys)
        keys_by_parts.append(keys["pic"])
    assert keys_by_parts[0] != keys_by_parts[1]


def test_op_type_walk_rewrites_as_the_greedy_walker(loop_ir):
    """rewrite_by_op_type applies the same patterns in the same order as the greedy walker it
    replaces: the same llvm-dialect module."""
    loops, _ = loop_ir
    target = host_target()
    results = []
    for walk in ("greedy", "op type"):
        module = loops.clone()
        ctx = make_context()
        OutlineParallelLoopsPass().apply(ctx, module)
        ConvertScfToCf().apply(ctx, module)
        PatternRewriteWalker(conversion.RetypeBlockArguments(), apply_recursively=False,
                             walk_regions_first=False).rewrite_module(module)
        patterns = conversion.body_patterns(target)
        ends = {func.FuncOp: conversion.FuncToLLVM(), memref.GlobalOp: conversion.GlobalToLLVM()}
        if walk == "greedy":
            unique = list({id(p): p for p in patterns.values()}.values())
            for group in (unique, list(ends.values())):
                PatternRewriteWalker(GreedyRewritePatternApplier(group),
                                     apply_recursively=False).rewrite_module(module)
        else:
            conversion.rewrite_by_op_type(module, patterns)
            conversion.rewrite_by_op_type(module, ends)
        results.append(str(module))
    assert results[0] == results[1]


def test_stage_runner_llvm_stage_is_unchanged_by_the_walk(loop_ir):
    loops, _ = loop_ir
    module = loops.clone()
    StageRunner(host_target(), 2, "forward", False).run(module, "llvm")
    conversion.check_llvm_only(module)


def test_paused_gc_nests_and_restores_the_collector():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled(), "a collector disabled before stays disabled"
    finally:
        gc.enable()


@pytest.mark.parametrize("jobs", ["two", "-1", "1.5"])
def test_bad_job_count_is_a_clear_error(jobs, monkeypatch):
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", jobs)
    text = "define void @f() {\n  ret void\n}\n"
    with pytest.raises(ValueError, match="BNNMLIR_LLVM_JOBS must be a positive number"):
        llvm_codegen.optimization_parts(text + " " * llvm_codegen.PARALLEL_MIN_CHARS)


@pytest.mark.parametrize("make", ["optimized module", "JIT objects", "target object"])
@pytest.mark.parametrize("flaw", ["foreign intrinsic", "undeclared intrinsic", "invalid IR"])
def test_parts_refuse_what_one_process_refuses(loop_ir, monkeypatch, flaw, make):
    """Optimized in parts, the whole text is not parsed in this process: an intrinsic of another
    architecture and IR that LLVM's verifier rejects are still refused before any optimization
    (LLVM would abort on them): a ValueError here, a failed worker's RuntimeError there (both
    a CompileError for the user)."""
    from bnnmlir.target import get_target

    _, text = loop_ir
    if flaw == "foreign intrinsic":
        target, bad = get_target("aarch64"), text
    elif flaw == "undeclared intrinsic":  # LLVM parses a call of an intrinsic never declared
        target = host_target()
        bad = text + ("\ndefine void @foreign() {\nentry:\n  call void @llvm.aarch64.hint(i32 1)\n"
                      "  ret void\n}\n")
    else:  # a function whose block does not end with a terminator
        target = host_target()
        bad = text + "\ndefine void @no_terminator() {\nentry:\n  %x = add i32 1, 2\n}\n"
    monkeypatch.setattr(llvm_codegen, "PARALLEL_MIN_CHARS", 0)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    assert llvm_codegen.optimization_parts(bad) == 2
    with pytest.raises((ValueError, RuntimeError), match="specific to|LLVM rejects"):
        if make == "optimized module":
            llvm_codegen.optimize(bad, target)
        else:
            llvm_codegen.compile_object(bad, target, jit=make == "JIT objects")


def test_unknown_worker_task_is_refused():
    from bnnmlir.backend.llvm_pipeline import Pipeline
    from bnnmlir.backend.parallel_opt import _run_worker

    with pytest.raises(RuntimeError, match="unknown LLVM worker task 'assemble'"):
        _run_worker("assemble", [b""], llvm_codegen.machine_spec(host_target()), Pipeline())


def test_only_modules_of_internal_constants_are_split(monkeypatch):
    """A writable or exported global would become two variables, or be defined twice or by no
    part: such a module (hand-written LLVM dialect) is optimized in one process."""
    from bnnmlir.backend.parallel_opt import only_internal_constants

    monkeypatch.setattr(llvm_codegen, "PARALLEL_MIN_CHARS", 0)
    monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
    functions = "".join(f"define i64 @f{k}() {{\n  %v = load i64, ptr @g\n  ret i64 %v\n}}\n"
                        for k in range(2))
    for line, split in [('@g = internal constant i64 1', True),
                        ('@g = private unnamed_addr constant i64 1', True),
                        ('@g = internal global i64 0', False),
                        ('@g = global i64 0', False)]:
        text = line + "\n" + functions
        assert only_internal_constants(text) == split
        assert llvm_codegen.optimization_parts(text) == (2 if split else 1)
