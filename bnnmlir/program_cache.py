"""A compile cache in front of the passes: the same tensor-level IR compiled again skips them.

An entry describes one compiled program: its signature, its per-layer report, the functions its
object code defines and declares, and the keys of its object code in the object cache
(:mod:`bnnmlir.backend.object_cache`). Its key hashes everything the program depends on:

- the tensor-level IR (its text with large constants elided, then the raw bytes of every
  constant, in program order);
- the target (triple, CPU, features), the run-time threads, the entry point, the dynamic batch;
- the source code of bnnmlir itself and the versions of xDSL, llvmlite, LLVM and PyTorch (the
  folds evaluate PyTorch's own operations).

Entries live beside the objects, in ``<object cache>/programs``, in the object cache's file format
(magic, version, length, sha256; atomic writes): a damaged entry is removed and the program is
compiled again. The object code itself stays in the object cache, so a damaged object is rebuilt
alone (from the IR of the ``llvm`` stage, made again on demand).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ArrayAttr, DenseIntOrFPElementsAttr, DictionaryAttr, ModuleOp
from xdsl.ir import Attribute

from bnnmlir.backend.object_cache import ObjectCache
from bnnmlir.report import LayerReport, LayerRow

ENTRY_VERSION = 1
ELIDE_LARGER_THAN = 16


@cache
def source_fingerprint() -> str:
    """sha256 of the Python sources of bnnmlir (compiler, passes, dialects) and of the versions
    of the libraries whose behaviour the generated code depends on."""
    import bnnmlir
    import bnnmlir.dialects
    import bnnmlir.passes

    digest = hashlib.sha256()
    for package in (bnnmlir, bnnmlir.passes, bnnmlir.dialects):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes())
    for name in ("xdsl", "llvmlite", "torch", "numpy"):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{name}={version}\0".encode())
    import llvmlite.binding as llvm

    digest.update(".".join(map(str, llvm.llvm_version_info)).encode())
    return digest.hexdigest()


def _constant_bytes(attr: Attribute, digest) -> None:
    """Feed the bytes of every dense constant in ``attr`` (also inside dictionaries and arrays)."""
    if isinstance(attr, DenseIntOrFPElementsAttr):
        data = attr.data.data
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    elif isinstance(attr, DictionaryAttr):
        for name in sorted(attr.data):
            _constant_bytes(attr.data[name], digest)
    elif isinstance(attr, ArrayAttr):
        for item in attr.data:
            _constant_bytes(item, digest)


def module_fingerprint(module: ModuleOp) -> str:
    """sha256 of a module: its generic text with large constants elided, then the bytes of
    every constant (the elided ones included) in walk order."""
    from bnnmlir.ir_print import print_ir

    digest = hashlib.sha256()
    digest.update(print_ir(module, generic=True, elide_larger_than=ELIDE_LARGER_THAN).encode())
    for op in module.walk():
        for table in (op.properties, op.attributes):
            for name in sorted(table):
                _constant_bytes(table[name], digest)
    return digest.hexdigest()


def program_key(module: ModuleOp, options: dict[str, object]) -> str:
    """The key of the program compiled from ``module`` with ``options`` (target, threads...)."""
    digest = hashlib.sha256()
    digest.update(source_fingerprint().encode())
    digest.update(json.dumps(options, sort_keys=True).encode())
    digest.update(module_fingerprint(module).encode())
    return digest.hexdigest()


def program_store(objects: ObjectCache) -> ObjectCache:
    """Where the program entries of an object cache live."""
    return ObjectCache(objects.directory / "programs")


# ---- entries ----------------------------------------------------------------------------------
def encode_signature(signature) -> dict[str, object]:
    fields = {k: v for k, v in vars(signature).items() if k not in ("inputs", "outputs")}
    return {
        "kind": type(signature).__name__,
        "inputs": [[list(s.shape), s.dtype.str] for s in signature.inputs],
        "outputs": [[list(s.shape), s.dtype.str] for s in signature.outputs],
        **fields,
    }


def decode_signature(data: dict[str, object]):
    from bnnmlir.batch import BatchSignature
    from bnnmlir.compiler import ArgumentSpec, Signature

    data = dict(data)
    kind = {"Signature": Signature, "BatchSignature": BatchSignature}[data.pop("kind")]
    for side in ("inputs", "outputs"):
        data[side] = tuple(ArgumentSpec(tuple(shape), np.dtype(dtype)) for shape, dtype in data[side])
    return kind(**data)


class ProgramEntry:
    """The entry of one program: what a compile from the cache needs without running a pass.

    ``objects`` maps an object kind (``jit``, ``pic``) to its key in the object cache; it grows
    as object code is made (:meth:`remember` writes the entry again)."""

    def __init__(self, store: ObjectCache, objects: ObjectCache, key: str, signature,
                 report: LayerReport, functions: tuple[frozenset[str], frozenset[str]] = (
                     frozenset(), frozenset()), object_keys: dict[str, str] | None = None):
        self.store, self.objects, self.key = store, objects, key
        self.signature, self.report, self.functions = signature, report, functions
        self.object_keys = dict(object_keys or {})

    def object_code(self, kind: str, times: dict[str, float] | None = None) -> bytes | None:
        """The cached object code of ``kind``, or ``None`` (never made, or damaged)."""
        key = self.object_keys.get(kind)
        code = self.objects.load(key) if key else None
        if code is not None and times is not None:
            times["cache hit"] = 1.0
        return code

    def remember(self, keys: dict[str, str],
                 functions: tuple[frozenset[str], frozenset[str]] | None = None) -> None:
        """Record the object keys (and the JIT's function names) of new object code; write."""
        if functions is not None:
            self.functions = functions
        if keys.items() <= self.object_keys.items() and functions is None:
            return
        self.object_keys.update(keys)
        self.write()

    def write(self) -> None:
        entry = {
            "version": ENTRY_VERSION,
            "signature": encode_signature(self.signature),
            "report": {"target": self.report.target,
                       "rows": [asdict(r) for r in self.report.rows]},
            "functions": sorted(self.functions[0]),
            "declarations": sorted(self.functions[1]),
            "objects": self.object_keys,
        }
        self.store.store(self.key, json.dumps(entry, sort_keys=True).encode())

    @classmethod
    def load(cls, store: ObjectCache, objects: ObjectCache, key: str) -> ProgramEntry | None:
        """The entry under ``key``, or ``None`` (absent, damaged, or of another version)."""
        payload = store.load(key)
        if payload is None:
            return None
        try:
            entry = json.loads(payload)
            if entry.get("version") != ENTRY_VERSION:
                return None
            report = LayerReport([LayerRow(**r) for r in entry["report"]["rows"]],
                                 entry["report"]["target"])
            return cls(store, objects, key, decode_signature(entry["signature"]), report,
                       (frozenset(entry["functions"]), frozenset(entry["declarations"])),
                       dict(entry["objects"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
