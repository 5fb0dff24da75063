"""The OpenAPI document ``/docs.json``: BentoML's, completed with the routes mounted beside it.

BentoML 1.4 describes its POST APIs (and its probes) but not routes of a mounted ASGI app, so
``/predict_npy``, ``/``, ``/docs``, ``/models``, ``/model`` and ``/breakeven`` are added here by
hand. With
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
MODEL_PARAMETER = {
    "name": "model",
    "in": "query",
    "required": False,
    "description": "name of a served model (GET /models); the default model when absent",
    "schema": {"type": "string"},
}
LOAD_DESCRIPTION = (
    "periodic models: three comma-separated numbers xx,yy,xy ({what}); the answer is then that "
    "load's strain [N,3,n,n]"
)
HTML = {"text/html": {"schema": {"type": "string"}}}

EXTRA_PATHS: dict[str, Any] = {
    "/predict_npy": {
        "post": {
            "summary": "Strain for .npy E maps or fiber masks, as .npy",
            "description": (
                "The body is the bytes of a .npy file (numpy.save; no pickles) holding E in MPa "
                "(3000 matrix, 85000 fiber) or a 0/1 fiber mask shaped [n,n], [N,n,n] or "
                f"[N,1,n,n], N <= {MAX_BATCH}, n = 32 (a periodic model: its input_sizes in GET "
                "/models). The answer is the .npy bytes of float32 strain: [N,3,32,32] "
                "(eps_xx, eps_yy, gamma_xy) of a uniaxial model; of a periodic model the unit "
                "cases [N,3,3,n,n] (case xx, yy, xy; component), or with macro_strain or "
                "macro_stress that load's [N,3,n,n], with C_eff [N,3,3] (MPa) in the header "
                "X-Microstrain-C-Eff (a JSON list). Warnings are in the header "
                "X-Microstrain-Warnings (a JSON list)."
            ),
            "operationId": "predict_npy",
            "parameters": [
                MODEL_PARAMETER,
                {
                    "name": "applied_strain",
                    "in": "query",
                    "required": False,
                    "description": "uniaxial models: prescribed displacement ū on x = 1; "
                    "0 < |ū| ≤ 1",
                    "schema": {"type": "number", "default": DEFAULT_APPLIED_STRAIN},
                },
                {
                    "name": "macro_strain",
                    "in": "query",
                    "required": False,
                    "description": LOAD_DESCRIPTION.format(what="eps_xx, eps_yy, gamma_xy"),
                    "schema": {"type": "string", "example": "0.01,0,0"},
                },
                {
                    "name": "macro_stress",
                    "in": "query",
                    "required": False,
                    "description": LOAD_DESCRIPTION.format(
                        what="sigma_xx, sigma_yy, tau_xy in MPa"
                    ),
                    "schema": {"type": "string", "example": "0,0,50"},
                },
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
                "404": ERROR,
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
    "/models": {
        "get": {
            "summary": "The served models: name, mode, plane, input sizes, headline measures",
            "operationId": "models",
            "responses": {
                "200": {
                    "description": "{default: name, models: [{name, default, mode, plane, "
                    "input_sizes, version, sha256, error_estimate, measures}]}",
                    "content": JSON_OBJECT,
                }
            },
        }
    },
    "/model": {
        "get": {
            "summary": "A served model's card (docs/model-card.md)",
            "operationId": "model_card",
            "parameters": [MODEL_PARAMETER],
            "responses": {
                "200": {"description": "card.json", "content": JSON_OBJECT},
                "404": ERROR,
                "422": ERROR,
            },
        }
    },
    "/breakeven": {
        "get": {
            "summary": "Predictions served against the breakeven τ of a model's card (SPEC §6)",
            "operationId": "breakeven",
            "parameters": [MODEL_PARAMETER],
            "responses": {
                "200": {
                    "description": "model, predictions, tau, fraction_of_tau, seconds_saved, ...",
                    "content": JSON_OBJECT,
                },
                "404": ERROR,
                "422": ERROR,
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
