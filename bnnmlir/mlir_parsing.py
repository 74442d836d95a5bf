"""Parsing and printing ``.mlir`` text for every bnnmlir entry point, bounded in time and memory.

``bnnmlir-opt``, ``bnnmlir run`` and the Python API (:func:`bnnmlir.compiler.parse_mlir`) all parse
through :class:`BnnParser`: xDSL 0.74's parser with three guards, so that malformed input gets a
located diagnostic instead of a hang, a crash or a ``RecursionError``.

- **String literals in linear time.** xDSL 0.74 matches a string literal with
  ``"(?:[^"\\\\\\n\\v\\f]+|\\\\(?:["nt\\\\]|[0-9A-Fa-f]{2}))*"``: the ``+`` nested in the ``*`` can split a
  run of ``n`` plain characters in ``2**(n-1)`` ways, and the regex engine tries every split when
  the closing quote is missing (a 40-character unterminated line takes hours). :data:`STRING_LITERAL`
  is the same language written as ``normal* (escape normal*)*`` (Friedl's unrolled loop): a plain
  character can only be consumed by one ``normal*`` and an escape always starts with a backslash,
  so every character is matched in exactly one way and a failing match backtracks over each
  character once. Valid literals give the same token and span, bad escapes the same error as
  xDSL; a literal cut off by the end of its line says so, at the opening quote.
- **Bounded nesting.** Each nested region costs about a dozen Python frames in the parser (and
  as many again in the verifier and printer); past :data:`MAX_REGION_NESTING` regions the parser
  stops with "nesting too deep" at the ``{`` that opens the region, and an attribute nested deeply
  enough to exhaust the interpreter's stack gives the same diagnostic at the token being parsed.
- **Compact splats.** xDSL expands ``dense<1> : tensor<1000000x3x3x8xi8>`` into one Python int per
  element before packing (2.3 GB, a minute). :meth:`BnnParser.parse_dense_int_or_fp_elements_attr`
  packs the single value once and repeats its bytes; a splat whose data would exceed
  :data:`MAX_SPLAT_BYTES` is refused at the literal. :class:`BnnPrinter` prints such a splat back
  from its bytes, without unpacking every element.
"""

from __future__ import annotations

import math
import re
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import (
    AnyFloat,
    DenseIntOrFPElementsAttr,
    IndexType,
    IntegerType,
    ModuleOp,
    RankedStructure,
)
from xdsl.ir import Attribute
from xdsl.parser import Parser
from xdsl.parser.generic_parser import ParserState
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError
from xdsl.utils.lexer import Input, Position, Span
from xdsl.utils.mlir_lexer import MLIRLexer, MLIRToken

_PLAIN = r'[^"\\\n\v\f]'
_ESCAPE = r'\\(?:["nt\\]|[0-9A-Fa-f]{2})'
STRING_LITERAL = re.compile(rf'"{_PLAIN}*(?:{_ESCAPE}{_PLAIN}*)*"')
"""xDSL's string-literal language (escapes ``\\"`` ``\\n`` ``\\t`` ``\\\\`` and two hex digits), linear."""

_STRING_BODY = re.compile(rf"(?:{_PLAIN}|{_ESCAPE})*")
_NEXT_CHAR = re.compile(r"\s*(\S)")

MAX_REGION_NESTING = 64
"""Regions nested deeper than this are refused at parse time (the verifier, passes and printer
recurse once per level too, so this keeps every later stage within Python's stack)."""

MAX_SPLAT_BYTES = 1 << 30
"""A splat ``dense<v>`` attribute may describe at most this many bytes of data (1 GiB)."""


class BnnLexer(MLIRLexer):
    """xDSL's MLIR lexer with :data:`STRING_LITERAL` for string literals."""

    _unescaped_characters_regex = STRING_LITERAL

    def _lex_string_literal(self, start_pos: Position) -> MLIRToken:
        if STRING_LITERAL.match(self.input.content, start_pos) is None:
            body = _STRING_BODY.match(self.input.content, start_pos + 1)
            assert body is not None  # the pattern also matches the empty string
            stop = body.end()
            if stop >= len(self.input.content) or self.input.content[stop] != "\\":
                raise ParseError(
                    Span(start_pos, start_pos + 1, self.input),
                    "unterminated string literal: no closing '\"' before the end of the line",
                )
        # A valid literal, or an invalid escape: xDSL's own token or error.
        return super()._lex_string_literal(start_pos)


class BnnParser(Parser):
    """xDSL's parser on :class:`BnnLexer`, with bounded nesting and compact splat constants."""

    def __init__(self, ctx: Context, input: str | bytes, name: str = "<unknown>") -> None:
        super().__init__(ctx, "", name)
        text = input.decode("utf-8") if isinstance(input, bytes) else input
        self._parser_state = ParserState(BnnLexer(Input(text, name)))
        self._region_depth = 0

    def parse_module(self, allow_implicit_module: bool = True) -> ModuleOp:
        try:
            return super().parse_module(allow_implicit_module)
        except RecursionError:
            self.raise_error("nesting too deep: the input is nested beyond what can be parsed")

    def _consume_token(self, expected_kind=None):
        # xDSL asserts the kind here; a few of its call sites never checked it first (the closing
        # ')' of a complex literal), so a wrong token there is an input error, not a bug.
        if expected_kind is not None and self._current_token.kind != expected_kind:
            self.raise_error(f"expected {expected_kind.name.lower().replace('_', ' ')}")
        return super()._consume_token(expected_kind)

    def _parse_block(self):
        # xDSL forgets where a forward-referenced block was defined, so a second definition of
        # its label fails with KeyError; recording it gives xDSL's "re-declaration" error.
        label = self._current_token
        block = super()._parse_block()
        self.blocks[label.text[1:]] = (block, label.span)
        return block

    def parse_optional_region(self, arguments=None):
        if self._region_depth >= MAX_REGION_NESTING and self._current_token.text == "{":
            self.raise_error(f"nesting too deep: more than {MAX_REGION_NESTING} nested regions")
        self._region_depth += 1
        try:
            return super().parse_optional_region(arguments)
        finally:
            self._region_depth -= 1

    def parse_dense_int_or_fp_elements_attr(
        self, type: RankedStructure | None
    ) -> DenseIntOrFPElementsAttr:
        """``dense<scalar>`` splats are packed once and repeated as bytes; the rest is xDSL's."""
        after = _NEXT_CHAR.match(self.lexer.input.content, self._current_token.span.end)
        if self._current_token.text != "<" or after is None or after.group(1) in '[">':
            return super().parse_dense_int_or_fp_elements_attr(type)
        literal_start = self.pos
        self.parse_punctuation("<", " in dense attribute")
        values, shape = self._parse_tensor_literal()
        literal_end = self.pos
        self.parse_punctuation(">", " in dense attribute")
        literal_type = type
        if literal_type is None:
            self.parse_punctuation(":", " in dense attribute")
            literal_type = self._parse_dense_literal_type()
        assert not shape and len(values) == 1, "a scalar literal is a splat"
        element_type = literal_type.element_type
        if not isinstance(element_type, IntegerType | IndexType | AnyFloat):
            self._resume_from(literal_start)
            return super().parse_dense_int_or_fp_elements_attr(type)
        size = math.prod(literal_type.get_shape()) * element_type.compile_time_size
        if size > MAX_SPLAT_BYTES:
            self.raise_error(
                f"splat constant of type {literal_type} would hold {size} bytes of data, "
                f"more than the limit of {MAX_SPLAT_BYTES}",
                literal_start,
                literal_end,
            )
        # ``from_list`` with one value repeats its packed bytes (xDSL's own splat path).
        value = values[0].to_type(self, element_type)
        return DenseIntOrFPElementsAttr.from_list(literal_type, [value])


def parse_module(ctx: Context, text: str | bytes, name: str = "<input>", *, implicit: bool = True) -> ModuleOp:
    """Parse ``text`` (not verified) with :class:`BnnParser`; errors are located ``ParseError``s."""
    return BnnParser(ctx, text, name).parse_module(implicit)


class BnnPrinter(Printer):
    """xDSL's printer, printing integer and float splats from their bytes (not one object each)."""

    def print_attribute(self, attribute: Attribute) -> None:
        first = _byte_splat_value(attribute)
        if first is None:
            super().print_attribute(attribute)
            return
        self.print_string("dense<")
        attribute._print_one_elem(first, self)
        self.print_string("> : ")
        self.print_attribute(attribute.get_type())


def _byte_splat_value(attribute: Attribute) -> int | float | None:
    """The value of a dense integer or float attribute of more than 100 elements whose elements
    all have the same bytes, else None. (A NaN splat is None: xDSL compares unpacked values, and
    NaN != NaN, so it prints such an attribute in full.)"""
    if not isinstance(attribute, DenseIntOrFPElementsAttr):
        return None
    element_type = attribute.get_element_type()
    if not isinstance(element_type, IntegerType | IndexType | AnyFloat):
        return None
    data = attribute.data.data
    width = element_type.compile_time_size
    count = len(data) // width
    if count <= 100 or not attribute.shape_is_complete or data != data[:width] * count:
        return None
    first = element_type.unpack(data[:width], 1)[0]
    return None if isinstance(first, float) and math.isnan(first) else first


def print_module(ctx: Context, module: ModuleOp, stream: IO[str], **options) -> None:
    """Print ``module`` like xDSL's ``mlir`` target, with :class:`BnnPrinter`."""
    printer = BnnPrinter(stream=stream, **options)
    printer.print_op(module)
    printer.print_metadata(ctx.loaded_dialects)
