"""Loading a saved ``torch.export`` archive (``.pt2``) without running code from it.

Threat model: the archive comes from someone else and may be crafted. ``torch.export.load``
(torch 2.13, ``torch/export/pt2_archive/_package.py`` and ``torch/_export/serde/serialize.py``)
trusts it and runs code from it along these paths:

- a weight or constant whose payload config says ``use_pickle``: ``torch.load(weights_only=False)``;
- a constant whose ``path_name`` starts with ``custom_obj_`` (TorchBind unpickler) or
  ``opaque_obj_`` (``pickle.loads``), whatever the rest of the path is (``opaque_obj_d/p`` too);
- the legacy ``data/weights/model.pt`` / ``data/constants/model.pt`` payloads and sample inputs
  that a weights-only load refuses: ``torch.load(weights_only=False)``;
- ``data/aotinductor/``: compiled code the loader opens as a shared library;
- a symbolic shape (``expr_str``) in the program's JSON: ``sympy.sympify``, i.e. ``eval``; only a
  plain symbol (a dynamic batch: ``Symbol('s0', positive=True, integer=True)``) is accepted;
- ``guards_code``: Python source compiled when the program's module is built;
- any ``RuntimeError`` of the PT2 reader: a fallback to the PyTorch 2.7 zip format, which
  unpickles its state dict.

Besides, every entry is inflated into memory by someone: a small archive can claim or hold
gigabytes. Out of scope: the file changing while it is loaded (it is opened once and that open
file is inspected and loaded), bugs of torch's weights-only unpickler and C++ zip reader, and the
graph's meaning (the importer accepts only the ops it knows, after torch's own verifier).

Rules, checked before ``torch.export.load`` sees the file (:func:`load_exported_program`):

1. Zip level (:mod:`bnnmlir.frontend.archive_zip`): entry count, total inflated size and the
   inflation ratio of every entry are checked from the directory before reading; the directory
   sits where the end records say (Python's and torch's zip readers then read the same bytes);
   names are plain, printable and unique; every entry is read back chunk by chunk under a cap,
   its size and CRC must match the directory. Inspection memory is bounded by
   ``Limits.max_read``, whatever the entries claim or hold.
2. Allow-list of entries, all under one root folder, each with the kind it must be:
   the format markers (small text with the expected value), ``models/model.json`` (JSON without
   symbolic shapes or guard code), the two payload configs (JSON; each entry not pickled, a
   constant only a tensor, each ``path_name`` a plain file name that is present and is no other
   entry's role, e.g. not the legacy ``model.pt``; integer sizes within the limit, and no
   elements for an empty payload, which the loader would allocate as zeros), the raw tensor payloads they name,
   the sample inputs (loadable with ``weights_only=True``, their own zip bounded too) and
   ``extra/`` text files. Anything else, referenced or not, is refused with its name and reason.
3. Files that are not such archives (``torch.save`` checkpoints, TorchScript, ONNX, ...) are
   named for what they are, with how to write the right file.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

from bnnmlir.errors import (
    ArchiveLimitError,
    CompileError,
    NotAnArchiveError,
    UnsafeArchiveError,
)
from bnnmlir.frontend.archive_kinds import HOW_TO_EXPORT, describe_file, describe_zip
from bnnmlir.frontend.archive_zip import (
    BadEntry,
    LimitExceeded,
    Limits,
    check_directory,
    check_end_record,
    drain_entry,
    read_entry,
)


_MODEL = "model"  # the program torch.export.save writes and torch.export.load returns
_SYMBOLIC_KEYS = ("expr_str",)


def _plain_file_name(name) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..") and name.isprintable()
            and "/" not in name and "\\" not in name)


class _Inspection:
    """One pass over the entries of a PT2 archive, collecting what is not plain data."""

    def __init__(self, archive: zipfile.ZipFile, limits: Limits):
        from torch.export.pt2_archive import constants

        self.pt2 = constants
        self.archive, self.limits = archive, limits
        self.problems: list[str] = []
        root = archive.infolist()[0].filename.split("/", 1)[0]
        self.entries: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            relative = info.filename[len(root) + 1:]
            parts = relative.split("/")
            if not info.filename.startswith(root + "/") or any(p in ("", ".", "..") for p in parts):
                raise BadEntry(f"{info.filename}: not a plain path under the root folder {root}/")
            self.entries[relative] = info
        self.roles: dict[str, Callable[[str, zipfile.ZipInfo], None]] = {}  # entry -> its check
        self.payloads: set[str] = set()  # the raw tensor payloads the configs name
        self.legacy = {f"{self.pt2.WEIGHTS_DIR}{_MODEL}.pt", f"{self.pt2.CONSTANTS_DIR}{_MODEL}.pt"}

    def run(self) -> list[str]:
        pt2 = self.pt2
        self._expect(pt2.ARCHIVE_FORMAT_PATH, lambda n, i: self._text(n, i, {pt2.ARCHIVE_FORMAT_VALUE}))
        self._expect(pt2.ARCHIVE_VERSION_PATH, lambda n, i: self._text(n, i, {pt2.ARCHIVE_VERSION_VALUE}))
        self._expect(pt2.MODELS_FILENAME_FORMAT.format(_MODEL), self._model)
        self._expect(pt2.SAMPLE_INPUTS_FILENAME_FORMAT.format(_MODEL), self._sample_inputs)
        self._expect(pt2.WEIGHTS_CONFIG_FILENAME_FORMAT.format(_MODEL),
                     lambda n, i: self._payload_config(n, i, pt2.WEIGHTS_DIR, constants=False))
        self._expect(pt2.CONSTANTS_CONFIG_FILENAME_FORMAT.format(_MODEL),
                     lambda n, i: self._payload_config(n, i, pt2.CONSTANTS_DIR, constants=True))
        for optional in ("byteorder", ".data/version", ".data/serialization_id"):
            self.roles[optional] = lambda n, i: self._text(n, i, None)
        for name, check in self.roles.items():  # the configs first: they name the payloads
            if name in self.entries:
                check(name, self.entries[name])
        for name, info in self.entries.items():
            if name in self.roles:
                continue
            if name in self.payloads:
                drain_entry(self.archive, info)
            elif name.startswith(pt2.EXTRA_DIR):
                self._text(name, info, None)
            else:
                self.problems.append(f"{name}: {self._unknown_reason(name)}")
        return self.problems

    def _expect(self, name: str, check) -> None:
        self.roles[name] = check
        if name not in self.entries:
            self.problems.append(f"{name}: missing (torch.export.load reads it)")

    def _unknown_reason(self, name: str) -> str:
        pt2 = self.pt2
        if name in self.legacy:
            return "a payload in the legacy format, which torch.export.load unpickles; re-save the model"
        if name.startswith(pt2.AOTINDUCTOR_DIR):
            return "AOTInductor compiled code, which torch.export.load would load as a shared library"
        if name.startswith((pt2.WEIGHTS_DIR, pt2.CONSTANTS_DIR)):
            return "not a tensor payload named by the payload configs"
        return "not an entry of a torch.export archive that is known to be plain data"

    def _text(self, name: str, info: zipfile.ZipInfo, allowed: set[str] | None) -> None:
        data = read_entry(self.archive, info, self.limits.max_read)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self.problems.append(f"{name}: not UTF-8 text")
            return
        if allowed is not None and text not in allowed:
            self.problems.append(f"{name}: {text[:40]!r}, expected {' or '.join(map(repr, sorted(allowed)))}")

    def _json(self, name: str, info: zipfile.ZipInfo):
        try:
            value = json.loads(read_entry(self.archive, info, self.limits.max_read))
        except (ValueError, RecursionError) as e:
            self.problems.append(f"{name}: not valid JSON ({type(e).__name__})")
            return None
        self.problems.extend(f"{name}: {where}: a symbolic shape expression, which torch.export.load "
                             f"evaluates with sympy (Python eval); bnnmlir compiles static shapes only"
                             for where in _symbolic_paths(value))
        return value

    def _model(self, name: str, info: zipfile.ZipInfo) -> None:
        program = self._json(name, info)
        if not isinstance(program, dict):
            if program is not None:
                self.problems.append(f"{name}: not a JSON object")
            return
        if program.get("guards_code"):
            self.problems.append(f"{name}: guards_code holds Python source, compiled and run when the "
                                 "program's module is built; bnnmlir compiles static shapes only")

    def _payload_config(self, name: str, info: zipfile.ZipInfo, directory: str, constants: bool) -> None:
        config = self._json(name, info)
        payloads = config.get("config") if isinstance(config, dict) else None
        if not isinstance(payloads, dict):
            if config is not None:
                self.problems.append(f"{name}: not a payload config (no 'config' object)")
            return
        for fqn, meta in payloads.items():
            problem = self._payload_problem(meta, directory, constants)
            if problem:
                self.problems.append(f"{name}: '{fqn}' {problem}")
            else:
                self.payloads.add(directory + meta["path_name"])

    def _payload_problem(self, meta, directory: str, constants: bool) -> str | None:
        pt2 = self.pt2
        if not isinstance(meta, dict):
            return "is not described by an object"
        path = meta.get("path_name")
        if not _plain_file_name(path):
            return f"points at {path!r}, not a plain file name in {directory}"
        if constants and path.startswith(pt2.OPAQUE_OBJ_FILENAME_PREFIX):
            return f"is an opaque Python object ({path}), which torch.export.load unpickles with pickle.loads"
        if constants and path.startswith(pt2.CUSTOM_OBJ_FILENAME_PREFIX):
            return f"is a TorchBind object ({path}), which torch.export.load unpickles"
        if constants and not path.startswith(pt2.TENSOR_CONSTANT_FILENAME_PREFIX):
            return f"is a constant of unknown kind ({path}); only tensor constants are plain data"
        if meta.get("use_pickle") is not False:
            return "is stored pickled (use_pickle), which torch.load(weights_only=False) would run"
        tensor_meta = meta.get("tensor_meta")
        sizes = _sizes(tensor_meta.get("sizes")) if isinstance(tensor_meta, dict) else None
        if sizes is None:
            return "has no tensor_meta with integer sizes"
        if directory + path in self.roles or directory + path in self.legacy:
            return f"points at {directory + path}, which is not a tensor payload"
        if directory + path not in self.entries:
            return f"points at {directory + path}, which is missing"
        elements = math.prod(sizes)
        if elements > self.limits.max_bytes:
            return f"declares {elements} elements, more than the limit of {self.limits.max_bytes} bytes"
        if elements and self.entries[directory + path].file_size == 0:
            return f"declares {elements} elements in an empty payload, which the loader would allocate as zeros"
        return None

    def _sample_inputs(self, name: str, info: zipfile.ZipInfo) -> None:
        import torch

        data = read_entry(self.archive, info, self.limits.max_read)
        if not data:
            return  # the loader reads an empty payload as no sample inputs
        if data.startswith(b"PK"):  # torch.save's own zip: its sizes are bounded as well
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as inner:
                    check_directory(inner.infolist(), self.limits, self.limits.max_read)
            except LimitExceeded as e:
                raise LimitExceeded(f"{name}, inside: {e}") from None
            except (BadEntry, zipfile.BadZipFile) as e:
                self.problems.append(f"{name}: a broken zip inside ({e})")
                return
        try:
            torch.load(io.BytesIO(data), weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure means it is not plain data
            self.problems.append(f"{name}: not plain tensors (a weights-only load says {type(e).__name__}); "
                                 "torch.export.load would then unpickle it")


def _sizes(sizes) -> list[int] | None:
    """The sizes of a serialized tensor_meta (``[{"as_int": n}, ...]``), None unless all are plain."""
    if not isinstance(sizes, list):
        return None
    plain = [size.get("as_int") if isinstance(size, dict) else None for size in sizes]
    return plain if all(isinstance(n, int) and n >= 0 for n in plain) else None


_PLAIN_SYMBOL = re.compile(
    r"[A-Za-z][A-Za-z0-9_]{0,63}"
    r"|Symbol\('[A-Za-z][A-Za-z0-9_]{0,63}'(?:, (?:positive|integer|nonnegative)=(?:True|False))*\)"
)
"""A dynamic batch as torch writes it (``Symbol('s31', positive=True, integer=True)``) or a bare
name: sympy makes a symbol of it and calls nothing else."""


def _plain_symbol(expr: object) -> bool:
    """Whether ``expr`` is a plain symbol (see :data:`_PLAIN_SYMBOL`); anything else (other
    calls, attributes, operators, arithmetic on symbols) is refused."""
    return isinstance(expr, str) and _PLAIN_SYMBOL.fullmatch(expr) is not None


def _symbolic_paths(value) -> list[str]:
    """JSON paths of symbolic shape expressions in ``value`` (walked without recursion)."""
    found, stack = [], [("$", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            found.extend(f"{where}.{key}" for key in _SYMBOLIC_KEYS
                         if key in item and not _plain_symbol(item[key]))
            stack.extend((f"{where}.{key}", child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
    return found[:5]


def _inspect(path: Path, file, limits: Limits) -> None:
    what = describe_file(path, file.read(4096))
    if what:
        raise NotAnArchiveError(f"{path}: {what}; {HOW_TO_EXPORT}")
    try:
        check_end_record(file, limits)
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
            check_directory(infos, limits, limits.max_bytes)
            what = describe_zip([info.filename for info in infos])
            if what:
                raise NotAnArchiveError(f"{path}: {what}; {HOW_TO_EXPORT}")
            problems = _Inspection(archive, limits).run()
    except LimitExceeded as e:
        raise ArchiveLimitError(f"{path}: refusing to load: {e} {limits.raise_hint()}") from None
    except (BadEntry, zipfile.BadZipFile) as e:
        raise UnsafeArchiveError(f"{path}: refusing to load: {e}") from None
    if problems:
        raise UnsafeArchiveError(
            f"{path}: refusing to load; these entries are not plain data that torch.export.load "
            "reads without running code:\n  " + "\n  ".join(problems))


def load_exported_program(path: str | Path, *, max_bytes: int | None = None, max_ratio: float | None = None):
    """Load ``path`` (written by ``torch.export.save``) after inspecting it (see the module rules).

    ``max_bytes`` / ``max_ratio`` override the size limits (default 16 GiB in all, 100:1 per entry;
    also ``BNNMLIR_ARCHIVE_MAX_BYTES`` / ``BNNMLIR_ARCHIVE_MAX_RATIO``). Raises :class:`CompileError`:
    :class:`NotAnArchiveError`, :class:`UnsafeArchiveError` or :class:`ArchiveLimitError`.
    """
    import torch

    import bnnmlir.custom_ops  # noqa: F401 - registers the custom ops the graph may call

    path = Path(path)
    limits = Limits.from_env(max_bytes, max_ratio)
    if path.is_dir():
        raise NotAnArchiveError(f"{path}: a directory, not a torch.export archive; {HOW_TO_EXPORT}")
    if not path.is_file():
        raise CompileError(f"{path}: no such file")
    with open(path, "rb") as file:  # the file inspected is the file loaded
        _inspect(path, file, limits)
        file.seek(0)
        try:
            return torch.export.load(file)
        except Exception as e:  # noqa: BLE001 - torch raises many types for malformed archives
            raise CompileError(f"{path}: cannot load the exported program: {e}") from None
