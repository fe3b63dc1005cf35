"""The API's errors: every one answered as `{"error": {"code", "message", "hint"?}}`.

aiohttp's own errors (a body past the size limit, an unknown route) are rewritten to that
shape, and an unexpected exception becomes a 500 logged in one escaped line, never a traceback
per request (a request built to fail could otherwise flood the log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from schemas.printable import printable

log = logging.getLogger("journeys.api")


class HttpProblem(web.HTTPException):
    """An error answered as `{"error": {"code", "message", "hint"?}}`."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        self.status_code = status
        body: dict[str, Any] = {"code": code, "message": message}
        if hint:
            body["hint"] = hint
        super().__init__(
            text=orjson.dumps({"error": body}).decode(),
            content_type="application/json",
            reason=code,
        )


class Relayed(web.HTTPException):
    """Another worker's JSON error answer, passed on with its status."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        super().__init__(text=body.decode(errors="replace"), content_type="application/json")


_CODES = {400: "bad_request", 405: "method_not_allowed", 413: "too_large", 415: "bad_request"}

_HINTS = {413: "split the batch: at most 500 events, 8 MiB in all and 256 KiB per event"}


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error as `{"error": {...}}`; an unexpected one logged in one line, no traceback."""
    try:
        return await handler(request)
    except (HttpProblem, Relayed):
        raise
    except web.HTTPNotFound:
        raise HttpProblem(404, "not_found", f"no such endpoint {request.path}") from None
    except web.HTTPMethodNotAllowed as exc:
        raise HttpProblem(
            405, "method_not_allowed", f"{request.method} {request.path}: {exc}"
        ) from None
    except web.HTTPException as exc:  # aiohttp's own, e.g. 413 past client_max_size
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "bad_request" if exc.status < 500 else "internal")
        raise HttpProblem(
            exc.status, code, exc.text or exc.reason, _HINTS.get(exc.status)
        ) from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # one line, escaped; never a traceback per request
        log.error(
            "%s %s failed: %s: %s",
            request.method,
            printable(request.path[:200]),
            type(exc).__name__,
            printable(str(exc)[:200]),
        )
        raise HttpProblem(
            500,
            "internal",
            "the request could not be processed",
            "retry; if it keeps failing, report it with the time of the request",
        ) from None
