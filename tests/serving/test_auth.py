"""MICROSTRAIN_API_TOKEN: every route but the health probes needs the bearer token."""

from __future__ import annotations

import json
from typing import Any

import pytest

from serving.auth import TokenMiddleware

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def guarded(client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service in-process with a token set (the middleware reads it per request)."""
    monkeypatch.setenv("MICROSTRAIN_API_TOKEN", TOKEN)
    return client


ROUTES = [
    ("GET", "/"),
    ("GET", "/model"),
    ("GET", "/breakeven"),
    ("GET", "/docs.json"),
    ("GET", "/metrics"),
    ("POST", "/predict"),
    ("POST", "/predict_npy"),
    ("POST", "/verify"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN],
    ids=["none", "empty", "prefix", "longer", "basic", "no-scheme"],
)
def test_without_the_right_token_every_route_is_401(guarded, method, path, authorization):
    headers = {} if authorization is None else {"authorization": authorization}
    r = guarded.request(method, path, headers=headers, content=b"{}")
    assert r.status_code == 401, r.text
    assert "Bearer" in r.headers["www-authenticate"]
    assert "MICROSTRAIN_API_TOKEN" in r.json()["error"]


def test_with_the_token_requests_are_served(guarded, mask):
    for scheme in ("Bearer", "bearer"):  # the scheme is case-insensitive (RFC 9110)
        headers = {"authorization": f"{scheme} {TOKEN}", "content-type": "application/json"}
        body = json.dumps({"fiber_mask": mask.tolist()})
        r = guarded.post("/predict", content=body, headers=headers)
        assert r.status_code == 200, r.text
    spec = guarded.get("/docs.json", headers={"authorization": f"Bearer {TOKEN}"}).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/readyz"]["get"]["security"] == []


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
def test_health_probes_stay_open(guarded, path):
    assert guarded.get(path).status_code == 200


def test_without_the_variable_nothing_is_checked(client, monkeypatch):
    monkeypatch.delenv("MICROSTRAIN_API_TOKEN", raising=False)
    assert TokenMiddleware(app=None, token="").token() is None
    assert client.get("/model").status_code == 200
    assert "security" not in client.get("/docs.json").json()
