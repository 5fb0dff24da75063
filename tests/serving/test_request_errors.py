"""Refused requests say what is wrong: no pydantic class names or Python object reprs in the
answer, and a body shorter than its Content-Length is answered 408 promptly (not after
BentoML's traffic timeout). Against the session's real server."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import httpx
import pytest

from serving.middleware import BODY_IDLE_S

MASK = [[0] * 32] * 32
PYDANTIC_WORDS = ("validation error for", "IODescriptor", "errors.pydantic.dev", "object at 0x")


JSON = {"content-type": "application/json"}
CASES = [
    ("/predict", {"json": {"fiber_mask": MASK, "quantities": "yes"}}, "'quantities' must be true"),
    ("/predict", {"json": {"E": "abc"}}, "'E' must be an array"),
    ("/predict", {"json": {"fiber_mask": MASK, "applied_strain": "x"}}, "must be a number"),
    ("/predict", {"json": {"fiber": MASK}}, "unknown field 'fiber'"),
    ("/predict", {"json": [1, 2]}, "the body must be an object"),
    ("/predict", {"content": b"{not json", "headers": JSON}, "not valid JSON"),
    ("/verify", {"json": {"fiber_mask": MASK, "quantities": 1}}, "'quantities' must be true"),
    ("/predict_image", {"files": {"other": ("a.png", b"123", "image/png")}}, "'image' is required"),
    (
        "/predict_image",
        {"files": {"image": ("a.png", b"no png", "image/png")}},
        "not a readable PNG",
    ),
]


@pytest.mark.parametrize(("path", "request_kwargs", "words"), CASES)
def test_a_refused_body_is_answered_in_words(server, path, request_kwargs, words):
    url, _ = server
    answer = httpx.post(f"{url}{path}", timeout=60, **request_kwargs)
    assert 400 <= answer.status_code < 500
    error = answer.json()["error"]
    assert words in error
    assert not any(w in answer.text for w in PYDANTIC_WORDS), answer.text


def test_a_body_shorter_than_its_content_length_is_answered_408_promptly(server):
    url, _ = server
    port = urlparse(url).port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"E": ['
        )
        # the answer must come by itself, well before BentoML's own timeout (60 s here)
        conn.settimeout(BODY_IDLE_S + 20)
        # the server closes the connection after its answer; head and body may come in parts
        received = b""
        while chunk := conn.recv(4096):
            received += chunk
    answer = received.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "stopped after 7 bytes of the 1000 its Content-Length announced" in answer
