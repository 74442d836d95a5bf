"""``bnnmlir-opt --timing``: wall time of each pass, printed as a table to stderr at exit, in the
manner of ``mlir-opt --mlir-timing``.

The driver's pass pipeline calls a callback between passes; :meth:`PassTimer.wrap` puts a clock
around it, so a pass's time is from the end of the callback before it to the start of the
callback after it (the verifier that runs between passes is not counted).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import IO

from xdsl.passes import PassPipeline

RULE = "===" + "-" * 73 + "==="


class PassTimer:
    """Wall seconds per pass name, summed over every run of the pass (split inputs included)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._start = time.perf_counter()

    def wrap(self, pipeline: PassPipeline) -> PassPipeline:
        """``pipeline`` with its callback timed."""
        inner = pipeline.callback

        def callback(previous, module, following) -> None:
            now = time.perf_counter()
            if previous is not None:
                self.times[previous.name] = self.times.get(previous.name, 0.0) + now - self._start
            if inner is not None:
                inner(previous, module, following)
            self._start = time.perf_counter()

        return dataclasses.replace(pipeline, callback=callback)

    def report(self) -> str:
        total = sum(self.times.values())
        lines = [
            RULE,
            "... Execution time report ...".center(len(RULE)).rstrip(),
            RULE,
            f"  Total Execution Time: {total:.4f} seconds",
            "",
            "  ----Wall Time----  ----Name----",
        ]
        for name, seconds in [*self.times.items(), ("Total", total)]:
            share = 100.0 * seconds / total if total > 0 else 0.0
            lines.append(f"  {seconds:8.4f} ({share:5.1f}%)  {name}")
        return "\n".join(lines) + "\n"

    def print_report(self, stream: IO[str] | None = None) -> None:
        (stream or sys.stderr).write(self.report())
