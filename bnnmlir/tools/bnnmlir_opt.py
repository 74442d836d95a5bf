"""``bnnmlir-opt``: the modular optimizer driver of bnnmlir, in the manner of ``mlir-opt``.

It is xDSL's ``xdsl-opt`` with the ``bnn`` dialect, the bnnmlir passes and pipelines, and the
bnnmlir code-generation targets registered, plus user-facing error handling: a parse error, a
verifier error, a failing pass or an unknown pass name prints a located diagnostic on stderr and
exits with status 1, without a Python traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from xdsl.utils.exceptions import (
    DiagnosticException,
    ParseError,
    PassFailedException,
    VerifyException,
)
from xdsl.xdsl_opt_main import xDSLOptMain

from bnnmlir.passes import get_all_passes
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

    def setup_pipeline(self):
        super().setup_pipeline()
        if self.args.timing:
            self.timer = PassTimer()
            self.pipeline = self.timer.wrap(self.pipeline)

    def register_all_dialects(self):
        super().register_all_dialects()
        if "bnn" not in self.ctx.registered_dialect_names:
            from bnnmlir.universe import _bnn_dialect

            self.ctx.register_dialect("bnn", _bnn_dialect)

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
    try:
        driver = BnnOptMain(description="bnnmlir modular optimizer driver", args=argv)
    except ValueError as e:  # unknown pass name or malformed pipeline
        return _report(f"bnnmlir-opt: error: {e}")
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
    except Exception as e:  # a bug: say so in one line; BNNMLIR_TRACEBACK=1 shows the stack
        if os.environ.get("BNNMLIR_TRACEBACK"):
            raise
        _report(f"bnnmlir-opt: internal error: {type(e).__name__}: {e} (set BNNMLIR_TRACEBACK=1 for details)")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
