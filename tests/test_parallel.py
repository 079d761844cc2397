"""The shared thread pool: threads per process, ordered results in a bounded window, errors, forked children."""

from __future__ import annotations

import multiprocessing
import sys

import numpy as np
import pytest


def test_one_thread_inside_a_dataloader_worker(monkeypatch):
    from types import SimpleNamespace

    from seqgen.parallel import available_cores, default_threads

    monkeypatch.setitem(sys.modules, "torch.utils.data", SimpleNamespace(get_worker_info=lambda: None))
    assert default_threads() == available_cores()
    monkeypatch.setitem(sys.modules, "torch.utils.data", SimpleNamespace(get_worker_info=lambda: object()))
    assert default_threads() == 1


def _draw_in_parts(n):
    from seqgen.parallel import in_parts

    out = np.zeros(n)
    in_parts(lambda part: out.__setitem__(part, part.start), n, threads=2, min_part=4)
    return out.tolist()


def test_ordered_map_keeps_the_order_and_a_window_of_threads():
    import time

    from seqgen.parallel import ordered_map

    started = []

    def work(i):
        started.append(i)
        time.sleep(0.01 * (i % 3))  # later items often finish first
        return i * i

    taken = [(result, len(started)) for result in ordered_map(work, range(12), threads=2)]
    assert [result for result, _ in taken] == [i * i for i in range(12)]
    assert all(n_started <= k + 2 for k, (_, n_started) in enumerate(taken))  # never more than 2 ahead


@pytest.mark.parametrize("threads", [2, 6])
def test_ordered_map_starts_nothing_more_after_an_error_or_an_early_stop(threads):
    import time

    from seqgen.parallel import available_cores, ordered_map

    started, finished = [], []

    def work(i):
        started.append(i)
        time.sleep(0 if i in (0, 3) else 0.05)  # items 0 and 3 come back at once, the others take a while
        if i == 3:
            raise RuntimeError("item 3 failed")
        finished.append(i)
        return i

    running = min(threads, available_cores())  # the pool has one thread per core
    with pytest.raises(RuntimeError, match="item 3 failed"):
        list(ordered_map(work, range(20), threads))
    assert max(started) <= 3 + running  # queued items were cancelled
    assert sorted(finished) == [i for i in sorted(started) if i != 3]  # and the running ones waited for

    started.clear(), finished.clear()
    results = ordered_map(work, range(20), threads)
    assert next(results) == 0
    results.close()  # the caller stops early: items beyond those running were cancelled
    assert max(started) <= running and sorted(finished) == sorted(started)


def test_ordered_map_with_one_thread_runs_in_the_caller():
    import threading

    from seqgen.parallel import ordered_map

    callers = set()
    assert list(ordered_map(lambda i: callers.add(threading.get_ident()) or i, range(5), 1)) == list(range(5))
    assert callers == {threading.get_ident()}


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_gets_its_own_thread_pool():
    parent = _draw_in_parts(16)  # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_draw_in_parts, (16,)).get(timeout=60) == parent == [0.0] * 8 + [8.0] * 8
