"""Module types the importer does not support as a whole, and how to name a node's module.

``torch.export`` flattens a layer into ATen ops: an ``nn.LSTM`` becomes ``permute``, ``mm``,
``sigmoid``... and the first of these that has no translation would be reported on its own, which
names an op the user never wrote. When the failing op sits inside one of the module types below
(innermost first, subclasses included), the error names that module instead, with the reason it
has no translation.

The module classes come from the node's ``nn_module_stack`` (module path, qualified class name).
A class is looked up among the modules Python has already imported (``sys.modules``), never
imported: a program loaded from an archive cannot make the importer run code.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn

_RECURRENT = ("recurrent layers have no binary form; bnnmlir compiles feed-forward networks of "
              "convolutions, dense layers, pooling and elementwise ops")
_ATTENTION = ("attention multiplies two run-time tensors and takes a softmax, which have no "
              "binary or exact integer form")
_LOOKUP = ("an embedding is a table lookup by integer index, which has no binary form (the "
           "compiled program takes float32 tensors)")
_RUNTIME_NORM = ("normalization by statistics of the run-time input has no exact integer form "
                 "(only BatchNorm with running statistics, in eval mode, folds into the layers)")

UNSUPPORTED_MODULES: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.RNNBase, _RECURRENT),
    (nn.RNNCellBase, _RECURRENT),
    (nn.MultiheadAttention, _ATTENTION),
    (nn.Transformer, _ATTENTION),
    (nn.TransformerEncoder, _ATTENTION),
    (nn.TransformerDecoder, _ATTENTION),
    (nn.TransformerEncoderLayer, _ATTENTION),
    (nn.TransformerDecoderLayer, _ATTENTION),
    (nn.Embedding, _LOOKUP),
    (nn.EmbeddingBag, _LOOKUP),
    (nn.LayerNorm, _RUNTIME_NORM),
    (nn.GroupNorm, _RUNTIME_NORM),
    (nn.modules.instancenorm._InstanceNorm, _RUNTIME_NORM),
    (nn.LocalResponseNorm, _RUNTIME_NORM),
)
"""Module types with no translation as a whole, most specific first, with the reason."""


@dataclass(frozen=True)
class ModuleFrame:
    """One entry of a node's module stack."""

    path: str
    qualified_name: str

    @property
    def display_name(self) -> str:
        """``nn.LSTM`` for a class of ``torch.nn``, else the qualified name."""
        module, _, name = self.qualified_name.rpartition(".")
        return f"nn.{name}" if module.startswith("torch.nn.modules") else self.qualified_name

    def resolve(self) -> type | None:
        """The class, if its module is already imported (no import is ever done here)."""
        module_name, _, name = self.qualified_name.rpartition(".")
        cls = getattr(sys.modules.get(module_name), name, None)
        return cls if isinstance(cls, type) else None


def module_stack(node: torch.fx.Node) -> list[ModuleFrame]:
    """The modules that created ``node``, outermost first (the root has path ``""``)."""
    frames = []
    for entry in (node.meta.get("nn_module_stack") or {}).values():
        path, cls = entry[0], entry[1]
        name = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
        frames.append(ModuleFrame(path if isinstance(path, str) else "", name))
    return frames


def innermost_module(node: torch.fx.Node) -> ModuleFrame | None:
    stack = module_stack(node)
    return stack[-1] if stack else None


def unsupported_module(node: torch.fx.Node) -> tuple[ModuleFrame, str] | None:
    """The innermost module of ``node``'s stack whose type has no translation as a whole, with
    the reason; ``None`` when every module around the node is one the importer handles.

    A model input belongs to no module: the modules that read it are looked at instead (an
    ``nn.Embedding`` fed by an integer input is refused at that input)."""
    if node.op == "placeholder":
        return next(filter(None, (unsupported_module(user) for user in node.users)), None)
    for frame in reversed(module_stack(node)):
        cls = frame.resolve()
        if cls is None:
            continue
        for unsupported, reason in UNSUPPORTED_MODULES:
            if issubclass(cls, unsupported):
                return frame, reason
    return None
