"""Helpers the serve tests share (importable: tests/serve/ is on sys.path under pytest): a
slowed-down model, a TestClient over any models and limits, and the real uvicorn server in a
thread."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence

import numpy as np
import uvicorn
from fastapi import FastAPI

from seqlm.lm.base import LanguageModel, State
from seqlm.serve import bind, url_of
from seqlm.serve.app import Limits, create_app

with warnings.catch_warnings():  # starlette would rather have httpx2; httpx is what we have
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


class SlowModel(LanguageModel):
    """``lm``, taking ``delay`` seconds more for each token it reads and each scoring call."""

    def __init__(self, lm: LanguageModel, delay: float) -> None:
        super().__init__(f"slow-{lm.name}", lm.vocab, lm.fmt)
        self.kind = lm.kind
        self.lm = lm
        self.delay = delay

    def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return self.lm.target_logprobs(ids)

    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]:
        time.sleep(self.delay)
        return self.lm.begin(ids)

    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]:
        time.sleep(self.delay)
        return self.lm.advance(state, token_id)


def client_for(models: dict[str, LanguageModel], **limits: float) -> TestClient:
    """A TestClient of the app over ``models`` with these limits (the defaults otherwise); a bug
    in the app is answered 500, as the real server answers it."""
    return TestClient(create_app(models, Limits(**limits)), raise_server_exceptions=False)


class LiveServer:
    """An app on the real uvicorn server, in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock).rstrip("/")
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()
