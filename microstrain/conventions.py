"""Names, shapes, units and constants every package shares (SPEC §1, §2, §4, §5).

Nobody retypes these: import them. Pure Python, no third-party imports, so it is safe to use
from serving, training and data generation alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

# --- grid and array conventions (SPEC §2) --------------------------------------------------
GRID: Final = 32  # pixels per side
# strain channels in order; gamma_xy is engineering shear (2 eps_xy)
STRAIN_CHANNELS: Final = ("eps_xx", "eps_yy", "gamma_xy")
N_STRAIN: Final = len(STRAIN_CHANNELS)
# stress channels of SPEC §9, in order: σ_xx, σ_yy, τ_xy (MPa)
STRESS_CHANNELS: Final = ("sigma_xx", "sigma_yy", "tau_xy")
E_SHAPE: Final = (1, GRID, GRID)  # per sample, channels-first
STRAIN_SHAPE: Final = (N_STRAIN, GRID, GRID)
# Image convention: row 0 is the top of the domain (y = 1), column 0 the left edge (x = 0).
FLOAT_DTYPE: Final = "float32"  # stored fields and model tensors; the solver works in float64
MAX_BATCH: Final = 512  # largest batch accepted at user-facing boundaries (REST)


# --- materials (SPEC §1), MPa --------------------------------------------------------------
@dataclass(frozen=True)
class Material:
    name: str
    youngs_modulus: float  # MPa
    poisson_ratio: float


FIBER: Final = Material("fiber", 85_000.0, 0.22)
MATRIX: Final = Material("matrix", 3_000.0, 0.4)
MATERIALS: Final = {"fiber": asdict(FIBER), "matrix": asdict(MATRIX)}

# --- load case (SPEC §1) -------------------------------------------------------------------
LOAD_CASE: Final = "uniaxial-x"
DEFAULT_APPLIED_STRAIN: Final = 0.1  # ū on x = 1; models predict for this value
# Small-strain theory: fields are linear in ū and only meaningful for small strains; |ū| = 1 (100 %)
# is a generous ceiling that still catches unit mistakes (percent instead of fraction).
MAX_ABS_APPLIED_STRAIN: Final = 1.0
PLANES: Final = ("stress", "strain")
DEFAULT_PLANE: Final = "stress"

# --- periodic homogenization (SPEC §11) ----------------------------------------------------
# `--boundary` of generate, solve, inspect, convergence
BOUNDARIES: Final = ("uniaxial", "periodic")
DEFAULT_BOUNDARY: Final = "uniaxial"
PERIODIC_LOAD_CASE: Final = "periodic"  # load_case.name of a periodic file or model
# the three unit macro strains (eps_xx, eps_yy, gamma_xy) = ū e_j, always in this order
PERIODIC_CASES: Final = ("xx", "yy", "xy")
N_CASES: Final = len(PERIODIC_CASES)
DS_C_EFF: Final = "C_eff"  # float64 [N, 3, 3] effective stiffness (MPa, Voigt, engineering shear)
ONNX_C_EFF: Final = "C_eff"  # float32 [batch, 3, 3], output of a periodic model

# --- discretization (SPEC §3) --------------------------------------------------------------
MODES: Final = ("pixel", "refined")
DEFAULT_MODE: Final = "refined"
DEFAULT_K: Final = 4

# --- dataset file (SPEC §4) ----------------------------------------------------------------
SCHEMA_VERSION: Final = 1
DS_E: Final = "E"  # float32 [N, 1, 32, 32] Young's modulus per pixel (MPa)
DS_STRAIN: Final = "strain"  # float32 [N, 3, 32, 32] strain at pixel centres for ū of the file
DS_FIBER_FRACTION: Final = "fiber_fraction"  # float32 [N]
DS_SEED: Final = "seed"  # int64 [N] per-sample seed
DS_SOLVE_SECONDS: Final = "solve_seconds"  # float64 [N] FE wall time per sample
ATTR_SCHEMA_VERSION: Final = "schema_version"
ATTR_LOAD_CASE: Final = "load_case"  # JSON {name, applied_strain, plane}
ATTR_MATERIALS: Final = "materials"  # JSON
ATTR_GENERATOR: Final = "generator"  # JSON of every microstructure parameter
ATTR_DISCRETIZATION: Final = "discretization"  # JSON {mode, k}
ATTR_SOFTWARE: Final = "software"  # JSON of versions
ATTR_CREATED: Final = "created"
ATTR_COMPLETE: Final = "complete"  # False while being written or after an interruption

# --- exported model (SPEC §5) --------------------------------------------------------------
ONNX_INPUT: Final = "E"  # float32 [batch, 1, 32, 32], raw MPa
ONNX_OUTPUT: Final = "strain"  # float32 [batch, 3, 32, 32], raw strain for ū = 0.1
# float32 [batch], only in symmetrized graphs: ‖f(E) − R f(M E)‖ / ‖f_sym(E)‖ in the energy norm
ONNX_ERROR_ESTIMATE: Final = "error_estimate"
MODEL_FILE: Final = "model.onnx"
CARD_FILE: Final = "card.json"
MODELS_DIR: Final = "models"
DEFAULT_MODEL_NAME: Final = "default"
MODEL_ENV_VAR: Final = "MICROSTRAIN_MODEL"  # directory of the model serving loads

# --- REST (SPEC §8) ------------------------------------------------------------------------
DEFAULT_PORT: Final = 3000

# --- extra dataset attributes written by data_gen, read by the τ report ---------------------
ATTR_WALL_SECONDS: Final = "wall_seconds"  # T_data: wall time of all runs that wrote the file
# JSON list of {started, ranks, first_sample, samples, wall_seconds, hardware}
ATTR_RUNS: Final = "runs"
ATTR_N_REQUESTED: Final = "n_requested"
# JSON {index, count, first_sample, n_total}, only in a file written by `generate --shard I/N`:
# it holds samples [first_sample, first_sample + N) of the run of n_total samples
ATTR_SHARD: Final = "shard"
