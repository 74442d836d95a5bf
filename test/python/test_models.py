"""``bnnmlir.models``: the three variants of each network, the compact weight format, and the
shipped trained Fashion-MNIST model (compiled == PyTorch, accuracy)."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import bnnmlir
import bnnmlir.nn as bnn
from bnnmlir.examples.models import randomize_batchnorm
from bnnmlir.models import (
    VARIANTS,
    cifar10_net,
    fashion_mnist_net,
    fashion_mnist_samples,
    pretrained_fashion_mnist_bnn_clip,
)
from bnnmlir.models.pretrained import load_packed, save_packed

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("net, shape", [(fashion_mnist_net, (1, 28, 28)),
                                        (cifar10_net, (3, 32, 32))])
def test_variants_build_and_run(net, shape, variant):
    model = net(variant, width=8).eval()
    assert model(torch.rand(3, *shape)).shape == (3, 10)
    binary = [m for m in model.modules() if isinstance(m, bnn.BinaryConv2d | bnn.BinaryLinear)]
    clips = [m for m in model.modules() if isinstance(m, bnn.Clip8)]
    assert bool(binary) == (variant != "full-precision")
    assert bool(clips) == (variant == "bnn-clip")


def test_same_seed_same_network_and_the_global_rng_untouched():
    state = torch.random.get_rng_state()
    a, b = fashion_mnist_net(seed=3), fashion_mnist_net(seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="unknown variant 'tiny'"):
        fashion_mnist_net("tiny")


def trained_looking(net, seed: int) -> nn.Module:
    model = net("bnn-clip", width=8, seed=seed)
    randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    for m in model.modules():  # BatchNorm outputs of the size calibration gives them
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.mul_(20)
            m.bias.data.mul_(20)
    return model.eval()


@pytest.mark.parametrize("net, shape", [(fashion_mnist_net, (1, 28, 28)),
                                        (cifar10_net, (3, 32, 32))])
def test_bnn_clip_networks_compile_bit_exact(net, shape):
    model = trained_looking(net, 1)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    compiled = bnnmlir.compile(model, (x,), threads=1)
    expected = model(x)
    assert torch.equal(compiled(x), expected)
    assert expected.abs().sum() > 0 and not compiled.warnings


def test_packed_weights_round_trip_exactly_and_are_small():
    model = trained_looking(fashion_mnist_net, 2)
    buffer = io.BytesIO()
    save_packed(model, buffer, width=8)
    packed_bytes = buffer.tell()
    float_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert packed_bytes < float_bytes / 8
    buffer.seek(0)
    loaded = load_packed(fashion_mnist_net("bnn-clip", width=8, seed=5), buffer).eval()
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded(x), model(x))
    for original, reloaded in zip(model.modules(), loaded.modules()):
        if isinstance(original, bnn.Int8Conv2d):
            assert torch.equal(original.integer_weight(), reloaded.integer_weight())
        if isinstance(original, bnn.BinaryConv2d | bnn.BinaryLinear):
            assert torch.equal(original.binary_weight(), reloaded.binary_weight())


def test_packed_weights_missing_entry(tmp_path):
    np.savez(tmp_path / "empty.npz", nothing=np.zeros(1))
    with pytest.raises(ValueError, match="no entry for 0.1.weight"):
        load_packed(fashion_mnist_net(width=8), tmp_path / "empty.npz")


# ---- the shipped model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained() -> nn.Module:
    return pretrained_fashion_mnist_bnn_clip()


def test_pretrained_contract(pretrained):
    assert not pretrained.training and pretrained.variant == "bnn-clip"
    images, labels = fashion_mnist_samples()
    assert images.shape[1:] == (1, 28, 28) and images.dtype == torch.float32
    assert 200 <= images.shape[0] <= 1000 and labels.shape == images.shape[:1]
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert set(labels.tolist()) == set(range(10))
    logits = pretrained(images[:4])
    assert logits.shape == (4, 10) and torch.equal(logits, logits.round())


def test_pretrained_compiled_equals_pytorch_on_the_shipped_samples(pretrained):
    images, labels = fashion_mnist_samples()
    compiled = bnnmlir.compile(pretrained, (images,), threads=1)
    got, expected = compiled(images), pretrained(images)
    assert torch.equal(got, expected)  # so 100% of the predictions agree
    accuracy = float((got.argmax(1) == labels).float().mean())
    assert accuracy >= 0.88


@pytest.mark.skipif(not FASHION_MNIST.is_dir() and not os.environ.get("CI"),
                    reason="dataset-fashion-mnist not installed")
def test_pretrained_reaches_90_percent_on_the_full_test_set_through_compiled_code(pretrained):
    from bnnmlir.train.compiled import compiled_predictions
    from bnnmlir.train.datasets import load_dataset
    from bnnmlir.train.loop import evaluate

    test = load_dataset("fashion-mnist", "test")
    assert len(test) == 10_000
    predicted, _, _ = compiled_predictions(pretrained, test, batch=1000)
    _, _, reference = evaluate(pretrained, test)
    assert torch.equal(predicted, reference)
    assert float((predicted == test.labels).float().mean()) >= 0.90


def test_demo_part_one_prints_real_accuracy_and_agreement():
    from rich.console import Console

    from bnnmlir.models.demo import run_pretrained_demo

    console = Console(record=True, width=120)
    assert run_pretrained_demo(console, repeats=2)
    text = console.export_text()
    n = fashion_mnist_samples()[0].shape[0]
    assert f"{n} / {n}" in text and "identical" in text and "speed-up" in text
    accuracy = float(text.split("accuracy")[1].split("%")[0].strip(" │|"))
    assert accuracy >= 88.0
