"""The REST service (SPEC §8, §11): one BentoML service class over every served model.

The service serves several exported models (:mod:`serving.registry`: every model under
``models/`` or those ``microstrain serve --model`` names); a request names one with ``"model"``
(JSON, multipart) or ``?model=`` (``/predict_npy``), the default model when absent, and
``GET /models`` lists them. A periodic model (SPEC §11) answers its effective stiffness and unit
cases, or a macro load's fields (:mod:`serving.periodic`).

BentoML APIs: ``POST /predict`` (JSON E maps or fiber masks, optionally with the SPEC §9
quantities), ``POST /predict_image`` (PNG mask in, JSON or PNG picture out), ``POST /verify``
(surrogate vs FE solver, bounded, 501 without one). Beside them (:mod:`serving.routes`):
``POST /predict_npy`` (.npy in, .npy out), ``GET /`` (the web page), ``GET /docs``,
``GET /model`` (the card), ``GET /breakeven`` and the OpenAPI document ``/docs.json``; BentoML
adds ``/livez``, ``/readyz``, ``/healthz`` and ``/metrics``.

Every answer is built here as bytes (:mod:`serving.answers`): BentoML's own encoder is pure
Python and would cost more than the model. A request of up to :data:`SMALL_BATCH` samples is
answered in the event loop (:meth:`MicrostrainService.offload`): it takes 1–2 ms, and each hop
to a worker thread and back waits for a time slice when the cores are busy, which cost more
than the work itself on the 2-core machine; larger requests run in a thread so that the loop
keeps serving. Model calls (:meth:`MicrostrainService.run_model`): up to :data:`SMALL_BATCH`
samples run on a two-thread onnxruntime session while other processes leave the cores idle, on
a one-thread one while they keep them busy and a second thread would wait and spin
(:mod:`serving.small_sessions`; ``MICROSTRAIN_SMALL_THREADS`` fixes the count), larger batches on a
session with the worker's share of the cores, in chunks of :data:`serving.registry.CHUNK` samples
(onnxruntime's arena keeps the peak of the largest run: about 1 GB for 512 samples at once,
0.2 GB in chunks of 64, at the same speed). Each session runs one call at a time; a small
request does not wait for a large one. Each served model has sessions of its own.

Run with ``microstrain serve`` or ``bentoml serve serving.service:MicrostrainService``; the
environment variables are those of :mod:`serving.settings`, ``MICROSTRAIN_MODELS`` /
``MICROSTRAIN_MODEL`` (:mod:`serving.registry`),
``MICROSTRAIN_MAX_BODY_BYTES``, ``MICROSTRAIN_STATE_DIR``. Imports no torch and no dolfinx.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import bentoml
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, PERIODIC_CASES, STRAIN_CHANNELS
from microstrain.domain import out_of_distribution
from microstrain.errors import MicrostrainError
from microstrain.surrogate import ERROR_ESTIMATE_WARNING, SurrogateModel
from serving import images, periodic, routes, validation, verify
from serving.answers import JSON_MEDIA_TYPE, json_bytes, quantity_fields
from serving.auth import TokenMiddleware
from serving.fe_slots import Busy, SolveSlots
from serving.middleware import (
    BodySizeLimitMiddleware,
    MediaTypeMiddleware,
    ReadableValidationMiddleware,
)
from serving.registry import SMALL_BATCH, ServedModel, load_models, model_directories
from serving.settings import (
    configured_workers,
    intra_op_threads,
    logging_config,
    request_timeout_s,
    small_request_threads,
    tracing_config,
    verify_concurrency,
    verify_queue,
    verify_timeout_s,
)
from serving.state import breakeven_report, state_dir

T = TypeVar("T")
logger = logging.getLogger("microstrain.serving")


def load_schema(example: list[float]) -> dict[str, Any]:
    """OpenAPI of a periodic load: three numbers (the field is typed Any so that a malformed
    load gets the message of :mod:`serving.periodic`, not pydantic's)."""
    return {
        "type": "array",
        "items": {"type": "number"},
        "minItems": 3,
        "maxItems": 3,
        "example": example,
    }


class PredictInput(BaseModel):
    """JSON body of /predict and /verify. Unknown fields are refused (a typo must not be ignored).

    The arrays stay plain nested lists here: their shape, numbers and value set are checked by
    :mod:`serving.validation` with messages that name the problem.
    """

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None,
        description="name of a served model (GET /models lists them); the default model when "
        "absent",
    )
    E: list[Any] | None = Field(
        None,
        description="Young's modulus in MPa (3000 matrix, 85000 fiber), [n,n], [N,n,n] or "
        "[N,1,n,n] with n = 32 (a periodic model: the sizes GET /models lists); row 0 is the top",
    )
    fiber_mask: list[Any] | None = Field(
        None, description="instead of E: 1 = fiber, 0 = matrix, same shapes"
    )
    applied_strain: float | None = Field(
        None,
        strict=True,
        description="uniaxial models: prescribed displacement ū on x = 1 (= mean eps_xx); "
        f"0 < |ū| ≤ 1, default {DEFAULT_APPLIED_STRAIN}",
    )
    macro_strain: Any = Field(
        None,
        json_schema_extra=load_schema([0.01, 0, 0]),
        description="periodic models: the macro strain [eps_xx, eps_yy, gamma_xy] (engineering "
        "shear) whose fields to answer",
    )
    macro_stress: Any = Field(
        None,
        json_schema_extra=load_schema([0, 0, 50]),
        description="periodic models: instead of macro_strain, the macro stress [sigma_xx, "
        "sigma_yy, tau_xy] in MPa (the macro strain is C_eff^-1 of it)",
    )
    plane: str | None = Field(
        None,
        description="optional check: 'stress' or 'strain', which must be the model's plane "
        "(GET /models)",
    )
    quantities: bool = Field(
        False,
        strict=True,
        description="also answer the SPEC §9 quantities: stress, von_mises, E_x, nu_xy, "
        "max_von_mises (and fiber_fraction, voigt_bound, reuss_bound beside E_x); for a "
        "periodic model with a load, that load's stress and von Mises",
    )


class PredictAnswer(BaseModel):
    """What /predict answers (documentation of the JSON; the service writes it as bytes)."""

    strain: list[Any] = Field(
        description="uniaxial: [N, 3, 32, 32] eps_xx, eps_yy, gamma_xy; periodic: the three unit "
        "cases [N, 3, 3, n, n] (case xx, yy, xy; component), or with a load its [N, 3, n, n]"
    )
    channels: list[str]
    applied_strain: float
    model: dict[str, str] = Field(description="name, version, sha256 of the model")
    warnings: list[str] = Field(description="inputs outside the training distribution")
    stress: list[Any] | None = Field(None, description="[N, 3, n, n] MPa, with quantities")
    von_mises: list[Any] | None = Field(None, description="[N, n, n] MPa, with quantities")
    E_x: list[float] | None = Field(None, description="[N] apparent modulus, MPa (uniaxial)")
    nu_xy: list[float] | None = Field(None, description="[N] apparent Poisson's ratio (uniaxial)")
    max_von_mises: list[float] | None = Field(None, description="[N] MPa")
    error_estimate: list[float] | None = Field(
        None,
        description="[N] relative error estimate (the model's symmetry disagreement in the "
        "energy norm); only for models that have it; a warning above "
        f"{ERROR_ESTIMATE_WARNING:.0%}",
    )
    cases: list[str] | None = Field(None, description="periodic: the unit cases xx, yy, xy")
    C_eff: list[Any] | None = Field(
        None, description="periodic: [N, 3, 3] effective stiffness, MPa (Voigt, engineering shear)"
    )
    engineering_constants: dict[str, Any] | None = Field(
        None,
        description="periodic: E_1, E_2 (MPa), nu_12, G_12 (MPa), each [N], from C_eff^-1, "
        "with their Voigt and Reuss bounds",
    )
    macro_strain: list[Any] | None = Field(
        None, description="periodic with a load: the load's macro strain [N, 3]"
    )
    macro_stress: list[Any] | None = Field(
        None, description="periodic with a load: the load's macro stress [N, 3], MPa"
    )


def json_response(answer: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(json_bytes(answer), status, headers or None, media_type=JSON_MEDIA_TYPE)


def error_response(exc: MicrostrainError, status: int | None = None) -> Response:
    """``{"error": message}`` with the exception's status (422 by default)."""
    code = status or int(getattr(exc, "status", 422))
    retry_after = getattr(exc, "retry_after", None)  # Busy, WorkerDied
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return json_response({"error": str(exc)}, code, **headers)


@bentoml.service(
    name="microstrain",
    workers=configured_workers(),
    traffic={"timeout": request_timeout_s()},
    tracing=tracing_config(),  # no per-request spans unless MICROSTRAIN_TRACING=1
    logging=logging_config(),  # no line per request unless MICROSTRAIN_ACCESS_LOG=1
    # two sync calls at once: a one-sample request need not queue behind a 512-sample one
    # (the model sessions serialize their own calls, see run_model)
    threads=2,
)
class MicrostrainService:
    """Strain fields of fiber/matrix composites from exported surrogates (onnxruntime)."""

    def __init__(self) -> None:
        self.threads = intra_op_threads(configured_workers())
        self.models = load_models(
            model_directories(), self.threads, small_request_threads(configured_workers())
        )
        for line in self.models.refused:  # the others are served; the CLI printed these too
            logger.warning(line)
        for served in self.models:
            served.counter.start()  # written once a second, not per request
        self.slots = SolveSlots.in_directory(
            state_dir() / "verify-slots", verify_concurrency(), verify_queue()
        )
        self.verify_timeout_s = verify_timeout_s()
        # long-lived FE workers for /verify, started now so that the first check finds one
        # ready; they build every served model's solver before their first request
        self.fe = verify.FEChecks(
            self.slots,
            verify_concurrency(),
            self.verify_timeout_s,
            warm=[verify.solver_config(served.card) for served in self.models],
        )
        self._limiter: anyio.CapacityLimiter | None = None  # threads for large requests
        for served in self.models:
            served.warm_up()

    @bentoml.on_shutdown
    def _write_count(self) -> None:
        for served in self.models:
            served.counter.stop()
        self.fe.close()

    @property
    def model(self) -> SurrogateModel:
        """The default model's large session (its card is what ``GET /model`` answers)."""
        return self.models.default.large

    def run_model(
        self,
        youngs_modulus: np.ndarray,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        served: ServedModel | None = None,
    ) -> np.ndarray:
        """Strain ``[N, 3, 32, 32]`` of E ``[N, 1, 32, 32]`` MPa at ū (module doc)."""
        served = served or self.models.default
        return served.run_uniaxial(youngs_modulus, applied_strain, estimate=False)[0]

    async def offload(self, n: int, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` for a request of ``n`` samples: inline up to SMALL_BATCH samples
        (the small-request session's lock is held for milliseconds at most), else in one of two
        worker threads."""
        if n <= SMALL_BATCH:
            return work(*args)
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(2)
        return await anyio.to_thread.run_sync(work, *args, limiter=self._limiter)

    def answer(
        self, served: ServedModel, e: np.ndarray, strain_value: float, with_quantities: bool
    ) -> dict[str, Any]:
        """The uniaxial /predict answer for validated E ``[N, 1, 32, 32]`` (numpy values, not
        lists); with ``error_estimate`` ``[N]`` when the model has it (and a warning where it
        is high)."""
        warnings = out_of_distribution(e, served.card)
        # [N, 3, 32, 32], [N]
        strain, estimate = served.run_uniaxial(e, strain_value)
        served.counter.add(e.shape[0])
        answer: dict[str, Any] = {
            "strain": strain,
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": strain_value,
            "model": served.info,
            "warnings": warnings,
        }
        if estimate is not None:
            answer["error_estimate"] = estimate
            warnings.extend(validation.error_estimate_warnings(estimate))
        if with_quantities:
            answer.update(quantity_fields(e, strain, served.plane, strain_value))
        return answer

    @bentoml.api(input_spec=PredictInput)
    async def predict(
        self,
        model: str | None = None,
        E: list[Any] | None = None,
        fiber_mask: list[Any] | None = None,
        applied_strain: float | None = None,
        macro_strain: Any = None,
        macro_stress: Any = None,
        plane: str | None = None,
        quantities: bool = False,
    ) -> PredictAnswer:
        """Uniaxial models: strain [N, 3, 32, 32] (eps_xx, eps_yy, gamma_xy) for E maps or fiber
        masks; with ``"quantities": true`` also stress, von Mises, E_x, nu_xy and the peak von
        Mises. Periodic models: C_eff and the three unit cases, or a load's fields."""
        request = PredictInput.model_construct(
            model=model,
            E=E,
            fiber_mask=fiber_mask,
            applied_strain=applied_strain,
            macro_strain=macro_strain,
            macro_stress=macro_stress,
            plane=plane,
            quantities=quantities,
        )
        n = validation.batch_size(E if E is not None else fiber_mask)
        answer = await self.offload(n, self.predict_json, request)
        return answer  # type: ignore[return-value]

    def predict_json(self, request: PredictInput) -> Response:
        """The /predict answer (validation errors included) as a response."""
        try:
            served = self.models.get(request.model)
            validation.check_plane(request.plane, served.name, served.plane)
            if served.periodic:
                load = periodic.request_load(request, served.name)
                e = validation.microstructures(request.E, request.fiber_mask, served.sizes)
                return json_response(
                    periodic.answer(served, e.youngs_modulus, load, request.quantities)
                )
            periodic.refuse_load(request, served.name, self.models.periodic_names())
            inputs = validation.microstructures(request.E, request.fiber_mask)
            strain_value = validation.applied_strain(request.applied_strain)
        except validation.RequestError as exc:
            return error_response(exc)
        return json_response(
            self.answer(served, inputs.youngs_modulus, strain_value, request.quantities)
        )

    @bentoml.api
    def predict_image(
        self,
        image: Annotated[Path, Field(description="32x32 grayscale PNG; gray >= 128 is fiber")],
        picture: Annotated[
            bool, Field(description="answer with a PNG of the strain channels")
        ] = False,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        model: Annotated[
            str | None, Field(description="a served uniaxial model; the default when absent")
        ] = None,
    ) -> dict[str, Any]:
        """Fiber mask as a PNG upload (multipart field 'image'); JSON or, with picture=true, PNG
        (titled panels of E, strain, stress and von Mises with colour bars and units)."""
        try:
            served = self.models.get(model)
            if served.periodic:
                raise validation.RequestError(
                    f"model {served.name!r} is periodic; /predict_image answers uniaxial models "
                    "(POST /predict with 'macro_strain' or 'macro_stress' for a periodic one)"
                )
            if image.stat().st_size > images.MAX_PNG_BYTES:
                raise validation.RequestError("image is larger than a 32x32 PNG can be", 413)
            e = images.mask_from_png(image.read_bytes())
            strain_value = validation.applied_strain(applied_strain)
        except validation.RequestError as exc:
            return error_response(exc)  # type: ignore[return-value]
        answer = self.answer(served, e, strain_value, with_quantities=False)
        if picture:
            png = images.prediction_png(
                e, answer["strain"], served.plane, strain_value, served.name
            )
            return Response(png, media_type="image/png")  # type: ignore[return-value]
        return json_response(answer)  # type: ignore[return-value]

    @bentoml.api(input_spec=PredictInput)
    async def verify(
        self,
        model: str | None = None,
        E: list[Any] | None = None,
        fiber_mask: list[Any] | None = None,
        applied_strain: float | None = None,
        macro_strain: Any = None,
        macro_stress: Any = None,
        plane: str | None = None,
        quantities: bool = False,
    ) -> dict[str, Any]:
        """Surrogate vs FE solve of the same input (≤ 8 samples): the SPEC §9 error measures,
        relative L2 errors, both fields and timings. 429/503 with Retry-After when the solver
        is busy; with ``"quantities": true`` the §9 quantities of both fields."""
        if not verify.fe_solver_available():
            return error_response(verify.SolverUnavailable(), 501)  # type: ignore[return-value]
        try:
            served = self.models.get(model)
            validation.check_plane(plane, served.name, served.plane)
            inputs = validation.microstructures(E, fiber_mask, served.sizes)
            strain_value = validation.applied_strain(applied_strain)
            if inputs.youngs_modulus.shape[0] > verify.MAX_VERIFY_BATCH:
                raise validation.RequestError(
                    f"verify solves at most {verify.MAX_VERIFY_BATCH} microstructures per request"
                )
        except validation.RequestError as exc:
            return error_response(exc)  # type: ignore[return-value]
        e = inputs.youngs_modulus
        config = verify.solver_config(served.card, grid=e.shape[-1])
        start = time.perf_counter()
        # at ū = 0.1, like the solver: [N, 3, n, n]; periodic the unit cases [N, 3, 3, n, n]
        if served.periodic:
            cases = await self.offload(e.shape[0], served.run_periodic, e)
            surrogate, surrogate_c_eff = cases.strain, cases.c_eff
        else:
            surrogate = await self.offload(
                e.shape[0], self.run_model, e, DEFAULT_APPLIED_STRAIN, served
            )
        surrogate_seconds = time.perf_counter() - start
        try:
            reference, fe_times = await self.fe.solve(e, config)
        except verify.SolverUnavailable as exc:
            return error_response(exc, 501)  # type: ignore[return-value]
        except verify.SolveTimeout as exc:
            return error_response(exc, 504)  # type: ignore[return-value]
        except verify.WorkerDied as exc:  # killed or crashed; a replacement is starting
            return error_response(exc, 503)  # type: ignore[return-value]
        except Busy as exc:
            return error_response(exc)  # type: ignore[return-value]
        except MicrostrainError as exc:  # the solver broke on valid input: not the client's fault
            return error_response(exc, 503)  # type: ignore[return-value]
        timings = {
            "surrogate_seconds": surrogate_seconds,
            # the solver's own time; what else the check took (waiting for a free solve or a
            # starting worker, a new solver's set-up, transfers) is the overhead
            "fe_seconds": fe_times["solve"],
            "fe_overhead_seconds": fe_times["overhead"] + fe_times["setup"],
            "fe_discretization": {"mode": served.fe_mode, "k": served.k, "plane": served.plane},
            "speedup": fe_times["solve"] / max(surrogate_seconds, 1e-9),
            "model": served.info,
        }
        if served.periodic:
            measures = verify.periodic_measures(
                e, surrogate, reference, served.plane, surrogate_c_eff
            )
            return json_response(  # type: ignore[return-value]
                {
                    "measures": measures,
                    **verify.periodic_comparison(surrogate, reference),
                    **timings,
                    # both stiffnesses and their constants: the page draws FE's beside the model's
                    **periodic.stiffness_pair(e, surrogate_c_eff, reference, served.plane),
                    "strain": surrogate,
                    "strain_fe": reference,
                    "cases": list(PERIODIC_CASES),
                    "channels": list(STRAIN_CHANNELS),
                    "applied_strain": DEFAULT_APPLIED_STRAIN,
                }
            )
        scale = np.float32(strain_value / DEFAULT_APPLIED_STRAIN)
        prediction, fe = surrogate * scale, reference * scale
        answer: dict[str, Any] = {
            **verify.comparison(surrogate, reference),
            "measures": verify.measures(e, surrogate, reference, served.plane),
            **timings,
            "strain": prediction,
            "strain_fe": fe,
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": strain_value,
        }
        if quantities:
            answer["quantities"] = quantity_fields(e, prediction, served.plane, strain_value)
            answer["quantities_fe"] = quantity_fields(e, fe, served.plane, strain_value)
        return json_response(answer)  # type: ignore[return-value]

    def breakeven(self, served: ServedModel | None = None) -> dict[str, Any]:
        """Predictions served against τ (SPEC §6), as ``GET /breakeven`` answers."""
        served = served or self.models.default
        state = served.counter.read()
        report = breakeven_report(int(state.get("predictions", 0)), served.card)
        report.update(
            model=served.name,
            first_served=state.get("first_served"),
            state_file=str(served.counter.path),
        )
        return report


# GET routes and the binary path beside BentoML's POST APIs (BentoML 1.4 APIs are POST only)
# mypy sees the decorated class, not the bentoml.Service it became
MicrostrainService.mount_asgi_app(routes.app(MicrostrainService), path="/")  # type: ignore[attr-defined]
# outermost first: a request without the token is refused before its body is read
MicrostrainService.add_asgi_middleware(TokenMiddleware)  # type: ignore[attr-defined]
MicrostrainService.add_asgi_middleware(BodySizeLimitMiddleware)  # type: ignore[attr-defined]
MicrostrainService.add_asgi_middleware(  # type: ignore[attr-defined]
    MediaTypeMiddleware,
    routes={
        "/predict": "application/json",
        "/verify": "application/json",
        "/predict_image": "multipart/form-data",
    },
)
# innermost: BentoML's own 400 for a body its pydantic model refuses, in words
MicrostrainService.add_asgi_middleware(ReadableValidationMiddleware)  # type: ignore[attr-defined]
