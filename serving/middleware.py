"""ASGI middleware refusing request bodies above a byte limit with 413 (BentoML 1.4 has none).

A declared ``Content-Length`` over the limit is refused before anything is read; a body sent
without one (chunked) is counted while it streams and refused as soon as it passes the limit, so
a client cannot make a worker buffer an unbounded body.
"""

from __future__ import annotations

import json
import os
from typing import Any

from microstrain.errors import MicrostrainError

# E maps of MAX_BATCH = 512 samples as JSON ("85000.0, " per pixel) are about 5 MB.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_BODY_ENV_VAR = "MICROSTRAIN_MAX_BODY_BYTES"

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
        refused = False  # our 413 went out: the app's own answer is dropped

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
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
        body = json.dumps(
            {
                "error": f"request body of {size} bytes or more exceeds the limit of "
                f"{self.max_bytes} bytes ({MAX_BODY_ENV_VAR})"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
