"""Inspection of ``.pt2`` archives before ``torch.export.load``: every path to code is refused.

Each malicious archive starts as a real ``torch.export.save`` archive, rewritten with ``zipfile``,
and carries a real gadget: a pickle that creates a marker file when it is loaded. The controls
show the gadget runs when ``torch.export.load`` gets the file directly; the tests show the
inspection refuses it with a clear error and the marker never appears.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch_models import binary_net

import bnnmlir.nn  # noqa: F401 - the custom ops of the saved graph
from bnnmlir.compiler import CompileError
from bnnmlir.examples.models import bnn_clip_net
from bnnmlir.frontend.archive import (
    ArchiveLimitError,
    NotAnArchiveError,
    UnsafeArchiveError,
    load_exported_program,
)
from bnnmlir.tools.cli import main as cli_main

MiB = 1 << 20


class Gadget:
    """Unpickling this creates ``marker``: it stands for any code an archive could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class EvilTensor(torch.Tensor):
    """A tensor subclass whose pickle runs the gadget (what a pickled subclass weight can do)."""

    marker = Path("/nonexistent")

    def __reduce_ex__(self, protocol):
        return (Path.touch, (self.marker,))


def _pickled(marker: Path) -> bytes:
    return pickle.dumps(Gadget(marker))


def _torch_saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class WithConstant(torch.nn.Module):
    """A small BNN with a tensor constant, so the archive has weights and constants."""

    def __init__(self):
        super().__init__()
        self.net = binary_net()
        self.offset = torch.arange(4.0)

    def forward(self, x):
        return self.net(x) + self.offset.sum()


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    torch.export.save(torch.export.export(WithConstant().eval(), (torch.randn(1, 3, 9, 9),)), path)
    return path


def _read(path: Path) -> tuple[str, dict[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/", 1)[0]
        return root, {n[len(root) + 1:]: archive.read(n) for n in names}


def _write(path: Path, root: str, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(f"{root}/{name}" if root else name, data)
    return path


def _edit_json(entries: dict[str, bytes], name: str, edit) -> None:
    value = json.loads(entries[name])
    edit(value)
    entries[name] = json.dumps(value).encode()


WEIGHTS = "data/weights/model_weights_config.json"
CONSTANTS = "data/constants/model_constants_config.json"
MODEL = "models/model.json"


def _add_constant(entries, path_name: str, payload: bytes, use_pickle: bool = True) -> None:
    def edit(config):
        config["config"]["evil"] = {"path_name": path_name, "is_param": False,
                                    "use_pickle": use_pickle, "tensor_meta": None}

    _edit_json(entries, CONSTANTS, edit)
    entries[f"data/constants/{path_name}"] = payload


def _pickle_first(entries, config_name: str, payload: bytes) -> None:
    """Mark the first payload of ``config_name`` pickled and replace its bytes by ``payload``."""
    directory = config_name.rsplit("/", 1)[0]
    config = json.loads(entries[config_name])
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    entries[config_name] = json.dumps(config).encode()
    entries[f"{directory}/{first['path_name']}"] = payload


def _name_legacy_weights(entries, payload: bytes) -> None:
    """The legacy weights file, named by the weights config as if it were a raw payload."""
    _edit_json(entries, WEIGHTS, lambda c: next(iter(c["config"].values())).__setitem__("path_name", "model.pt"))
    entries["data/weights/model.pt"] = payload


def _symbolic_size(entries, marker: Path) -> None:
    def edit(program):
        values = program["graph_module"]["graph"]["tensor_values"]
        size = next(iter(values.values()))["sizes"]
        size[0] = {"as_expr": {"expr_str": f"__import__('pathlib').Path('{marker}').touch() or {size[0]['as_int']}",
                               "hint": size[0]}}

    _edit_json(entries, MODEL, edit)


def _guard_code(entries, marker: Path) -> None:
    _edit_json(entries, MODEL, lambda p: p.__setitem__(
        "guards_code", [f"__import__('pathlib').Path('{marker}').touch() is None"]))


def _evil_tensor(marker: Path) -> bytes:
    EvilTensor.marker = marker
    return _torch_saved(torch.ones(2).as_subclass(EvilTensor))


# name -> (edit of the entries, what the message says, whether torch.export.load runs the gadget)
VARIANTS = {
    "opaque_object": (lambda e, m: _add_constant(e, "opaque_obj_0", _pickled(m)), "opaque Python object", True),
    "opaque_object_in_subfolder": (lambda e, m: _add_constant(e, "opaque_obj_d/p", _pickled(m)),
                                   "not a plain file name", True),
    "custom_object": (lambda e, m: _add_constant(e, "custom_obj_0", _pickled(m)), "TorchBind object", False),
    "pickled_constant": (lambda e, m: _pickle_first(e, CONSTANTS, _torch_saved(Gadget(m))), "stored pickled", True),
    "pickled_weight": (lambda e, m: _pickle_first(e, WEIGHTS, _torch_saved(Gadget(m))), "stored pickled", True),
    "tensor_subclass_weight": (lambda e, m: _pickle_first(e, WEIGHTS, _evil_tensor(m)), "stored pickled", True),
    "pickled_sample_inputs": (lambda e, m: e.__setitem__("data/sample_inputs/model.pt", _torch_saved(Gadget(m))),
                              "not plain tensors", True),
    "legacy_weights": (lambda e, m: e.__setitem__("data/weights/model.pt", _torch_saved(Gadget(m))),
                       "legacy format", True),
    "legacy_weights_named_by_config": (lambda e, m: _name_legacy_weights(e, _torch_saved(Gadget(m))),
                                       "not a tensor payload", True),
    "legacy_constants": (lambda e, m: e.__setitem__("data/constants/model.pt", _torch_saved(Gadget(m))),
                         "legacy format", True),
    "symbolic_shape": (_symbolic_size, "symbolic shape expression", True),
    "guard_code": (_guard_code, "guards_code holds Python source", True),
    "aotinductor": (lambda e, m: e.__setitem__("data/aotinductor/model/model.so", _pickled(m)),
                    "shared library", False),
    "unreferenced_pickle": (lambda e, m: e.__setitem__("data/constants/opaque_obj_9", _pickled(m)),
                            "not a tensor payload named by the payload configs", False),
}


def _malicious(honest: Path, tmp_path: Path, variant: str) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    root, entries = _read(honest)
    VARIANTS[variant][0](entries, marker)
    return _write(tmp_path / f"{variant}.pt2", root, entries), marker


def _assert_refused(path: Path, error: type, message: str, capsys, marker: Path | None = None) -> str:
    """``path`` is refused by the API and by ``bnnmlir compile`` (exit 1, no traceback)."""
    with pytest.raises(error, match=message) as refused:
        load_exported_program(path)
    out = path.parent / "out"
    assert cli_main(["compile", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err and not out.exists()
    assert marker is None or not marker.exists()
    return str(refused.value)


@pytest.mark.parametrize("variant", [v for v, (_, _, live) in VARIANTS.items() if live])
def test_gadget_runs_without_the_inspection(honest: Path, tmp_path: Path, variant: str):
    """Control: each live gadget really runs when torch.export.load gets the file directly."""
    path, marker = _malicious(honest, tmp_path, variant)
    try:
        program = torch.export.load(path)
        program.module()(torch.randn(1, 3, 9, 9))  # guard code runs when the module is called
    except Exception:  # noqa: BLE001, S110 - only whether the gadget ran matters
        pass
    assert marker.exists()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_malicious_archive_is_refused(honest: Path, tmp_path: Path, variant: str, capsys):
    path, marker = _malicious(honest, tmp_path, variant)
    _assert_refused(path, UnsafeArchiveError, VARIANTS[variant][1], capsys, marker)


def test_command_line_refuses_without_traceback(honest: Path, tmp_path: Path):
    path, marker = _malicious(honest, tmp_path, "opaque_object_in_subfolder")
    run = subprocess.run([sys.executable, "-m", "bnnmlir.tools.cli", "compile", str(path), "-o",
                          str(tmp_path / "out")], check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "constants_config.json: 'evil' points at 'opaque_obj_d/p'" in run.stderr
    assert "Traceback" not in run.stderr and not marker.exists()


_segment = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/\\"),
                   min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folders=st.lists(_segment, min_size=1, max_size=3), leaf=_segment)
def test_opaque_objects_anywhere_are_refused(honest: Path, tmp_path: Path, folders, leaf, capsys):
    marker = tmp_path / "marker"
    root, entries = _read(honest)
    path_name = "opaque_obj_" + "/".join([*folders, leaf])
    _add_constant(entries, path_name, _pickled(marker))
    path = _write(tmp_path / "opaque.pt2", root, entries)
    message = _assert_refused(path, UnsafeArchiveError, "not a plain file name", capsys, marker)
    assert repr(path_name) in message


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.lists(_segment, min_size=1, max_size=4).map("/".join))
def test_unknown_entries_are_refused(honest: Path, tmp_path: Path, name: str, capsys):
    root, entries = _read(honest)
    if name in entries:
        return
    entries[name] = _pickled(tmp_path / "marker")
    path = _write(tmp_path / "unknown.pt2", root, entries)
    assert f"\n  {name}: " in _assert_refused(path, UnsafeArchiveError, "refusing to load", capsys)


@pytest.mark.parametrize("path_name, message", [
    ("../sample_inputs/model.pt", "not a plain file name"),
    ("/etc/passwd", "not a plain file name"),
    ("..", "not a plain file name"),
    ("weight_0\\..\\x", "not a plain file name"),
    ("", "not a plain file name"),
    (7, "not a plain file name"),
    ("weight_99", "data/weights/weight_99, which is missing"),
])
def test_config_paths_must_name_present_plain_files(honest: Path, tmp_path: Path, path_name, message,
                                                    capsys):
    root, entries = _read(honest)
    _edit_json(entries, WEIGHTS, lambda c: next(iter(c["config"].values())).__setitem__("path_name", path_name))
    marker = tmp_path / "marker"
    entries["data/constants/opaque_obj_0"] = _pickled(marker)  # what a traversal would aim at
    path = _write(tmp_path / "paths.pt2", root, entries)
    _assert_refused(path, UnsafeArchiveError, re.escape(message), capsys, marker)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 1 << 40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.sampled_from([WEIGHTS, CONSTANTS]),
       field=st.sampled_from(["path_name", "use_pickle", "tensor_meta", "is_param", None]),
       value=_json_values)
def test_any_config_value_loads_or_is_refused_cleanly(honest: Path, tmp_path: Path, config, field, value):
    """Whatever a payload config holds, the result is a program or a CompileError, nothing else."""
    root, entries = _read(honest)
    if field is None:
        _edit_json(entries, config, lambda c: c.__setitem__("config", value))
    else:
        _edit_json(entries, config, lambda c: next(iter(c["config"].values())).__setitem__(field, value))
    try:
        program = load_exported_program(_write(tmp_path / "fuzzed.pt2", root, entries))
    except CompileError:
        return
    assert isinstance(program, torch.export.ExportedProgram)


@pytest.mark.parametrize("name, data, message", [
    ("archive_format", b"zip", "expected 'pt2'"),
    ("archive_version", b"1", "expected '0'"),
    (WEIGHTS, b"{not json", "not valid JSON"),
    (CONSTANTS, b"[]", "not a payload config"),
    (MODEL, b"[" * 100_000, "not valid JSON"),
    (MODEL, None, "models/model.json: missing"),
    ("data/sample_inputs/model.pt", None, "missing"),
])
def test_markers_and_configs_are_checked(honest: Path, tmp_path: Path, name, data, message, capsys):
    root, entries = _read(honest)
    if data is None:
        del entries[name]
    else:
        entries[name] = data
    _assert_refused(_write(tmp_path / "marks.pt2", root, entries), UnsafeArchiveError, message, capsys)


@pytest.mark.parametrize("sizes, payload, message", [
    ([1 << 33], b"", "declares 8589934592 elements in an empty payload"),  # 32 GiB of zeros
    ([1 << 20, 1 << 20], bytes(4), "declares 1099511627776 elements, more than the limit"),  # a huge view
    ([{"as_expr": 3}], bytes(4), "no tensor_meta with integer sizes"),
    ([-1], bytes(4), "no tensor_meta with integer sizes"),
])
def test_tensor_sizes_must_fit_their_payload(honest: Path, tmp_path: Path, sizes, payload, message, capsys):
    root, entries = _read(honest)
    meta = next(iter(json.loads(entries[WEIGHTS])["config"].values()))
    meta["tensor_meta"]["sizes"] = [s if isinstance(s, dict) else {"as_int": s} for s in sizes]
    meta["tensor_meta"]["strides"] = [{"as_int": 0}] * len(sizes)
    _edit_json(entries, WEIGHTS, lambda c: c["config"].update({"big": meta}))
    entries[f"data/weights/{meta['path_name']}"] = payload
    path = _write(tmp_path / "sizes.pt2", root, entries)
    _assert_refused(path, UnsafeArchiveError, f"'big' (has )?{message}", capsys)


def test_entries_outside_the_root_are_refused(honest: Path, tmp_path: Path, capsys):
    root, entries = _read(honest)
    path = _write(tmp_path / "two_roots.pt2", root, entries)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("elsewhere/data.pkl", _pickled(tmp_path / "marker"))
    _assert_refused(path, UnsafeArchiveError, "elsewhere/data.pkl: not a plain path under the root", capsys,
                    tmp_path / "marker")


@pytest.mark.parametrize("name", ["data/sample_inputs/model.pt", "data/sample_inputs/MODEL.pt"])
def test_duplicate_names_are_refused(honest: Path, tmp_path: Path, name: str, capsys):
    root, entries = _read(honest)
    path = _write(tmp_path / "twice.pt2", root, entries)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as archive:
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate it writes
        archive.writestr(f"{root}/{name}", _torch_saved(Gadget(tmp_path / "marker")))
    _assert_refused(path, UnsafeArchiveError, "occurs twice", capsys, tmp_path / "marker")


def _deflated_zeros(archive: zipfile.ZipFile, name: str, size: int) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w") as entry:
        for _ in range(size // MiB):
            entry.write(bytes(MiB))


def _bomb(honest: Path, path: Path, size: int) -> Path:
    """The honest archive with weight_0 replaced by ``size`` deflated zero bytes (~1000:1)."""
    root, entries = _read(honest)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            if name == "data/weights/weight_0":
                _deflated_zeros(archive, f"{root}/{name}", size)
            else:
                archive.writestr(f"{root}/{name}", data)
        archive.writestr(f"{root}/unexpected", _pickled(path.with_suffix(".marker")))  # refused after it
    return path


def test_bomb_by_ratio_is_refused_from_the_directory(honest: Path, tmp_path: Path, monkeypatch, capsys):
    path = _bomb(honest, tmp_path / "bomb.pt2", 64 * MiB)
    marker = path.with_suffix(".marker")
    _assert_refused(path, ArchiveLimitError, r"ratio \d+:1.*BNNMLIR_ARCHIVE_MAX_RATIO", capsys, marker)
    with pytest.raises(ArchiveLimitError, match="inflate to more than 1000 bytes"):
        load_exported_program(path, max_ratio=1e6, max_bytes=1000)
    monkeypatch.setenv("BNNMLIR_ARCHIVE_MAX_RATIO", "1e6")
    _assert_refused(path, UnsafeArchiveError, "unexpected: not an entry", capsys, marker)


PEAK_PROBE = textwrap.dedent("""
    import resource, sys
    from bnnmlir.frontend.archive import UnsafeArchiveError, load_exported_program
    load_exported_program(sys.argv[1])  # imports and first allocations, in the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_exported_program(sys.argv[2], max_ratio=1e6)
    except UnsafeArchiveError as e:
        assert "unexpected: not an entry" in str(e), e
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
""")


def test_inspection_memory_is_bounded_on_a_gigabyte_bomb(honest: Path, tmp_path: Path):
    """With the ratio check lifted, 1 GiB inflated from 1 MiB is streamed in bounded memory."""
    path = _bomb(honest, tmp_path / "bomb.pt2", 1024 * MiB)
    assert path.stat().st_size < 2 * MiB
    run = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(honest), str(path)],
                         check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) < 16 * MiB


def _declare_size(path: Path, name: str, size: int) -> None:
    """Make the central directory say that entry ``name`` inflates to ``size`` bytes."""
    data = bytearray(path.read_bytes())
    header = b"PK\x01\x02"  # a central directory header: uncompressed size at 24, name at 46
    at = data.find(header)
    while data[at + 46:at + 46 + len(name)] != name.encode():
        at = data.find(header, at + 4)
        assert at >= 0, name
    data[at + 24:at + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("declared, error, message", [
    (10, UnsafeArchiveError, "unreadable"),  # inflates far past what it declares: the CRC of 10 bytes fails
    (0xFFFFFFF0, ArchiveLimitError, "inflate to more than"),  # declares 4 GiB in all
])
def test_bomb_by_declared_size_lies_is_refused(honest: Path, tmp_path: Path, declared, error, message,
                                              monkeypatch, capsys):
    path = _bomb(honest, tmp_path / "liar.pt2", 16 * MiB)
    _declare_size(path, f"{_read(honest)[0]}/data/weights/weight_0", declared)
    monkeypatch.setenv("BNNMLIR_ARCHIVE_MAX_RATIO", "1e6")
    monkeypatch.setenv("BNNMLIR_ARCHIVE_MAX_BYTES", str(1 << 31))
    _assert_refused(path, error, message, capsys, path.with_suffix(".marker"))


def test_stored_entries_cannot_declare_other_sizes(honest: Path, tmp_path: Path, capsys):
    path = tmp_path / "stored.pt2"
    path.write_bytes(honest.read_bytes())
    _declare_size(path, f"{_read(honest)[0]}/data/weights/weight_0", 1 << 20)
    _assert_refused(path, UnsafeArchiveError, "stored, yet declares", capsys)


def test_data_before_the_archive_is_refused(honest: Path, tmp_path: Path, capsys):
    """Python's zipfile shifts offsets past leading data, torch's reader does not: refused."""
    path = tmp_path / "shifted.pt2"
    path.write_bytes(b"PK\x03\x04" + bytes(60) + honest.read_bytes())
    _assert_refused(path, UnsafeArchiveError, "not where the end record says|not where its locator says", capsys)
    with zipfile.ZipFile(path) as archive:  # Python's zipfile reads it, from shifted offsets
        assert archive.read(archive.namelist()[0]) == zipfile.ZipFile(honest).read(archive.namelist()[0])


def test_huge_entry_counts_are_refused(tmp_path: Path, capsys):
    path = tmp_path / "many.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/archive_format", b"pt2")
        for i in range(100_000):
            archive.writestr(f"model/{i}", _pickled(tmp_path / "marker") if i == 0 else b"")
    _assert_refused(path, ArchiveLimitError, "100001 entries", capsys, tmp_path / "marker")


def test_nested_sample_input_zip_is_bounded(honest: Path, tmp_path: Path, capsys):
    """The sample inputs are a torch.save zip of their own: a bomb inside is refused as well."""
    root, entries = _read(honest)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("model/data.pkl", _pickled(tmp_path / "marker"))
        _deflated_zeros(archive, "model/data/0", 64 * MiB)
    entries["data/sample_inputs/model.pt"] = inner.getvalue()
    path = _write(tmp_path / "nested.pt2", root, entries)
    _assert_refused(path, ArchiveLimitError, "sample_inputs/model.pt, inside: model/data/0: inflates", capsys,
                    tmp_path / "marker")


# ---- files that are not torch.export archives ----------------------------------------------


def _state_dict(path: Path) -> None:
    torch.save(binary_net().state_dict(), path)


def _checkpoint(path: Path) -> None:
    torch.save({"model": binary_net().state_dict(), "epoch": 3}, path)


def _legacy_pickle(path: Path) -> None:
    torch.save(binary_net().state_dict(), path, _use_new_zipfile_serialization=False)


def _torchscript(path: Path) -> None:
    with warnings.catch_warnings():  # TorchScript is deprecated, and still what people pass
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(torch.nn.Linear(3, 2), torch.randn(1, 3)), path)


def _old_export(path: Path) -> None:
    _write(path, "", {"serialized_exported_program.json": b"{}", "version": b"8.20",
                      "serialized_state_dict.json": _torch_saved(Gadget(path.with_suffix(".marker")))})


WRONG_FILES = {
    "state_dict.pt": (_state_dict, "torch.save checkpoint or state_dict"),
    "checkpoint.pth": (_checkpoint, "torch.save checkpoint or state_dict"),
    "legacy.pt": (_legacy_pickle, "legacy pickle format"),
    "scripted.pt": (_torchscript, "TorchScript model"),
    "old.pt2": (_old_export, "PyTorch 2.7 and older"),
    "model.onnx": (lambda p: p.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x032.1:\x90\x01\n"), "an ONNX model"),
    "notes.pt2": (lambda p: p.write_text("weights, see the wiki\n"), "not a zip file"),
    "empty.pt2": (lambda p: p.write_bytes(b""), "an empty file"),
    "folder.pt2": (lambda p: p.mkdir(), "a directory"),
    "other.zip": (lambda p: _write(p, "x", {"readme.txt": b"hi"}), "no archive_format entry"),
}


@pytest.mark.parametrize("name", list(WRONG_FILES))
def test_wrong_files_are_named(tmp_path: Path, name: str, capsys):
    path = tmp_path / name
    WRONG_FILES[name][0](path)
    message = _assert_refused(path, NotAnArchiveError, WRONG_FILES[name][1], capsys, path.with_suffix(".marker"))
    assert "torch.export.save(torch.export.export(model.eval(), (example,)), 'model.pt2')" in message


def test_limits_from_the_environment_must_be_numbers(honest: Path, monkeypatch):
    monkeypatch.setenv("BNNMLIR_ARCHIVE_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="BNNMLIR_ARCHIVE_MAX_BYTES='lots' is not a number"):
        load_exported_program(honest)


# ---- honest archives -----------------------------------------------------------------------


def test_honest_archive_of_a_bnn_loads_and_compiles(tmp_path: Path):
    model = bnn_clip_net(width=8)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "bnn.pt2"
    torch.export.save(torch.export.export(model, (x,)), path)
    with zipfile.ZipFile(path, "a") as archive:  # extra files are plain text, allowed
        archive.writestr("bnn/extra/notes.txt", "trained on CIFAR-10")
    program = load_exported_program(path)
    assert torch.equal(program.module()(x), model(x))
    assert cli_main(["compile", str(path), "-o", str(tmp_path / "out"), "-t", "host"]) == 0
    assert (tmp_path / "out" / "model.o").read_bytes()[:4] == b"\x7fELF"


def test_honest_deflated_archive_loads(honest: Path, tmp_path: Path):
    """A re-zipped (deflated) archive of real weights is within the ratio limit."""
    root, entries = _read(honest)
    path = tmp_path / "deflated.pt2"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(f"{root}/{name}", data)
    x = torch.randn(1, 3, 9, 9)
    assert torch.equal(load_exported_program(path).module()(x), WithConstant().eval()(x))
    assert os.path.getsize(path) < os.path.getsize(honest)


@pytest.mark.parametrize("expr, plain", [
    ("Symbol('s31', positive=True, integer=True)", True),
    ("s0", True),
    ("Symbol('s0', positive=True) + 1", False),
    ("Symbol('s0', positive=__import__('os').getpid())", False),
    ("__import__('pathlib').Path('x').touch() or 3", False),
    ("Symbol('__class__')", False),
    ("2*s0", False),
])
def test_only_a_plain_symbol_counts_as_a_dynamic_batch(expr, plain):
    from bnnmlir.frontend.archive import _plain_symbol

    assert _plain_symbol(expr) is plain
