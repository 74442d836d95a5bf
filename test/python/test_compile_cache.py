"""The compile cache of object code and the compile-time report: cached and uncached builds are
identical, damaged entries are rebuilt, concurrent writers both succeed, ``cache=False`` writes
nothing, the cache directory is honoured; progress goes to stderr only when asked."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import bnnmlir.compiler as compiler
from bnnmlir.backend.object_cache import MAGIC, ObjectCache, decode_entry, encode_entry
from bnnmlir.compiler import compile_module, parse_mlir
from bnnmlir.tools.cli import random_inputs

SOURCE = (resources.files("bnnmlir.examples") / "binary_conv_block.mlir").read_text()


def build(target: str, cache, **options):
    program = compile_module(parse_mlir(SOURCE), target=target, threads=1, cache=cache, **options)
    return program, program.object_code() if target == "aarch64" else program._host[0].object_code


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.o.bnn")) if directory.is_dir() else []


@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_cached_build_is_identical_to_uncached(tmp_path: Path, target: str):
    cold, cold_obj = build(target, tmp_path)
    assert cold.compile_times["cache hit"] == 0.0 and "LLVM opt" in cold.compile_times
    assert len(entries(tmp_path)) == 1
    warm, warm_obj = build(target, tmp_path)
    assert warm.compile_times["cache hit"] == 1.0 and "LLVM opt" not in warm.compile_times
    _, plain_obj = build(target, False)
    assert cold_obj == warm_obj == plain_obj
    if target == "host":
        inputs = random_inputs(parse_mlir(SOURCE), seed=3)
        for a, b in zip(cold(*inputs), warm(*inputs)):
            np.testing.assert_array_equal(a, b)


DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "flipped byte": lambda data: data[:-10] + bytes([data[-10] ^ 0x40]) + data[-9:],
    "wrong magic": lambda data: b"XXXXXXXX" + data[len(MAGIC) :],
    "empty": lambda data: b"",
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_entry_is_rebuilt(tmp_path: Path, damage: str):
    _, good = build("aarch64", tmp_path)
    (entry,) = entries(tmp_path)
    entry.write_bytes(DAMAGES[damage](entry.read_bytes()))
    assert decode_entry(entry.read_bytes()) is None
    program, rebuilt = build("aarch64", tmp_path)
    assert program.compile_times["cache hit"] == 0.0
    assert rebuilt == good
    assert decode_entry(entry.read_bytes()) == good


def test_entry_format_round_trips_and_checks_every_field():
    payload = bytes(range(256)) * 3
    data = encode_entry(payload)
    assert data.startswith(MAGIC) and decode_entry(data) == payload
    assert decode_entry(data + b"\0") is None  # length mismatch
    assert decode_entry(data[:-1] + bytes([data[-1] ^ 1])) is None  # checksum
    version_changed = data[:8] + (2).to_bytes(4, "little") + data[12:]
    assert decode_entry(version_changed) is None


def test_unwritable_cache_still_compiles(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = ObjectCache(blocker / "objects")
    data, hit = cache.get_or_make("k", lambda: b"code")
    assert (data, hit) == (b"code", False) and cache.load("k") is None


def test_cache_false_writes_nothing(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BNNMLIR_CACHE_DIR", str(tmp_path))
    program, _ = build("aarch64", False)
    assert "cache hit" not in program.compile_times
    assert not (tmp_path / "objects").exists()


def test_cache_dir_is_honoured(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BNNMLIR_CACHE_DIR", str(tmp_path / "env"))
    build("aarch64", None)
    assert len(entries(tmp_path / "env" / "objects")) == 1
    monkeypatch.delenv("BNNMLIR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    build("aarch64", True)
    assert len(entries(tmp_path / "xdg" / "bnnmlir" / "objects")) == 1


CONCURRENT = """
import sys
from bnnmlir.compiler import compile_module, parse_mlir
source = open(sys.argv[1]).read()
program = compile_module(parse_mlir(source), target="aarch64", threads=1, cache=sys.argv[2])
sys.stdout.buffer.write(program.object_code())
"""


def test_concurrent_writers_both_succeed(tmp_path: Path):
    source = tmp_path / "block.mlir"
    source.write_text(SOURCE)
    cache = tmp_path / "cache"
    command = [sys.executable, "-c", CONCURRENT, str(source), str(cache)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    results = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err.decode() for _, err in results]
    assert results[0][0] == results[1][0]
    (entry,) = entries(cache)
    assert decode_entry(entry.read_bytes()) == results[0][0]
    assert not list(cache.glob("*.tmp"))


def test_compile_times_and_report(tmp_path: Path):
    program, _ = build("host", tmp_path)
    steps = list(program.compile_times)
    assert steps[:4] == ["optimized", "buffers", "loops", "llvm"]
    assert {"LLVM IR", "LLVM opt", "LLVM codegen", "cache hit"} <= set(steps)
    assert all(seconds >= 0 for seconds in program.compile_times.values())
    text = program.compile_time_report()
    for step in (*steps[:4], "LLVM opt", "total"):
        assert step in text
    assert "cache hit" not in text.split("\n", 1)[1].split("object code")[0]


@pytest.mark.parametrize("enabled", [True, False])
def test_progress_bar_on_stderr_only_when_asked(tmp_path: Path, capsys, monkeypatch, enabled):
    monkeypatch.setattr(compiler, "PROGRESS_DELAY", 0.0)
    build("host", tmp_path, progress=enabled)
    captured = capsys.readouterr()
    assert captured.out == ""
    if enabled:
        assert "bnnmlir compile" in captured.err and "5/5" in captured.err
    else:
        assert "bnnmlir compile" not in captured.err


def programs(directory: Path) -> list[Path]:
    return entries(directory / "programs")


@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_cached_program_runs_no_pass_and_equals_the_compiled_one(tmp_path: Path, monkeypatch,
                                                                target: str):
    cold, cold_obj = build(target, tmp_path)
    assert len(programs(tmp_path)) == 1
    ran = []
    monkeypatch.setattr(compiler.StageRunner, "run",
                        lambda self, module, stage: ran.append(stage))
    warm, warm_obj = build(target, tmp_path)
    assert ran == [] and warm.compile_times["cache hit"] == 1.0
    assert "optimized" not in warm.compile_times and warm_obj == cold_obj
    assert warm.signature == cold.signature
    assert warm.layer_report() == cold.layer_report()
    monkeypatch.undo()
    for stage in cold.stage_names:  # stages of a cached program are made again on demand
        assert warm.mlir(stage) == cold.mlir(stage)
    if target == "host":
        inputs = random_inputs(parse_mlir(SOURCE), seed=5)
        for a, b in zip(cold(*inputs), warm(*inputs)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", ["flipped byte", "empty"])
def test_damaged_program_entry_is_rebuilt(tmp_path: Path, damage: str):
    _, good = build("aarch64", tmp_path)
    (entry,) = programs(tmp_path)
    entry.write_bytes(DAMAGES[damage](entry.read_bytes()))
    program, rebuilt = build("aarch64", tmp_path)
    assert "optimized" in program.compile_times and rebuilt == good
    assert decode_entry(entry.read_bytes()) is not None


def test_program_key_depends_on_options_and_constants(tmp_path: Path):
    build("aarch64", tmp_path)
    build("host", tmp_path)
    program = compile_module(parse_mlir(SOURCE), target="aarch64", threads=2, cache=tmp_path)
    assert "optimized" in program.compile_times
    head = "%w3 = arith.constant dense<[[[[ 1,"
    assert SOURCE.count(head) == 1
    changed = compile_module(parse_mlir(SOURCE.replace(head, head[:-2] + "-1,")),
                             target="aarch64", threads=1, cache=tmp_path)
    assert "optimized" in changed.compile_times
    assert len(programs(tmp_path)) == 4


def test_program_key_depends_on_the_lowering_settings(tmp_path: Path, monkeypatch):
    """A forced block plan (``BNNMLIR_BCONV_BLOCK``) or another row-copy threshold makes other
    code: the cached program of the default settings is not reused for it."""
    from bnnmlir.passes.loops import bconv_plan, lowering

    build("host", tmp_path)
    monkeypatch.setattr(lowering, "MIN_UNCHECKED_ROWS_MACS", 0)
    assert "optimized" in build("host", tmp_path)[0].compile_times
    monkeypatch.setenv(bconv_plan.FORCE_ENV, "1,1")
    assert "optimized" in build("host", tmp_path)[0].compile_times
    assert "cache hit" in build("host", tmp_path)[0].compile_times
    assert len(programs(tmp_path)) == 3


def test_signatures_round_trip_through_program_entries():
    from bnnmlir.batch import BatchSignature
    from bnnmlir.compiler import ArgumentSpec, Signature
    from bnnmlir.program_cache import decode_signature, encode_signature

    inputs = (ArgumentSpec((1, 3, 5), np.dtype(np.float32)), ArgumentSpec((2,), np.dtype(np.int8)))
    outputs = (ArgumentSpec((1, 10), np.dtype(np.int32)),)
    for signature in (Signature("forward", inputs, outputs, 4096),
                      BatchSignature("forward", inputs, outputs, 4096, 2)):
        decoded = decode_signature(encode_signature(signature))
        assert decoded == signature and type(decoded) is type(signature)
