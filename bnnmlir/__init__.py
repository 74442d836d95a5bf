"""bnnmlir: a compiler for Binary Neural Networks on xDSL.

``bnnmlir.compile(model, example_inputs)`` turns a PyTorch BNN into a callable that is bit-exact
with ``model.eval()``; see :mod:`bnnmlir.api`. ``import bnnmlir`` does not import torch.
"""

from bnnmlir.errors import CompileError

__version__ = "0.1.0"


def compile(model, example_inputs, **options):
    """Compile a PyTorch model; the options (``target``, ``threads``, ``jit``, ``cache``,
    ``progress``, ``check_finite``, ``dynamic_batch``,
    ``exact``) are those of :func:`bnnmlir.api.compile`."""
    from bnnmlir.api import compile as _compile

    return _compile(model, example_inputs, **options)


def convert(model, example_inputs):
    """A published PyTorch BNN rewritten into :mod:`bnnmlir.nn` layers, and the conversion
    report: see :mod:`bnnmlir.conversion`."""
    from bnnmlir.conversion import convert as _convert

    return _convert(model, example_inputs)


def __getattr__(name):
    if name == "CompiledModel":
        from bnnmlir.api import CompiledModel

        return CompiledModel
    raise AttributeError(f"module 'bnnmlir' has no attribute {name!r}")


__all__ = ["CompileError", "compile", "convert", "CompiledModel", "__version__"]
