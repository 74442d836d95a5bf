"""The parser every entry point uses (bnnmlir/mlir_parsing.py): malformed input gets a located
diagnostic quickly; valid input parses and prints exactly as with xDSL's own parser."""

import importlib.util
import shutil
import subprocess
import sys
import textwrap
import time
from io import StringIO
from pathlib import Path

import pytest
import xdsl.utils.mlir_lexer
from hypothesis import given
from hypothesis import strategies as st
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError
from xdsl.utils.lexer import Input
from xdsl.utils.mlir_lexer import MLIRLexer

from bnnmlir.compiler import CompileError, make_context, parse_mlir
from bnnmlir.mlir_parsing import (
    MAX_REGION_NESTING,
    STRING_LITERAL,
    BnnLexer,
    parse_module,
    print_module,
)
from bnnmlir.tools import bnnmlir_opt, cli

ROOT = Path(__file__).resolve().parents[2]
PATCH = ROOT / "docs" / "upstream" / "xdsl-string-literal-lexer.patch"
TYPO = '  %0 = "bnn.clip8(%x) : (tensor<1x4x4x8xf32>) -> tensor<1x4x4x8xi8>\n'
UNTERMINATED = (
    "func.func @f(%x: tensor<1x4x4x8xf32>) -> tensor<1x4x4x8xi8> {\n"
    + TYPO
    + "  func.return %0 : tensor<1x4x4x8xi8>\n}\n"
)


def _timed_in_subprocess(code: str, timeout: float = 60) -> str:
    """Run ``code`` in a fresh interpreter (so a hang cannot hang the test run); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_unterminated_string_gives_a_located_diagnostic_within_a_second():
    # 60 characters after the quote: hours with xDSL 0.74's regex.
    out = _timed_in_subprocess(
        textwrap.dedent(f"""
            import time
            from xdsl.utils.exceptions import ParseError
            from bnnmlir.compiler import make_context
            from bnnmlir.mlir_parsing import parse_module
            ctx = make_context()
            start = time.perf_counter()
            try:
                parse_module(ctx, {UNTERMINATED!r}, "typo.mlir")
            except ParseError as e:
                print(time.perf_counter() - start)
                print(e)
        """)
    )
    seconds, message = out.split("\n", 1)
    assert float(seconds) < 1.0
    assert message.startswith("typo.mlir:2:8\n")
    assert "unterminated string literal" in message


def test_bnnmlir_opt_reports_the_unterminated_string(tmp_path, capsys):
    path = tmp_path / "typo.mlir"
    path.write_text(UNTERMINATED)
    assert bnnmlir_opt.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:8" in err and "unterminated string literal" in err
    assert "Traceback" not in err


def test_python_api_and_run_report_the_unterminated_string(tmp_path, capsys):
    with pytest.raises(CompileError, match="unterminated string literal"):
        parse_mlir(UNTERMINATED, "typo.mlir")
    path = tmp_path / "typo.mlir"
    path.write_text(UNTERMINATED)
    assert cli.main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert "2:8" in err and "unterminated string literal" in err and "Traceback" not in err


def _lex_all(lexer_cls, text: str):
    lexer = lexer_cls(Input(text, "s"))
    tokens = []
    while (token := lexer.lex()).kind.name != "EOF":
        tokens.append((token.kind.name, token.span.start, token.span.end))
    return tokens


# Short strings (xDSL's regex is exponential only in the length of a run of plain characters).
_STRING_PIECES = st.sampled_from(['"', "\\", "n", "t", "q", "0", "a", "F", "g", " ", "\n", "é", "x"])


@given(st.lists(_STRING_PIECES, max_size=12))
def test_string_literals_lex_as_with_xdsl(pieces):
    text = '"' + "".join(pieces)
    try:
        expected = _lex_all(MLIRLexer, text)
    except ParseError as e:
        with pytest.raises(ParseError) as ours:
            _lex_all(BnnLexer, text)
        assert ours.value.span.start == e.span.start
        if "unterminated" not in ours.value.msg:  # an invalid escape: xDSL's own error
            assert ours.value.msg == e.msg and ours.value.span == e.span
        return
    assert _lex_all(BnnLexer, text) == expected


def test_escapes_are_those_of_xdsl():
    for literal, value in [(r'"a\"b"', 'a"b'), (r'"\n\t\\"', "\n\t\\"), (r'"\41\4a"', "AJ")]:
        module = parse_module(make_context(), f'"test.op"() {{s = {literal}}} : () -> ()')
        op = next(iter(module.ops))
        assert op.attributes["s"].data == value
    with pytest.raises(ParseError, match="closing string literal"):  # xDSL's error, unchanged
        parse_module(make_context(), r'"test.op"() {s = "\q"} : () -> ()')


def test_upstream_patch_applies_to_the_installed_xdsl_and_is_linear(tmp_path):
    target = tmp_path / "xdsl" / "utils" / "mlir_lexer.py"
    target.parent.mkdir(parents=True)
    shutil.copy(xdsl.utils.mlir_lexer.__file__, target)
    if shutil.which("patch"):
        command = ["patch", "-p1", "--forward", "-i", str(PATCH)]
    else:
        command = ["git", "apply", "-p1", str(PATCH)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    spec = importlib.util.spec_from_file_location("patched_mlir_lexer", target)
    patched = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(patched)
    regex = patched.MLIRLexer._unescaped_characters_regex
    assert regex.pattern == STRING_LITERAL.pattern
    start = time.perf_counter()
    assert regex.match('"' + "a" * 20000 + "\n") is None
    assert time.perf_counter() - start < 0.5
    with pytest.raises(ParseError):
        _lex_all(patched.MLIRLexer, '"' + "x" * 5000)
    assert _lex_all(patched.MLIRLexer, r'"a\"\0A"') == _lex_all(MLIRLexer, r'"a\"\0A"')


def _print(module: ModuleOp, printer_cls=None) -> str:
    out = StringIO()
    if printer_cls is None:
        print_module(make_context(), module, out)
    else:
        printer_cls(stream=out).print_op(module)
    return out.getvalue()


SPLAT = """func.func @f() -> tensor<1000000x3x3x8xi8> {
  %w = arith.constant dense<1> : tensor<1000000x3x3x8xi8>
  func.return %w : tensor<1000000x3x3x8xi8>
}
"""


def test_a_large_splat_stays_compact():
    start = time.perf_counter()
    module = parse_module(make_context(), SPLAT)
    module.verify()
    text = _print(module)
    assert time.perf_counter() - start < 10  # xDSL alone: about a minute and 2.3 GB
    assert "arith.constant dense<1> : tensor<1000000x3x3x8xi8>" in text
    (attr,) = [op.properties["value"] for op in module.walk() if op.name == "arith.constant"]
    assert isinstance(attr, DenseIntOrFPElementsAttr) and len(attr.data.data) == 72_000_000


def test_an_absurd_splat_is_refused_at_the_literal():
    text = SPLAT.replace("1000000x3x3x8", "1000000x1000000")
    with pytest.raises(ParseError, match="splat constant") as e:
        parse_module(make_context(), text, "big.mlir")
    assert str(e.value).startswith("big.mlir:2:")


@pytest.mark.parametrize(
    "literal",
    [
        "dense<-0.0> : tensor<200xf32>",
        "dense<0x7FC00000> : tensor<200xf32>",  # a NaN splat: xDSL prints it in full
        "dense<-3> : tensor<10x20xi8>",
        "dense<true> : tensor<150xi1>",
        "dense<7> : vector<4x40xindex>",
        "dense<2.5> : tensor<3xf64>",
        "dense<[1, 2]> : tensor<2xi32>",
        "dense<(1, 2)> : tensor<200xcomplex<i32>>",
        'dense<"0x01000000"> : tensor<300xi32>',
    ],
)
def test_splats_parse_and_print_as_with_xdsl(literal):
    from xdsl.parser import Parser

    text = f'"test.op"() {{a = {literal}}} : () -> ()'
    ours = parse_module(make_context(), text)
    theirs = Parser(make_context(), text).parse_module()
    assert ours.is_structurally_equivalent(theirs)
    # print_module also prints the dialect metadata, as xDSL's mlir target does (none here).
    assert _print(ours) == _print(theirs, Printer)


def test_a_malformed_complex_literal_is_a_parse_error():
    with pytest.raises(ParseError, match="expected r paren"):
        parse_module(make_context(), '"test.op"() {a = dense<[(1, 2, 3)]> : tensor<1xcomplex<i32>>} : () -> ()')


def _nested_modules(depth: int) -> str:
    return "builtin.module {" * depth + "}" * depth


def test_nesting_within_the_bound_works():
    module = parse_module(make_context(), _nested_modules(MAX_REGION_NESTING))
    module.verify()
    assert _print(module).count("builtin.module") == MAX_REGION_NESTING
    with pytest.raises(ParseError, match="nesting too deep"):
        parse_module(make_context(), _nested_modules(MAX_REGION_NESTING + 1))


@pytest.mark.parametrize(
    "text",
    [_nested_modules(200), '"test.op"() {a = ' + "[" * 5000 + "]" * 5000 + "} : () -> ()"],
    ids=["modules", "attribute"],
)
def test_deep_nesting_is_a_located_diagnostic(text, tmp_path, capsys):
    with pytest.raises(ParseError, match="nesting too deep") as e:
        parse_module(make_context(), text, "deep.mlir")
    assert str(e.value).startswith("deep.mlir:1:")
    with pytest.raises(CompileError, match="nesting too deep"):
        parse_mlir(text)
    path = tmp_path / "deep.mlir"
    path.write_text(text)
    assert bnnmlir_opt.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "nesting too deep" in err and "internal error" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", ",,"], "-p/--passes ',,': column 1: Expected pass name here"),
        (["-p", "bnn-to-llvm-pipeline{target=}"], "-p/--passes 'bnn-to-llvm-pipeline{target=}': column 29"),
        (["-t", 'llvm{target="a}'], "-t/--target 'llvm{target=\"a}': column 13: Unknown token"),
        (["-p", "bnn-to-llvm-pipeline{target=3}"], "-p/--passes 'bnn-to-llvm-pipeline{target=3}': Incompatible types"),
        (["-p", "no-such-pass"], "-p/--passes 'no-such-pass': Unrecognized passes"),
    ],
)
def test_malformed_pipeline_and_target_options_are_one_line(args, message, tmp_path, capsys):
    path = tmp_path / "m.mlir"
    path.write_text("builtin.module {}\n")
    assert bnnmlir_opt.main([str(path), *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


EMPTY_CONV = """func.func @f(%x: tensor<1x4x4x1xi8>, %w: tensor<{w}xi8>) -> tensor<{o}xi32> {{
  %0 = bnn.bconv2d %x, %w {{in_channels = 8 : i64, strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 0 : i64}} : tensor<1x4x4x1xi8>, tensor<{w}xi8> -> tensor<{o}xi32>
  func.return %0 : tensor<{o}xi32>
}}
"""


@pytest.mark.parametrize(("w", "o"), [("0x3x3x1", "1x2x2x0"), ("2x0x0x1", "1x5x5x2")], ids=["no-output-channel", "0x0-kernel"])
def test_empty_convolutions_are_refused_everywhere(w, o, tmp_path, capsys):
    text = EMPTY_CONV.format(w=w, o=o)
    with pytest.raises(CompileError, match="at least one output channel and a kernel of at least 1x1"):
        parse_mlir(text)
    path = tmp_path / "conv.mlir"
    path.write_text(text)
    assert bnnmlir_opt.main([str(path), "-p", "bnn-to-llvm-pipeline"]) == 1
    assert cli.main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Operation does not verify" in err and "Traceback" not in err and "internal error" not in err


def test_a_label_defined_twice_after_a_forward_reference_is_a_parse_error():
    text = "func.func @f() {\n  cf.br ^b\n^b:\n  func.return\n^b:\n  func.return\n}\n"
    with pytest.raises(ParseError, match="re-declaration of block 'b'") as e:
        parse_module(make_context(), text, "labels.mlir")
    assert str(e.value).startswith("labels.mlir:5:1")
