"""The model zoo: every network compiles to code that equals PyTorch bit for bit (a reduced
resolution keeps the runs short; Bi-Real-Net-18 at 224x224 is in test_exactness.py, and
``bnnmlir bench --models`` checks every network at 224x224 before timing it)."""

import pytest
import torch

import bnnmlir
import bnnmlir.examples.models as examples
from bnnmlir.models import ZOO, binary_alexnet, bireal_net18, quicknet


def compiled_equals_pytorch(model, size: int, batch: int = 1) -> None:
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(size))
    compiled = bnnmlir.compile(model, (x,), threads=1)
    assert not compiled.warnings
    kinds = {row.kind for row in compiled.report().rows}
    assert "binary" in kinds
    expected = model(x)
    assert torch.equal(compiled(x), expected)
    assert expected.shape == (batch, 1000)


@pytest.mark.parametrize("name,size", [("bireal_net18", 64), ("quicknet", 64),
                                       ("binary_alexnet", 64)])
def test_zoo_network_is_bit_exact(name, size):
    kwargs = {"image_size": size} if name == "binary_alexnet" else {}
    compiled_equals_pytorch(ZOO[name](**kwargs), size, batch=2)


def test_zoo_names_and_the_examples_re_export():
    assert ZOO == {"bireal_net18": bireal_net18, "quicknet": quicknet,
                   "binary_alexnet": binary_alexnet}
    assert examples.bireal_net18 is bireal_net18
    with pytest.raises(ValueError, match="at least 64x64"):
        binary_alexnet(image_size=32)


def test_parameter_counts_match_the_published_networks():
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    # larq-zoo: QuickNet 13,234,088, Binary AlexNet 61,859,192 (the BNN-Clip forms differ by the
    # stem, the transitions and the last BatchNorm, see their module documentation)
    assert abs(count(quicknet()) - 13_234_088) < 0.01 * 13_234_088
    assert abs(count(binary_alexnet()) - 61_859_192) < 0.01 * 61_859_192
