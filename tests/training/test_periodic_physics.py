"""The exact physics of the periodic model (SPEC §11) around an untrained network: every
property here holds by construction, whatever the weights."""

import numpy as np
import pytest
import torch
from torch import nn

from microstrain.quantities import effective_stiffness
from training.periodic_physics import (
    REFLECTIONS,
    PeriodicPhysics,
    energy_stiffness,
    is_positive_definite,
    mean_stress_stiffness,
    transform_image,
    transform_sample,
    voigt_map,
)


def periodic_net(seed: int = 0) -> nn.Module:
    """A small translation-equivariant network of 9 output channels (circular padding), whose
    outputs are far from any symmetry."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, padding_mode="circular"),
        nn.Tanh(),
        nn.Conv2d(8, 9, 3, padding=1, padding_mode="circular"),
    ).double()


def microstructures(n: int = 16, count: int = 3, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    mask = rng.random((count, 1, n, n)) < 0.4
    return torch.from_numpy(np.where(mask, 85_000.0, 3_000.0))  # [count, 1, n, n] float64


def run(
    physics: PeriodicPhysics, e: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(unit cases, C_eff, estimate) of the physics around the network in eval mode, composed as
    training/model.py's Surrogate composes them (E standardized in, strain-scaled out)."""
    physics.eval()
    with torch.no_grad():
        x = physics.network_input(e)
        y = 0.1 * periodic_net(seed)((x - 30_000.0) / 30_000.0)
        out = physics(e, x, y, True)
    return out["strain"], out["C_eff"], out.get("error_estimate")


def test_each_case_has_exactly_its_macro_strain_as_mean() -> None:
    cases, c_eff, estimate = run(PeriodicPhysics(in_graph=("identity",)), microstructures())
    means = cases.mean(dim=(-2, -1))  # [N, 3, 3]
    torch.testing.assert_close(
        means, 0.1 * torch.eye(3).double().expand_as(means), atol=1e-15, rtol=0
    )
    assert estimate is None and c_eff.shape == (3, 3, 3)


@pytest.mark.parametrize("element", ["mirror_x", "mirror_y", "swap", "antiswap", "rotate_180"])
def test_the_averaged_model_is_exactly_equivariant_under_its_elements(element: str) -> None:
    e = microstructures()
    physics = PeriodicPhysics(in_graph=("identity", element))
    cases, c_eff, estimate = run(physics, e)
    moved_e, expected = transform_sample(e, cases, element)
    moved_cases, moved_c, moved_estimate = run(physics, moved_e)
    torch.testing.assert_close(moved_cases, expected, atol=1e-12, rtol=1e-10)
    q = torch.from_numpy(voigt_map(element))
    torch.testing.assert_close(moved_c, q @ c_eff @ q.T, atol=1e-8, rtol=1e-10)
    torch.testing.assert_close(moved_estimate, estimate, atol=1e-12, rtol=1e-10)
    assert estimate is not None
    assert bool((estimate > 0.01).all())  # the untrained network is far from equivariant


def test_a_periodic_shift_moves_the_fields_and_keeps_c_eff() -> None:
    e = microstructures()
    physics = PeriodicPhysics(in_graph=("identity", "swap"))
    cases, c_eff, _ = run(physics, e)
    shifted_e, expected = transform_sample(e, cases, "identity", shift=(3, -5))
    shifted_cases, shifted_c, _ = run(physics, shifted_e)
    torch.testing.assert_close(shifted_cases, expected, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(shifted_c, c_eff, atol=1e-8, rtol=1e-10)


def test_swap_is_the_image_rule_of_the_spec() -> None:
    e = microstructures(count=1)[0, 0].numpy()
    np.testing.assert_array_equal(
        transform_image(torch.from_numpy(e), "swap").numpy(), e[::-1, ::-1].T
    )
    for element in REFLECTIONS:  # each is its own inverse
        twice = transform_image(transform_image(torch.from_numpy(e), element), element)
        np.testing.assert_array_equal(twice.numpy(), e)


@pytest.mark.parametrize("estimator", ["auto", "stress", "energy"])
def test_c_eff_is_symmetric_and_positive_definite(estimator: str) -> None:
    for seed in range(4):
        _, c_eff, _ = run(PeriodicPhysics(estimator=estimator), microstructures(seed=seed), seed)
        torch.testing.assert_close(c_eff, c_eff.transpose(1, 2), atol=0, rtol=0)
        assert torch.linalg.eigvalsh(c_eff).min() > 0
        assert is_positive_definite(c_eff).all()


def test_the_mean_stress_estimator_is_the_core_c_eff_and_the_gram_matrix_is_definite() -> None:
    e = microstructures(n=32)
    cases, _, _ = run(PeriodicPhysics(in_graph=("identity",)), e)
    torch_c = mean_stress_stiffness(e, cases, "strain", 0.1).numpy()
    np.testing.assert_allclose(
        torch_c, effective_stiffness(e.numpy(), cases.numpy(), "strain", 0.1), rtol=1e-12
    )
    # Σ_P Fᵀ C F >= min C · Σ_P Fᵀ F >= min C · P F̄ᵀ F̄ = min C · P ū² I for fields of these means
    gram = energy_stiffness(e, cases, "strain", 0.1)
    assert torch.linalg.eigvalsh(gram).min() > 0


def test_sylvester_agrees_with_eigenvalues() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3, 3))
    sym = torch.from_numpy(a + a.transpose(0, 2, 1) + 1.5 * np.eye(3))
    expected = torch.linalg.eigvalsh(sym).min(dim=1).values > 0
    assert torch.equal(is_positive_definite(sym), expected)
    assert 0 < int(expected.sum()) < 200


def test_training_sees_one_orientation_and_evaluation_all() -> None:
    physics = PeriodicPhysics(in_graph=("identity", "swap", "mirror_x"))
    assert physics.train().members == ("identity",)
    assert physics.eval().members == ("identity", "swap", "mirror_x")
    with pytest.raises(ValueError, match="must start with 'identity'"):
        PeriodicPhysics(in_graph=("swap",))


def test_the_periodic_res_unet_is_shift_equivariant_and_takes_larger_cells() -> None:
    from training.architectures import build

    torch.manual_seed(0)
    net = build(
        "res-unet", widths=[8, 8, 16], coords=False, periodic=True, out_channels=9, norm="batch"
    ).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        y = net(x)
        # the coarsest pixel is 4 fine ones: shifts by its multiples commute with the network
        shifted = net(torch.roll(x, (4, -8), dims=(-2, -1)))
        assert net(torch.randn(1, 1, 64, 64)).shape == (1, 9, 64, 64)
    assert y.shape == (2, 9, 32, 32)
    torch.testing.assert_close(shifted, torch.roll(y, (4, -8), dims=(-2, -1)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no coordinates"):
        build("res-unet", periodic=True)


def test_the_slot_interface_of_training_model() -> None:
    physics = PeriodicPhysics(in_graph=("identity", "swap"))
    assert physics.kind == "periodic" and physics.network_channels == 9
    assert physics.output_names(True) == ("strain", "C_eff", "error_estimate")
    assert physics.output_names(False) == ("strain", "C_eff")
    cases = torch.randn(2, 3, 3, 32, 32)
    target = physics.output_target(torch.zeros(2, 1, 32, 32), cases)
    assert target.shape == (2, 9, 32, 32) and torch.equal(target[:, 3 + 2], cases[:, 1, 2])
    e = microstructures(count=2)
    physics.train()
    x = physics.network_input(e)
    assert x is e  # one orientation per training sample: each member stays supervised
    out = physics(e, x, torch.zeros(2, 9, 16, 16, dtype=torch.float64), True)
    assert set(out) == {"strain", "C_eff"}
    PeriodicPhysics(**physics.options())  # the options rebuild it


@pytest.mark.parametrize("element", list(REFLECTIONS))
def test_each_augmentation_is_an_exact_fe_sample(element: str) -> None:
    """What transform_sample makes of a solved sample is what the FE solver gives for the
    transformed image (SPEC §11's symmetries; pixel mode, the rule holds for every k)."""
    import dolfinx_solver  # noqa: F401  (before dolfinx: data_gen.elasticity.load_fe_stack)

    from data_gen.solver import SolverConfig, StrainSolver

    solver = StrainSolver(SolverConfig(mode="pixel", boundary="periodic", plane="strain"))
    e = microstructures(n=32, count=1, seed=5)  # [1, 1, 32, 32]
    cases = torch.from_numpy(solver.solve_batch(e.numpy()[:, 0]))  # [1, 3, 3, 32, 32]
    moved_e, moved = transform_sample(e, cases, element, shift=(5, -11))
    expected = solver.solve_batch(moved_e.numpy()[:, 0])
    np.testing.assert_allclose(moved.numpy(), expected, atol=1e-9 * np.abs(expected).max())
