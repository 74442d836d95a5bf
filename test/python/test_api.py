"""``bnnmlir.compile`` and the ``bnnmlir compile`` command: calling, checking, inspecting, saving."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_aarch64, requires_gcc
from torch_models import binary_net

import bnnmlir
from bnnmlir.tools.cli import main as cli_main


@pytest.fixture(scope="module")
def compiled():
    model = binary_net()
    return model, bnnmlir.compile(model, (torch.randn(2, 3, 9, 9),), threads=2)


def test_outputs_equal_pytorch(compiled):
    model, cm = compiled
    for seed in range(3):
        x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(seed))
        y = cm(x)
        assert y.dtype == torch.float32 and y.shape == (2, 12, 5, 5)
        assert torch.equal(y, model(x))


def test_wrong_inputs_raise(compiled):
    _, cm = compiled
    with pytest.raises(ValueError, match=r"must have shape \[2, 3, 9, 9\]"):
        cm(torch.randn(1, 3, 9, 9))
    with pytest.raises(TypeError, match="must have dtype torch.float32"):
        cm(torch.randn(2, 3, 9, 9, dtype=torch.float64))
    with pytest.raises(TypeError, match="takes 1 inputs, got 2"):
        cm(torch.randn(2, 3, 9, 9), torch.randn(2, 3, 9, 9))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        cm(np.zeros((2, 3, 9, 9), np.float32))


def test_report_names_layers_and_accumulators(compiled):
    _, cm = compiled
    report = cm.report()
    rows = {r.layer: r for r in report.rows}
    assert rows["0"].kind == "binary" and rows["0"].accumulator.startswith("i8")
    assert rows["3"].kind == "binary" and rows["3"].macs == 2 * 5 * 5 * 12 * 9 * 16
    assert "layer" in str(report) and "MACs" in str(report)


def test_report_shows_compile_times(compiled):
    _, cm = compiled
    times = cm.compile_times
    if "optimized" in times:  # compiled
        assert list(times)[:6] == ["import", "optimized", "buffers", "loops", "llvm",
                                   "cache lookup"]
        assert "LLVM IR" in times and "cache hit" in times
    elif "model cache" in times:  # the model compiled in an earlier run: no import
        assert list(times) == ["model cache", "cache hit"] and times["cache hit"]
    else:  # the whole program from the compile cache of an earlier run
        assert list(times) == ["import", "cache lookup", "cache hit"] and times["cache hit"]
    first = list(times)[0]
    assert times[first] > 0 and all(seconds >= 0 for seconds in times.values())
    text = str(cm.report())
    assert "compile time" in text and first in text and "total" in text


def test_every_stage_is_inspectable(compiled):
    _, cm = compiled
    assert "bnn.bconv2d" in cm.mlir("imported")
    assert "bnn.batch_norm" in cm.mlir("imported")
    assert "bnn.batch_norm" not in cm.mlir("optimized")
    assert "memref.view" in cm.mlir("buffers")
    assert "bnn.narrow_acc" in cm.mlir("loops")
    assert "llvm.func" in cm.mlir("llvm")
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        cm.mlir("nope")


def test_large_constants_are_elided_unless_asked(compiled):
    """``mlir(stage)`` elides the weights; ``elide_larger_than=None`` prints them in full, and
    that text parses back to the same IR (same text, same generic form)."""
    from bnnmlir.compiler import parse_mlir
    from bnnmlir.ir_print import print_ir

    _, cm = compiled
    for stage in ("imported", "optimized", "buffers", "llvm"):
        elided, full = cm.mlir(stage), cm.mlir(stage, elide_larger_than=None)
        assert "dense_resource<__elided__>" in elided and "__elided__" not in full
        assert len(elided) < len(full)
        parsed = parse_mlir(full)
        assert print_ir(parsed) == full
        if stage != "llvm":  # xDSL's custom llvm.func form drops its unnamed_addr property
            module = cm.program.mlir_module(stage)
            assert print_ir(parsed, generic=True) == print_ir(module, generic=True)
    assert "__elided__" not in cm.mlir("optimized", elide_larger_than=10**9)
    with pytest.raises(ValueError, match="elide_larger_than"):
        cm.mlir("optimized", elide_larger_than=-1)


MAIN_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
int main(int argc, char **argv) {
    float in[BNNMLIR_INPUT0_BYTES / 4], out[BNNMLIR_OUTPUT0_BYTES / 4];
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(in, 1, sizeof in, f) != sizeof in) return 2;
    fclose(f);
    void *arena = bnnmlir_arena_alloc(BNNMLIR_ARENA_BYTES);
    bnnmlir_set_num_threads(2);
    forward(in, out, arena);
    bnnmlir_arena_free(arena);
    fwrite(out, 1, sizeof out, stdout);
    return 0;
}
"""


@requires_aarch64
def test_saved_object_links_and_runs_under_qemu(compiled, tmp_path: Path):
    model, cm = compiled
    out = cm.save(tmp_path / "deploy", target="aarch64-linux-gnu", threads=2)
    assert {p.name for p in out.iterdir()} >= {"model.o", "model.h", "runtime"}
    (out / "main.c").write_text(MAIN_C)
    sources = sorted(str(p) for p in (out / "runtime").glob("*.c"))
    subprocess.run(
        ["aarch64-linux-gnu-gcc", "-O2", "-static", "-I", str(out), str(out / "main.c"),
         str(out / "model.o"), *sources, "-lpthread", "-o", str(out / "prog")],
        check=True,
    )
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(7))
    (out / "x.bin").write_bytes(x.numpy().tobytes())
    run = subprocess.run(["qemu-aarch64", str(out / "prog"), str(out / "x.bin")], check=True,
                         capture_output=True, timeout=300)
    y = torch.from_numpy(np.frombuffer(run.stdout, dtype=np.float32).reshape(2, 12, 5, 5).copy())
    assert torch.equal(y, model(x))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    torch.export.save(torch.export.export(binary_net(), (torch.randn(2, 3, 9, 9),)), path)
    return path


def test_compile_command_writes_deployment(archive: Path, tmp_path: Path, capsys):
    assert cli_main(["compile", str(archive), "-o", str(tmp_path / "out"), "--emit", "optimized"]) == 0
    assert (tmp_path / "out" / "model.o").read_bytes()[:4] == b"\x7fELF"
    assert "void forward(const float *input0, float *output0, void *arena);" in (
        tmp_path / "out" / "model.h").read_text()
    assert "bnn.bconv2d" in (tmp_path / "out" / "model.optimized.mlir").read_text()
    assert "binary" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--progress", "--no-progress"])
def test_compile_command_progress(archive: Path, tmp_path: Path, capsys, monkeypatch, flag):
    import bnnmlir.compiler as compiler

    monkeypatch.setattr(compiler, "PROGRESS_DELAY", 0.0)
    monkeypatch.setenv("BNNMLIR_CACHE_DIR", str(tmp_path / "cache"))
    assert cli_main(["compile", str(archive), "-o", str(tmp_path / "out"), flag]) == 0
    err = capsys.readouterr().err
    assert ("bnnmlir compile" in err) == (flag == "--progress")


def test_compile_command_entry_name(archive: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert cli_main(["compile", str(archive), "-o", str(out), "-t", "aarch64", "--threads", "2",
                     "--entry", "bnn_classify"]) == 0
    assert "void bnn_classify(const float *input0, float *output0, void *arena);" in (
        out / "model.h").read_text()
    # Every symbol is named after the entry (tasks of split layers too: bnn_classify_taskK).
    obj = (out / "model.o").read_bytes()
    assert b"bnn_classify\0" in obj and b"forward" not in obj


def test_compile_command_reports_bad_files(tmp_path: Path, capsys):
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    assert cli_main(["compile", str(tmp_path / "junk.pt2"), "-o", str(tmp_path / "o")]) == 1
    assert "not a torch.export archive" in capsys.readouterr().err
    assert cli_main(["compile", str(tmp_path / "missing.pt2"), "-o", str(tmp_path / "o")]) == 1
    assert "no such file" in capsys.readouterr().err


# ---- training flags, eager JIT, code caching, entry name ------------------------------------


def test_compile_restores_training_flags():
    model = binary_net()
    model.train()
    model[2].eval()  # a mix of flags must come back as it was
    before = [m.training for m in model.modules()]
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(3))
    cm = bnnmlir.compile(model, (x,), threads=1)
    assert [m.training for m in model.modules()] == before
    model.eval()
    assert torch.equal(cm(x), model(x))


def test_host_code_is_built_at_compile_time(compiled, monkeypatch):
    model, cm = compiled
    assert cm.program.host_ready

    def no_build(*args, **kwargs):
        raise AssertionError("a call compiled code")

    import bnnmlir.backend.jit as jit

    monkeypatch.setattr(jit, "JitModule", no_build)
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(4))
    assert torch.equal(cm(x), model(x))


def test_code_generation_errors_surface_at_compile_time(monkeypatch):
    import bnnmlir.backend.jit as jit

    def failing(*args, **kwargs):
        raise RuntimeError("LLVM ERROR: simulated")

    monkeypatch.setattr(jit, "JitModule", failing)
    with pytest.raises(bnnmlir.CompileError, match="host code generation failed.*simulated"):
        bnnmlir.compile(binary_net(), (torch.randn(2, 3, 9, 9),), threads=1, cache=False)
    from bnnmlir.api import compile as compile_model

    lazy = compile_model(binary_net(), (torch.randn(2, 3, 9, 9),), threads=1, jit=False)
    assert not lazy.program.host_ready


@pytest.fixture
def count_emits(monkeypatch):
    import bnnmlir.backend.llvm_codegen as codegen

    calls = []
    real = codegen.emit_object

    def counting(module, target, **options):
        calls.append(target.name)
        return real(module, target, **options)

    monkeypatch.setattr(codegen, "emit_object", counting)
    return calls


def test_object_code_is_made_once_per_target(tmp_path: Path, count_emits):
    cm = bnnmlir.compile(binary_net(), (torch.randn(2, 3, 9, 9),), threads=2, cache=False)
    first = cm.save(tmp_path / "a", target="aarch64", threads=2)
    second = cm.save(tmp_path / "b", target="aarch64-linux-gnu", threads=2)
    assert (first / "model.o").read_bytes() == (second / "model.o").read_bytes()
    program = cm.program_for("aarch64", threads=2)
    assert program.object_code() is program.object_code()
    assert count_emits == ["aarch64"]
    cm.save(tmp_path / "c", target="aarch64", threads=1)
    cm.save(tmp_path / "d", target="host")
    assert count_emits == ["aarch64", "aarch64", "host"]
    assert cm.program_for("host") is cm.program  # the host program made by compile


@requires_aarch64
def test_run_aarch64_reuses_the_object(count_emits):
    model = binary_net()
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(5))
    cm = bnnmlir.compile(model, (x,), target="aarch64", cache=False)
    assert torch.equal(cm(x), model(x))
    assert torch.equal(cm(x), model(x))
    assert count_emits == ["aarch64"]


HOST_MAIN_C = MAIN_C.replace("forward(in, out, arena);", "classify(in, out, arena);")


@requires_gcc
@pytest.mark.parametrize("in_parts", [False, True], ids=["one-object", "merged-parts"])
def test_saved_host_object_with_entry_name_runs(compiled, tmp_path: Path, monkeypatch, in_parts):
    """The saved object links and computes the model, also when it is the merged objects of
    a module compiled in parts (bnnmlir.backend.elf_merge)."""
    model, cm = compiled
    if in_parts:
        from bnnmlir.backend import llvm_codegen

        monkeypatch.setattr(llvm_codegen, "PARALLEL_MIN_CHARS", 0)
        monkeypatch.setenv("BNNMLIR_LLVM_JOBS", "2")
        cm = bnnmlir.compile(model, (torch.randn(2, 3, 9, 9),), threads=2, cache=False)
    out = cm.save(tmp_path / "deploy", target="host", threads=2, entry="classify")
    sections = subprocess.run(["readelf", "-S", "-W", str(out / "model.o")], check=True,
                              capture_output=True, text=True).stdout
    assert len(re.findall(r"\] \.text ", sections)) == (2 if in_parts else 1)
    header = (out / "model.h").read_text()
    assert "void classify(const float *input0, float *output0, void *arena);" in header
    assert "forward" not in header
    obj = (out / "model.o").read_bytes()
    assert b"classify\0" in obj and b"forward\0" not in obj
    (out / "main.c").write_text(HOST_MAIN_C)
    sources = sorted(str(p) for p in (out / "runtime").glob("*.c"))
    subprocess.run(["gcc", "-O2", "-I", str(out), str(out / "main.c"), str(out / "model.o"),
                    *sources, "-lpthread", "-o", str(out / "prog")], check=True)
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(8))
    (out / "x.bin").write_bytes(x.numpy().tobytes())
    run = subprocess.run([str(out / "prog"), str(out / "x.bin")], check=True,
                         capture_output=True, timeout=60)
    y = torch.from_numpy(np.frombuffer(run.stdout, dtype=np.float32).reshape(2, 12, 5, 5).copy())
    assert torch.equal(y, model(x))


@pytest.mark.parametrize(
    "entry, message",
    [
        ("not-a-name", "not a C identifier"),
        ("int", "reserved"),
        ("main", "reserved"),
        ("__x", "reserved"),
        ("bool", "reserved"),
        ("class", "reserved"),
        ("malloc", "C library function"),
        ("memset", "C library function"),
        ("sin", "C library function"),
        ("bnnmlir_forward", "runtime's prefix"),
    ],
)
def test_bad_entry_names_are_refused(compiled, tmp_path: Path, entry, message):
    _, cm = compiled
    with pytest.raises(ValueError, match=message):
        cm.save(tmp_path, target="aarch64", entry=entry)



@pytest.mark.parametrize(
    "target, threads, message",
    [("aarch64", 0, "threads must be at least 1"), ("riscv", 1, "target")],
)
def test_bad_save_arguments_are_refused(compiled, tmp_path: Path, target, threads, message):
    _, cm = compiled
    with pytest.raises(ValueError, match=message):
        cm.save(tmp_path, target=target, threads=threads)
