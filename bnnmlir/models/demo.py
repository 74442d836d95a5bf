"""The first part of ``bnnmlir demo``: the shipped Fashion-MNIST BNN-Clip model on real images.

It compiles :func:`~bnnmlir.models.pretrained_fashion_mnist_bnn_clip` for the host, classifies
the shipped test images through the compiled code and through PyTorch, and prints the accuracy,
the agreement of the two and their latency.
"""

from __future__ import annotations

import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from bnnmlir.models.fashion_mnist import CLASSES
from bnnmlir.models.pretrained import fashion_mnist_samples, pretrained_fashion_mnist_bnn_clip

__all__ = ["latency_ms", "run_pretrained_demo"]


def latency_ms(function, x: torch.Tensor, repeats: int = 50) -> float:
    """Median wall time of ``function(x)`` in milliseconds (after two warm-up calls)."""
    for _ in range(2):
        function(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(x)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def run_pretrained_demo(console: Console, threads: int = 1, repeats: int = 20) -> bool:
    """Run the demo; True if the compiled logits equal PyTorch's on every sample image."""
    import bnnmlir

    model = pretrained_fashion_mnist_bnn_clip()
    images, labels = fashion_mnist_samples()
    n = images.shape[0]
    started = time.perf_counter()
    compiled = bnnmlir.compile(model, (images,), threads=threads)
    compile_seconds = time.perf_counter() - started
    with torch.no_grad():
        expected = model(images)
        got = compiled(images)
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch_ms = latency_ms(model, images, repeats)
        finally:
            torch.set_num_threads(torch_threads)
    compiled_ms = latency_ms(compiled, images, repeats)
    predicted, reference = got.argmax(1), expected.argmax(1)
    identical = bool(torch.equal(got, expected))
    agree = int((predicted == reference).sum())

    table = Table(title=f"Trained BNN-Clip Fashion-MNIST network on {n} real test images "
                        f"(compiled in {compile_seconds:.1f} s, {threads} thread)")
    for column in ("", "bnnmlir (compiled, host JIT)", "PyTorch eval()"):
        table.add_column(column)
    table.add_row("accuracy", f"{100 * float((predicted == labels).float().mean()):.1f} %",
                  f"{100 * float((reference == labels).float().mean()):.1f} %")
    table.add_row("predictions that agree", f"{agree} / {n}", "")
    table.add_row("logits", "[green]identical[/green]" if identical else "[red]DIFFERENT[/red]", "")
    table.add_row(f"latency, batch of {n}", f"{compiled_ms:.2f} ms", f"{torch_ms:.2f} ms")
    table.add_row("latency per image", f"{1000 * compiled_ms / n:.1f} us",
                  f"{1000 * torch_ms / n:.1f} us")
    table.add_row("speed-up", f"{torch_ms / compiled_ms:.1f}x", "")
    console.print(table)
    shown = ", ".join(
        f"{CLASSES[int(p)]}{'' if p == y else ' [red](is ' + CLASSES[int(y)] + ')[/red]'}"
        for p, y in zip(predicted[:8], labels[:8])
    )
    console.print(f"first 8 images classified as: {shown}")
    return identical
