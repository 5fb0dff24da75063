"""Routes beside BentoML's POST APIs: the binary path, the web page, the models, τ and OpenAPI.

``POST /predict_npy`` takes the bytes of a ``.npy`` file (E in MPa or a 0/1 mask, shapes as
/predict; optional queries ``model`` and ``applied_strain``, or for a periodic model
``macro_strain`` / ``macro_stress`` as three comma-separated numbers) and answers the ``.npy``
bytes of float32 strain: ``[N, 3, 32, 32]`` of a uniaxial model, the unit cases
``[N, 3, 3, n, n]`` of a periodic one or its load's ``[N, 3, n, n]`` (C_eff ``[N, 3, 3]`` then
travels in the header ``X-Microstrain-C-Eff``, a JSON list); warnings travel in the header
``X-Microstrain-Warnings`` (a JSON list). It is a plain Starlette route: BentoML's IO layer
would parse and re-encode what here is one ``frombuffer`` and one ``tobytes``.

``GET /models`` lists the served models; ``GET /model`` and ``GET /breakeven`` take
``?model=`` (the default model without it).

``GET /`` is the web page (``serving/static``, plain HTML/JS/CSS: no build step, no CDN),
``GET /docs`` an offline Swagger UI over ``/docs.json``, which is BentoML's OpenAPI document of
the POST APIs completed with these routes (:mod:`serving.openapi`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from microstrain.conventions import MAX_BATCH
from microstrain.domain import out_of_distribution
from serving import npy, openapi, periodic, validation
from serving.registry import ServedModel

STATIC = Path(__file__).resolve().parent / "static"
NPY_QUERY = ("model", "applied_strain", "macro_strain", "macro_stress")


def _service() -> Any:
    return bentoml.get_current_service()


def _error(exc: validation.RequestError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _number(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise validation.RequestError(f"'{name}' must be a number, got {raw!r}") from None


@dataclass
class NpyQuery:
    """The query of one /predict_npy request: the model's name and its load fields."""

    model: str | None
    applied_strain: float | None
    macro_strain: list[Any] | None
    macro_stress: list[Any] | None


def npy_query(request: Request) -> NpyQuery:
    """Parse the query of /predict_npy; unknown parameters are refused by name."""
    params = request.query_params
    unknown = sorted(set(params) - set(NPY_QUERY))
    if unknown:
        raise validation.RequestError(
            f"unknown query parameter(s) {', '.join(unknown)}; /predict_npy takes "
            + ", ".join(NPY_QUERY)
        )
    raw = params.get("applied_strain")
    loads = {
        name: [_number(v.strip(), name) for v in params[name].split(",")]
        for name in ("macro_strain", "macro_stress")
        if name in params
    }
    return NpyQuery(
        model=params.get("model"),
        applied_strain=None if raw is None else _number(raw, "applied_strain"),
        macro_strain=loads.get("macro_strain"),
        macro_stress=loads.get("macro_stress"),
    )


async def predict_npy(request: Request) -> Response:
    """.npy E maps or masks in, .npy float32 strain out (SPEC §8, §11)."""
    svc = _service()
    try:
        query = npy_query(request)
        served = svc.models.get(query.model)
        if served.periodic:
            load = periodic.request_load(query, served.name)
        else:
            periodic.refuse_load(query, served.name, svc.models.periodic_names())
            strain_value = validation.applied_strain(query.applied_strain)
        body = await request.body()  # bounded by BodySizeLimitMiddleware
        array = npy.read_npy(body, MAX_BATCH)
    except validation.RequestError as exc:
        return _error(exc)
    n = array.shape[0] if array.ndim >= 3 else 1
    if served.periodic:
        return await svc.offload(n, periodic_npy_answer, served, array, load)  # type: ignore[no-any-return]
    return await svc.offload(n, npy_answer, served, array, strain_value)  # type: ignore[no-any-return]


def _headers(served: ServedModel, warnings: list[str]) -> dict[str, str]:
    return {
        "X-Microstrain-Warnings": json.dumps(warnings),  # ASCII: json escapes the rest
        "X-Microstrain-Model": f"{served.name} {served.large.version}",
    }


def npy_answer(served: ServedModel, array: Any, strain_value: float) -> Response:
    """Validated array -> .npy strain response (or the JSON 422 naming the problem)."""
    try:
        e = validation.from_npy_array(array).youngs_modulus
    except validation.RequestError as exc:
        return _error(exc)
    warnings = out_of_distribution(e, served.card)
    strain, estimate = served.run_uniaxial(e, strain_value)  # [N, 3, 32, 32], [N]
    if estimate is not None:  # a symmetrized model: its high estimates are warned about
        warnings += validation.error_estimate_warnings(estimate)
    served.counter.add(e.shape[0])
    return Response(
        npy.write_npy(strain), headers=_headers(served, warnings), media_type=npy.MEDIA_TYPE
    )


def periodic_npy_answer(served: ServedModel, array: Any, load: periodic.Load | None) -> Response:
    """Validated array -> .npy strain of a periodic model: the unit cases ``[N, 3, 3, n, n]``
    or the load's ``[N, 3, n, n]``; C_eff ``[N, 3, 3]`` MPa in ``X-Microstrain-C-Eff``."""
    try:
        e = validation.from_npy_array(array, served.sizes).youngs_modulus
        answer = periodic.prediction_fields(served, e, load)
    except validation.RequestError as exc:
        return _error(exc)
    served.counter.add(e.shape[0])
    headers = _headers(served, answer["warnings"])
    headers["X-Microstrain-C-Eff"] = json.dumps(np.asarray(answer["C_eff"]).tolist())
    if "macro_strain" in answer:
        headers["X-Microstrain-Macro-Strain"] = json.dumps(answer["macro_strain"].tolist())
    strain = np.ascontiguousarray(answer["strain"], np.float32)
    return Response(npy.write_npy(strain), headers=headers, media_type=npy.MEDIA_TYPE)


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def swagger(request: Request) -> Response:
    return FileResponse(STATIC / "docs.html", media_type="text/html")


def _named_model(request: Request) -> ServedModel:
    unknown = sorted(set(request.query_params) - {"model"})
    if unknown:
        raise validation.RequestError(f"unknown query parameter(s) {', '.join(unknown)}")
    return _service().models.get(request.query_params.get("model"))  # type: ignore[no-any-return]


async def model_card(request: Request) -> Response:
    try:
        return JSONResponse(_named_model(request).card)
    except validation.RequestError as exc:
        return _error(exc)


async def models(request: Request) -> Response:
    return JSONResponse(_service().models.listing())


async def breakeven(request: Request) -> Response:
    try:
        return JSONResponse(_service().breakeven(_named_model(request)))
    except validation.RequestError as exc:
        return _error(exc)


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
            Route("/models", models, methods=["GET"]),
            Route("/breakeven", breakeven, methods=["GET"]),
            Route("/predict_npy", predict_npy, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
