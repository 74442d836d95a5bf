"""Shared pytest configuration: hypothesis profiles and tool availability.

Tests that need an external tool use the ``requires_*`` markers below. Outside CI a missing tool
skips the test; in CI (``CI`` set) the tools are installed by scripts/setup.sh, so the test runs
and fails on a missing tool instead of passing silently.
"""

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Verify the IR of every compile stage (a compile outside the tests checks the tensor-level ones).
os.environ.setdefault("BNNMLIR_VERIFY", "1")

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, max_examples=10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def missing_tools(*tools: str) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def requires_tools(*tools: str) -> pytest.MarkDecorator:
    """Skip when one of ``tools`` is not on PATH, except in CI, where the test runs (and fails)."""
    missing = missing_tools(*tools)
    return pytest.mark.skipif(
        bool(missing) and not os.environ.get("CI"),
        reason=f"{', '.join(missing)} not installed",
    )


def have_aarch64_tools() -> bool:
    return not missing_tools("qemu-aarch64", "aarch64-linux-gnu-gcc")


requires_aarch64 = requires_tools("qemu-aarch64", "aarch64-linux-gnu-gcc")
"""qemu-aarch64 and the aarch64 cross compiler (a hand-linked program run under qemu)."""

requires_cross = requires_tools("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ar", "qemu-aarch64")
"""Everything the harness of :mod:`bnnmlir.backend.cross` uses."""

requires_cross_gcc = requires_tools("aarch64-linux-gnu-gcc")
requires_gcc = requires_tools("gcc")
requires_llvm_mca = requires_tools("llvm-mca")


def require_sanitizers(compiler: str, sanitizers: str, workdir: Path) -> None:
    """Skip (fail in CI) unless ``compiler`` builds and runs a program with
    ``-fsanitize=<sanitizers>``."""
    probe = workdir / "sanitizer_probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    program = workdir / "sanitizer_probe"
    build = subprocess.run([compiler, f"-fsanitize={sanitizers}", str(probe), "-o", str(program)],
                           check=False, capture_output=True, text=True)
    works = build.returncode == 0 and subprocess.run(
        [str(program)], check=False, capture_output=True).returncode == 0
    if not works:
        message = f"{compiler} cannot build or run -fsanitize={sanitizers} programs: {build.stderr}"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


@contextmanager
def splitting_small_layers():
    """Every binary convolution parallel (test shapes are below ``MIN_PARALLEL_MACS``); yields
    the :class:`~bnnmlir.passes.loops.bconv2d.ChannelParts` the lowering chose, in order."""
    from bnnmlir.passes.loops import bconv2d

    chosen = []
    real = bconv2d.channel_parts

    def spy(*args, **kwargs):
        parts = real(*args, **kwargs)
        chosen.append(parts)
        return parts

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bconv2d, "MIN_PARALLEL_MACS", 0)
        patch.setattr(bconv2d, "channel_parts", spy)
        yield chosen


ROW_CODES = ("checked", "unchecked")
"""How a binary convolution's interior rows are compiled: by the row-checked code, as in every
small layer (:meth:`~bnnmlir.passes.loops.bconv2d.ConvLowering.checked_rows`), or by the
unchecked copy of the kernel, as in large layers."""


KERNEL_CODES = ("blocked", "compact")
"""How a binary convolution below ``MIN_BLOCKED_MACS`` is compiled: by the register-blocked kernel,
as in larger layers, or by the compact per-pixel code, as in the product."""


@contextmanager
def layer_code(rows: str | None = None, kernel: str = "blocked"):
    """Compile the interior rows of every binary and integer convolution with ``rows``
    (``ROW_CODES``; ``None``: as the product does), and binary convolutions of every size with
    ``kernel`` (``KERNEL_CODES``; ``compact`` leaves only the layers of at least
    ``MIN_BLOCKED_MACS`` blocked)."""
    from bnnmlir.passes.loops import lowering

    assert rows in (None, *ROW_CODES) and kernel in KERNEL_CODES
    with pytest.MonkeyPatch.context() as patch:
        if rows is not None:
            patch.setattr(lowering, "MIN_UNCHECKED_ROWS_MACS",
                          0 if rows == "unchecked" else 1 << 62)
        if kernel == "blocked":
            patch.setattr(lowering, "MIN_BLOCKED_MACS", 0)
        yield


@pytest.fixture
def split_small_layers():
    """:func:`splitting_small_layers` for one test."""
    with splitting_small_layers() as chosen:
        yield chosen
