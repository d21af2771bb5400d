"""The HTTP service behind ``seqlm serve``: JSON endpoints over loaded models, and one page.

:func:`create_app` serves a dict of :class:`~seqlm.lm.base.LanguageModel` by name:

=====================  ===========================================================================
``GET /healthz``       ``{"status": "ok", "models": [...]}``
``GET /api/models``    each model (name, kind, vocab_size, token, line_end, clean) and the limits
``POST /api/score``    ``{model, text}`` → ``{model, total, lines: [{line, ...}]}``
``POST /api/logprobs`` ``{model, text, top}`` → ``{model, total, tokens: [...]}``
``POST /api/generate`` ``{model, prompt, max_tokens, temperature, top_k, top_p, beam, seed}`` →
                       ``{model, prompt, text, tokens, seconds, truncated}``
``GET /``              the page (``static/index.html``; its CSS and JS under ``/static/``)
``GET /openapi.json``  the OpenAPI schema of these endpoints
=====================  ===========================================================================

Scores follow :mod:`seqlm.perplexity` (``total`` is :meth:`~seqlm.perplexity.SplitScore.to_record`
of ``lm.score(text)``); log-probabilities are natural logs. ``model`` may be left out: the first
model served (the neural one of a run) answers.

Every error is a JSON object ``{"error": message}`` (and the service keeps serving):

* 400: a text with nothing to score once cleaned; a body that is not UTF-8 or not JSON; a text
  holding a lone surrogate;
* 404: an unknown model (the answer lists the models, also under ``"models"``) or path;
* 413: a text or prompt over :attr:`Limits.max_chars` characters; a body over
  :attr:`Limits.max_body_bytes` bytes (refused from its Content-Length before it is read, else as
  soon as that many bytes have come);
* 422: a field missing, unknown, of the wrong type or out of range (each named, under
  ``"errors"``), ``max_tokens`` over :attr:`Limits.max_tokens`;
* 500: a bug, logged with its traceback.

Model work runs in anyio's thread pool, off the event loop, so a slow request never holds up the
others: at most :attr:`Limits.workers` scorings and as many generations at once (the rest wait
their turn; scoring and generation queue apart). Generation stops after :attr:`Limits.timeout` seconds and
answers what it has with ``"truncated": true``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from seqlm.lm.base import LanguageModel
from seqlm.lm.generation import MAX_BEAM
from seqlm.serve.errors import ApiError, BodyGuard, install_error_handlers
from seqlm.serve.work import (
    check_text,
    describe,
    generate_record,
    logprobs_record,
    pick,
    score_record,
)

STATIC = Path(__file__).resolve().parent / "static"
MAX_TOP = 20  # most alternatives /api/logprobs gives per token
# the page loads nothing from outside the server
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_chars: int = 20_000  # characters of a text or prompt
    max_tokens: int = 500  # tokens one generation may ask for
    timeout: float = 10.0  # seconds a generation may run before it answers what it has
    workers: int = 2  # requests scored at once (and as many generations): the rest wait their turn

    @property
    def max_body_bytes(self) -> int:
        """The largest request body read: room for ``max_chars`` characters however JSON escapes
        them (at most 6 bytes each, ``\\uXXXX``), plus 4 KiB for the other fields."""
        return 6 * self.max_chars + 4096

    def to_record(self) -> dict[str, float | int]:
        """The limits as /api/models reports them."""
        return {
            **asdict(self),
            "max_body_bytes": self.max_body_bytes,
            "max_top": MAX_TOP,
            "max_beam": MAX_BEAM,
        }


# --- requests -----------------------------------------------------------------------------------

ModelName = Annotated[
    str | None, Field(description="a model's name (/api/models); default: the first served")
]


class ModelRequest(BaseModel):
    """Fields every request shares; unknown fields are refused (a misspelt option says so)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = None


class ScoreRequest(ModelRequest):
    """``POST /api/score``: a text, read as one stream from a fresh start."""

    text: str = Field(description="the text to score (UTF-8; lines end with \\n, \\r\\n or \\r)")


class LogprobsRequest(ScoreRequest):
    """``POST /api/logprobs``: a text, and how many alternatives to give per token."""

    top: int = Field(5, ge=0, le=MAX_TOP, description="the most likely tokens at each position")


class GenerateRequest(ModelRequest):
    """``POST /api/generate``: a prompt and the generation settings of ``LanguageModel.generate``."""

    prompt: str = Field("", description="the text to continue (read like the corpus)")
    max_tokens: int = Field(
        100, ge=0, description="tokens to generate (at most the server's limit)"
    )
    temperature: float = Field(1.0, gt=0, allow_inf_nan=False, description="sampling temperature")
    top_k: int = Field(0, ge=0, description="sample from the k most likely (0: all)")
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="nucleus mass (1: all)")
    beam: int = Field(0, ge=0, le=MAX_BEAM, description="beam width (0: sample; 1: greedy)")
    seed: int = Field(0, ge=0, lt=2**63, description="the sampling seed: same seed, same text")


# --- the app ------------------------------------------------------------------------------------


def create_app(models: dict[str, LanguageModel], limits: Limits | None = None) -> FastAPI:
    """The service over ``models`` (by the name it serves each as; the first is the default)."""
    if not models:
        raise ValueError("create_app needs at least one model to serve")
    limits = limits or Limits()
    from seqlm import __version__

    app = FastAPI(
        title="seqlm",
        version=__version__,
        summary="Score text and generate with a run's language models.",
        description=__doc__.split("\n\n")[0],
        docs_url=None,  # the interactive docs load their scripts from a CDN: not offline
        redoc_url=None,
    )
    app.state.models = models
    app.state.limits = limits
    install_error_handlers(app)
    app.add_middleware(BodyGuard, max_bytes=limits.max_body_bytes)

    # At most `workers` scorings and `workers` generations run at once, each in a thread of
    # anyio's pool, off the event loop: more would not finish sooner on the same cores, and each
    # running request holds its activations (memory grows with the requests in flight). Scoring
    # and generation queue apart, so long generations never hold up a score.
    limiters: dict[str, anyio.CapacityLimiter] = {}

    async def in_pool(work: Callable[..., dict[str, Any]], *args: Any, **kw: Any) -> dict[str, Any]:
        """Run the model work off the event loop, once a worker of its kind is free."""
        kind = "generate" if work is generate_record else "score"
        if kind not in limiters:  # made in the event loop, on first use
            limiters[kind] = anyio.CapacityLimiter(limits.workers)
        return await anyio.to_thread.run_sync(partial(work, *args, **kw), limiter=limiters[kind])

    add_routes(app, models, limits, in_pool)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def add_routes(
    app: FastAPI,
    models: dict[str, LanguageModel],
    limits: Limits,
    in_pool: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    """The endpoints of the module docstring."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The page: surprisal per token under each model, and generation."""
        headers = {"content-security-policy": PAGE_POLICY, "cache-control": "no-cache"}
        return FileResponse(STATIC / "index.html", headers=headers)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """The service answers (on the event loop: whatever the models are doing)."""
        return JSONResponse({"status": "ok", "models": list(models)})

    @app.get("/api/models")
    async def list_models() -> JSONResponse:
        """Each model served (name, kind, vocabulary size, how it reads text) and the limits."""
        return JSONResponse(
            {
                "models": [describe(name, lm) for name, lm in models.items()],
                "default": next(iter(models)),
                "limits": limits.to_record(),
            }
        )

    @app.post("/api/score")
    async def score(req: ScoreRequest) -> JSONResponse:
        """The text's score (``total``, as ``lm.score(text)``) and each line's share of it."""
        name, lm = pick(models, req.model)
        check_text(req.text, "text", limits.max_chars)
        return JSONResponse({"model": name, **await in_pool(score_record, lm, req.text)})

    @app.post("/api/logprobs")
    async def logprobs(req: LogprobsRequest) -> JSONResponse:
        """Every token's natural-log probability, its line, whether the vocabulary lacks it, and
        the ``top`` most likely tokens at its position."""
        name, lm = pick(models, req.model)
        check_text(req.text, "text", limits.max_chars)
        return JSONResponse(
            {"model": name, **await in_pool(logprobs_record, lm, req.text, req.top)}
        )

    @app.post("/api/generate")
    async def generate(req: GenerateRequest) -> JSONResponse:
        """Continue the prompt: sampled (seeded) or by beam search; ``truncated`` if it ran past
        the server's time limit."""
        name, lm = pick(models, req.model)
        check_text(req.prompt, "prompt", limits.max_chars)
        if req.max_tokens > limits.max_tokens:
            raise ApiError(
                422,
                f"max_tokens = {req.max_tokens} is over this server's limit of "
                f"{limits.max_tokens} (seqlm serve --max-tokens)",
            )
        settings = req.model_dump(exclude={"model", "prompt", "max_tokens"})
        record = await in_pool(
            generate_record, lm, req.prompt, req.max_tokens, limits.timeout, **settings
        )
        return JSONResponse({"model": name, **record})
