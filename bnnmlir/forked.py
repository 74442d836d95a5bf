"""Work of one compile spread over forked copies of the compiling process.

A forked child starts with this process's memory (the IR, the model, the imported modules) at no
copying cost, which is what makes splitting a compile step worth it: the parts need no
serialization of their input, only of their (small) results.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
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


def _receive(index: int, child, reader) -> tuple[bool, Any]:
    """The result of a part whose pipe is readable (its message, or its end)."""
    try:
        result = reader.recv()
    except EOFError:
        child.join()
        return False, ChildFailure(f"part {index}: its process ended without a result "
                                   f"(exit code {child.exitcode})")
    except Exception as e:  # noqa: BLE001 - e.g. a result that does not unpickle
        child.join()
        return False, ChildFailure(f"part {index}: {type(e).__name__}: {e}")
    finally:
        reader.close()
    child.join()
    return result


@dataclass(frozen=True)
class Patience:
    """How long the other parts of a balanced split may take once one has its result (an error
    does not count): ``factor`` times what that one took, and at least ``floor`` more seconds.
    Balanced parts end within a small factor of each other, even on a loaded machine; a part
    far past that is stuck (a forked child waiting for a lock that another thread held at the
    fork)."""

    factor: float = 10.0
    floor: float = 60.0

    def deadline(self, start: float, first_result: float) -> float:
        """When the parts started at ``start`` must be done, the first result being at
        ``first_result`` (both :func:`time.monotonic`)."""
        return first_result + max(self.floor, self.factor * (first_result - start))


def _stop(index: int, child, reader, why: str) -> tuple[bool, Any]:
    reader.close()
    child.terminate()
    child.join()
    return False, ChildFailure(f"part {index}: no result {why} (its process was stopped)")


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
    child (after ``child_setup()``), all at once. The first error, in the order of ``calls``, is
    raised here once every part has ended: a child's own exception when it can be pickled, else
    :class:`ChildFailure`, also for a child stopped without a result, ``timeout`` seconds after
    the start or, with ``patience``, too long after the first result (a child can wait
    forever for a lock that a thread of this process held when it was forked)."""
    start = time.monotonic()
    deadline = math.inf if timeout is None else start + timeout
    context = multiprocessing.get_context("fork")
    pending: dict[Any, tuple[int, Any]] = {}
    forked = calls[1:] if first_here else calls
    results: dict[int, tuple[bool, Any]] = {}
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
                raise ChildFailure(f"part {index}: cannot fork: {e}") from None
            finally:
                writer.close()
            pending[reader] = (index, child)
        if first_here:
            try:
                results[0] = (True, calls[0]())
            except BaseException as e:  # noqa: BLE001 - raised below, after the children ended
                results[0] = (False, e)
        first_result = time.monotonic() if results.get(0, (False,))[0] else None
        while pending:
            patient = (math.inf if first_result is None or patience is None
                       else patience.deadline(start, first_result))
            wait = min(deadline, patient) - time.monotonic()
            ready = connection.wait(list(pending), timeout=None if wait == math.inf
                                    else max(0.0, wait))
            if not ready:
                why = "in time" if deadline <= patient else (
                    f"{patient - start:.0f} s after the start (the first result came after "
                    f"{first_result - start:.1f} s)")
                for reader, (index, child) in list(pending.items()):
                    results[index] = _stop(index, child, reader, why)
                    del pending[reader]
            for reader in ready:
                index, child = pending.pop(reader)
                results[index] = _receive(index, child, reader)
                if results[index][0] and first_result is None:
                    first_result = time.monotonic()
    finally:
        for reader, (index, child) in pending.items():  # an error above: end the rest
            _stop(index, child, reader, "")
    for index in sorted(results):
        ok, value = results[index]
        if not ok:
            raise value
    return [results[index][1] for index in sorted(results)]
