"""An exported model (SPEC §5) run with onnxruntime: what `predict`, `tau` and serving share.

``models/<name>/`` holds ``model.onnx`` (input ``E`` raw MPa ``[batch, 1, 32, 32]``, output
``strain`` ``[batch, 3, 32, 32]`` for ū = 0.1; a symmetrized model also ``error_estimate``
``[batch]``) and ``card.json``. A periodic model (SPEC §11, the card's
``training_data.load_case.name`` is ``"periodic"``) takes ``E`` ``[batch, 1, n, n]`` for each n
of the card's ``input_sizes`` and returns ``strain`` ``[batch, 3, 3, n, n]`` (the unit cases
xx, yy, xy for ū = 0.1), ``C_eff`` ``[batch, 3, 3]`` MPa and ``error_estimate`` ``[batch]``
(:meth:`SurrogateModel.predict_periodic`). No torch, no dolfinx.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import (
    CARD_FILE,
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_MODEL_NAME,
    DEFAULT_PLANE,
    GRID,
    LOAD_CASE,
    MODEL_ENV_VAR,
    MODEL_FILE,
    MODELS_DIR,
    ONNX_C_EFF,
    ONNX_ERROR_ESTIMATE,
    ONNX_INPUT,
    ONNX_OUTPUT,
    PERIODIC_LOAD_CASE,
)
from microstrain.errors import InputError, MicrostrainError
from microstrain.files import sha256_of

# A prediction whose error estimate (predict_with_estimate) exceeds this is flagged by `predict`
# and REST: its energy-norm error is likely above the 5 % per-family target of issue 12. The
# estimate ranks the true errors well but overstates them, so the threshold sits a little above
# that target. It is a fixed, documented number rather than one fitted per model: how many
# samples it flags and how many of those are truly above 5 % depends on the model, and
# benchmarks/bench_error_estimate.py measures both (the shipped models' figures are in
# docs/history.md, "The error estimate's warning threshold"); rerun it when the model changes.
ERROR_ESTIMATE_WARNING = 0.06
# An estimate sees disagreement, not bias: when the card's held-out median of estimate / true
# energy-norm error lies below this, the model's estimates understate its errors (a short
# training leaves a bias that every orientation shares) and every consumer says so
# (:attr:`SurrogateModel.estimate_caveat`). Half: a factor two of optimism is what a user cannot
# read off a single estimate.
ESTIMATE_UNDERSTATES = 0.5


@dataclass(frozen=True)
class PeriodicPrediction:
    """What a periodic model (SPEC §11) returns for ``N`` microstructures of ``n × n`` pixels."""

    strain: np.ndarray  # float32 [N, 3, 3, n, n]: case (xx, yy, xy), component, row, column
    c_eff: np.ndarray  # float32 [N, 3, 3] MPa, Voigt order with engineering shear
    error_estimate: np.ndarray | None  # float32 [N], None for a graph without the output


def repository_root() -> Path:
    return Path(__file__).resolve().parent.parent


def default_model_dir() -> Path:
    """``$MICROSTRAIN_MODEL`` if set, else ``models/default`` of this checkout."""
    env = os.environ.get(MODEL_ENV_VAR)
    if env:
        return Path(env)
    return repository_root() / MODELS_DIR / DEFAULT_MODEL_NAME


@dataclass
class SurrogateModel:
    """onnxruntime session over an exported model directory."""

    directory: Path
    card: dict[str, Any]
    session: Any = field(repr=False)

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], intra_op_threads: int | None = None
    ) -> SurrogateModel:
        """Open an exported model directory, its ``model.onnx`` checked against the card.

        SPEC §5: the graph's sha256 must be the one ``card.json`` records; a tampered or
        half-copied model is refused with one :class:`MicrostrainError` line, never served.
        ``intra_op_threads=None`` lets onnxruntime choose.
        """
        d = Path(directory)
        onnx_path, card_path = d / MODEL_FILE, d / CARD_FILE
        if not onnx_path.is_file():
            raise MicrostrainError(f"no {MODEL_FILE} in model directory {d}")
        if not card_path.is_file():
            raise MicrostrainError(f"no {CARD_FILE} in model directory {d}")
        try:
            card = json.loads(card_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MicrostrainError(f"{card_path} is not valid JSON: {exc}") from None
        expected = card.get("onnx", {}).get("sha256") if isinstance(card, dict) else None
        if not isinstance(expected, str):
            raise MicrostrainError(f"{card_path} records no onnx.sha256; cannot check {MODEL_FILE}")
        graph = onnx_path.read_bytes()  # hash and load the same bytes
        actual = hashlib.sha256(graph).hexdigest()
        if actual != expected:
            raise MicrostrainError(
                f"{onnx_path} does not match its card (sha256 {actual[:12]}… != "
                f"{expected[:12]}… in {CARD_FILE}): the model was changed or copied incompletely; "
                "refusing to use it"
            )
        model = cls(directory=d, card=card, session=_session(graph, onnx_path, intra_op_threads))
        outputs = [o.name for o in model.session.get_outputs()]
        if model.is_periodic and ONNX_C_EFF not in outputs:
            raise MicrostrainError(
                f"{onnx_path} has outputs {outputs} but its card says load case "
                f"'{PERIODIC_LOAD_CASE}', whose graph also returns '{ONNX_C_EFF}'"
            )
        return model

    @classmethod
    def from_onnx(
        cls, onnx_path: str | os.PathLike[str], intra_op_threads: int | None = None
    ) -> SurrogateModel:
        """A graph without a card (export's parity check of the graph it has just written)."""
        path = Path(onnx_path)
        if not path.is_file():
            raise MicrostrainError(f"no ONNX file {path}")
        session = _session(path.read_bytes(), path, intra_op_threads)
        return cls(directory=path.parent, card={}, session=session)

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.directory.name))

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unknown"))

    @property
    def sha256(self) -> str:
        """sha256 of ``model.onnx`` (checked against the card by :meth:`load`)."""
        onnx_info = self.card.get("onnx", {})
        return str(onnx_info.get("sha256") or sha256_of(self.directory / MODEL_FILE))

    @property
    def load_case(self) -> dict[str, Any]:
        """The card's ``training_data.load_case`` (``{}`` for a graph without a card)."""
        value = self.card.get("training_data", {}).get("load_case", {})
        return value if isinstance(value, dict) else {}

    @property
    def is_periodic(self) -> bool:
        """Whether the card says SPEC §11's periodic load case (three unit cases and C_eff)."""
        return self.load_case.get("name", LOAD_CASE) == PERIODIC_LOAD_CASE

    @property
    def plane(self) -> str:
        return str(self.load_case.get("plane", DEFAULT_PLANE))

    @property
    def input_sizes(self) -> list[int]:
        """The image sizes n the graph takes (``E`` ``[batch, 1, n, n]``), from the card; a
        uniaxial model takes 32 only."""
        sizes = self.card.get("input_sizes")
        if isinstance(sizes, list) and sizes and all(isinstance(n, int) for n in sizes):
            return sorted(sizes)
        return [GRID]

    def check_input_size(self, youngs_modulus: np.ndarray) -> None:
        """Refuse E maps ``[N, 1, n, n]`` of a size the card does not list (one line)."""
        shape = tuple(np.shape(youngs_modulus))
        sizes = self.input_sizes
        if len(shape) != 4 or shape[-1] != shape[-2] or shape[-1] not in sizes:
            listed = " or ".join(f"{n}x{n}" for n in sizes)
            raise InputError(
                f"model '{self.name}' takes microstructures of {listed} pixels; got shape "
                f"{list(shape)}"
            )

    @property
    def estimate_caveat(self) -> str | None:
        """One line when the card's held-out figures show that the error estimate understates
        the true error (median estimate / error below :data:`ESTIMATE_UNDERSTATES`), else None.

        Export states it, and ``tau`` and every prediction repeat it: the estimate sees the
        disagreement of the symmetry group, not the bias all orientations share."""
        quality = self.card.get("error_estimate")
        if not isinstance(quality, dict):
            return None
        ratio = quality.get("median_estimate_over_error")
        if not isinstance(ratio, (int, float)) or ratio >= ESTIMATE_UNDERSTATES:
            return None
        measured_on = quality.get("measured_on", "its test split")
        return (
            f"model '{self.name}': its error estimate understates its true error (median "
            f"estimate / true energy-norm error {ratio:.2f} on {measured_on}); read each "
            "estimate as a lower bound"
        )

    def predict_periodic(
        self,
        youngs_modulus: np.ndarray,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        batch_size: int | None = None,
    ) -> PeriodicPrediction:
        """The three unit cases and C_eff of a periodic model for E ``[N, 1, n, n]`` MPa.

        The strain is that of unit cases of size ``applied_strain`` (the fields are linear in
        Ē, so the model's ū = 0.1 is rescaled); C_eff does not depend on ū. ``batch_size`` as
        in :meth:`predict`. Raises :class:`MicrostrainError` for a model that is not periodic
        and :class:`InputError` for an image size the card does not list.
        """
        if not self.is_periodic:
            raise MicrostrainError(
                f"model '{self.name}' is not periodic (load case "
                f"'{self.load_case.get('name', LOAD_CASE)}'): it has no unit cases or C_eff"
            )
        if not np.isfinite(applied_strain):
            raise InputError("applied_strain must be a finite number")
        e = np.ascontiguousarray(youngs_modulus, dtype=np.float32)
        self.check_input_size(e)
        names = [ONNX_OUTPUT, ONNX_C_EFF]
        if self.has_error_estimate:
            names.append(ONNX_ERROR_ESTIMATE)
        step = batch_size if batch_size is not None and batch_size > 0 else max(e.shape[0], 1)
        runs = [
            self.session.run(names, {ONNX_INPUT: e[i : i + step]})
            for i in range(0, max(e.shape[0], 1), step)
        ]
        outputs = [np.concatenate([r[k] for r in runs]) for k in range(len(names))]
        strain = outputs[0]  # [N, 3, 3, n, n]
        scale = np.float32(applied_strain / DEFAULT_APPLIED_STRAIN)
        return PeriodicPrediction(
            strain=strain if scale == 1 else strain * scale,
            c_eff=outputs[1],  # [N, 3, 3]
            error_estimate=outputs[2] if len(outputs) > 2 else None,
        )

    def predict(
        self,
        youngs_modulus: np.ndarray,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Strain ``[N, 3, 32, 32]`` float32 for E maps ``[N, 1, 32, 32]`` in MPa.

        The model predicts for ū = 0.1; the problem is linear, so other ū scale the result.
        ``batch_size`` runs the graph on chunks of that many samples, so a large file does not
        need memory for all intermediate activations at once; ``None`` runs everything at once.
        """
        if not np.isfinite(applied_strain):
            raise InputError("applied_strain must be a finite number")
        e = np.ascontiguousarray(youngs_modulus, dtype=np.float32)
        if batch_size is not None and e.shape[0] > batch_size > 0:
            chunks = [
                self.session.run([ONNX_OUTPUT], {ONNX_INPUT: e[i : i + batch_size]})[0]
                for i in range(0, e.shape[0], batch_size)
            ]
            strain = np.concatenate(chunks)  # [N, 3, 32, 32]
        else:
            (strain,) = self.session.run([ONNX_OUTPUT], {ONNX_INPUT: e})
        scale = np.float32(applied_strain / DEFAULT_APPLIED_STRAIN)
        return strain if scale == 1 else strain * scale

    @property
    def has_error_estimate(self) -> bool:
        """Whether the graph has the ``error_estimate`` output (a symmetrized model)."""
        return any(o.name == ONNX_ERROR_ESTIMATE for o in self.session.get_outputs())

    def predict_with_estimate(
        self,
        youngs_modulus: np.ndarray,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        batch_size: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(strain ``[N, 3, 32, 32]``, error estimate ``[N]`` or None) float32; arguments as
        :meth:`predict`, whose strain this is.

        The estimate is the x-mirror disagreement of a symmetrized model,
        ‖f(E) − R f(M E)‖ / ‖f_sym(E)‖ in the energy norm, each half scaled to the mean strain
        as the output is (a relative error, independent of ū; training/physics.py); None for a
        model without it.
        """
        if not self.has_error_estimate:
            return self.predict(youngs_modulus, applied_strain, batch_size), None
        if not np.isfinite(applied_strain):
            raise InputError("applied_strain must be a finite number")
        e = np.ascontiguousarray(youngs_modulus, dtype=np.float32)
        names = [ONNX_OUTPUT, ONNX_ERROR_ESTIMATE]
        step = batch_size if batch_size is not None and batch_size > 0 else max(e.shape[0], 1)
        runs = [
            self.session.run(names, {ONNX_INPUT: e[i : i + step]})
            for i in range(0, max(e.shape[0], 1), step)
        ]
        if len(runs) == 1:
            strain, estimate = runs[0]
        else:
            strain = np.concatenate([r[0] for r in runs])  # [N, 3, 32, 32]
            estimate = np.concatenate([r[1] for r in runs])  # [N]
        scale = np.float32(applied_strain / DEFAULT_APPLIED_STRAIN)
        return (strain if scale == 1 else strain * scale), estimate


def save_error_estimate(path: str | os.PathLike[str], estimate: np.ndarray) -> None:
    """Add the error estimate ``[N]`` as float32 dataset ``error_estimate`` (the graph output's
    name) to the ``.h5`` prediction file ``path`` that :func:`microstrain.outputs.save_strain`
    wrote (serving reaches h5py only through the core)."""
    import h5py

    with h5py.File(path, "a") as f:
        f.create_dataset(ONNX_ERROR_ESTIMATE, data=np.asarray(estimate, np.float32))


def _session(graph: bytes, path: Path, intra_op_threads: int | None) -> Any:
    """An onnxruntime CPU session over ``graph`` that follows the SPEC §5 names."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            graph, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise MicrostrainError(f"cannot load {path}: {exc}") from None
    names_in = [i.name for i in session.get_inputs()]
    names_out = [o.name for o in session.get_outputs()]
    if names_in != [ONNX_INPUT] or ONNX_OUTPUT not in names_out:
        raise MicrostrainError(
            f"{path} does not follow the model contract: inputs {names_in}, "
            f"outputs {names_out}; expected input '{ONNX_INPUT}' and output '{ONNX_OUTPUT}'"
        )
    return session
