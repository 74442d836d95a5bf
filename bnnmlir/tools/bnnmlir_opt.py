"""``bnnmlir-opt``: the modular optimizer driver of bnnmlir, in the manner of ``mlir-opt``.

It is xDSL's ``xdsl-opt`` with the ``bnn`` dialect, the bnnmlir passes and pipelines, and the
bnnmlir code-generation targets registered, plus user-facing error handling: a parse error, a
verifier error, a failing pass, an unknown pass name or a malformed ``-p``/``-t`` specification
prints a located one-line diagnostic on stderr and exits with status 1, without a Python
traceback. Input is parsed and printed with :mod:`bnnmlir.mlir_parsing` (linear-time string
literals, bounded nesting, compact splat constants), so no input makes it hang.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from io import StringIO

from xdsl.utils.exceptions import (
    ArgSpecParseError,
    DiagnosticException,
    ParseError,
    PassFailedException,
    VerifyException,
)
from xdsl.xdsl_opt_main import xDSLOptMain

from bnnmlir.mlir_parsing import parse_module, print_module
from bnnmlir.passes import get_all_passes
from bnnmlir.tools.quick_exit import skip_final_collections
from bnnmlir.tools.version import version_text


class OptionSpecError(ValueError):
    """A ``-p`` or ``-t`` specification that does not parse; the message is one line."""

    def __init__(self, option: str, error: ArgSpecParseError):
        # xDSL's message: a header, "pass-pipeline:LINE:COL", the spec, a caret line, the reason.
        lines = str(error).splitlines()
        if len(lines) < 5:
            super().__init__(f"{option}: {' '.join(line.strip() for line in lines)}")
            return
        column = lines[1].rsplit(":", 1)[-1]
        super().__init__(f"{option} {lines[2]!r}: column {column}: {lines[-1].strip()}")
from bnnmlir.tools.timing import PassTimer


class BnnOptMain(xDSLOptMain):
    """xDSL's driver with bnnmlir's dialect, passes and targets, and ``--timing``."""

    timer: PassTimer | None = None

    def register_all_arguments(self, arg_parser):
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--timing", action="store_true",
            help="print the wall time of each pass to stderr at exit (like mlir-opt --mlir-timing)",
        )

    version_format = version_text("bnnmlir-opt").replace("{", "{{").replace("}", "}}")

    def register_all_dialects(self):
        super().register_all_dialects()
        if "bnn" not in self.ctx.registered_dialect_names:
            from bnnmlir.universe import _bnn_dialect

            self.ctx.register_dialect("bnn", _bnn_dialect)

    def register_all_frontends(self):
        super().register_all_frontends()

        def parse_mlir(io):
            return parse_module(
                self.ctx, io.read(), self.get_input_name(), implicit=not self.args.no_implicit_module
            )

        self.available_frontends["mlir"] = parse_mlir

    def setup_pipeline(self):
        try:
            super().setup_pipeline()
        except ArgSpecParseError as e:
            raise OptionSpecError("-p/--passes", e) from None
        except ValueError as e:  # an unknown pass, or an option value of the wrong type
            raise ValueError(f"-p/--passes {self.args.passes!r}: {e}") from None
        if self.args.timing:
            self.timer = PassTimer()
            self.pipeline = self.timer.wrap(self.pipeline)

    def register_all_passes(self):
        super().register_all_passes()
        for name, factory in get_all_passes().items():
            self.register_pass(name, factory)

    def register_all_targets(self):
        super().register_all_targets()
        try:
            from bnnmlir.backend.targets import get_all_targets
        except ImportError:  # pragma: no cover - backend missing from a broken install
            return
        self.available_targets.update(get_all_targets())

    def output_resulting_program(self, prog):
        """Object targets write bytes: to ``-o FILE`` or, without it, to binary stdout."""
        from xdsl.utils.arg_spec import parse_spec

        from bnnmlir.backend.targets import ObjectTarget

        spec = parse_spec(self.args.target)
        if spec.name == "mlir" and not spec.parameters and not self.args.syntax_highlight:
            return self._print_mlir(prog)
        factory = self.available_targets.get(spec.name)
        cls = factory() if factory is not None and not _is_legacy(factory) else None
        if not (isinstance(cls, type) and issubclass(cls, ObjectTarget)):
            return super().output_resulting_program(prog)
        target = cls.from_spec(spec)
        data = target.emit_bytes(prog)
        if target.path is not None:
            with open(target.path, "wb") as f:
                f.write(data)
        elif self.args.output_file is not None:
            with open(self.args.output_file, "wb") as f:
                f.write(data)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        return ""

    def _print_mlir(self, prog) -> str:
        """The ``mlir`` target, printed by :class:`bnnmlir.mlir_parsing.BnnPrinter`."""
        output = StringIO()
        print_module(
            self.ctx,
            prog,
            output,
            print_generic_format=self.args.print_op_generic,
            print_properties_as_attributes=self.args.print_no_properties,
            print_debuginfo=self.args.print_debuginfo,
        )
        print("\n", file=output)
        return output.getvalue()


def _is_legacy(factory) -> bool:
    import inspect

    return bool(inspect.signature(factory).parameters)


def _report(message: str, error: BaseException | None = None) -> int:
    """Print a diagnostic (and the annotated IR that points at the op, if any); return 1."""
    print(message.rstrip(), file=sys.stderr)
    for note in getattr(error, "__notes__", ()):
        print(str(note).rstrip(), file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    skip_final_collections()
    try:
        driver = BnnOptMain(description="bnnmlir modular optimizer driver", args=argv)
    except ValueError as e:  # unknown pass name, malformed pipeline or pass option
        return _report(f"bnnmlir-opt: error: {e}")
    except ArgSpecParseError as e:  # the only specification parsed before the pipeline
        return _report(f"bnnmlir-opt: error: {OptionSpecError('-t/--target', e)}")
    try:
        return _run(driver)
    finally:
        if driver.timer is not None:
            driver.timer.print_report()


def _run(driver: BnnOptMain) -> int:
    try:
        driver.run()
    except ParseError as e:
        return _report(str(e))
    except PassFailedException as e:
        return _report(f"error: pass failed: {e}", e)
    except (VerifyException, DiagnosticException) as e:
        return _report(f"error: {e}", e)
    except (ValueError, NotImplementedError) as e:
        return _report(f"bnnmlir-opt: error: {e}")
    except OSError as e:
        return _report(f"bnnmlir-opt: error: {e}")
    except RecursionError:
        return _report("bnnmlir-opt: error: nesting too deep: the IR is nested beyond what can be processed")
    except Exception as e:  # a bug: say so in one line; BNNMLIR_TRACEBACK=1 shows the stack
        if os.environ.get("BNNMLIR_TRACEBACK"):
            raise
        _report(f"bnnmlir-opt: internal error: {type(e).__name__}: {e} (set BNNMLIR_TRACEBACK=1 for details)")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
