"""Passes over long arrays split across processes: contiguous spans, one forked worker each.

A pass is a function of a span ``(start, stop)`` whose results the caller combines in span order,
so that the outcome does not depend on how many workers ran it (the n-gram counting passes:
:mod:`seqlm.ngram.counting`). Workers are forked (the pass and everything it reads, e.g. a
memory-mapped split or a table of keys, are inherited, not pickled); results come back pickled.

How many: :func:`worker_count`, the way :mod:`seqlm.core.threads` sizes a training's threads —
``SEQLM_THREADS`` (or ``OMP_NUM_THREADS``) when set, else this run's share of the CPUs among the
seqlm runs on the machine (:class:`~seqlm.core.threads.CoreShare`), so that a pass beside a
training takes half the cores, not all of them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from seqlm.core.threads import CoreShare, cores_dir, resolve_threads, sharing_enabled

T = TypeVar("T")
Span = tuple[int, int]

_PASS: Callable[[int, int], Any] | None = None  # the pass the forked workers run


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count() -> int:
    """Processes for a pass: the environment's thread limit if set, else this run's share of the
    CPUs (registered among the seqlm runs for as long as the process lives), else all of them."""
    limit = resolve_threads(0)
    if limit.count:
        return limit.count
    cpus = available_cpus()
    if not sharing_enabled():
        return cpus
    return CoreShare(cores_dir(), cpus, apply=lambda _: None).threads


def split_spans(size: int, chunk: int, parts: int) -> list[Span]:
    """``0 .. size`` cut into at most ``parts`` contiguous spans of whole chunks (the last chunk
    may be short), as even as whole chunks allow."""
    n_chunks = max(1, -(-size // chunk))
    parts = max(1, min(parts, n_chunks))
    bounds = [round(i * n_chunks / parts) * chunk for i in range(parts + 1)]
    return [(a, min(b, size)) for a, b in zip(bounds, bounds[1:], strict=False) if a < size]


def _run(span: Span) -> Any:
    assert _PASS is not None
    return _PASS(*span)


def run_spans(
    job: Callable[[int, int], T],
    spans: Sequence[Span],
    workers: int,
    done: Callable[[Span], None] | None = None,
) -> list[T]:
    """``[job(a, b) for a, b in spans]``, the spans in forked processes when ``workers > 1``;
    ``done(span)`` is called as each result arrives, in span order (a progress bar)."""
    results = []
    for span, result in zip(spans, iter_spans(job, spans, workers), strict=True):
        results.append(result)
        if done is not None:
            done(span)
    return results


def iter_spans(job: Callable[[int, int], T], spans: Sequence[Span], workers: int) -> Iterator[T]:
    """:func:`run_spans` as a stream: each result in span order as soon as it and those before it
    are done, so the caller can write and drop one before the next arrives."""
    if workers <= 1 or len(spans) <= 1:
        yield from (job(*span) for span in spans)
        return
    global _PASS
    _PASS = job
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(min(workers, len(spans))) as pool:
            yield from pool.imap(_run, spans, chunksize=1)
    finally:
        _PASS = None
