"""The OpenAPI document ``/docs.json``: BentoML's, completed with the routes mounted beside it.

BentoML 1.4 describes its POST APIs (and its probes) but not routes of a mounted ASGI app, so
``/predict_npy``, ``/``, ``/docs``, ``/model`` and ``/breakeven`` are added here by hand. With
``MICROSTRAIN_API_TOKEN`` set the document also declares the bearer scheme, required everywhere
but on the health probes.
"""

from __future__ import annotations

import copy
from typing import Any

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, MAX_BATCH
from serving.auth import OPEN_PATHS
from serving.settings import api_token

ERROR = {
    "description": "a problem the client must fix, named in 'error'",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}
HTML = {"text/html": {"schema": {"type": "string"}}}

EXTRA_PATHS: dict[str, Any] = {
    "/predict_npy": {
        "post": {
            "summary": "Strain for .npy E maps or fiber masks, as .npy",
            "description": (
                "The body is the bytes of a .npy file (numpy.save; no pickles) holding E in MPa "
                "(3000 matrix, 85000 fiber) or a 0/1 fiber mask shaped [32,32], [N,32,32] or "
                f"[N,1,32,32], N <= {MAX_BATCH}. The answer is the .npy bytes of float32 strain "
                "[N,3,32,32] (eps_xx, eps_yy, gamma_xy); out-of-distribution warnings are in "
                "the header X-Microstrain-Warnings (a JSON list)."
            ),
            "operationId": "predict_npy",
            "parameters": [
                {
                    "name": "applied_strain",
                    "in": "query",
                    "required": False,
                    "description": "prescribed displacement ū on x = 1; 0 < |ū| ≤ 1",
                    "schema": {"type": "number", "default": DEFAULT_APPLIED_STRAIN},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            "responses": {
                "200": {
                    "description": "float32 strain [N,3,32,32] as .npy bytes",
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "400": ERROR,
                "413": ERROR,
                "422": ERROR,
            },
        }
    },
    "/": {
        "get": {
            "summary": "The web page: draw a microstructure, see its strain and stresses",
            "operationId": "page",
            "responses": {"200": {"description": "HTML page", "content": HTML}},
        }
    },
    "/docs": {
        "get": {
            "summary": "This document in Swagger UI (offline)",
            "operationId": "swagger_ui",
            "responses": {"200": {"description": "HTML page", "content": HTML}},
        }
    },
    "/model": {
        "get": {
            "summary": "The model card (docs/model-card.md)",
            "operationId": "model_card",
            "responses": {"200": {"description": "card.json", "content": JSON_OBJECT}},
        }
    },
    "/breakeven": {
        "get": {
            "summary": "Predictions served against the breakeven τ of the card (SPEC §6)",
            "operationId": "breakeven",
            "responses": {
                "200": {
                    "description": "predictions, tau, fraction_of_tau, seconds_saved, ...",
                    "content": JSON_OBJECT,
                }
            },
        }
    },
}


def document(service: Any) -> dict[str, Any]:
    """The full OpenAPI document of ``service`` (the BentoML service class)."""
    spec: dict[str, Any] = copy.deepcopy(service.openapi_spec.asdict())
    spec.setdefault("paths", {}).update(copy.deepcopy(EXTRA_PATHS))
    if api_token() is not None:
        components = spec.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "the token of MICROSTRAIN_API_TOKEN",
        }
        spec["security"] = [{"bearer": []}]
        for path in OPEN_PATHS & set(spec["paths"]):
            for operation in spec["paths"][path].values():
                operation["security"] = []
    return spec
