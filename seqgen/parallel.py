"""Threads for the array work: numpy, scipy and Pillow release the GIL while they compute."""

from __future__ import annotations

import collections
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def max_local_processes() -> int:
    """The most worker processes seqgen starts on this machine: four per core (at least 8).  Each holds
    its own interpreter, digits and batch, so their memory grows with their number; more than one per
    core only shares the cores."""
    return max(8, 4 * available_cores())


def check_local_processes(workers: int, name: str = "workers", what: str = "local worker processes") -> int:
    """``workers`` local processes (or threads: ``what``), refused above :func:`max_local_processes`."""
    if workers > max_local_processes():
        raise ValueError(f"{name}: at most {max_local_processes()} {what} on this machine "
                         f"({available_cores()} cores), got {workers}")
    return workers


def default_threads() -> int:
    """One thread per core, or 1 inside a PyTorch ``DataLoader`` worker (the workers share the cores)."""
    torch_data = sys.modules.get("torch.utils.data")  # only if the caller imported torch
    if torch_data is not None and torch_data.get_worker_info() is not None:
        return 1
    return available_cores()


def in_parts(work: Callable[[slice], None], n: int, threads: int, min_part: int) -> None:
    """Call ``work`` on contiguous slices covering ``range(n)``, at most ``threads`` at once.

    The slices are at least ``min_part`` long (one slice when ``n`` is small
    or ``threads`` is 1), so the split, and so the result, never depends on
    timing; ``work`` must only write its own slice.
    """
    n_parts = max(1, min(threads, n // min_part))
    bounds = [n * k // n_parts for k in range(n_parts + 1)]
    for _ in ordered_map(work, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])], n_parts):
        pass  # waits for every part; re-raises the first error


def ordered_map(work: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """``work(item)`` for each item, yielded in order, with at most ``threads`` running at once.

    Items are started as earlier results are taken, so no more than
    ``threads`` results wait at any time.  With ``threads`` 1 everything runs
    in the calling thread.  ``work`` must not itself use this module's pool.
    """
    if threads == 1:
        yield from map(work, items)
        return
    pending: collections.deque = collections.deque()
    try:
        for item in items:
            pending.append(_shared_pool().submit(work, item))
            if len(pending) >= threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # on an error, or when the caller stops early: start nothing more, wait for what runs
        for future in pending:
            future.cancel()
        for future in pending:
            if not future.cancelled():
                future.exception()


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(available_cores(), thread_name_prefix="seqgen")
        return _pool


def _forget_pool() -> None:
    """A forked child has none of the parent's threads: it starts its own pool when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
