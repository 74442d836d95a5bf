"""The command-line tools' exit without the interpreter's final garbage collections.

When a Python process ends, the interpreter collects its garbage several times while it tears its
modules down, walking every object still alive. After a ``torch.export`` that is most of a
second (about 0.9 s after compiling the demo network, against 0.15 s without those collections):
longer than many commands' own work. :func:`skip_final_collections`, called by a tool's ``main``,
freezes the collector (:func:`gc.freeze`) at exit, after every other exit handler registered
after it: the objects are left to the operating system as the process ends. Files, pipes and
exit handlers are closed and run as usual; only objects in reference cycles are not finalized,
which Python never promises at exit. A library never calls it: it is the process owner's choice.
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def skip_final_collections() -> None:
    """Freeze the garbage collector when the process exits (see the module). Idempotent."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
