"""The REST service (SPEC §8): one BentoML service class over an onnxruntime session.

Endpoints: ``POST /predict`` (JSON E maps or fiber masks), ``POST /predict_image`` (PNG mask in,
JSON or PNG picture out), ``POST /verify`` (surrogate vs FE solver, 501 without one),
``GET /model`` (the card), ``GET /breakeven`` (predictions served against τ); BentoML adds
``/livez``, ``/readyz``, ``/metrics`` and the OpenAPI document ``/docs.json``.

Run with ``microstrain serve`` or ``bentoml serve serving.service:MicrostrainService``.
Environment: ``MICROSTRAIN_MODEL`` (model directory, default ``models/default``),
``MICROSTRAIN_WORKERS`` (worker processes, default 1), ``MICROSTRAIN_MAX_BODY_BYTES`` (413 above,
default 8 MiB), ``MICROSTRAIN_STATE_DIR`` (breakeven counter). Imports no torch and no dolfinx.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, STRAIN_CHANNELS
from microstrain.domain import out_of_distribution
from microstrain.errors import MicrostrainError
from microstrain.surrogate import SurrogateModel, default_model_dir
from serving import images, validation, verify
from serving.middleware import BodySizeLimitMiddleware, MediaTypeMiddleware
from serving.settings import configured_workers, intra_op_threads
from serving.state import PredictionCounter, breakeven_report


class PredictInput(BaseModel):
    """JSON body of /predict and /verify. Unknown fields are refused (a typo must not be ignored).

    The arrays stay plain nested lists here: their shape, numbers and value set are checked by
    :mod:`serving.validation` with messages that name the problem.
    """

    model_config = ConfigDict(extra="forbid")

    E: list[Any] | None = Field(
        None,
        description="Young's modulus in MPa (3000 matrix, 85000 fiber), [32,32], [N,32,32] or "
        "[N,1,32,32]; row 0 is the top of the specimen",
    )
    fiber_mask: list[Any] | None = Field(
        None, description="instead of E: 1 = fiber, 0 = matrix, same shapes"
    )
    applied_strain: float = Field(
        DEFAULT_APPLIED_STRAIN,
        strict=True,
        description="prescribed displacement ū on x = 1 (= mean eps_xx); 0 < |ū| ≤ 1",
    )


def _error(ctx: bentoml.Context, exc: MicrostrainError, status: int | None = None) -> dict:
    ctx.response.status_code = status or int(getattr(exc, "status", 422))
    return {"error": str(exc)}


@bentoml.service(
    name="microstrain",
    workers=configured_workers(),
    traffic={"timeout": verify.SOLVE_TIMEOUT_S + 30},
    # sync endpoints run one at a time per worker: onnxruntime already uses the worker's cores
    threads=1,
)
class MicrostrainService:
    """Strain fields of fiber/matrix composites from the exported surrogate (onnxruntime)."""

    def __init__(self) -> None:
        directory = default_model_dir()
        self.threads = intra_op_threads(configured_workers())
        self.model = SurrogateModel.load(directory, intra_op_threads=self.threads)
        self.model_info = {
            "name": self.model.name,
            "version": self.model.version,
            "sha256": self.model.sha256,
        }
        self.counter = PredictionCounter.for_model(self.model.sha256)
        # one warm-up run so the first client does not pay for ORT's lazy initialisation
        self.model.predict(np.full((1, 1, 32, 32), 3000.0, np.float32))

    def _answer(self, e: np.ndarray, strain_value: float, warnings: list[str]) -> dict[str, Any]:
        strain = self.model.predict(e, strain_value)  # [N, 3, 32, 32]
        self.counter.add(e.shape[0])
        return {
            "strain": strain.tolist(),
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": strain_value,
            "model": self.model_info,
            "warnings": warnings,
        }

    @bentoml.api(input_spec=PredictInput)
    def predict(
        self,
        ctx: bentoml.Context,
        E: list[Any] | None = None,
        fiber_mask: list[Any] | None = None,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
    ) -> dict[str, Any]:
        """Strain [N, 3, 32, 32] (eps_xx, eps_yy, gamma_xy) for E maps or fiber masks."""
        try:
            inputs = validation.microstructures(E, fiber_mask)
            strain_value = validation.applied_strain(applied_strain)
        except validation.RequestError as exc:
            return _error(ctx, exc)
        warnings = out_of_distribution(inputs.youngs_modulus, self.model.card)
        return self._answer(inputs.youngs_modulus, strain_value, warnings)

    @bentoml.api
    def predict_image(
        self,
        ctx: bentoml.Context,
        image: Annotated[Path, Field(description="32x32 grayscale PNG; gray >= 128 is fiber")],
        picture: Annotated[
            bool, Field(description="answer with a PNG of the strain channels")
        ] = False,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
    ) -> dict[str, Any]:
        """Fiber mask as a PNG upload (multipart field 'image'); JSON or, with picture=true, PNG."""
        try:
            if image.stat().st_size > images.MAX_PNG_BYTES:
                raise validation.RequestError("image is larger than a 32x32 PNG can be", 413)
            e = images.mask_from_png(image.read_bytes())
            strain_value = validation.applied_strain(applied_strain)
        except validation.RequestError as exc:
            return _error(ctx, exc)
        answer = self._answer(e, strain_value, out_of_distribution(e, self.model.card))
        if picture:
            png = images.strain_png(np.asarray(answer["strain"], np.float32)[0])
            return Response(png, media_type="image/png")  # type: ignore[return-value]
        return answer

    @bentoml.api(input_spec=PredictInput)
    async def verify(
        self,
        ctx: bentoml.Context,
        E: list[Any] | None = None,
        fiber_mask: list[Any] | None = None,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
    ) -> dict[str, Any]:
        """Surrogate vs FE solve of the same input (≤ 8 samples): relative L2 error and timings."""
        if not verify.fe_solver_available():
            return _error(ctx, verify.SolverUnavailable(), 501)
        try:
            inputs = validation.microstructures(E, fiber_mask)
            strain_value = validation.applied_strain(applied_strain)
            if inputs.youngs_modulus.shape[0] > verify.MAX_VERIFY_BATCH:
                raise validation.RequestError(
                    f"verify solves at most {verify.MAX_VERIFY_BATCH} microstructures per request"
                )
        except validation.RequestError as exc:
            return _error(ctx, exc)
        e = inputs.youngs_modulus
        start = time.perf_counter()
        surrogate = self.model.predict(e)  # [N, 3, 32, 32] at ū = 0.1, like the solver
        surrogate_seconds = time.perf_counter() - start
        mode, k, plane = verify.discretization(self.model.card)
        try:
            reference, fe_seconds = await verify.fe_solve(e, mode, k, plane)
        except verify.SolverUnavailable as exc:
            return _error(ctx, exc, 501)
        except MicrostrainError as exc:  # the solver broke on valid input: not the client's fault
            return _error(ctx, exc, 503)
        scale = strain_value / DEFAULT_APPLIED_STRAIN
        return {
            **verify.comparison(surrogate, reference),
            "surrogate_seconds": surrogate_seconds,
            "fe_seconds": fe_seconds,
            "fe_discretization": {"mode": mode, "k": k, "plane": plane},
            "speedup": fe_seconds / max(surrogate_seconds, 1e-9),
            "strain": (surrogate * scale).tolist(),
            "strain_fe": (reference * scale).tolist(),
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": strain_value,
            "model": self.model_info,
        }


def _service_instance() -> MicrostrainService:
    return bentoml.get_current_service()  # type: ignore[no-any-return]


async def _model_card(request: Request) -> Response:
    return JSONResponse(_service_instance().model.card)


async def _breakeven(request: Request) -> Response:
    svc = _service_instance()
    state = svc.counter.read()
    report = breakeven_report(int(state.get("predictions", 0)), svc.model.card)
    report.update(first_served=state.get("first_served"), state_file=str(svc.counter.path))
    return JSONResponse(report)


# GET routes beside BentoML's POST APIs (BentoML 1.4 APIs are POST only)
_get_routes = Starlette(
    routes=[
        Route("/model", _model_card, methods=["GET"]),
        Route("/breakeven", _breakeven, methods=["GET"]),
    ]
)
# mypy sees the decorated class, not the bentoml.Service it became
MicrostrainService.mount_asgi_app(_get_routes, path="/")  # type: ignore[attr-defined]
MicrostrainService.add_asgi_middleware(BodySizeLimitMiddleware)  # type: ignore[attr-defined]
MicrostrainService.add_asgi_middleware(  # type: ignore[attr-defined]
    MediaTypeMiddleware,
    routes={
        "/predict": "application/json",
        "/verify": "application/json",
        "/predict_image": "multipart/form-data",
    },
)
