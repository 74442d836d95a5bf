"""The model-level compile cache: a second ``bnnmlir.compile`` of the same model runs no import
and gives the same compiled model; any change the import could see (a weight, a BatchNorm
statistic, an attribute, the training flag, the inputs' shapes or dtypes, an option, the source
of the model's class) gives another key; what the key cannot see falls back to the import; a
damaged entry is rebuilt; ``cache=False`` reads and writes nothing."""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path

import pytest
import torch
from conftest import requires_aarch64
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch_models import binary_net

import bnnmlir
import bnnmlir.frontend
from bnnmlir.model_key import Unkeyable, model_key

X = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(1))
OPTIONS = {"target": "host", "threads": 1, "exact": True, "dynamic_batch": False}


def key(model, inputs=(X,), options=OPTIONS) -> str:
    return model_key(model, inputs, options)


def forbid_import(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the import ran")

    monkeypatch.setattr(bnnmlir.frontend, "import_model", refuse)


def model_entries(cache: Path) -> list[Path]:
    return sorted((cache / "models").glob("*.o.bnn"))


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """A model compiled once into a fresh cache: ``(model, cache, compiled)``."""
    cache = tmp_path_factory.mktemp("cache")
    model = binary_net()
    return model, cache, bnnmlir.compile(model, (X,), threads=1, cache=cache)


# ---- hits -------------------------------------------------------------------------------------
def test_second_compile_runs_no_import_and_is_identical(cold, monkeypatch):
    model, cache, first = cold
    assert first.model_cache == "stored" and len(model_entries(cache)) == 1
    forbid_import(monkeypatch)
    warm = bnnmlir.compile(model, (X,), threads=1, cache=cache)
    assert warm.model_cache == "hit"
    assert list(warm.compile_times) == ["model cache", "cache hit"]
    assert warm.compile_times["cache hit"] == 1.0
    assert torch.equal(warm(X), first(X)) and torch.equal(warm(X), model(X))
    assert warm.program.signature == first.program.signature
    assert warm.report().rows == first.report().rows
    assert "model cache: hit" in str(warm.report())
    assert warm.imported.input_specs == first.imported.input_specs
    assert warm.imported.output_specs == first.imported.output_specs
    assert warm.warnings == first.warnings and warm.approximations == first.approximations


def test_a_copy_of_the_model_hits(cold, monkeypatch):
    model, cache, _ = cold
    forbid_import(monkeypatch)
    assert bnnmlir.compile(copy.deepcopy(model), (X.clone(),), threads=1,
                           cache=cache).model_cache == "hit"


def test_stages_of_a_hit_are_made_again_by_the_import(cold):
    model, cache, first = cold
    warm = bnnmlir.compile(model, (X,), threads=1, cache=cache)
    for stage in ("imported", "optimized", "buffers"):
        assert warm.mlir(stage) == first.mlir(stage)
    assert warm.compare(X).max_abs_diff == first.compare(X).max_abs_diff == 0.0


def test_a_hit_refuses_to_remake_the_ir_of_a_changed_model(cold):
    model, cache, _ = cold
    changed = copy.deepcopy(model)
    warm = bnnmlir.compile(changed, (X,), threads=1, cache=cache)
    with torch.no_grad():
        changed[1].running_mean[0] += 1.0
    with pytest.raises(bnnmlir.CompileError, match="changed after it was compiled"):
        warm.mlir("imported")


# ---- keys: what makes a miss ------------------------------------------------------------------
def test_the_key_is_deterministic_and_fast_to_repeat():
    model = binary_net()
    assert key(model) == key(model) == key(binary_net())


def changed(edit) -> nn.Module:
    model = binary_net()
    with torch.no_grad():
        edit(model)
    return model


EDITS = {
    "one weight element": lambda m: m[0].weight.view(-1)[5].add_(1e-3),
    "a BatchNorm running mean": lambda m: m[1].running_mean[3].add_(1.0),
    "a BatchNorm running var": lambda m: m[1].running_var[0].mul_(2.0),
    "num_batches_tracked": lambda m: m[1].num_batches_tracked.add_(1),
    "stride": lambda m: setattr(m[3], "stride", (1, 1)),
    "padding": lambda m: setattr(m[0], "padding", (0, 0)),
    "eps": lambda m: setattr(m[1], "eps", 1e-3),
    "train flag": lambda m: m[1].train(),
    "a parameter's dtype": lambda m: m[1].to(torch.float64),
    "a new buffer": lambda m: m[2].register_buffer("extra", torch.zeros(1), persistent=False),
}


@pytest.mark.parametrize("edit", EDITS)
def test_every_change_the_import_sees_changes_the_key(edit):
    assert key(changed(EDITS[edit])) != key(binary_net())


@given(st.integers(0, 10**6), st.sampled_from(["weight", "bias"]),
       st.floats(0.01, 4), st.booleans())
def test_any_single_element_changes_the_key(index, name, delta, negative):
    model = binary_net()
    reference = key(model)
    values = getattr(model[1], name).data.view(-1)
    values[index % values.numel()] += -delta if negative else delta
    assert key(model) != reference


@pytest.mark.parametrize("inputs, options", [
    ((torch.randn(1, 3, 9, 9),), OPTIONS),
    ((X.double(),), OPTIONS),
    ((X.to(memory_format=torch.channels_last),), OPTIONS),
    ((X,), {**OPTIONS, "target": "aarch64"}),
    ((X,), {**OPTIONS, "threads": 2}),
    ((X,), {**OPTIONS, "exact": False}),
    ((X,), {**OPTIONS, "dynamic_batch": True}),
])
def test_inputs_and_options_change_the_key(inputs, options):
    assert key(binary_net(), inputs, options) != key(binary_net())


def test_input_values_do_not_change_the_key():
    assert key(binary_net(), (torch.randn(2, 3, 9, 9),)) == key(binary_net())


MODEL_SOURCE = '''
import torch
from torch import nn

SCALE = {scale}


def double(x):
    return x * 2


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return double(self.conv(x)) * SCALE
'''


def load_user_module(tmp_path: Path, monkeypatch, scale: str):
    (tmp_path / "user_models.py").write_text(MODEL_SOURCE.format(scale=scale))
    monkeypatch.syspath_prepend(str(tmp_path))
    if "user_models" in sys.modules:
        return importlib.reload(sys.modules["user_models"])
    return importlib.import_module("user_models")


def test_editing_the_source_of_the_model_class_changes_the_key(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "user_models", raising=False)
    module = load_user_module(tmp_path, monkeypatch, "1.0")
    torch.manual_seed(0)
    model = module.Scaled()
    before = key(model)
    assert key(model) == before
    load_user_module(tmp_path, monkeypatch, "1.0  # edited")
    assert key(model) != before
    module.SCALE = 3.0  # a global changed at run time
    edited = key(model)
    module.SCALE = 1.0
    assert key(model) != edited


def test_a_function_the_forward_calls_is_in_the_key(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "user_models", raising=False)
    module = load_user_module(tmp_path, monkeypatch, "1.0")
    model = module.Scaled()
    before = key(model)
    module.double = lambda x: x * 3  # replaces the function forward calls
    assert key(model) != before


# ---- what the key cannot see: the import runs --------------------------------------------------
def add_hook(model):
    model[2].register_forward_hook(lambda module, args, out: out * 2)
    return model


def lambda_forward(model):
    model.forward = lambda x: x
    return model


def object_attribute(model):
    model[1].config = object()
    return model


class Captured(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("make, reason", [
    (add_hook, "hooks"), (lambda_forward, "attribute 'forward'"),
    (object_attribute, "attribute 'config'"),
])
def test_what_the_key_cannot_see_is_unkeyable(make, reason):
    with pytest.raises(Unkeyable, match=reason):
        key(make(binary_net()))


def test_closures_and_non_tensor_inputs_are_unkeyable():
    scale = 2.0

    def forward(self, x):
        return x * scale

    closure_class = type("Closure", (nn.Module,), {"forward": forward, "__module__": __name__})
    with pytest.raises(Unkeyable, match="closure"):
        key(closure_class())
    with pytest.raises(Unkeyable, match="example input 0"):
        key(binary_net(), (3,))


def test_a_model_with_a_hook_compiles_through_the_import(tmp_path):
    model = add_hook(binary_net())
    compiled = bnnmlir.compile(model, (X,), threads=1, cache=tmp_path)
    assert compiled.model_cache.startswith("not used: ") and "hooks" in compiled.model_cache
    assert "model cache: not used" in str(compiled.report())
    assert torch.equal(compiled(X), model(X)) and model_entries(tmp_path) == []


# ---- entries ----------------------------------------------------------------------------------
def test_a_changed_model_misses_and_compiles_correctly(cold):
    _, cache, _ = cold
    model = changed(EDITS["a BatchNorm running mean"])
    compiled = bnnmlir.compile(model, (X,), threads=1, cache=cache)
    assert compiled.model_cache == "stored" and torch.equal(compiled(X), model(X))


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_a_damaged_model_entry_is_rebuilt(tmp_path, monkeypatch, damage):
    model = binary_net()
    first = bnnmlir.compile(model, (X,), threads=1, cache=tmp_path)
    (entry,) = model_entries(tmp_path)
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2] if damage == "truncated"
                      else good[:-3] + bytes([good[-3] ^ 1]) + good[-2:])
    again = bnnmlir.compile(model, (X,), threads=1, cache=tmp_path)
    assert again.model_cache == "stored" and "import" in again.compile_times
    assert entry.read_bytes() == good and torch.equal(again(X), first(X))
    forbid_import(monkeypatch)
    assert bnnmlir.compile(model, (X,), threads=1, cache=tmp_path).model_cache == "hit"


def test_a_model_entry_without_its_program_entry_is_a_miss(tmp_path):
    model = binary_net()
    bnnmlir.compile(model, (X,), threads=1, cache=tmp_path)
    for program in (tmp_path / "programs").glob("*.o.bnn"):
        program.unlink()
    again = bnnmlir.compile(model, (X,), threads=1, cache=tmp_path)
    assert again.model_cache == "stored" and torch.equal(again(X), model(X))


def test_cache_false_reads_and_writes_nothing(cold, monkeypatch, tmp_path):
    model, _, first = cold
    monkeypatch.setenv("BNNMLIR_CACHE_DIR", str(tmp_path))
    compiled = bnnmlir.compile(model, (X,), threads=1, cache=False)
    assert compiled.model_cache == "off (cache=False)" and "import" in compiled.compile_times
    assert list(tmp_path.rglob("*.bnn")) == [] and torch.equal(compiled(X), first(X))


def test_dynamic_batch_hits_and_runs_any_batch(tmp_path, monkeypatch):
    model = binary_net()
    cold = bnnmlir.compile(model, (X,), threads=1, cache=tmp_path, dynamic_batch=True)
    forbid_import(monkeypatch)
    warm = bnnmlir.compile(model, (X,), threads=1, cache=tmp_path, dynamic_batch=True)
    assert warm.model_cache == "hit" and warm.dynamic_batch
    x = torch.randn(5, 3, 9, 9)
    assert torch.equal(warm(x), cold(x)) and torch.equal(warm(x), model(x))


@requires_aarch64
def test_aarch64_hit_saves_the_same_files(tmp_path, monkeypatch):
    model = binary_net()
    cache = tmp_path / "cache"
    cold = bnnmlir.compile(model, (X,), target="aarch64", cache=cache)
    cold.save(tmp_path / "cold")
    forbid_import(monkeypatch)
    warm = bnnmlir.compile(model, (X,), target="aarch64", cache=cache)
    warm.save(tmp_path / "warm")
    assert warm.model_cache == "hit"
    for name in ("model.o", "model.h"):
        assert (tmp_path / "warm" / name).read_bytes() == (tmp_path / "cold" / name).read_bytes()
    assert torch.equal(warm(X), model(X))
