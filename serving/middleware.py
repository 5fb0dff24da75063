"""ASGI middleware refusing request bodies above a byte limit with 413 (BentoML 1.4 has none),
bodies that stop arriving with 408, and saying what is wrong where BentoML's validation answers
with pydantic's words.

A declared ``Content-Length`` over the limit is refused before anything is read; a body sent
without one (chunked) is counted while it streams and refused as soon as it passes the limit, so
a client cannot make a worker buffer an unbounded body.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from microstrain.errors import MicrostrainError

# E maps of MAX_BATCH = 512 samples as JSON ("85000.0, " per pixel) are about 5 MB.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_BODY_ENV_VAR = "MICROSTRAIN_MAX_BODY_BYTES"
# a body that sends nothing for this long is answered 408: a Content-Length larger than what the
# client sends would otherwise hold the request until BentoML's traffic timeout
BODY_IDLE_S = 5.0

Scope = dict[str, Any]
Message = dict[str, Any]


def max_body_bytes() -> int:
    """The limit: ``$MICROSTRAIN_MAX_BODY_BYTES`` or 8 MiB."""
    raw = os.environ.get(MAX_BODY_ENV_VAR)
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise MicrostrainError(f"{MAX_BODY_ENV_VAR}={raw!r} is not a whole number") from None
    if value <= 0:
        raise MicrostrainError(f"{MAX_BODY_ENV_VAR} must be positive, got {value}")
    return value


class BodySizeLimitMiddleware:
    """Answer 413 with a JSON ``{"error": ...}`` body for requests larger than ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes if max_bytes is not None else max_body_bytes()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return
        received = 0
        refused = False  # our 413 or 408 went out: the app's own answer is dropped
        body_done = False  # after the body, receive() waits for a disconnect: no time limit

        async def counting_receive() -> Message:
            nonlocal received, refused, body_done
            if refused:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()  # type: ignore[no-any-return]
            try:
                message: Message = await asyncio.wait_for(receive(), BODY_IDLE_S)
            except TimeoutError:
                refused = True
                expected = (
                    "" if declared is None else f" of the {declared} its Content-Length announced"
                )
                await send_json_error(
                    send,
                    408,
                    f"the request body stopped after {received} bytes{expected}: nothing more "
                    f"arrived for {BODY_IDLE_S:g} s",
                    [(b"connection", b"close")],
                )
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # answer now and tell the app the client left: BentoML turns exceptions
                    # raised here into 500s, a disconnect it handles quietly
                    refused = True
                    await self._refuse(send, received)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send: Any, size: int) -> None:
        await send_json_error(
            send,
            413,
            f"request body of {size} bytes or more exceeds the limit of {self.max_bytes} bytes "
            f"({MAX_BODY_ENV_VAR})",
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class MediaTypeMiddleware:
    """Answer 415 when a POST body's ``Content-Type`` does not fit the route.

    BentoML picks its body parser from the header, and a ``multipart/form-data`` header without a
    boundary (or a form sent to a JSON route) makes that parser fail with a 500. ``routes`` maps a
    path to the media type it takes: ``application/json`` (a missing header counts as JSON) or
    ``multipart/form-data`` (which must name its boundary).
    """

    def __init__(self, app: Any, routes: dict[str, str]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        expected = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if expected is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                header = value.decode("latin-1")
        media_type, _, params = header.partition(";")
        media_type = media_type.strip().lower() or "application/json"
        problem = None
        if media_type != expected:
            problem = f"{scope['path']} takes {expected}, not {media_type}"
        elif expected == "multipart/form-data" and "boundary=" not in params:
            problem = "multipart/form-data without a boundary parameter"
        if problem is not None:
            await send_json_error(send, 415, f"unsupported Content-Type: {problem}")
            return
        if expected != "multipart/form-data":
            await self.app(scope, receive, send)
            return
        # BentoML 1.4 turns its own 400 for a broken multipart body into a 500: parse it here
        # first (the body is small and already bounded by BodySizeLimitMiddleware), then replay
        body = await _read_body(receive)
        if body is None:
            return  # client left
        problem = _multipart_problem(body, params)
        if problem is not None:
            await send_json_error(send, 400, f"malformed multipart/form-data body: {problem}")
            return
        await self.app(scope, _replay(body, then=receive), send)


def _multipart_problem(body: bytes, params: str) -> str | None:
    """Why ``body`` is not valid multipart with the header's boundary, or None if it is.

    python-multipart's push parser runs synchronously on the buffered body: no temp files, no
    threads.
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header("multipart/form-data;" + params)
    boundary = options.get(b"boundary", b"")
    if not boundary:
        return "empty boundary"
    ended = False

    def on_end() -> None:
        nonlocal ended
        ended = True

    try:
        parser = MultipartParser(boundary, {"on_end": on_end})
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        return str(exc)
    return None if ended else "body ends before the closing boundary"


async def _read_body(receive: Any) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, then: Any = None) -> Any:
    """An ASGI ``receive`` that yields ``body`` once, then defers to ``then`` (disconnects)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is not None:
            return await then()  # type: ignore[no-any-return]
        return {"type": "http.disconnect"}

    return receive


async def send_json_error(
    send: Any, status: int, message: str, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer ``{"error": message}`` with ``status`` straight from ASGI middleware."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ReadableValidationMiddleware:
    """Say what is wrong where BentoML answers a body its pydantic model refuses.

    BentoML validates a JSON or form body against the API's pydantic model and answers 400 with
    ``{"error": "1 validation error for PredictInputIODescriptor", "detail": [...]}``: the name
    of an internal class instead of the problem. This rewrites ``error`` from the ``detail``
    (field, what it must be) and leaves every other answer as it is.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] == 400:
                start = message  # held until the body says whether it is pydantic's
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = readable_validation_body(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", b"%d" % len(body)))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewriting_send)


def readable_validation_body(body: bytes) -> bytes:
    """A 400 body of BentoML's validation with a readable ``error``; any other body unchanged."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if not isinstance(answer, dict) or "validation error" not in str(answer.get("error", "")):
        return body
    detail = answer.get("detail")
    problems = (
        [_problem(d) for d in detail if isinstance(d, dict)] if isinstance(detail, list) else []
    )
    answer["error"] = "; ".join(problems) or "the request body does not fit this API (see /docs)"
    if isinstance(detail, list):
        answer["detail"] = [
            {k: v for k, v in d.items() if k != "url"} if isinstance(d, dict) else d for d in detail
        ]
    return json.dumps(answer).encode()


_MUST_BE = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "string_type": "a string",
    "list_type": "an array (nested lists of numbers)",
    "dict_type": "an object",
    "model_type": "an object",
    "finite_number": "a finite number",
}


def _problem(detail: dict[str, Any]) -> str:
    """One validation problem of pydantic's ``errors()`` in words."""
    kind = str(detail.get("type", ""))
    loc = [str(part) for part in detail.get("loc", []) if part not in ("body",)]
    field = ".".join(loc)
    message = str(detail.get("msg", "is not valid"))
    if kind == "json_invalid":
        return "the body is not valid JSON: " + message.removeprefix("Invalid JSON: ")
    if kind == "extra_forbidden":
        return f"unknown field {field!r} (the fields are listed at /docs)"
    if kind == "missing":
        return f"{field!r} is required" if field else "the body is empty"
    if kind in _MUST_BE:
        return (
            f"{field!r} must be {_MUST_BE[kind]}" if field else f"the body must be {_MUST_BE[kind]}"
        )
    return f"{field!r}: {message}" if field else message
