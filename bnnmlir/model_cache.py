"""The model-level compile cache: ``bnnmlir.compile`` of the same model again skips the import.

A model entry maps the key of a model, its example inputs and the compile options
(:func:`bnnmlir.model_key.model_key`, computed from the PyTorch objects without
``torch.export``) to the program entry of :mod:`bnnmlir.program_cache` that its import led to,
and keeps what the compiled model needs from the import: the input and output specs, the
input names, which float inputs may hold infinities, the warnings and the approximations, and
the fingerprint of the imported IR. The IR itself (``compiled.mlir(stage)``, a build for another
target, ``compare``) is made again from the model when asked for, and checked to be the IR that
was compiled.

Entries live in ``<object cache>/models``, in the object cache's file format (magic, version,
length, sha256; atomic writes): a damaged entry is removed and the model compiled again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from bnnmlir.backend.object_cache import ObjectCache
from bnnmlir.errors import CompileError
from bnnmlir.frontend.importer import Approximation, ImportedModel, TensorSpec

ENTRY_VERSION = 1
log = logging.getLogger("bnnmlir.model_cache")


def model_store(objects: ObjectCache) -> ObjectCache:
    """Where the model entries of an object cache live."""
    return ObjectCache(objects.directory / "models")


@dataclass
class ModelEntry:
    """What a compile from the model cache needs besides the program entry."""

    program_key: str
    module_fingerprint: str
    input_specs: list[TensorSpec]
    output_specs: list[TensorSpec]
    input_names: list[str]
    infinity_exact: tuple[bool, ...]
    warnings: list[str]
    approximations: list[Approximation]
    dynamic_batch: bool

    def encode(self) -> bytes:
        data = asdict(self)
        for side in ("input_specs", "output_specs"):
            data[side] = [[list(s.shape), str(s.dtype).removeprefix("torch.")]
                          for s in getattr(self, side)]
        data["version"] = ENTRY_VERSION
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def decode(cls, payload: bytes) -> ModelEntry | None:
        """The entry in ``payload``, or ``None`` (of another version, or not an entry)."""
        try:
            data = json.loads(payload)
            if data.pop("version", None) != ENTRY_VERSION:
                return None
            for side in ("input_specs", "output_specs"):
                data[side] = [_spec(shape, dtype) for shape, dtype in data[side]]
            data["infinity_exact"] = tuple(data["infinity_exact"])
            data["approximations"] = [Approximation(**a) for a in data["approximations"]]
            return cls(**data)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def _spec(shape: list[int], dtype: str) -> TensorSpec:
    value = getattr(torch, dtype)
    if not isinstance(value, torch.dtype):
        raise TypeError(dtype)
    return TensorSpec(tuple(shape), value)


def load_entry(objects: ObjectCache, key: str) -> ModelEntry | None:
    payload = model_store(objects).load(key)
    return None if payload is None else ModelEntry.decode(payload)


def store_entry(objects: ObjectCache, key: str, entry: ModelEntry) -> None:
    model_store(objects).store(key, entry.encode())


class LazyImport:
    """An :class:`~bnnmlir.frontend.importer.ImportedModel` from a model entry: the specs,
    warnings and approximations at once; the module, layers and exported program from the
    import, run at the first use and checked to give the IR that was compiled."""

    def __init__(self, entry: ModelEntry, run_import: Callable[[], ImportedModel],
                 import_with_program: Callable[[], ImportedModel] | None = None):
        """``run_import``: the import (which may leave out the exported program);
        ``import_with_program``: one that keeps it, used when the program is the first thing
        asked for (``compare``), so that the model is imported once."""
        self.entry = entry
        self._import_with_program = import_with_program
        self.input_specs = entry.input_specs
        self.output_specs = entry.output_specs
        self.warnings = entry.warnings
        self.approximations = entry.approximations
        self.dynamic_batch = entry.dynamic_batch
        self._run_import = run_import
        self._imported: ImportedModel | None = None
        self._lock = threading.Lock()

    def imported(self, with_program: bool = False) -> ImportedModel:
        from bnnmlir.program_cache import module_fingerprint

        with self._lock:
            if self._imported is None:
                log.debug("model cache: importing again for the IR of a stage")
                run = self._run_import
                if with_program and self._import_with_program is not None:
                    run = self._import_with_program
                imported = run()
                if module_fingerprint(imported.module) != self.entry.module_fingerprint:
                    raise CompileError(
                        "the model changed after it was compiled (from the compile cache): its "
                        "IR cannot be made again; compile it again")
                self._imported = imported
            return self._imported

    @property
    def module(self):
        return self.imported().module

    @property
    def layers(self):
        return self.imported().layers

    @property
    def program(self):
        return self.imported().program

    def exported_program(self):
        return self.imported(with_program=True).exported_program()


class ModelLookup:
    """One compile's use of the model cache: its key (``None`` when there is none) and
    :attr:`status`, which says what happened (``hit``, ``stored``, or why the cache was not
    used; also logged at debug level on ``bnnmlir.model_cache``)."""

    def __init__(self, objects: ObjectCache | None, key: str | None, status: str):
        self.objects, self.key, self.status = objects, key, status
        log.debug("model cache: %s", status)

    @classmethod
    def start(cls, model: object, example_inputs: tuple, options: dict[str, object],
              objects: ObjectCache | None) -> ModelLookup:
        from bnnmlir.model_key import Unkeyable, model_key

        if objects is None:
            return cls(None, None, "off (cache=False)")
        try:
            return cls(objects, model_key(model, example_inputs, options), "miss")
        except Unkeyable as e:
            return cls(objects, None, f"not used: {e}")
        except Exception as e:  # noqa: BLE001 - the cache is optional: compile through the import
            return cls(objects, None, f"not used: the key failed ({type(e).__name__}: {e})")

    def find(self):
        """``(model entry, program entry)`` of a hit, else ``None`` (a model entry whose program
        entry is gone or damaged is a miss too)."""
        from bnnmlir.program_cache import ProgramEntry, program_store

        if self.key is None:
            return None
        entry = load_entry(self.objects, self.key)
        if entry is None:
            return None
        program = ProgramEntry.load(program_store(self.objects), self.objects, entry.program_key)
        if program is None:
            return None
        self.status = "hit"
        log.debug("model cache: hit")
        return entry, program

    def remember(self, key_after_import: Callable[[], str], entry: ModelEntry) -> None:
        """Store ``entry`` under the key, if the model still has that key after the import (a
        forward that changes its model is not cached)."""
        if self.key is None:
            return
        try:
            same = key_after_import() == self.key
        except Exception:  # noqa: BLE001 - Unkeyable, or any failure: store nothing
            same = False
        if not same:
            self.status = "not stored: the model changed while it was imported"
        else:
            store_entry(self.objects, self.key, entry)
            self.status = "stored"
        log.debug("model cache: %s", self.status)
