"""``bnnmlir bench --published``: Bi-Real-Net-18 as its authors wrote it (float residual stream,
scaled binary weights, detach estimators; :mod:`bnnmlir.examples.published`) compiled with
``exact=False``, timed against the BNN-Clip ``bireal_net18`` (int8 stream,
:func:`bnnmlir.examples.models.bireal_net18`) in the same run, batch 1, 224x224, same threads.

The ratio (authors' form time / BNN-Clip time) is the cost of the float glue the BNN-Clip data
flow removes: float residual adds, the ``AvgPool2d + 1x1 Conv2d + BatchNorm`` shortcuts, the
BatchNorm and scale of each binary layer in float, and binarizing float activations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from rich.table import Table

from bnnmlir.bench.host import TimingPolicy, best_block_medians
from bnnmlir.tables import compact_table, number_column, text_column

#: The target ratio of the two networks' times.
TARGET_RATIO = 1.5


@dataclass
class PublishedResult:
    threads: int
    authors_s: float
    clip_s: float
    binary_layers: int
    agreement: float

    @property
    def ratio(self) -> float:
        return self.authors_s / self.clip_s

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"ratio": self.ratio}


def bench_published(threads: int, policy: TimingPolicy,
                    progress: Callable[[str], None] | None = None) -> PublishedResult:
    import torch

    import bnnmlir
    from bnnmlir.examples.models import bireal_net18
    from bnnmlir.examples.published import BiRealNet18, randomize_batch_norms

    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    if progress:
        progress("published: compile Bi-Real-Net-18 (authors' form, exact=False)")
    authors = bnnmlir.compile(randomize_batch_norms(BiRealNet18()), (x,), exact=False,
                              threads=threads)
    if progress:
        progress("published: compile bireal_net18 (BNN-Clip)")
    clip = bnnmlir.compile(bireal_net18(), (x,), threads=threads)
    binary = sum(r.op == "bnn.bconv2d" for r in authors.imported.layers)
    agreement = authors.compare(x).top1_agreement or 0.0
    best, _ = best_block_medians({"authors": lambda: authors(x), "clip": lambda: clip(x)},
                                 policy)
    return PublishedResult(threads, best["authors"], best["clip"], binary, agreement)


def published_table(result: PublishedResult, cpu: str) -> Table:
    table = compact_table(f"Host ({cpu}): Bi-Real-Net-18, authors' form vs BNN-Clip "
                          "(batch 1, 224x224, median time per call)")
    for column in ("network",):
        text_column(table, column)
    for column in ("thr", "ms", "binary convs", "ratio"):
        number_column(table, column)
    table.add_row("authors' form (exact=False)", str(result.threads),
                  f"{result.authors_s * 1e3:.2f}", str(result.binary_layers),
                  f"{result.ratio:.2f}x")
    table.add_row("bireal_net18 (BNN-Clip)", str(result.threads), f"{result.clip_s * 1e3:.2f}",
                  "16", "1.00x")
    verdict = "within" if result.ratio <= TARGET_RATIO else "above"
    table.caption = (f"ratio: time / BNN-Clip time ({verdict} the {TARGET_RATIO}x target); "
                     f"top-1 agreement of the authors' form with PyTorch: "
                     f"{100 * result.agreement:.0f}%")
    return table
