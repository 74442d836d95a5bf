"""Tables printed by bnnmlir (the per-layer report, ``bnnmlir run``/``demo``, ``bnnmlir bench``),
laid out to read well in an 80-column terminal.

A compact style (no vertical rules, one space between columns) leaves the width to the content.
Numbers and short codes never wrap (a number split over two lines reads as two numbers); free text
(layer paths, op lists, descriptions) folds onto further lines of its row instead.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import replace
from io import StringIO

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


class FittedTable(Table):
    """A table that fits the console's width by giving the columns of text what the columns of
    numbers and codes leave.

    Numbers and codes (``no_wrap`` columns) keep the width of their widest cell; their header
    wraps at spaces if it is wider. When the whole table is wider than the console, each column
    of text gets at least its minimum (the longest header word, or its ``min_width``) and the
    rest of the width in proportion to what it would need beyond that; its cells fold.
    """

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = self._fitted_widths(console, options)
        table = self
        if widths is not None:
            table = copy.copy(self)
            table.columns = [replace(c, width=w) for c, w in zip(self.columns, widths)]
        yield from Table.__rich_console__(table, console, options)

    def _fitted_widths(self, console: Console, options: ConsoleOptions) -> list[int] | None:
        def widest(renderables) -> int:
            return max((Measurement.get(console, options, r).maximum for r in renderables),
                       default=0)

        available = options.max_width - (len(self.columns) - 1)
        natural, minimum = [], []
        for column in self.columns:
            cells = widest(column.cells)
            header_word = max((cell_len(w) for w in str(column.header).split()), default=0)
            natural.append(max(cells, widest([column.header])))
            if column.no_wrap:
                minimum.append(max(cells, header_word))
            else:
                minimum.append(max(column.min_width or 0, header_word))
        if sum(natural) <= available:
            return None
        fixed = sum(m for m, c in zip(minimum, self.columns) if c.no_wrap)
        text = [i for i, c in enumerate(self.columns) if not c.no_wrap]
        spare = available - fixed - sum(minimum[i] for i in text)
        wanted = sum(natural[i] - minimum[i] for i in text)
        widths = list(minimum)
        for i in text:
            share = spare * (natural[i] - minimum[i]) // wanted if wanted and spare > 0 else 0
            widths[i] = min(natural[i], minimum[i] + share)
        return widths


def compact_table(title: str | None = None) -> Table:
    return FittedTable(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=0)


def number_column(table: Table, header: str) -> None:
    """A right-aligned column whose cells never wrap (its header may, at spaces)."""
    table.add_column(Text(header, no_wrap=False), justify="right", no_wrap=True)


def code_column(table: Table, header: str) -> None:
    """A column of short codes (a kind, a type, a verdict) that never wrap (its header may)."""
    table.add_column(Text(header, no_wrap=False), no_wrap=True)


def text_column(table: Table, header: str, min_width: int | None = None) -> None:
    """A column of free text that folds onto further lines (a long word is split, never cut;
    ``min_width`` keeps words of that length whole when the table must shrink)."""
    table.add_column(header, overflow="fold", min_width=min_width)


def si_count(n: int) -> str:
    """``n`` in three significant digits with a k/M/G suffix (``18874368`` -> ``18.9M``)."""
    if n < 1000:
        return str(n)
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale * 0.9995:
            value = n / scale
            digits = 0 if value >= 99.95 else 1 if value >= 9.995 else 2
            return f"{value:.{digits}f}{suffix}"
    raise AssertionError(n)


def terminal_width() -> int:
    """The terminal's width (``COLUMNS`` if set), 80 when there is no terminal."""
    return shutil.get_terminal_size((80, 24)).columns


def render(table: Table, width: int | None = None) -> str:
    """``table`` as plain text, ``width`` columns wide (default: :func:`terminal_width`)."""
    out = StringIO()
    Console(file=out, width=width or terminal_width(), highlight=False,
            color_system=None).print(table)
    return out.getvalue()
