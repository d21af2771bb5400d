"""The app on the real uvicorn server (a thread, 127.0.0.1): a slow request does not hold up the
others, and a body too large is refused before it is read."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx


def test_a_slow_generation_does_not_block_other_requests(live):
    answers: dict[str, httpx.Response] = {}

    def slow_generation() -> None:
        ask = {"model": "slow", "prompt": "the time", "max_tokens": 150, "seed": 1}
        answers["slow"] = httpx.post(f"{live.url}/api/generate", json=ask, timeout=60)

    worker = threading.Thread(target=slow_generation)
    started = time.monotonic()
    worker.start()
    time.sleep(0.3)  # the generation is under way: 150 tokens at 20 ms each, 3 s
    with httpx.Client(base_url=live.url, timeout=10) as client:
        t0 = time.monotonic()
        health = client.get("/healthz")
        score = client.post("/api/score", json={"model": "ngram", "text": "the time machine"})
        logprobs = client.post("/api/logprobs", json={"model": "lstm", "text": "the time"})
        fast = time.monotonic() - t0
    still_generating = worker.is_alive()
    worker.join(timeout=60)

    assert health.status_code == score.status_code == logprobs.status_code == 200
    assert score.json()["total"]["tokens"] == 16
    assert still_generating, "the generation ended before the fast requests were answered"
    assert fast < 1.5, f"the fast requests took {fast:.2f} s beside the slow one"
    slow = answers["slow"]
    assert slow.status_code == 200 and len(slow.json()["tokens"]) == 150
    assert time.monotonic() - started >= 3.0  # it was slow indeed


def generate_at_once(live, seeds: tuple[int, ...], max_tokens: int) -> tuple[list[int], float]:
    """Ask the slow model for one generation per seed, all at once: the status codes and the
    seconds until the last one answered (20 ms a token)."""
    answers: list[httpx.Response] = []

    def generate(seed: int) -> None:
        ask = {"model": "slow", "max_tokens": max_tokens, "seed": seed}
        answers.append(httpx.post(f"{live.url}/api/generate", json=ask, timeout=60))

    workers = [threading.Thread(target=generate, args=(seed,)) for seed in seeds]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    return [r.status_code for r in answers], time.monotonic() - t0


def test_two_slow_requests_run_side_by_side(live):
    statuses, both = generate_at_once(live, (1, 2), 60)  # 1.2 s each
    assert statuses == [200, 200]
    # side by side about 1.2 s; one after the other at least 2.4 s
    assert both < 2.0, f"two 1.2 s generations took {both:.2f} s: one waited for the other"


def raw_request(live, head: str, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``) on a fresh connection; everything the server answers until it
    closes the connection."""
    with socket.create_connection((live.host, live.port), timeout=10) as sock:
        sock.sendall(head.encode("ascii") + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_sent(live):
    head = (
        "POST /api/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000000\r\n\r\n"
    )
    t0 = time.monotonic()
    answer = raw_request(live, head)  # not one byte of the gigabyte is sent
    assert time.monotonic() - t0 < 5
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"the request body is 1,000,000,000 bytes" in rest
    assert b"limit of 4,696 bytes" in rest
    assert httpx.get(f"{live.url}/healthz").status_code == 200


def test_a_chunked_body_over_the_limit_is_refused(live):
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(10):
            yield b"a" * 1000  # 10 kB: over the 4,696 bytes of a 100-character limit

    r = httpx.post(
        f"{live.url}/api/score", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert "over 4,696 bytes" in r.json()["error"]
    assert httpx.get(f"{live.url}/healthz").status_code == 200


def test_a_body_that_is_not_utf8_is_refused_by_the_real_server_too(live):
    r = httpx.post(
        f"{live.url}/api/score",
        content=b'{"text": "\xff"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "not UTF-8" in r.json()["error"]


def test_no_more_generations_run_at_once_than_there_are_workers(live):
    statuses, took = generate_at_once(live, (1, 2, 3), 40)  # 0.8 s each
    assert statuses == [200, 200, 200]
    # two workers (the default): two run side by side, the third waits for one of them
    assert took >= 1.6, f"three 0.8 s generations took {took:.2f} s: more than two ran at once"
