"""Programs compiled for a dynamic batch: ``void entry(int64_t n, inputs..., outputs..., arena)``.

The design: inference layers compute every image of a batch independently (the frontend proves it
for the graph, :mod:`bnnmlir.frontend.batch`), so the model is compiled ONCE for one image, with
the same passes and kernels as a static program, and the ``bnn-batch-entry`` pass
(``passes/batch_entry.py``) adds an entry point that runs the per-image function over ``n``
images: image ``i`` reads and writes its own slice (``i`` times the per-image bytes) of every
buffer. Compiling per image rather than for a symbolic batch keeps every kernel's shapes static
(the loop nests, the arena plan and the accumulator proofs all need them) and costs nothing at run
time: the batch loop is the outermost loop either way.

Threads and the arena: a program compiled for ``T`` threads runs at most ``P = min(n, T)`` images
at once, spread over the threads by the runtime's parallel-for; each of those ``P`` slots has its
own copy of the per-image arena (``A`` bytes, a multiple of 64), so the arena holds
``A * min(n, T)`` bytes. It depends on ``T`` (fixed at compile time), never on the thread count
set at run time, so a caller can size it before calling: the C header defines
``BNNMLIR_ARENA_BYTES(n)``. With ``n = 1`` the image runs on the calling thread and its layers'
own parallel loops use every thread; with ``n > 1`` the images are the parallel work and each
image's layers run on the thread of its slot (the runtime runs a parallel loop nested in another
inline).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp

from bnnmlir.compiler import CompiledProgram, Signature, _signature
from bnnmlir.passes.batch_entry import IMAGE_SUFFIX, PARALLEL_IMAGES_ATTR


@dataclass(frozen=True)
class BatchSignature(Signature):
    """The C ABI ``void entry(int64_t n, inputs..., outputs..., arena)`` of a dynamic batch.

    ``inputs`` and ``outputs`` give ONE image (dimension 0 is 1; a buffer holds ``n`` of them
    along it) and ``arena_size`` is the arena of one image; ``parallel_images`` (``T``) is the
    most images that run at the same time.
    """

    parallel_images: int

    def arena_bytes(self, batch: int) -> int:
        """Arena bytes for a batch of ``batch`` images: one per-image arena per slot."""
        return self.arena_size * min(max(batch, 1), self.parallel_images)


def batch_signature(module: ModuleOp, entry: str) -> BatchSignature:
    """The signature of the batch entry point ``@entry`` of a buffer-level module."""
    image = _signature(module, entry + IMAGE_SUFFIX)
    wrapper = next(op for op in module.ops
                   if isinstance(op, func.FuncOp) and op.sym_name.data == entry)
    slots = wrapper.attributes[PARALLEL_IMAGES_ATTR]
    assert isinstance(slots, IntegerAttr)
    return BatchSignature(entry, image.inputs, image.outputs, image.arena_size, slots.value.data)


class BatchProgram(CompiledProgram):
    """A compiled program whose calls take any batch size ``n >= 1`` (the same for every input).

    Inputs are numpy arrays whose dimensions after the first are those of the signature; the
    outputs have ``n`` as their first dimension.
    """

    signature: BatchSignature

    def _check_shape(self, i: int, array: np.ndarray, spec, checked: list[np.ndarray]) -> None:
        """Per image: the dimensions after the batch are the signature's, the batch is at least
        one image and the same for every input."""
        entry = self.signature.entry
        expected = ["n", *spec.shape[1:]]
        if array.ndim != len(spec.shape) or tuple(array.shape[1:]) != spec.shape[1:]:
            raise ValueError(f"input {i} of @{entry} must have shape {expected} (n: the "
                             f"batch), got {list(array.shape)}")
        if array.shape[0] < 1:
            raise ValueError(f"input {i} of @{entry}: the batch must hold at least one "
                             "image, got 0")
        if checked and array.shape[0] != checked[0].shape[0]:
            raise ValueError(f"input {i} of @{entry} has batch {array.shape[0]}, input 0 "
                             f"has {checked[0].shape[0]}: every input has the same batch")

    def _argtypes(self) -> list[type]:
        return [ctypes.c_int64, *super()._argtypes()]

    def _call_arguments(self, inputs: list[np.ndarray]) -> tuple[list[int], list[np.ndarray], int]:
        n = inputs[0].shape[0]
        outputs = [np.zeros((n, *s.shape[1:]), dtype=s.dtype) for s in self.signature.outputs]
        return [n], outputs, self.signature.arena_bytes(n)
