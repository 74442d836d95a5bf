"""Telling a ``torch.export`` archive from the files people pass by mistake.

Judged from magic bytes and entry names only: nothing is unpickled or parsed to find out.
"""

from __future__ import annotations

from pathlib import Path

HOW_TO_EXPORT = (
    "write the archive with torch.export.save(torch.export.export(model.eval(), (example,)), "
    "'model.pt2')"
)
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE_PROTOCOLS = range(2, 6)


def describe_file(path: Path, head: bytes) -> str | None:
    """What a non-zip file is (None when ``head`` starts a zip file)."""
    if not head:
        return "an empty file"
    if head.startswith(ZIP_MAGIC):
        return None
    if head[0] == 0x80 and head[1:2] and head[1] in _PICKLE_PROTOCOLS:
        return "a torch.save checkpoint or state_dict in the legacy pickle format, not a torch.export archive"
    if path.suffix.lower() == ".onnx" or (head[0] == 0x08 and b"onnx" in head.lower()):
        return "an ONNX model, not a torch.export archive"
    return "not a torch.export archive (not a zip file)"


def describe_zip(names: list[str]) -> str | None:
    """What a zip file is, from its entry names (None for a PT2 archive)."""
    top = {name.split("/", 1)[0] for name in names}
    relative = {name.split("/", 1)[1] for name in names if "/" in name}
    if "archive_format" in relative:
        return None  # a PT2 archive, to be inspected entry by entry
    if "serialized_exported_program.json" in top:
        return "a torch.export file in the format of PyTorch 2.7 and older (it unpickles its weights)"
    if "data.pkl" in relative and ("constants.pkl" in relative or any(r.startswith("code/") for r in relative)):
        return "a TorchScript model (torch.jit.save), not a torch.export archive"
    if "data.pkl" in relative:
        return "a torch.save checkpoint or state_dict, not a torch.export archive"
    return "a zip file but not a torch.export archive (no archive_format entry)"
