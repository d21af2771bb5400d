"""Passes split over forked processes (seqlm.core.workers)."""

import os

import pytest

from seqlm.core import workers


def square_sum(a: int, b: int) -> tuple[int, int]:
    return os.getpid(), sum(i * i for i in range(a, b))


def test_spans_run_in_other_processes_and_come_back_in_span_order():
    spans = workers.split_spans(1000, 10, 4)
    seen = []
    results = workers.run_spans(square_sum, spans, 3, done=seen.append)
    assert seen == spans
    assert sum(r[1] for r in results) == sum(i * i for i in range(1000))
    assert os.getpid() not in {pid for pid, _ in results}
    alone = workers.run_spans(square_sum, spans, 1)
    assert [r[1] for r in alone] == [r[1] for r in results]
    assert {pid for pid, _ in alone} == {os.getpid()}


def fails(a: int, b: int) -> None:
    raise ValueError(f"span {a}..{b} is bad")


def test_an_error_in_a_worker_reaches_the_caller():
    with pytest.raises(ValueError, match="span 0..5 is bad"):
        workers.run_spans(fails, [(0, 5), (5, 10)], 2)


def test_the_worker_count_follows_the_thread_limit_else_the_share(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQLM_THREADS", "3")
    assert workers.worker_count() == 3
    monkeypatch.delenv("SEQLM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("SEQLM_CORES_DIR", str(tmp_path))
    monkeypatch.setattr(workers, "available_cpus", lambda: 4)
    (tmp_path / "1").touch()  # pid 1 is alive: one other run shares the machine
    assert workers.worker_count() == 2
    monkeypatch.setenv("SEQLM_SHARE_CORES", "0")
    assert workers.worker_count() == 4
