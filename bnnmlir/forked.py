"""Work of one compile spread over forked copies of the compiling process.

A forked child starts with this process's memory (the IR, the model, the imported modules) at no
copying cost, which is what makes splitting a compile step worth it: the parts need no
serialization of their input, only of their (small) results.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import connection
from typing import Any


EXPORT_LOCK = threading.RLock()
"""Held by every ``torch.export`` of bnnmlir (imports, conversions) and by the fork of an import:
no thread is inside ``torch.export`` (holding one of its locks, or an import lock of its
modules) when another forks an import."""


class ChildFailure(RuntimeError):
    """A forked part ended without a result, or its error could not be sent back."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index
        """The part's index in the calls (``None``: not one part's failure)."""


def fork_available() -> bool:
    """Whether this process may fork children for a compile: the ``fork`` start method exists
    and this process is not itself a daemonic worker (of a ``multiprocessing.Pool``), which
    may not have children."""
    return ("fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


@contextmanager
def _no_llvm_call_in_flight() -> Iterator[None]:
    """Hold llvmlite's lock of the LLVM C API (when llvmlite is loaded) while forking: a child
    forked while another thread is inside LLVM would inherit that lock taken by a thread it
    does not have, and wait for it forever at its first LLVM call."""
    ffi = sys.modules.get("llvmlite.binding.ffi")
    lock = getattr(getattr(ffi, "lib", None), "_lock", None)
    if lock is None:
        yield
        return
    with lock:
        yield


def _child(call: Callable[[], Any], setup: Callable[[], None] | None, writer) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a parent's own handler must not keep it
    try:
        if setup is not None:
            setup()
        message = (True, call())
    except BaseException as e:  # noqa: BLE001 - sent to the parent, which raises it
        message = (False, e)
    try:
        writer.send(message)
    except Exception as e:  # noqa: BLE001 - an unpicklable result or error
        writer.send((False, ChildFailure(f"{type(e).__name__}: {e}")))
    writer.close()


def _end(child) -> None:
    """Wait for ``child`` to end; kill it if it has not a few seconds after it should have."""
    child.join(5)
    if child.is_alive():
        child.kill()
        child.join()


def _receive(index: int, child, reader) -> tuple[bool, Any]:
    """The result of a part whose pipe is readable (its message, or its end)."""
    try:
        result = reader.recv()
    except EOFError:
        _end(child)
        return False, ChildFailure(f"part {index}: its process ended without a result "
                                   f"(exit code {child.exitcode})", index)
    except Exception as e:  # noqa: BLE001 - e.g. a result that does not unpickle
        _end(child)
        return False, ChildFailure(f"part {index}: {type(e).__name__}: {e}", index)
    finally:
        reader.close()
    _end(child)
    return result


@dataclass(frozen=True)
class Patience:
    """How long the parts may take once the first one has ended (with a result or an error):
    ``factor`` times what that one took, scaled by the parts' estimated ``costs`` when given
    (a part costing 3x the first one gets 3x as long; never less than 1x), and at least
    ``floor`` more seconds. Parts end within a small factor of their estimates, even on a
    loaded machine; a part far past that is stuck (a forked child waiting for a lock that
    another thread held at the fork)."""

    factor: float = 10.0
    floor: float = 60.0
    costs: tuple[float, ...] | None = None
    """Estimated cost of each call, in the calls' order."""

    def deadline(self, start: float, first_end: float, first: int, index: int) -> float:
        """When part ``index`` must have ended, the parts having started at ``start`` and part
        ``first`` having ended first at ``first_end`` (both :func:`time.monotonic`)."""
        scale = 1.0
        if self.costs is not None and self.costs[first] > 0:
            scale = max(1.0, self.costs[index] / self.costs[first])
        return first_end + max(self.floor, self.factor * scale * (first_end - start))


def _stop(index: int, child, reader, why: str) -> tuple[bool, Any]:
    reader.close()
    child.terminate()
    _end(child)
    return False, ChildFailure(f"part {index}: no result {why} (its process was stopped)", index)


def deep_pickle(value: Any) -> bytes:
    """``pickle.dumps(value)`` for values that nest deeply (xDSL IR: each op refers to the next
    one, and pickling recurses along the chain): done in a thread with a 512 MB stack and a
    recursion limit to match. Unpickling does not recurse (``pickle.loads`` as usual). The
    recursion limit is process-wide: for a forked child, which ends after its result."""
    out: list[bytes] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except BaseException as e:  # noqa: BLE001 - raised in the calling thread
            errors.append(e)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1_000_000))
    size = threading.stack_size(512 << 20)
    try:
        thread = threading.Thread(target=run)
        thread.start()
    finally:
        threading.stack_size(size)
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


def least_loaded(costs: Sequence[float], parts: int) -> list[int]:
    """The part of each item, items taken in the given order (largest cost first gives the
    usual greedy balance), each to the part with the least cost so far (the first on a tie)."""
    loads = [0.0] * parts
    chosen = []
    for cost in costs:
        k = loads.index(min(loads))
        loads[k] += cost
        chosen.append(k)
    return chosen


def run_forked(calls: Sequence[Callable[[], Any]],
               child_setup: Callable[[], None] | None = None, *,
               first_here: bool = True, timeout: float | None = None,
               patience: Patience | None = None) -> list[Any]:
    """``[call() for call in calls]``, ``calls[0]`` in this process (unless ``first_here`` is
    false: then in a child too, and this process only waits) and each other one in a forked
    child (after ``child_setup()``), all at once. Once every part has ended, the first error in
    the order of ``calls`` is raised: a child's own exception when it can be pickled, else
    :class:`ChildFailure`. A child without a result ``timeout`` seconds after the start, or
    past its ``patience`` deadline, is stopped (a child can wait forever for a lock that a
    thread of this process held when it was forked): its ChildFailure is raised unless another
    part failed by itself. ``calls[0]`` interrupted here (KeyboardInterrupt) stops the children."""
    start = time.monotonic()
    deadline = math.inf if timeout is None else start + timeout
    context = multiprocessing.get_context("fork")
    pending: dict[Any, tuple[int, Any]] = {}
    forked = calls[1:] if first_here else calls
    results: dict[int, tuple[bool, Any]] = {}
    stopped: set[int] = set()
    try:
        for index, call in enumerate(forked, start=len(calls) - len(forked)):
            reader, writer = context.Pipe(duplex=False)
            try:
                child = context.Process(target=_child, args=(call, child_setup, writer),
                                        daemon=True)
                with _no_llvm_call_in_flight():
                    child.start()
            except OSError as e:  # e.g. EAGAIN, ENOMEM
                reader.close()
                raise ChildFailure(f"part {index}: cannot fork: {e}", index) from None
            finally:
                writer.close()
            pending[reader] = (index, child)
        first: tuple[int, float] | None = None  # the part that ended first, and when
        if first_here:
            try:
                results[0] = (True, calls[0]())
            except Exception as e:  # noqa: BLE001 - raised below, after the children ended
                results[0] = (False, e)
            first = (0, time.monotonic())
        while pending:
            due = {reader: deadline if first is None or patience is None else min(
                deadline, patience.deadline(start, first[1], first[0], index))
                for reader, (index, _) in pending.items()}
            wait = min(due.values()) - time.monotonic()
            ready = connection.wait(list(pending), timeout=None if wait == math.inf
                                    else max(0.0, wait))
            for reader in ready:
                index, child = pending[reader]
                results[index] = _receive(index, child, reader)
                del pending[reader]
                first = first or (index, time.monotonic())
            now = time.monotonic()
            for reader in [r for r in pending if due[r] <= now]:
                index, child = pending.pop(reader)
                why = "in time" if due[reader] >= deadline else (
                    f"{due[reader] - start:.1f} s after the start (part {first[0]} ended "
                    f"after {first[1] - start:.1f} s)")
                results[index] = _stop(index, child, reader, why)
                stopped.add(index)
    finally:
        for reader, (index, child) in pending.items():  # interrupted: end the rest
            _stop(index, child, reader, "")
    failed = [i for i in sorted(results) if not results[i][0]]
    if failed:
        raise results[next((i for i in failed if i not in stopped), failed[0])][1]
    return [results[index][1] for index in sorted(results)]
