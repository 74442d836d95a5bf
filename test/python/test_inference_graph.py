"""The import of a model without ``run_decompositions`` (bnnmlir/frontend/inference_graph.py).

(a) The op lists are true: every op of ``KEPT`` that a network of the zoo, the demo or the
    published idioms uses is left as it is by ``run_decompositions(decomposition_table())``,
    every op of ``READ_ALIKE`` is respelled by it, and every listed op occurs in one of them.
(b) The direct import equals the decomposed one: the same IR (generic text, every constant),
    the same locations, warnings, layers and approximations, on every network the direct path
    takes (asserted: it takes the demo and zoo networks); unused nodes are dropped as the
    decomposition drops them; the program stays a valid exported program.
(c) Anything else takes the decomposition: a training-mode batch norm, a reflect pad, an
    in-place op, an op outside the lists; user archives are never changed in place.
"""

from __future__ import annotations

import collections
import functools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from published_models import BiRealNet18, ReActNetA, XnorNet

from bnnmlir.frontend import importer
from bnnmlir.frontend.inference_graph import KEPT, READ_ALIKE, inference_program
from bnnmlir.ir_print import print_ir


class FloatGlue(nn.Module):
    """Float layers around nothing binary: batch norm, PReLU, hardtanh, ReLU, a product, pools."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.act, self.fc = nn.PReLU(8), nn.Linear(8, 4)

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        y = F.max_pool2d(F.hardtanh(y) * torch.relu(y), 2)
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


def _clip_net():
    from bnnmlir.examples.models import bnn_clip_net

    return bnn_clip_net(seed=0), (torch.randn(2, 3, 32, 32),)


def _fashion_mnist():
    from bnnmlir.models import pretrained_fashion_mnist_bnn_clip

    return pretrained_fashion_mnist_bnn_clip(), (torch.randn(3, 1, 28, 28),)


def _bireal():
    from bnnmlir.models import bireal_net18

    return bireal_net18(), (torch.randn(1, 3, 224, 224),)


def _quicknet():
    from bnnmlir.models import quicknet

    return quicknet(), (torch.randn(1, 3, 224, 224),)


DIRECT = {
    "bnn_clip_net": _clip_net,
    "fashion_mnist": _fashion_mnist,
    "bireal_net18": _bireal,
    "quicknet": _quicknet,
    "xnor_net": lambda: (XnorNet(), (torch.randn(1, 3, 32, 32),)),
    "float_glue": lambda: (FloatGlue(), (torch.randn(2, 3, 9, 10),)),
}
"""Networks the direct import takes."""

DECOMPOSED = {
    "published_bireal": lambda: (BiRealNet18(width=16, classes=10), (torch.randn(1, 3, 32, 32),)),
    "reactnet_a": lambda: (ReActNetA(), (torch.randn(1, 3, 32, 32),)),
}
"""Networks with an op outside the lists (``rsub``, ``to``, an in-place ``add_``)."""


def _export(name: str) -> torch.export.ExportedProgram:
    """The network ``name``, the same weights at every call."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model, inputs = {**DIRECT, **DECOMPOSED}[name]()
    model.eval()
    with torch.no_grad():
        return torch.export.export(model, inputs)


def _targets(program: torch.export.ExportedProgram) -> collections.Counter:
    return collections.Counter(n.target for n in program.graph.nodes if n.op == "call_function")


@functools.cache
def _op_counts(name: str) -> tuple[collections.Counter, collections.Counter]:
    program = _export(name)
    with torch.no_grad():
        decomposed = program.run_decompositions(importer.decomposition_table())
    return _targets(program), _targets(decomposed)


# (a) ------------------------------------------------------------------------------------------
def test_kept_ops_are_kept_and_read_alike_ops_are_respelled():
    seen_kept, seen_alike = set(), set()
    for name in [*DIRECT, *DECOMPOSED]:
        training, decomposed = _op_counts(name)
        for op, count in training.items():
            if op in KEPT:
                seen_kept.add(op)
                # the decomposition may add some (an rsub becomes a sub), never remove one
                assert decomposed[op] >= count, (name, op)
            elif op in READ_ALIKE:
                seen_alike.add(op)
                assert op not in decomposed, (name, op)
    assert seen_kept == KEPT
    assert seen_alike == READ_ALIKE


# (b) ------------------------------------------------------------------------------------------
def _same_import(a, b) -> None:
    assert print_ir(a.module, generic=True) == print_ir(b.module, generic=True)
    assert [str(op.location) for op in a.module.walk()] == [str(op.location) for op in b.module.walk()]
    for field in vars(a):
        if field not in ("module", "program"):
            assert getattr(a, field) == getattr(b, field), field


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_direct_import_equals_the_decomposed_one(name):
    decomposed = importer.import_exported_program(_export(name))
    direct = inference_program(_export(name))
    assert direct is not None, "the direct path should take this network"
    _same_import(importer._import_inference_program(direct, True), decomposed)


def test_import_model_takes_the_direct_path(monkeypatch):
    model, inputs = _clip_net()
    reference = importer.import_model(model, inputs)
    monkeypatch.setattr(torch.export.ExportedProgram, "run_decompositions",
                        lambda *a, **k: pytest.fail("the direct path decomposed"))
    _same_import(importer.import_model(model, inputs), reference)


class DeadPad(nn.Module):
    """A pad whose result nothing uses (the importer could not translate it)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        F.pad(y, (1, 1, 1, 1))
        return y


class AuxHead(nn.Module):
    """An auxiliary head that only training returns: dead in eval mode."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.aux, self.fc = nn.Linear(8, 10), nn.Linear(8, 10)

    def forward(self, x):
        y = self.bn(self.conv(x))
        aux = self.aux(F.adaptive_avg_pool2d(torch.sign(y), 1).flatten(1))
        out = self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))
        return (out, aux) if self.training else out


class NormOut(nn.Module):
    """A rewritten batch norm is the model's output."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x))


@pytest.mark.parametrize("model", [DeadPad, AuxHead, NormOut], ids=lambda m: m.__name__)
def test_unused_nodes_and_rewritten_outputs(model):
    def export():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            m = model().eval()
        with torch.no_grad():
            return torch.export.export(m, (torch.randn(2, 3, 8, 8),))

    decomposed = importer.import_exported_program(export())
    direct = inference_program(export())
    assert direct is not None
    direct.validate()  # the signature names the rewritten outputs
    _same_import(importer._import_inference_program(direct, True), decomposed)


# (c) ------------------------------------------------------------------------------------------
class TrainingNorm(nn.Module):
    def forward(self, x):
        return F.batch_norm(x, torch.zeros(3), torch.ones(3), training=True)


class ReflectPad(nn.Module):
    def forward(self, x):
        return F.pad(x, (1, 1, 1, 1), mode="reflect")


class InPlace(nn.Module):
    def forward(self, x):
        y = x * 2
        y.add_(1)
        return y


class Sigmoid(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x)


@pytest.mark.parametrize("model", [TrainingNorm(), ReflectPad(), InPlace(), Sigmoid()],
                         ids=lambda m: type(m).__name__)
def test_other_graphs_take_the_decomposition(model):
    with torch.no_grad():
        program = torch.export.export(model.eval(), (torch.randn(1, 3, 4, 4),))
    before = str(program.graph)
    assert inference_program(program) is None
    assert str(program.graph) == before  # not changed when declined


@pytest.mark.parametrize("name", sorted(DECOMPOSED))
def test_published_idioms_outside_the_lists_are_decomposed(name):
    assert inference_program(_export(name)) is None


def test_an_exported_program_of_the_user_is_not_changed():
    program = _export("bnn_clip_net")
    before = str(program.graph)
    importer.import_exported_program(program)
    assert str(program.graph) == before
