"""Compiled models called from several Python threads at once (the runtime's pool is shared)."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn as nn
from torch_models import binary_net

import bnnmlir

CALLS_PER_THREAD = 25
WATCHDOG_SECONDS = 120


SHAPE = (2, 3, 12, 12)


@pytest.fixture(scope="module")
def models():
    """The same network compiled for 2 and for 3 threads, and a second network for 1 thread."""
    example = torch.randn(SHAPE)
    net, other = binary_net(0), binary_net(1)
    return [
        (net, bnnmlir.compile(net, (example,), threads=2)),
        (net, bnnmlir.compile(net, (example,), threads=3)),
        (other, bnnmlir.compile(other, (example,), threads=1)),
    ]


def run_threads(jobs, timeout: float = WATCHDOG_SECONDS) -> list[str]:
    """Run each job in its own daemon thread; fail (not hang) if one has not finished in time."""
    errors: list[str] = []
    finished: list[int] = []

    def wrap(index, job):
        try:
            job()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {index}: {e!r}")
        finished.append(index)

    threads = [threading.Thread(target=wrap, args=(i, job), daemon=True)
               for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if len(finished) != len(jobs):
        pytest.fail(f"deadlock: {len(jobs) - len(finished)} of {len(jobs)} threads still running "
                    f"after {timeout} s")
    return errors


def inputs_and_expected(model: nn.Module, seed: int):
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))
    return x, model(x)


def test_threads2_model_from_four_python_threads(models):
    model, compiled = models[0]
    cases = [inputs_and_expected(model, seed) for seed in range(8)]

    def job(index):
        def calls():
            for call in range(CALLS_PER_THREAD):
                x, expected = cases[(index + call) % len(cases)]
                y = compiled(x)
                if not torch.equal(y, expected):
                    raise AssertionError(f"call {call}: output differs from PyTorch")
        return calls

    errors = run_threads([job(i) for i in range(4)])
    assert not errors, errors


def test_models_with_different_thread_counts_at_once(models):
    cases = [[inputs_and_expected(model, seed) for seed in range(4)] for model, _ in models]

    def job(index):
        _, compiled = models[index % len(models)]
        own = cases[index % len(models)]

        def calls():
            for call in range(CALLS_PER_THREAD):
                x, expected = own[call % len(own)]
                if not torch.equal(compiled(x), expected):
                    raise AssertionError(f"call {call}: output differs from PyTorch")
        return calls

    errors = run_threads([job(i) for i in range(6)])
    assert not errors, errors


@pytest.mark.parametrize("threads", [1, 2])
def test_a_reused_arena_holds_nothing_a_call_reads(monkeypatch, threads):
    """A program keeps each calling thread's arena between calls without clearing it: the
    generated code must not read arena bytes it has not written in the same call. A new arena
    full of 0xA5 bytes, then the same arena again, give PyTorch's outputs."""
    from bnnmlir import compiler
    from bnnmlir.examples.models import bnn_clip_net

    original = compiler._aligned_empty

    def filled(nbytes: int):
        arena = original(nbytes)
        arena[:] = 0xA5
        return arena

    monkeypatch.setattr(compiler, "_aligned_empty", filled)
    torch.manual_seed(11)
    model = bnn_clip_net().eval()
    compiled = bnnmlir.compile(model, (torch.randn(2, 3, 32, 32),), threads=threads, cache=False)
    for seed in range(3):  # the first call gets a filled arena, the others the used one
        torch.manual_seed(seed)
        x = torch.randn(2, 3, 32, 32)
        assert torch.equal(compiled(x), model(x))
    dynamic = bnnmlir.compile(model, (torch.randn(1, 3, 32, 32),), threads=threads,
                              cache=False, dynamic_batch=True)
    for batch in (3, 1, 2):  # the arena grows, then its first bytes are used again
        x = torch.randn(batch, 3, 32, 32)
        assert torch.equal(dynamic(x), model(x))
