"""The import of a large model in a forked process (``bnnmlir.api._import_forked``): the same IR
as an import in this process, the exported program made again for ``compare``, errors raised as
they are, the model's modes untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_models import binary_net

import bnnmlir
from bnnmlir import api
from bnnmlir.errors import UnsupportedOperationError
from bnnmlir.ir_print import print_ir

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))


@pytest.fixture
def fork_every_import(monkeypatch):
    monkeypatch.setenv("BNNMLIR_FORK_IMPORT", "1")


def test_model_bytes_counts_parameters_and_buffers():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    # weight 8*3*3*3, bias 8, BN weight/bias/mean/var 4*8 floats, num_batches_tracked one int64
    assert api.model_bytes(net) == 4 * (216 + 8 + 32) + 8
    assert api.model_bytes(lambda x: x) == 0
    assert api.model_bytes(binary_net()) < api.FORK_IMPORT_MIN_BYTES  # the tests' nets stay here


def test_forked_import_gives_the_ir_of_this_process(fork_every_import, monkeypatch):
    net = binary_net(seed=2)
    net.train()
    forked = bnnmlir.compile(net, (X,), threads=1, cache=False)
    assert net.training, "the model's modes are the caller's"
    assert forked.imported.program is None and forked.imported.export_again is not None
    monkeypatch.setenv("BNNMLIR_FORK_IMPORT", "0")
    here = bnnmlir.compile(net, (X,), threads=1, cache=False)
    assert here.imported.program is not None
    assert print_ir(forked.imported.module) == print_ir(here.imported.module)
    assert forked.imported.warnings == here.imported.warnings
    assert [layer.module_path for layer in forked.imported.layers] == [
        layer.module_path for layer in here.imported.layers]
    net.eval()
    assert torch.equal(forked(X), net(X)) and torch.equal(here(X), net(X))


def test_compare_exports_the_forked_import_again(fork_every_import):
    net = binary_net(seed=3).eval()
    compiled = bnnmlir.compile(net, (X,), threads=1, cache=False)
    assert compiled.imported.program is None
    assert compiled.compare(X).max_abs_diff == 0.0
    assert compiled.imported.program is not None  # made once, then kept


class Gelu(nn.Module):
    def forward(self, x):
        return nn.functional.gelu(x)


def test_an_error_of_the_forked_import_is_raised_as_it_is(fork_every_import, monkeypatch):
    with pytest.raises(UnsupportedOperationError) as forked:
        bnnmlir.compile(Gelu(), (X,), cache=False)
    monkeypatch.setenv("BNNMLIR_FORK_IMPORT", "0")
    with pytest.raises(UnsupportedOperationError) as here:
        bnnmlir.compile(Gelu(), (X,), cache=False)
    assert str(forked.value) == str(here.value) and "aten.gelu" in str(forked.value)


def test_deep_ir_comes_back_from_the_child(fork_every_import, monkeypatch):
    """IR of a long chain of ops pickles recursively: the child pickles it in a thread with a
    large stack, so the import is not done a second time here."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), *[nn.Hardtanh() if k % 2 else nn.ReLU()
                                               for k in range(120)]).eval()
    here = []
    real = api._import_keeping_modes

    def counted(*args, **kwargs):
        here.append(1)  # a child's calls count in the child's memory only
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "_import_keeping_modes", counted)
    compiled = bnnmlir.compile(net, (X,), threads=1, cache=False)
    assert here == [], "imported in the child, not again here"
    assert len(list(compiled.imported.module.walk())) > 120
    assert torch.equal(compiled(X), net(X))


def test_warming_torch_export_keeps_the_random_numbers():
    api._warm_export.cache_clear()
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    api._warm_export()
    assert torch.equal(torch.rand(3), want)


def test_a_child_without_a_result_in_time_is_stopped():
    import time

    from bnnmlir.forked import ChildFailure, run_forked

    start = time.monotonic()
    with pytest.raises(ChildFailure, match="no result in time"):
        run_forked([lambda: time.sleep(60)], first_here=False, timeout=1.0)
    assert time.monotonic() - start < 30


def test_compare_after_a_model_cache_hit_imports_once(fork_every_import, tmp_path, monkeypatch):
    net = binary_net(seed=5).eval()
    first = bnnmlir.compile(net, (X,), threads=1, cache=tmp_path)
    warm = bnnmlir.compile(net, (X,), threads=1, cache=tmp_path)
    assert warm.model_cache == "hit"
    calls = []
    forked, here = api._import_forked, api._import_here
    monkeypatch.setattr(api, "_import_forked", lambda *a: calls.append("forked") or forked(*a))
    monkeypatch.setattr(api, "_import_here", lambda *a: calls.append("here") or here(*a))
    assert warm.compare(X).max_abs_diff == 0.0
    assert warm.mlir("imported") == first.mlir("imported")
    assert calls == ["here"], "one import, which keeps the exported program"


@pytest.mark.parametrize("value", ["yes", "2", "never"])
def test_a_bad_fork_import_setting_is_a_clear_error(value, monkeypatch):
    monkeypatch.setenv("BNNMLIR_FORK_IMPORT", value)
    with pytest.raises(ValueError, match=f"BNNMLIR_FORK_IMPORT must be 0 .* got '{value}'"):
        bnnmlir.compile(binary_net(), (X,), cache=False)
