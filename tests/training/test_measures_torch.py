"""The torch twin equals the numpy SPEC §9 code; its Metric streams and reduces like numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.measures import ErrorAccumulator, per_sample_measures
from microstrain.quantities import quantities
from training import measures as tm

U = 0.1
PLANES = ("stress", "strain")


def fields(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E [n, 1, 32, 32] MPa, reference and predicted strain [n, 3, 32, 32], float64."""
    rng = np.random.default_rng(seed)
    E = np.where(rng.random((n, 1, GRID, GRID)) < 0.4, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    ref = 0.03 * rng.standard_normal((n, 3, GRID, GRID))
    ref[:, 0] += U
    ref[:, 1] -= 0.35 * U
    pred = ref * (1 + 0.05 * rng.standard_normal(ref.shape))
    return E, ref, pred


def as_tensors(*arrays: np.ndarray, dtype=torch.float64) -> list[torch.Tensor]:
    return [torch.from_numpy(a).to(dtype) for a in arrays]


@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize(
    ("dtype", "rtol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["f64", "f32"]
)
def test_quantities_equal_numpy(plane, dtype, rtol):
    E, strain, _ = fields(6)
    q = quantities(E, strain, plane, U)
    e_t, s_t = as_tensors(E, strain, dtype=dtype)
    fiber = torch.from_numpy(E > 44_000)
    for phase in (e_t, fiber):  # an E map and the bool mask give the same answer
        scale = float(np.abs(q["stress"]).max())
        sigma = tm.stress(phase, s_t, plane).double().numpy()
        np.testing.assert_allclose(sigma, q["stress"], rtol=rtol, atol=max(rtol, 2e-7) * scale)
        vm = tm.von_mises(phase, s_t, plane).double().numpy()
        np.testing.assert_allclose(vm, q["von_mises"], rtol=max(rtol, 2e-7))
        e_x = tm.apparent_modulus(phase, s_t, plane, U).double().numpy()
        np.testing.assert_allclose(e_x, q["E_x"], rtol=rtol)
    nu_xy = tm.apparent_poisson_ratio(s_t, U).double().numpy()
    np.testing.assert_allclose(nu_xy, q["nu_xy"], rtol=rtol)


# float32 sums of the error carry round-off of ~1e-7 of the reference's terms: absolute in the ratio
@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize(
    ("dtype", "rtol", "atol"),
    [(torch.float64, 1e-10, 0.0), (torch.float32, 1e-5, 1e-6)],
    ids=["f64", "f32"],
)
def test_per_sample_measures_equal_numpy(plane, dtype, rtol, atol):
    E, ref, pred = fields(5, seed=1)
    E[2] = MATRIX.youngs_modulus  # no fiber: undefined fiber error in both
    expected = per_sample_measures(E, pred, ref, plane)
    e_t, r_t, p_t = as_tensors(E, ref, pred, dtype=dtype)
    got = tm.per_sample_measures(e_t, p_t, r_t, plane)
    assert set(got) == set(expected)
    for name, (value, defined) in got.items():
        np.testing.assert_array_equal(defined.numpy(), ~np.isnan(expected[name]))
        np.testing.assert_allclose(value.double().numpy(), expected[name], rtol=rtol, atol=atol)
    energy = tm.energy_norm_error(e_t, p_t, r_t, plane).double().numpy()
    np.testing.assert_allclose(energy, expected["energy_norm_error"], rtol=rtol, atol=atol)


def test_metric_over_batches_equals_the_numpy_accumulator():
    E, ref, pred = fields(20, seed=2)
    E[4] = MATRIX.youngs_modulus
    acc, metric = ErrorAccumulator("strain"), tm.ErrorMeasures("strain")
    for s in (slice(0, 8), slice(8, 9), slice(9, 20)):
        acc.update(E[s], pred[s], ref[s])
        e_t, r_t, p_t = as_tensors(E[s], ref[s], pred[s], dtype=torch.float32)
        metric.update(p_t, r_t, e_t > 44_000)
    expected, got = acc.compute_flat(), metric.compute()
    assert set(got) == set(expected)
    for key, value in expected.items():
        # float32 inputs, float64 accumulation
        assert float(got[key]) == pytest.approx(value, rel=1e-5), key


def test_metric_states_reduce_like_ddp():
    # torchmetrics syncs ranks with each state's dist_reduce_fx; merge_state applies the same
    # reductions, so two "ranks" merged must equal one metric that saw all batches
    E, ref, pred = fields(12, seed=3)
    tensors = as_tensors(ref, pred, dtype=torch.float32)
    fiber = torch.from_numpy(E > 44_000)
    whole, rank0, rank1 = (tm.ErrorMeasures() for _ in range(3))
    whole.update(tensors[1], tensors[0], fiber)
    rank0.update(tensors[1][:5], tensors[0][:5], fiber[:5])
    rank1.update(tensors[1][5:], tensors[0][5:], fiber[5:])
    rank0.merge_state(rank1)
    merged, expected = rank0.compute(), whole.compute()
    for key in expected:
        torch.testing.assert_close(merged[key], expected[key], rtol=1e-6, atol=0)


def test_metric_wants_a_bool_mask():
    _, ref, pred = fields(1)
    r_t, p_t = as_tensors(ref, pred)
    with pytest.raises(TypeError, match="bool"):
        tm.ErrorMeasures().update(p_t, r_t, torch.zeros(1, 1, GRID, GRID))


def test_metric_phase_absent_everywhere_is_nan():
    _, ref, pred = fields(2)
    r_t, p_t = as_tensors(ref, pred)
    metric = tm.ErrorMeasures()
    metric.update(p_t, r_t, torch.zeros(2, 1, GRID, GRID, dtype=torch.bool))
    out = metric.compute()
    assert math.isnan(float(out["strain_relative_l2_fiber"]))
    assert float(out["strain_relative_l2_matrix"]) > 0


@pytest.mark.parametrize("plane", PLANES)
def test_losses_exact_value_zero_and_gradient(plane):
    E, ref, _ = fields(3, seed=4)
    e_t, r_t = as_tensors(E, ref)
    scaled = (1.1 * r_t).requires_grad_()

    def strain(_e: torch.Tensor, p: torch.Tensor, r: torch.Tensor, _plane: str) -> torch.Tensor:
        return tm.strain_loss(p, r)  # needs neither the material nor the plane

    for loss in (tm.energy_norm_loss, tm.stress_loss, strain):
        assert float(loss(e_t, r_t, r_t, plane)) == 0.0
        value = loss(e_t, scaled, r_t, plane)
        assert float(value.detach()) == pytest.approx(0.01, rel=1e-12)  # (0.1)² whatever C is
        (grad,) = torch.autograd.grad(value, scaled)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("plane", PLANES)
def test_losses_are_the_per_sample_measures_squared_and_averaged(plane):
    E, ref, pred = fields(4, seed=5)
    pred[1] = ref[1] + 3 * (pred[1] - ref[1])  # samples of unequal error: pooling would differ
    measures = per_sample_measures(E, pred, ref, plane)  # the numpy core, float64
    e_t, r_t, p_t = as_tensors(E, ref, pred)
    energy = float(tm.energy_norm_loss(e_t, p_t, r_t, plane))
    assert energy == pytest.approx(np.mean(measures["energy_norm_error"] ** 2), rel=1e-12)
    assert float(tm.stress_loss(e_t, p_t, r_t, plane)) == pytest.approx(
        np.mean(measures["stress_relative_l2"] ** 2), rel=1e-12
    )
    assert float(tm.strain_loss(p_t, r_t)) == pytest.approx(
        np.mean(measures["strain_relative_l2"] ** 2), rel=1e-12
    )
    # on one sample: the energy-norm error squared, from the stresses of numpy's quantities
    sigma = quantities(E[:1], pred[:1] - ref[:1], plane, U)["stress"].astype(np.float64)
    sigma_ref = quantities(E[:1], ref[:1], plane, U)["stress"].astype(np.float64)
    expected = np.sum(sigma * (pred[:1] - ref[:1])) / np.sum(sigma_ref * ref[:1])
    one = float(tm.energy_norm_loss(e_t[:1], p_t[:1], r_t[:1], plane))
    assert one == pytest.approx(expected, rel=1e-6)  # quantities' stress is float32
    assert one == pytest.approx(float(tm.energy_norm_error(e_t[:1], p_t[:1], r_t[:1], plane)) ** 2)
    # the bool mask says the same as the E map
    fiber = torch.from_numpy(E > 44_000)
    torch.testing.assert_close(
        tm.energy_norm_loss(fiber, p_t, r_t, plane), tm.energy_norm_loss(e_t, p_t, r_t, plane)
    )
