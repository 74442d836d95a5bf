"""The key of a PyTorch model for the model-level compile cache, computed without ``torch.export``.

Two calls of ``bnnmlir.compile`` get the same key only when the import would produce the same
tensor-level IR. The key hashes:

- every submodule (``named_modules``, shared ones included): its path, its class (module and
  qualified name), its ``training`` flag, its parameters and buffers in registration order
  (non-persistent ones and ``None`` slots included) and every other attribute, which must be
  plain data (``None``, bools, numbers, strings, dtypes, devices, sizes, and tuples, lists, sets
  and dicts of them) or a tensor;
- every tensor: dtype, shape, strides, device, ``requires_grad``, which earlier tensor it is (a
  tied weight), and its raw bytes in logical order (``contiguous()``, one ``sha256`` update);
- the source of the user's code the forward passes may run: the file defining each class of
  every module's MRO, and, reached from the code of those classes' methods, the files of the
  functions, classes and modules they name as globals (recursively), plus the value of every
  plain-data global they name; PyTorch's, numpy's, bnnmlir's and the standard library's files
  are covered by the versions (and :func:`bnnmlir.program_cache.source_fingerprint`);
- each example input's dtype, shape, strides, device and ``requires_grad`` (not its values:
  ``torch.export`` traces on fake tensors, and a forward that branches on a value fails to export);
- the compile options that change the program (passed in by the caller), the Python version,
  PyTorch's default dtype, and :func:`~bnnmlir.program_cache.source_fingerprint`.

What the key cannot see raises :class:`Unkeyable` with the reason, and the compile goes
through the import instead: hooks (on a module or global), attributes of other types (a lambda
``forward``, an object), closures, classes without a source file, tensors that are not dense
plain tensors, a global of another type named by the code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
import types
from functools import cache

import torch

KEY_VERSION = 1
STRUCTURE_ATTRIBUTES = frozenset(("_parameters", "_buffers", "_modules", "training"))
PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device,
                 torch.memory_format, torch.layout)


class Unkeyable(Exception):
    """The model (or its inputs) holds something the model key cannot fingerprint safely."""


@cache
def _is_trusted(path: str) -> bool:
    """Whether the versions in the key cover the file: PyTorch's, numpy's and bnnmlir's (whose
    sources :func:`~bnnmlir.program_cache.source_fingerprint` hashes), and the standard
    library's except its ``site-packages``/``dist-packages`` (other installed packages)."""
    import numpy

    import bnnmlir

    path = os.path.realpath(path)
    packages = tuple(os.path.realpath(os.path.dirname(m.__file__)) + os.sep
                     for m in (torch, numpy, bnnmlir))
    if path.startswith(packages):
        return True
    stdlib = tuple(os.path.realpath(sysconfig.get_paths()[k]) + os.sep
                   for k in ("stdlib", "platstdlib"))
    installed = {"site-packages", "dist-packages"} & set(path.split(os.sep))
    return path.startswith(stdlib) and not installed


def plain_data(value: object) -> object:
    """``value`` as JSON-able data if it is plain data (see the module docstring); else raise
    ``TypeError``."""
    if isinstance(value, float) and value != value:
        return ["float", "nan"]
    if type(value) in PLAIN_SCALARS:
        return [type(value).__name__, repr(value)]
    if isinstance(value, (tuple, list, torch.Size)):
        return [type(value).__name__, [plain_data(v) for v in value]]
    if isinstance(value, (set, frozenset)):
        return [type(value).__name__, sorted(json.dumps(plain_data(v)) for v in value)]
    if type(value) is dict:
        return ["dict", sorted([json.dumps(plain_data(k)), plain_data(v)]
                               for k, v in value.items())]
    raise TypeError(type(value).__qualname__)


class ModelHasher:
    """Feeds a model, its inputs and the options into one sha256 (see the module docstring)."""

    def __init__(self):
        self.digest = hashlib.sha256()
        self._tensors: dict[int, str] = {}
        self._storages: dict[object, str] = {}
        self._modules: dict[int, str] = {}
        self._files: set[str] = set()
        self._code_seen: set[int] = set()

    def feed(self, *parts: object) -> None:
        self.digest.update(json.dumps(parts, default=repr).encode() + b"\0")

    # ---- tensors ----------------------------------------------------------------------------
    def tensor(self, name: str, t: torch.Tensor | None) -> None:
        if t is None:
            self.feed("none", name)
            return
        if type(t) not in (torch.Tensor, torch.nn.Parameter):
            raise Unkeyable(f"'{name}' is a {type(t).__qualname__}, not a plain tensor")
        if t.layout != torch.strided or t.is_quantized or t.is_meta:
            raise Unkeyable(f"'{name}' is not a dense tensor")
        storage = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else name
        self.feed("tensor", name, str(t.dtype), list(t.shape), list(t.stride()),
                  str(t.device), t.requires_grad, self._tensors.setdefault(id(t), name),
                  self._storages.setdefault(storage, name))
        data = t.detach().resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
        self.digest.update(data.view(torch.uint8).numpy())

    # ---- modules ----------------------------------------------------------------------------
    def module_tree(self, model: torch.nn.Module) -> None:
        _check_global_hooks()
        for path, module in model.named_modules(remove_duplicate=False):
            self.module(path, module)

    def module(self, path: str, module: torch.nn.Module) -> None:
        where = f"module '{path or '<root>'}'"
        cls = type(module)
        first = self._modules.setdefault(id(module), path)
        self.feed("module", path, cls.__module__, cls.__qualname__, module.training, first)
        if first != path:
            return
        for name, p in module._parameters.items():
            self.tensor(f"{path}:{name}", p)
        for name, b in module._buffers.items():
            self.tensor(f"{path}:{name}", b)
        self.feed("children", list(module._modules))
        for name in sorted(set(vars(module)) - STRUCTURE_ATTRIBUTES):
            value = vars(module)[name]
            if "hook" in name and isinstance(value, dict):
                if value:
                    raise Unkeyable(f"{where} has hooks ({name})")
                continue
            if isinstance(value, torch.Tensor):
                self.tensor(f"{path}:{name}", value)
                continue
            try:
                self.feed("attribute", name, plain_data(value))
            except TypeError as e:
                raise Unkeyable(f"attribute '{name}' of {where} is a {e}, not plain data") from None
        self.classes(cls)

    # ---- source code ------------------------------------------------------------------------
    def classes(self, cls: type) -> None:
        """Hash the files of ``cls`` and its bases, and follow the code of their methods."""
        for klass in cls.__mro__:
            if id(klass) in self._code_seen:
                continue
            self._code_seen.add(id(klass))
            if self.source_of(klass, f"class {klass.__qualname__}"):
                for value in vars(klass).values():
                    self.method(value, klass.__qualname__)

    def source_of(self, obj: object, what: str) -> bool:
        """Hash the file defining ``obj`` (once); False if the versions cover it already."""
        path = _file_of(obj)
        if path is None:
            if _is_builtin(obj):
                return False
            raise Unkeyable(f"{what} has no source file")
        if _is_trusted(path):
            return False
        if path not in self._files:
            self._files.add(path)
            with open(path, "rb") as f:
                self.feed("source", os.path.realpath(path), hashlib.sha256(f.read()).hexdigest())
        return True

    def method(self, value: object, owner: str) -> None:
        """Follow a method (also a static or class method, or a property) of a user class."""
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        functions = ((value.fget, value.fset, value.fdel) if isinstance(value, property)
                     else (value,))
        for f in functions:
            if isinstance(f, types.FunctionType):
                self.function(f, f"{owner}.{f.__name__}")

    def function(self, fn: types.FunctionType, what: str) -> None:
        """Hash the file of a user function and follow the globals its code names."""
        if id(fn) in self._code_seen:
            return
        self._code_seen.add(id(fn))
        code = fn.__code__
        self.feed("function", what, code.co_filename, code.co_firstlineno,
                  hashlib.sha256(code.co_code).hexdigest())
        if not self.source_of(fn, what):
            return
        if set(fn.__code__.co_freevars) - {"__class__"}:
            raise Unkeyable(f"{what} is a closure (the values it captures are not visible)")
        try:
            self.feed("defaults", what, plain_data(fn.__defaults__),
                      plain_data(fn.__kwdefaults__))
        except TypeError as e:
            raise Unkeyable(f"a default argument of {what} is a {e}, not plain data") from None
        for name in sorted(_global_names(fn.__code__)):
            if name in fn.__globals__:
                self.global_value(name, fn.__globals__[name], what)

    def global_value(self, name: str, value: object, what: str) -> None:
        """Follow a global that user code names (a name that is also an attribute name is
        followed too: more than needed, never less)."""
        self.feed("global", name, type(value).__qualname__,
                  getattr(value, "__module__", None), getattr(value, "__qualname__", None))
        if isinstance(value, types.ModuleType):
            if self.source_of(value, f"module {value.__name__}"):
                for member in vars(value).values():
                    if getattr(member, "__module__", None) == value.__name__:
                        self.global_value(name, member, what)
        elif isinstance(value, types.FunctionType):
            self.function(value, value.__qualname__)
        elif isinstance(value, type):
            self.classes(value)
        elif isinstance(value, torch.Tensor):
            self.tensor(f"global {name}", value)
        elif _is_library_callable(value):
            self.feed("global", name, type(value).__module__, repr(value))
        else:
            try:
                self.feed("global", name, plain_data(value))
            except TypeError:
                raise Unkeyable(f"{what} names the global '{name}', a "
                                f"{type(value).__qualname__}, which the key cannot see") from None

    # ---- inputs -----------------------------------------------------------------------------
    def example_inputs(self, inputs: tuple) -> None:
        for index, x in enumerate(inputs):
            if type(x) is not torch.Tensor or x.layout != torch.strided:
                raise Unkeyable(f"example input {index} is not a dense torch.Tensor")
            self.feed("input", index, str(x.dtype), list(x.shape), list(x.stride()),
                      str(x.device), x.requires_grad)


def _file_of(obj: object) -> str | None:
    """The source file defining a module, function or class, if it has one."""
    if isinstance(obj, types.ModuleType):
        path = getattr(obj, "__file__", None)
    elif isinstance(obj, types.FunctionType):
        path = obj.__code__.co_filename
    else:
        path = getattr(sys.modules.get(getattr(obj, "__module__", "") or ""), "__file__", None)
    return path if path and os.path.isfile(path) else None


def _is_builtin(obj: object) -> bool:
    """Whether ``obj`` is compiled into the interpreter (``builtins``, ``sys``...)."""
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", "")
    return name in sys.builtin_module_names


def _is_library_callable(value: object) -> bool:
    """Builtin functions (``torch.sign``, ``math.floor``), PyTorch's operator namespaces
    (``torch.ops.aten``) and typing constructs: named by their repr, which identifies them."""
    if isinstance(value, (types.BuiltinFunctionType, types.MethodDescriptorType)):
        return True
    return type(value).__module__.split(".")[0] == "typing" or (
        type(value).__module__ == "torch._ops")


def _global_names(code: types.CodeType) -> set[str]:
    """The names ``code`` (and the code nested in it) may look up as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _check_global_hooks() -> None:
    from torch.nn.modules import module as torch_module

    for name in dir(torch_module):
        if name.startswith("_global_") and "hook" in name:
            hooks = getattr(torch_module, name)
            if isinstance(hooks, dict) and hooks:
                raise Unkeyable(f"global module hooks are registered ({name})")


def model_key(model: object, example_inputs: tuple, options: dict[str, object]) -> str:
    """The key of compiling ``model`` on ``example_inputs`` with ``options`` (JSON data: the
    target, threads, exactness, dynamic batch...); :class:`Unkeyable` says why there is none."""
    from bnnmlir.program_cache import source_fingerprint

    if not isinstance(model, torch.nn.Module):
        raise Unkeyable(f"the model is a {type(model).__qualname__}, not a torch.nn.Module")
    hasher = ModelHasher()
    hasher.feed(KEY_VERSION, source_fingerprint(), sys.version, str(torch.get_default_dtype()),
                options)
    hasher.example_inputs(example_inputs)
    hasher.module_tree(model)
    return hasher.digest.hexdigest()
