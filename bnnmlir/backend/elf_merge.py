"""Several ELF relocatable objects as one, as ``ld -r`` would make it, without a linker.

A module compiled in parts (:func:`bnnmlir.backend.parallel_opt.object_in_parts`) gives one
object per part, each defining some functions and calling the others by name. A user links
one object file, so the parts become one: every section of every part is kept as a section of
its own (an ELF object may hold several ``.text`` sections; the linker joins them), so no code
or data moves and no relocation's offset or addend changes. What is rewritten:

- the section indices (of symbols, of relocation sections' targets, of ``sh_link``);
- one symbol table: the local symbols of each part, then its definitions named in ``local``
  (functions that were internal in the whole module, external only so that the parts could call
  each other) as local symbols, then each global or weak symbol once: its definition if a part
  has one, else one undefined entry;
- each relocation's symbol index, to that table's entry.

A global name resolves as a linker's ``-r`` resolves it: its one strong definition, else its
first weak one, else one undefined entry (global if any part's reference is), with the most
restrictive visibility of all its entries. LLVM's address-significance table
(``.llvm_addrsig``, an optional hint to the linker, indexed by symbol) is left out. Only
64-bit little-endian objects of one machine (x86-64, aarch64) are merged; section groups
(COMDAT), extended section indices, common symbols and a symbol with two strong definitions are
refused with a ``ValueError``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_SECTION = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_REL = struct.Struct("<QQ")

ET_REL = 1
SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 2, 3, 4, 8, 9
SHT_GROUP, SHT_SYMTAB_SHNDX = 17, 18
SHT_LLVM_ADDRSIG = 0x6FFF4C03
SHN_LORESERVE, SHN_COMMON, SHN_XINDEX = 0xFF00, 0xFFF2, 0xFFFF
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2


@dataclass
class _Section:
    name: bytes
    type: int
    flags: int
    size: int
    link: int
    info: int
    align: int
    entsize: int
    data: bytes


@dataclass
class _Symbol:
    name: bytes
    info: int
    other: int
    shndx: int
    value: int
    size: int

    @property
    def binding(self) -> int:
        return self.info >> 4

    def with_binding(self, binding: int) -> _Symbol:
        return _Symbol(self.name, (binding << 4) | (self.info & 0xF), self.other, self.shndx,
                       self.value, self.size)


@dataclass
class _Object:
    ident: bytes
    machine: int
    flags: int
    sections: list[_Section]
    symtab: int
    """Index of the symbol table section."""
    symbols: list[_Symbol] = field(default_factory=list)


def _string(table: bytes, offset: int) -> bytes:
    end = table.find(b"\0", offset)
    return table[offset:end if end >= 0 else len(table)]


def _parse(data: bytes, index: int) -> _Object:
    if len(data) < _HEADER.size or data[:4] != b"\x7fELF":
        raise ValueError(f"object {index} is not an ELF file")
    (ident, kind, machine, _, _, _, shoff, flags, _, _, _, shentsize, shnum,
     shstrndx) = _HEADER.unpack_from(data)
    if ident[4] != 2 or ident[5] != 1:
        raise ValueError(f"object {index} is not a 64-bit little-endian ELF file")
    if kind != ET_REL:
        raise ValueError(f"object {index} is not a relocatable object (ELF type {kind})")
    if shentsize != _SECTION.size or shnum == 0 or shstrndx >= SHN_LORESERVE:
        raise ValueError(f"object {index} has an unsupported section header table")
    if shoff + shnum * _SECTION.size > len(data):
        raise ValueError(f"object {index} is truncated")
    raw = [_SECTION.unpack_from(data, shoff + k * _SECTION.size) for k in range(shnum)]

    def contents(header: tuple) -> bytes:
        _, kind, _, _, offset, size, *_ = header
        if kind == SHT_NOBITS:
            return b""
        if offset + size > len(data):
            raise ValueError(f"object {index} is truncated")
        return data[offset:offset + size]

    names = contents(raw[shstrndx])
    sections = [_Section(_string(names, h[0]), h[1], h[2], h[5], h[6], h[7], h[8], h[9],
                         contents(h)) for h in raw]
    kinds = [s.type for s in sections]
    if SHT_GROUP in kinds or SHT_SYMTAB_SHNDX in kinds:
        raise ValueError(f"object {index} has section groups or extended section indices, "
                         "which are not merged")
    if kinds.count(SHT_SYMTAB) != 1:
        raise ValueError(f"object {index} does not have exactly one symbol table")
    symtab = kinds.index(SHT_SYMTAB)
    obj = _Object(ident, machine, flags, sections, symtab)
    strings = sections[sections[symtab].link].data
    table = sections[symtab].data
    for k in range(1, len(table) // _SYMBOL.size):
        name, info, other, shndx, value, size = _SYMBOL.unpack_from(table, k * _SYMBOL.size)
        if shndx == SHN_XINDEX:
            raise ValueError(f"object {index} uses extended section indices")
        obj.symbols.append(_Symbol(_string(strings, name), info, other, shndx, value, size))
    return obj


def _resolve(name: bytes, entries: list[tuple[int, _Symbol]]) -> tuple[int, _Symbol]:
    """The entry a global ``name`` keeps, with its object: the one strong definition, else the
    first weak one, else an undefined reference (global if any reference is), and the most
    restrictive visibility of all entries (internal < hidden < protected, default last)."""
    printable = name.decode(errors="replace")
    if any(s.shndx == SHN_COMMON for _, s in entries):
        raise ValueError(f"symbol {printable} is a common symbol, which is not merged")
    strong = [(k, s) for k, s in entries if s.shndx != 0 and s.binding != STB_WEAK]
    weak = [(k, s) for k, s in entries if s.shndx != 0 and s.binding == STB_WEAK]
    if len(strong) > 1:
        raise ValueError(f"symbol {printable} is defined twice")
    if strong or weak:
        owner, chosen = (strong or weak)[0]
    else:
        owner, chosen = entries[0]
        if any(s.binding == STB_GLOBAL for _, s in entries):
            chosen = chosen.with_binding(STB_GLOBAL)
    visibilities = [s.other & 3 for _, s in entries if s.other & 3]
    if visibilities:
        chosen = _Symbol(chosen.name, chosen.info, (chosen.other & ~3) | min(visibilities),
                         chosen.shndx, chosen.value, chosen.size)
    return owner, chosen


def _kept(obj: _Object, index: int) -> bool:
    """Whether section ``index`` of ``obj`` goes into the merged object."""
    section = obj.sections[index]
    if index == 0 or index == obj.symtab or section.type in (SHT_STRTAB, SHT_LLVM_ADDRSIG):
        return False
    if section.type in (SHT_RELA, SHT_REL):
        return _kept(obj, section.info)
    return True


class _StringTable:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self._offsets: dict[bytes, int] = {b"": 0}

    def add(self, text: bytes) -> int:
        if text not in self._offsets:
            self._offsets[text] = len(self.data)
            self.data += text + b"\0"
        return self._offsets[text]


def merge_objects(objects: Sequence[bytes], local: frozenset[str] = frozenset()) -> bytes:
    """One relocatable object of ``objects`` (see the module docstring); the global symbols
    named in ``local`` become local symbols. A single object is returned as it is when
    ``local`` is empty."""
    if not objects:
        raise ValueError("no object to merge")
    if len(objects) == 1 and not local:
        return bytes(objects[0])
    parsed = [_parse(data, k) for k, data in enumerate(objects)]
    first = parsed[0]
    if any((o.machine, o.flags) != (first.machine, first.flags) for o in parsed):
        raise ValueError("the objects are for different machines or ABIs")
    wanted_local = {name.encode() for name in local}

    # Sections: every kept section of every object, in order, after the null section.
    order: list[tuple[int, int]] = []
    new_index: dict[tuple[int, int], int] = {}
    for k, obj in enumerate(parsed):
        for j in range(len(obj.sections)):
            if _kept(obj, j):
                order.append((k, j))
                new_index[k, j] = len(order)
    symtab_index = len(order) + 1

    def section_of(k: int, shndx: int) -> int:
        if shndx == 0 or shndx >= SHN_LORESERVE:
            return shndx
        if (k, shndx) not in new_index:
            raise ValueError(f"object {k}: a symbol lies in a section that is not merged")
        return new_index[k, shndx]

    # Globals resolved by name first (as a linker's -r does), then the symbols in order: each
    # object's locals and the localized definitions it provides, then the other globals.
    entries: dict[bytes, list[tuple[int, _Symbol]]] = {}
    for k, obj in enumerate(parsed):
        for symbol in obj.symbols:
            if symbol.binding != STB_LOCAL:
                entries.setdefault(symbol.name, []).append((k, symbol))
    resolved = {name: _resolve(name, found) for name, found in entries.items()}
    missing = {n for n in wanted_local if n not in resolved or resolved[n][1].shndx == 0}
    if missing:
        names = ", ".join(sorted(n.decode(errors="replace") for n in missing))
        raise ValueError(f"no object defines {names}")

    def moved(k: int, symbol: _Symbol) -> _Symbol:
        return _Symbol(symbol.name, symbol.info, symbol.other, section_of(k, symbol.shndx),
                       symbol.value, symbol.size)

    symbols: list[_Symbol] = [_Symbol(b"", 0, 0, 0, 0, 0)]
    slot: dict[tuple[int, int], int | bytes] = {}
    """Each object's symbol: its index in ``symbols`` (a local) or its name (a global)."""
    by_name: dict[bytes, int] = {}
    for k, obj in enumerate(parsed):
        for s, symbol in enumerate(obj.symbols, start=1):
            if symbol.binding == STB_LOCAL:
                slot[k, s] = len(symbols)
                symbols.append(moved(k, symbol))
            else:
                slot[k, s] = symbol.name
        for name in sorted(wanted_local):
            owner, symbol = resolved[name]
            if owner == k:
                by_name[name] = len(symbols)
                symbols.append(moved(k, symbol).with_binding(STB_LOCAL))
    first_global = len(symbols)
    for name, (owner, symbol) in resolved.items():
        if name not in wanted_local:
            by_name[name] = len(symbols)
            symbols.append(moved(owner, symbol))

    def symbol_index(k: int, s: int) -> int:
        if s == 0:
            return 0
        target = slot.get((k, s))
        if target is None:
            raise ValueError(f"object {k}: a relocation names symbol {s}, which it does not have")
        return by_name[target] if isinstance(target, bytes) else target

    # Contents, with the relocations pointing to the new symbols.
    strings, section_names = _StringTable(), _StringTable()
    headers: list[tuple] = [(0,) * 10]
    body = bytearray(_HEADER.size)
    for k, j in order:
        section = parsed[k].sections[j]
        data, link, info = section.data, section.link, section.info
        if section.type in (SHT_RELA, SHT_REL):
            layout = _RELA if section.type == SHT_RELA else _REL
            rewritten = bytearray(data)
            for offset in range(0, len(data) - layout.size + 1, layout.size):
                fields = list(layout.unpack_from(data, offset))
                fields[1] = (symbol_index(k, fields[1] >> 32) << 32) | (fields[1] & 0xFFFFFFFF)
                layout.pack_into(rewritten, offset, *fields)
            data, link, info = bytes(rewritten), symtab_index, new_index[k, section.info]
        elif link:
            link = symtab_index if link == parsed[k].symtab else new_index.get((k, link), 0)
        offset = _place(body, data if section.type != SHT_NOBITS else None, section.align)
        headers.append((section_names.add(section.name), section.type, section.flags, 0, offset,
                        section.size, link, info, section.align, section.entsize))
    table = bytearray()
    for symbol in symbols:
        table += _SYMBOL.pack(strings.add(symbol.name), symbol.info, symbol.other,
                              symbol.shndx, symbol.value, symbol.size)
    for name, kind, data, link, info, align, entsize in (
            (b".symtab", SHT_SYMTAB, bytes(table), symtab_index + 1, first_global, 8,
             _SYMBOL.size),
            (b".strtab", SHT_STRTAB, bytes(strings.data), 0, 0, 1, 0),
            (b".shstrtab", SHT_STRTAB, None, 0, 0, 1, 0)):
        name_offset = section_names.add(name)
        if data is None:  # the section names, complete once this one is named
            data = bytes(section_names.data)
        offset = _place(body, data, align)
        headers.append((name_offset, kind, 0, 0, offset, len(data), link, info, align, entsize))
    if len(headers) >= SHN_LORESERVE:
        raise ValueError(f"the merged object would have {len(headers)} sections: more than an "
                         "ELF section index can name")
    shoff = _place(body, b"", 8)
    for header in headers:
        body += _SECTION.pack(*header)
    _HEADER.pack_into(body, 0, first.ident, ET_REL, first.machine, 1, 0, 0, shoff, first.flags,
                      _HEADER.size, 0, 0, _SECTION.size, len(headers), len(headers) - 1)
    return bytes(body)


def _place(body: bytearray, data: bytes | None, align: int) -> int:
    """Append ``data`` to ``body`` at a multiple of ``align``; its offset. ``None`` (a section
    without contents) takes no bytes."""
    offset = -(-len(body) // max(1, align)) * max(1, align)
    if data is not None:
        body += bytes(offset - len(body)) + data
    return offset
