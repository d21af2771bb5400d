"""How ``seqlm serve`` refuses a request: every error as ``{"error": message}`` with its status,
and the raw body checked (its size and encoding) before FastAPI reads it.

* :class:`ApiError`: a refusal raised by an endpoint (404 unknown model, 413 text too long, ...);
* seqlm's own errors: a :class:`~seqlm.core.errors.ParamError` is 422, any other
  :class:`~seqlm.core.errors.SeqlmError` 400 (a text with nothing to score);
* a body FastAPI cannot read as the endpoint's request: 400 for invalid JSON, 422 naming each bad
  field (``"errors": [{"field", "message"}]``);
* :class:`BodyGuard`: 413 for a body over the byte limit, read no further; 400 for one that is not
  UTF-8;
* anything else is a bug: 500, logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seqlm.core.errors import ParamError, SeqlmError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the service refuses: its status, the message, and more fields for the answer."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    """``{"error": message, ...extra}`` with ``status``."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def field_name(loc: Sequence[Any]) -> str:
    """A validation error's location as the field a client sent (``max_tokens``, ``body``)."""
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_response(errors: Sequence[Any]) -> JSONResponse:
    """A body FastAPI could not read as the endpoint's request: invalid JSON (400), a body that is
    not a JSON object, or fields missing, unknown, mistyped or out of range (422)."""
    for e in errors:
        if e.get("type") == "json_invalid":
            where = e["loc"][-1] if len(e.get("loc", ())) > 1 else "?"
            why = e.get("ctx", {}).get("error", "JSON decode error")
            return error_response(400, f"the request body is not valid JSON: {why} at byte {where}")
    listed = [{"field": field_name(e.get("loc", ())), "message": e.get("msg", "")} for e in errors]
    if any(x["field"] == "body" for x in listed):
        message = (
            "the request body must be a JSON object sent with Content-Type: application/json, "
            'e.g. {"model": "ngram", "text": "the time machine"}'
        )
    else:
        message = "invalid request: " + "; ".join(f"{x['field']}: {x['message']}" for x in listed)
    return error_response(422, message, errors=listed)


def install_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": message}``: ApiError, seqlm's own, validation, HTTP, bugs."""

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, **exc.extra)

    @app.exception_handler(SeqlmError)
    async def on_seqlm_error(request: Request, exc: SeqlmError) -> JSONResponse:
        return error_response(422 if isinstance(exc, ParamError) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no such page: {request.url.path} (the API is listed at /openapi.json)"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server's log")


# --- the raw body: its size and encoding, before FastAPI reads it ---------------------------------


class BodyGuard:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 (from its Content-Length before
    any of it is read, else as soon as that many bytes have come); one that is not UTF-8 gets 400
    with the offset of the first bad byte. A body that passes is handed on whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        refusal = self.check_length(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self.too_large(f"over {self.max_bytes:,} bytes")(scope, receive, send)
                return
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            message = (
                f"the request body is not UTF-8: byte {e.start} (0x{body[e.start]:02x}) cannot be "
                f"decoded ({e.reason}); send the JSON encoded as UTF-8"
            )
            await error_response(400, message)(scope, receive, send)
            return
        await self.app(scope, replay(bytes(body), receive), send)

    def check_length(self, scope: Scope) -> JSONResponse | None:
        """A refusal for a Content-Length that is too large or not a number, else None."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return error_response(400, f"Content-Length {value[:40]!r} is not a number")
                if length > self.max_bytes:
                    return self.too_large(f"{length:,} bytes")
        return None

    def too_large(self, size: str) -> JSONResponse:
        """413 for a body of ``size``; the connection is closed (the rest is never read)."""
        response = error_response(
            413,
            f"the request body is {size}, over this server's limit of {self.max_bytes:,} bytes "
            "(6 bytes per character of seqlm serve --max-chars, plus 4 KiB)",
        )
        response.headers["connection"] = "close"
        return response


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` in one message, then waits on the client as before."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
