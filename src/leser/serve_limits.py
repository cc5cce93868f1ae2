"""``leser serve``'s guards against bad input: the request's shape, and the body-size and time limits.

Each refusal is a :class:`BadRequest`: an HTTP status and one line that names the limit it broke
(:class:`leser.config.ServeConfig`, the ``[serve]`` table or ``leser serve``'s flags). Needs the ``serve`` extra.
"""
from __future__ import annotations

import asyncio
import json

from fastapi.responses import JSONResponse

from leser.config import ServeConfig

__all__ = ["BadRequest", "QueueFull", "RequestLimits", "error_response", "parse_queries"]


class BadRequest(Exception):
    """A request the server refuses: its HTTP status and the one line that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class QueueFull(BadRequest):
    def __init__(self, message: str):
        super().__init__(503, message)


def parse_queries(body: bytes, limits: ServeConfig) -> list[str]:
    """The queries of a ``POST /expand`` body, or :class:`BadRequest` naming the first thing wrong with it."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise BadRequest(400, "the body is not JSON: nested too deeply") from None
    except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError, a number too long to convert
        raise BadRequest(400, f"the body is not JSON: {err}") from None
    if not isinstance(data, dict) or "queries" not in data:
        got = "an object without 'queries'" if isinstance(data, dict) else f"a JSON {_json_type(data)}"
        raise BadRequest(422, f'the body must be a JSON object {{"queries": ["...", ...]}}, got {got}')
    queries, most = data["queries"], limits.max_queries_per_request
    if not isinstance(queries, list):
        raise BadRequest(422, f"'queries' must be a list of strings, got a JSON {_json_type(queries)}")
    if not 1 <= len(queries) <= most:
        raise BadRequest(422, f"'queries' holds {len(queries)} queries; send 1 to {most} "
                              f"(max_queries_per_request={most})")
    for i, query in enumerate(queries):
        if not isinstance(query, str):
            raise BadRequest(422, f"queries[{i}] must be a string, got a JSON {_json_type(query)}")
        if not query.strip():
            raise BadRequest(422, f"queries[{i}] is empty")
        if len(query) > limits.max_query_chars:
            raise BadRequest(422, f"queries[{i}] has {len(query)} characters; the limit is {limits.max_query_chars} "
                                  f"(max_query_chars={limits.max_query_chars})")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(422, f"queries[{i}] is not valid Unicode (a lone surrogate)") from None
    return queries


def _json_type(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class RequestLimits:
    """ASGI middleware: the body-size and time limits, which must hold before the app sees a request.

    The body is read here, up to ``max_body_bytes`` and no further, then handed on whole; the whole request,
    reading included, runs under ``request_timeout_s``."""

    def __init__(self, app, limits: ServeConfig):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limits, started, phase = self.limits, False, "read"

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(limits.request_timeout_s):
                body = await self._read_body(scope, receive)
                if body is None:  # the client went away before it sent the whole body: no one to answer
                    return
                phase = "answer"
                await self.app(scope, _replay(body, receive), tracked)
        except BadRequest as bad:
            await error_response(bad.status, bad.message)(scope, receive, send)
        except TimeoutError:
            if not started:
                status, what = (408, "the request body did not arrive") if phase == "read" else (504, "no answer")
                await error_response(status, f"{what} within {limits.request_timeout_s:g} s "
                                     f"(request_timeout_s={limits.request_timeout_s:g})")(scope, receive, send)

    async def _read_body(self, scope, receive) -> bytes | None:
        most = self.limits.max_body_bytes
        too_big = f"the request body is over {most} bytes (max_body_bytes={most})"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > most:
            raise BadRequest(413, f"the request body is {int(length)} bytes; the limit is {most} "
                                  f"(max_body_bytes={most})")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > most:
                raise BadRequest(413, too_big)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that gives the app the body read already, then waits on the client (for a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
