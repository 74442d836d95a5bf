"""bnnmlir: a compiler for Binary Neural Networks on xDSL.

``bnnmlir.compile(model, example_inputs)`` turns a PyTorch BNN into a callable that is bit-exact
with ``model.eval()``; see :mod:`bnnmlir.api`. ``import bnnmlir`` does not import torch.
"""

from bnnmlir.errors import CompileError

__version__ = "0.1.0"


def compile(model, example_inputs, *, target="host", threads=None, jit=True, exact=True):
    """Compile a PyTorch model; see :func:`bnnmlir.api.compile`."""
    from bnnmlir.api import compile as _compile

    return _compile(model, example_inputs, target=target, threads=threads, jit=jit, exact=exact)


def __getattr__(name):
    if name == "CompiledModel":
        from bnnmlir.api import CompiledModel

        return CompiledModel
    raise AttributeError(f"module 'bnnmlir' has no attribute {name!r}")


__all__ = ["CompileError", "compile", "CompiledModel", "__version__"]
