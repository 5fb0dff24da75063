"""Optional bearer token: with ``MICROSTRAIN_API_TOKEN`` set, requests must carry it.

Every path but the health probes (``/livez``, ``/readyz``, ``/healthz``, which orchestrators
call without credentials) needs ``Authorization: Bearer <token>``; anything else is answered
401 with ``WWW-Authenticate: Bearer`` before the body is read. The comparison is constant-time
(:func:`hmac.compare_digest`), so response times do not reveal how much of a guess was right.
Without the variable nothing is checked. The variable is read per request (a microsecond), so
what ``/docs.json`` declares and what is enforced always agree. The token is a shared secret
over plain HTTP: outside loopback, put the service behind a TLS-terminating proxy
(docs/serving.md).
"""

from __future__ import annotations

import hmac
from typing import Any

from serving.middleware import send_json_error
from serving.settings import api_token

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz"})


class TokenMiddleware:
    """ASGI middleware answering 401 unless the request carries the configured bearer token."""

    def __init__(self, app: Any, token: str | None = None) -> None:
        self.app = app
        self.fixed = token  # None: $MICROSTRAIN_API_TOKEN, read per request

    def token(self) -> bytes | None:
        token = self.fixed if self.fixed is not None else api_token()
        return token.encode() if token else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        token = self.token() if scope["type"] == "http" else None
        if token is None or scope.get("path", "") in OPEN_PATHS or _authorized(scope, token):
            await self.app(scope, receive, send)
            return
        await send_json_error(
            send,
            401,
            "missing or wrong token: send 'Authorization: Bearer <token>' "
            "(the service sets MICROSTRAIN_API_TOKEN)",
            extra_headers=[(b"www-authenticate", b'Bearer realm="microstrain"')],
        )


def _authorized(scope: dict[str, Any], token: bytes) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            # the scheme is case-insensitive (RFC 9110); the token compared in constant time
            same = hmac.compare_digest(credentials.strip(), token)
            return same and scheme.lower() == b"bearer"
    return False
