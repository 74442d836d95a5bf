"""Objects of a module's parts merged into one relocatable object (bnnmlir.backend.elf_merge),
checked by a real linker: GNU ld links the merged object into a shared library, and the
functions compute what the one-object build of the same code computes."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import llvmlite.binding as llvm
import pytest
from conftest import requires_cross_gcc, requires_gcc

from bnnmlir.backend.elf_merge import merge_objects
from bnnmlir.backend.llvm_codegen import create_target_machine, initialize_llvm
from bnnmlir.target import get_target, host_target

# Part A calls @g of part B and reads its own table; part B reads a table of the same name (each
# part's internal constant is its own), and also exports @h.
PART_A = """
@table = internal constant [4 x i32] [i32 1, i32 2, i32 3, i32 4]
declare i32 @g(i32)
define i32 @f(i32 %x) {
  %i = and i32 %x, 3
  %p = getelementptr [4 x i32], ptr @table, i32 0, i32 %i
  %t = load i32, ptr %p
  %y = call i32 @g(i32 %x)
  %r = add i32 %t, %y
  ret i32 %r
}
"""
PART_B = """
@table = internal constant [4 x i32] [i32 100, i32 200, i32 300, i32 400]
@count = global i32 7
define i32 @g(i32 %x) noinline {
  %i = lshr i32 %x, 2
  %j = and i32 %i, 3
  %p = getelementptr [4 x i32], ptr @table, i32 0, i32 %j
  %t = load i32, ptr %p
  %c = load i32, ptr @count
  %r = mul i32 %t, %c
  ret i32 %r
}
define i32 @h(i32 %x) {
  %r = call i32 @g(i32 %x)
  ret i32 %r
}
"""
WHOLE = PART_A.replace("declare i32 @g(i32)\n", "") + PART_B.replace("@table", "@table_b")


def _object(text: str, target: str = "host") -> bytes:
    initialize_llvm()
    info = host_target() if target == "host" else get_target(target)
    module = llvm.parse_assembly(text)
    module.triple = info.triple
    return create_target_machine(info).emit_object(module)


def _shared_library(obj: bytes, path: Path) -> ctypes.CDLL:
    (path / "code.o").write_bytes(obj)
    subprocess.run(["gcc", "-shared", "-o", str(path / "code.so"), str(path / "code.o")],
                   check=True, capture_output=True)
    return ctypes.CDLL(str(path / "code.so"))


def _expected(x: int) -> int:
    return (1, 2, 3, 4)[x & 3] + (100, 200, 300, 400)[(x >> 2) & 3] * 7


@requires_gcc
def test_merged_parts_link_and_compute_what_one_object_computes(tmp_path):
    merged = merge_objects([_object(PART_A), _object(PART_B)], frozenset({"g"}))
    (tmp_path / "whole").mkdir()
    (tmp_path / "merged").mkdir()
    whole = _shared_library(_object(WHOLE), tmp_path / "whole")
    library = _shared_library(merged, tmp_path / "merged")
    for x in range(16):
        assert library.f(x) == whole.f(x) == _expected(x)
        assert library.h(x) == whole.g(x)
    with pytest.raises(AttributeError):
        library.g  # noqa: B018 - a local symbol of the merged object is not exported


@requires_gcc
def test_undefined_references_stay_undefined_once(tmp_path):
    """A symbol no part defines (here ``g``, left out) stays one undefined entry: the linker
    reports it as missing, as it would for one object."""
    merged = merge_objects([_object(PART_A), _object(PART_A.replace("@f(", "@f2("))])
    (tmp_path / "code.o").write_bytes(merged)
    run = subprocess.run(["gcc", "-shared", "-Wl,--no-undefined", "-o",
                          str(tmp_path / "code.so"), str(tmp_path / "code.o")],
                         capture_output=True, text=True)
    assert run.returncode != 0 and "undefined reference to `g'" in run.stderr


@requires_cross_gcc
def test_merged_aarch64_parts_link(tmp_path):
    merged = merge_objects([_object(PART_A, "aarch64"), _object(PART_B, "aarch64")],
                           frozenset({"g"}))
    (tmp_path / "code.o").write_bytes(merged)
    subprocess.run(["aarch64-linux-gnu-gcc", "-shared", "-o", str(tmp_path / "code.so"),
                    str(tmp_path / "code.o")], check=True, capture_output=True)
    symbols = subprocess.run(["aarch64-linux-gnu-nm", "-D", str(tmp_path / "code.so")],
                             check=True, capture_output=True, text=True).stdout.split()
    assert "f" in symbols and "h" in symbols and "g" not in symbols


def test_one_object_without_locals_is_returned_as_it_is():
    obj = _object(PART_A)
    assert merge_objects([obj]) == obj


@pytest.mark.parametrize("objects, local, message", [
    (lambda: [_object(PART_B), _object(PART_B)], frozenset(), "symbol g is defined twice"),
    (lambda: [_object(PART_A), b"not an object"], frozenset(), "object 1 is not an ELF file"),
    (lambda: [_object(PART_A), _object(PART_A)[:200]], frozenset(), "object 1 is truncated"),
    (lambda: [_object(PART_A)], frozenset({"missing"}), "no object defines missing"),
    (lambda: [], frozenset(), "no object to merge"),
])
def test_what_cannot_be_merged_is_a_clear_error(objects, local, message):
    with pytest.raises(ValueError, match=message):
        merge_objects(objects(), local)


def test_objects_of_two_machines_are_refused():
    with pytest.raises(ValueError, match="different machines"):
        merge_objects([_object(PART_A), _object(PART_B, "aarch64")])


def _symbol(obj: bytes, tmp_path: Path, name: str) -> list[str]:
    """``readelf -s`` columns of symbol ``name`` (type, binding, visibility, section)."""
    (tmp_path / "sym.o").write_bytes(obj)
    table = subprocess.run(["readelf", "-s", "-W", str(tmp_path / "sym.o")], check=True,
                           capture_output=True, text=True).stdout
    (row,) = [line.split() for line in table.splitlines() if line.split()[-1:] == [name]]
    return row[3:7]


WEAK_FIRST = """
define weak i32 @w() { ret i32 1 }
define i32 @callw() { %r = call i32 @w() ret i32 %r }
"""
STRONG = "define i32 @w() { ret i32 2 }\n"


@requires_gcc
@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_a_strong_definition_wins_over_a_weak_one_in_any_order(tmp_path, order):
    objects = [_object(WEAK_FIRST), _object(STRONG)]
    merged = merge_objects([objects[k] for k in order])
    library = _shared_library(merged, tmp_path)
    assert library.callw() == 2
    assert _symbol(merged, tmp_path, "w")[:2] == ["FUNC", "GLOBAL"]


@requires_gcc
@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_an_undefined_symbol_is_weak_only_if_every_reference_is(tmp_path, order):
    weak = "declare extern_weak i32 @u()\ndefine ptr @addr_u() { ret ptr @u }\n"
    strong = "declare i32 @u()\ndefine i32 @call_u() { %r = call i32 @u() ret i32 %r }\n"
    objects = [_object(weak), _object(strong)]
    merged = merge_objects([objects[k] for k in order])
    assert _symbol(merged, tmp_path, "u")[1:] == ["GLOBAL", "DEFAULT", "UND"]


@requires_gcc
def test_the_most_restrictive_visibility_is_kept(tmp_path):
    hidden = "declare hidden i32 @v()\ndefine i32 @f() { %r = call i32 @v() ret i32 %r }\n"
    merged = merge_objects([_object(hidden), _object("define i32 @v() { ret i32 5 }\n")])
    assert _symbol(merged, tmp_path, "v")[1:3] == ["GLOBAL", "HIDDEN"]
    library = _shared_library(merged, tmp_path)
    assert library.f() == 5
    with pytest.raises(AttributeError):
        library.v  # noqa: B018 - hidden: not exported


def test_common_symbols_are_refused_clearly():
    common = "@c = common global i32 0\ndefine ptr @p() { ret ptr @c }\n"
    with pytest.raises(ValueError, match="symbol c is a common symbol"):
        merge_objects([_object(common), _object(PART_A)])
