"""The REST service (SPEC §8): one BentoML service class over the exported model (onnxruntime).

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
session with the worker's share of the cores, in chunks of :data:`CHUNK` samples
(onnxruntime's arena keeps the peak of the largest run: about 1 GB for 512 samples at once,
0.2 GB in chunks of 64, at the same speed). Each session runs one call at a time; a small
request does not wait for a large one.

Run with ``microstrain serve`` or ``bentoml serve serving.service:MicrostrainService``; the
environment variables are those of :mod:`serving.settings` and ``MICROSTRAIN_MODEL``,
``MICROSTRAIN_MAX_BODY_BYTES``, ``MICROSTRAIN_STATE_DIR``. Imports no torch and no dolfinx.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import bentoml
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, STRAIN_CHANNELS
from microstrain.domain import out_of_distribution
from microstrain.errors import MicrostrainError
from microstrain.surrogate import ERROR_ESTIMATE_WARNING, SurrogateModel, default_model_dir
from serving import images, routes, validation, verify
from serving.answers import JSON_MEDIA_TYPE, json_bytes, quantity_fields
from serving.auth import TokenMiddleware
from serving.fe_slots import Busy, SolveSlots
from serving.middleware import BodySizeLimitMiddleware, MediaTypeMiddleware
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
from serving.small_sessions import SmallSessions
from serving.state import PredictionCounter, breakeven_report, state_dir

T = TypeVar("T")
SMALL_BATCH = 4  # samples up to which a request runs inline, on the small-request session
CHUNK = 64  # samples per onnxruntime run of a large batch: bounds the activation memory


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
    quantities: bool = Field(
        False,
        strict=True,
        description="also answer the SPEC §9 quantities: stress, von_mises, E_x, nu_xy, "
        "max_von_mises (and fiber_fraction, voigt_bound, reuss_bound beside E_x)",
    )


class PredictAnswer(BaseModel):
    """What /predict answers (documentation of the JSON; the service writes it as bytes)."""

    strain: list[Any] = Field(description="[N, 3, 32, 32] eps_xx, eps_yy, gamma_xy")
    channels: list[str]
    applied_strain: float
    model: dict[str, str] = Field(description="name, version, sha256 of the model")
    warnings: list[str] = Field(description="inputs outside the training distribution")
    stress: list[Any] | None = Field(None, description="[N, 3, 32, 32] MPa, with quantities")
    von_mises: list[Any] | None = Field(None, description="[N, 32, 32] MPa, with quantities")
    E_x: list[float] | None = Field(None, description="[N] apparent modulus, MPa")
    nu_xy: list[float] | None = Field(None, description="[N] apparent Poisson's ratio")
    max_von_mises: list[float] | None = Field(None, description="[N] MPa")
    error_estimate: list[float] | None = Field(
        None,
        description="[N] relative error estimate (x-mirror disagreement in the energy norm); "
        "only for models that have it; a warning above "
        f"{ERROR_ESTIMATE_WARNING:.0%}",
    )


def json_response(answer: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(json_bytes(answer), status, headers or None, media_type=JSON_MEDIA_TYPE)


def error_response(exc: MicrostrainError, status: int | None = None) -> Response:
    """``{"error": message}`` with the exception's status (422 by default)."""
    code = status or int(getattr(exc, "status", 422))
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else {}
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
    """Strain fields of fiber/matrix composites from the exported surrogate (onnxruntime)."""

    def __init__(self) -> None:
        directory = default_model_dir()
        self.threads = intra_op_threads(configured_workers())
        self.model = SurrogateModel.load(directory, intra_op_threads=self.threads)
        small = {  # sessions of their own: a small request never waits for a large one
            threads: SurrogateModel.load(directory, intra_op_threads=threads)
            for threads in small_request_threads(configured_workers())
        }
        if any(m.sha256 != self.model.sha256 for m in small.values()):
            raise MicrostrainError(f"{directory} changed while it was being loaded")
        self.small = SmallSessions(small)  # two threads while the machine has the cores
        self.model_info = {
            "name": self.model.name,
            "version": self.model.version,
            "sha256": self.model.sha256,
        }
        self.mode, self.k, self.plane = verify.discretization(self.model.card)
        self.counter = PredictionCounter.for_model(self.model.sha256)
        self.counter.start()  # written once a second, not per request
        self.slots = SolveSlots.in_directory(
            state_dir() / "verify-slots", verify_concurrency(), verify_queue()
        )
        self.verify_timeout_s = verify_timeout_s()
        self._locks = {id(m): threading.Lock() for m in (self.model, *self.small.sessions.values())}
        self._limiter: anyio.CapacityLimiter | None = None  # threads for large requests
        # one warm-up run so the first client does not pay for ORT's lazy initialisation
        for model in (self.model, *self.small.sessions.values()):
            model.predict(np.full((1, 1, 32, 32), 3000.0, np.float32))

    @bentoml.on_shutdown
    def _write_count(self) -> None:
        self.counter.stop()

    def run_model(
        self, youngs_modulus: np.ndarray, applied_strain: float = DEFAULT_APPLIED_STRAIN
    ) -> np.ndarray:
        """Strain ``[N, 3, 32, 32]`` of E ``[N, 1, 32, 32]`` MPa at ū (module doc)."""
        return self.run_model_with_estimate(youngs_modulus, applied_strain, estimate=False)[0]

    def run_model_with_estimate(
        self, youngs_modulus: np.ndarray, applied_strain: float, estimate: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`run_model` and the model's error estimate ``[N]`` (None if it has none, or
        without ``estimate``). Up to SMALL_BATCH samples run on a small-request session (two
        threads while the machine has the cores, :mod:`serving.small_sessions`), more on the
        large one."""
        small = youngs_modulus.shape[0] <= SMALL_BATCH
        model = self.small.pick() if small else self.model
        with self._locks[id(model)]:
            if estimate:
                return model.predict_with_estimate(youngs_modulus, applied_strain, CHUNK)
            return model.predict(youngs_modulus, applied_strain, CHUNK), None

    async def offload(self, n: int, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` for a request of ``n`` samples: inline up to SMALL_BATCH samples
        (the small-request session's lock is held for milliseconds at most), else in one of two
        worker threads."""
        if n <= SMALL_BATCH:
            return work(*args)
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(2)
        return await anyio.to_thread.run_sync(work, *args, limiter=self._limiter)

    def answer(self, e: np.ndarray, strain_value: float, with_quantities: bool) -> dict[str, Any]:
        """The /predict answer for validated E ``[N, 1, 32, 32]`` (numpy values, not lists);
        with ``error_estimate`` ``[N]`` when the model has it (and a warning where it is high)."""
        warnings = out_of_distribution(e, self.model.card)
        strain, estimate = self.run_model_with_estimate(e, strain_value)  # [N, 3, 32, 32], [N]
        self.counter.add(e.shape[0])
        answer: dict[str, Any] = {
            "strain": strain,
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": strain_value,
            "model": self.model_info,
            "warnings": warnings,
        }
        if estimate is not None:
            answer["error_estimate"] = estimate
            warnings.extend(validation.error_estimate_warnings(estimate))
        if with_quantities:
            answer.update(quantity_fields(e, strain, self.plane, strain_value))
        return answer

    @bentoml.api(input_spec=PredictInput)
    async def predict(
        self,
        E: list[Any] | None = None,
        fiber_mask: list[Any] | None = None,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        quantities: bool = False,
    ) -> PredictAnswer:
        """Strain [N, 3, 32, 32] (eps_xx, eps_yy, gamma_xy) for E maps or fiber masks; with
        ``"quantities": true`` also stress, von Mises, E_x, nu_xy and the peak von Mises."""
        n = validation.batch_size(E if E is not None else fiber_mask)
        answer = await self.offload(n, self.predict_json, E, fiber_mask, applied_strain, quantities)
        return answer  # type: ignore[return-value]

    def predict_json(
        self, E: Any, fiber_mask: Any, applied_strain: float, quantities: bool
    ) -> Response:
        """The /predict answer (validation errors included) as a response."""
        try:
            inputs = validation.microstructures(E, fiber_mask)
            strain_value = validation.applied_strain(applied_strain)
        except validation.RequestError as exc:
            return error_response(exc)
        return json_response(self.answer(inputs.youngs_modulus, strain_value, quantities))

    @bentoml.api
    def predict_image(
        self,
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
            return error_response(exc)  # type: ignore[return-value]
        answer = self.answer(e, strain_value, with_quantities=False)
        if picture:
            png = images.strain_png(answer["strain"][0])
            return Response(png, media_type="image/png")  # type: ignore[return-value]
        return json_response(answer)  # type: ignore[return-value]

    @bentoml.api(input_spec=PredictInput)
    async def verify(
        self,
        E: list[Any] | None = None,
        fiber_mask: list[Any] | None = None,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        quantities: bool = False,
    ) -> dict[str, Any]:
        """Surrogate vs FE solve of the same input (≤ 8 samples): the SPEC §9 error measures,
        relative L2 errors, both fields and timings. 429/503 with Retry-After when the solver
        is busy; with ``"quantities": true`` the §9 quantities of both fields."""
        if not verify.fe_solver_available():
            return error_response(verify.SolverUnavailable(), 501)  # type: ignore[return-value]
        try:
            inputs = validation.microstructures(E, fiber_mask)
            strain_value = validation.applied_strain(applied_strain)
            if inputs.youngs_modulus.shape[0] > verify.MAX_VERIFY_BATCH:
                raise validation.RequestError(
                    f"verify solves at most {verify.MAX_VERIFY_BATCH} microstructures per request"
                )
        except validation.RequestError as exc:
            return error_response(exc)  # type: ignore[return-value]
        e = inputs.youngs_modulus
        start = time.perf_counter()
        # [N, 3, 32, 32] at ū = 0.1, like the solver
        surrogate = await self.offload(e.shape[0], self.run_model, e)
        surrogate_seconds = time.perf_counter() - start
        try:
            async with self.slots.slot(wait_s=self.verify_timeout_s):
                reference, fe_seconds = await verify.fe_solve(
                    e, self.mode, self.k, self.plane, timeout_s=self.verify_timeout_s
                )
        except Busy as exc:
            return error_response(exc)  # type: ignore[return-value]
        except verify.SolverUnavailable as exc:
            return error_response(exc, 501)  # type: ignore[return-value]
        except verify.SolveTimeout as exc:
            return error_response(exc, 504)  # type: ignore[return-value]
        except MicrostrainError as exc:  # the solver broke on valid input: not the client's fault
            return error_response(exc, 503)  # type: ignore[return-value]
        self.slots.record(fe_seconds)
        scale = np.float32(strain_value / DEFAULT_APPLIED_STRAIN)
        prediction, fe = surrogate * scale, reference * scale
        answer: dict[str, Any] = {
            **verify.comparison(surrogate, reference),
            "measures": verify.measures(e, surrogate, reference, self.plane),
            "surrogate_seconds": surrogate_seconds,
            "fe_seconds": fe_seconds,
            "fe_discretization": {"mode": self.mode, "k": self.k, "plane": self.plane},
            "speedup": fe_seconds / max(surrogate_seconds, 1e-9),
            "strain": prediction,
            "strain_fe": fe,
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": strain_value,
            "model": self.model_info,
        }
        if quantities:
            answer["quantities"] = quantity_fields(e, prediction, self.plane, strain_value)
            answer["quantities_fe"] = quantity_fields(e, fe, self.plane, strain_value)
        return json_response(answer)  # type: ignore[return-value]

    def breakeven(self) -> dict[str, Any]:
        """Predictions served against τ (SPEC §6), as ``GET /breakeven`` answers."""
        state = self.counter.read()
        report = breakeven_report(int(state.get("predictions", 0)), self.model.card)
        report.update(first_served=state.get("first_served"), state_file=str(self.counter.path))
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
