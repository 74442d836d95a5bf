"""The PyTorch frontend: :func:`import_model` turns an ``nn.Module`` into tensor-level ``bnn`` IR.

See :mod:`bnnmlir.frontend.importer` (graph capture, walk, signature),
:mod:`bnnmlir.frontend.patterns` (one translation per ATen operator),
:mod:`bnnmlir.frontend.binary` (binarizations, binary layers, the ``torch.sign`` zero case),
:mod:`bnnmlir.frontend.bias` (when a binary layer's bias is bit-exact with PyTorch) and
:mod:`bnnmlir.frontend.integer` (exact integer convolution / linear layers: int8 stems and heads)
:mod:`bnnmlir.frontend.modules` (module types refused as a whole, with the reason) and
:mod:`bnnmlir.frontend.batch` (a dynamic batch: the per-image proof and the specialization to
one image).
Importing this package imports ``torch``.
"""

from bnnmlir.errors import UnsupportedModuleError, UnsupportedOperationError
from bnnmlir.frontend.builder import LayerInfo
from bnnmlir.frontend.importer import (
    ImportedModel,
    TensorSpec,
    import_exported_program,
    import_model,
)

__all__ = [
    "ImportedModel",
    "LayerInfo",
    "TensorSpec",
    "UnsupportedModuleError",
    "UnsupportedOperationError",
    "import_exported_program",
    "import_model",
]
