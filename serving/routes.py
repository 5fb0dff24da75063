"""Routes beside BentoML's POST APIs: the binary path, the web page, the card, τ and OpenAPI.

``POST /predict_npy`` takes the bytes of a ``.npy`` file (E in MPa or a 0/1 mask, shapes as
/predict; optional query ``applied_strain``) and answers the ``.npy`` bytes of float32 strain
``[N, 3, 32, 32]``; warnings of out-of-distribution inputs travel in the header
``X-Microstrain-Warnings`` (a JSON list). It is a plain Starlette route: BentoML's IO layer
would parse and re-encode what here is one ``frombuffer`` and one ``tobytes``.

``GET /`` is the web page (``serving/static``, plain HTML/JS/CSS: no build step, no CDN),
``GET /docs`` an offline Swagger UI over ``/docs.json``, which is BentoML's OpenAPI document of
the POST APIs completed with these routes (:mod:`serving.openapi`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, MAX_BATCH
from microstrain.domain import out_of_distribution
from serving import npy, openapi, validation

STATIC = Path(__file__).resolve().parent / "static"
NPY_QUERY = ("applied_strain",)


def _service() -> Any:
    return bentoml.get_current_service()


def _error(exc: validation.RequestError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _applied_strain(request: Request) -> float:
    unknown = sorted(set(request.query_params) - set(NPY_QUERY))
    if unknown:
        raise validation.RequestError(
            f"unknown query parameter(s) {', '.join(unknown)}; /predict_npy takes applied_strain"
        )
    raw = request.query_params.get("applied_strain")
    if raw is None:
        return DEFAULT_APPLIED_STRAIN
    try:
        value = float(raw)
    except ValueError:
        raise validation.RequestError(f"'applied_strain' must be a number, got {raw!r}") from None
    return validation.applied_strain(value)


async def predict_npy(request: Request) -> Response:
    """.npy E maps or masks in, .npy float32 strain ``[N, 3, 32, 32]`` out (SPEC §8)."""
    svc = _service()
    try:
        strain_value = _applied_strain(request)
        body = await request.body()  # bounded by BodySizeLimitMiddleware
        array = npy.read_npy(body, MAX_BATCH)
    except validation.RequestError as exc:
        return _error(exc)
    n = array.shape[0] if array.ndim >= 3 else 1
    return await svc.offload(n, npy_answer, svc, array, strain_value)  # type: ignore[no-any-return]


def npy_answer(svc: Any, array: Any, strain_value: float) -> Response:
    """Validated array -> .npy strain response (or the JSON 422 naming the problem)."""
    try:
        e = validation.from_npy_array(array).youngs_modulus
    except validation.RequestError as exc:
        return _error(exc)
    warnings = out_of_distribution(e, svc.model.card)
    strain, estimate = svc.run_model_with_estimate(e, strain_value)  # [N, 3, 32, 32], [N]
    if estimate is not None:  # a symmetrized model: its high estimates are warned about
        warnings += validation.error_estimate_warnings(estimate)
    svc.counter.add(e.shape[0])
    headers = {
        "X-Microstrain-Warnings": json.dumps(warnings),  # ASCII: json escapes the rest
        "X-Microstrain-Model": f"{svc.model.name} {svc.model.version}",
    }
    return Response(npy.write_npy(strain), headers=headers, media_type=npy.MEDIA_TYPE)


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def swagger(request: Request) -> Response:
    return FileResponse(STATIC / "docs.html", media_type="text/html")


async def model_card(request: Request) -> Response:
    return JSONResponse(_service().model.card)


async def breakeven(request: Request) -> Response:
    return JSONResponse(_service().breakeven())


def app(service: Any) -> Starlette:
    """The Starlette app BentoML mounts at ``/`` (its routes come before BentoML's own ``/``
    index and ``/docs.json``, which they replace)."""

    async def openapi_document(request: Request) -> Response:
        return JSONResponse(openapi.document(service))

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/docs", swagger, methods=["GET"]),
            Route("/docs.json", openapi_document, methods=["GET"]),
            Route("/model", model_card, methods=["GET"]),
            Route("/breakeven", breakeven, methods=["GET"]),
            Route("/predict_npy", predict_npy, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
