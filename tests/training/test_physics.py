"""The physics wrapper (training/physics.py): exact compliance, mean strain, x-mirror equivariance.

Each option is checked against an independent statement of the same physics (the §9 stress law
of :mod:`training.measures`, the data module's mirror, the plain composition), in torch and in
the exported ONNX graph as every later stage runs it.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from support.datasets import standin_moduli
from torch import nn

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, ONNX_OUTPUT
from microstrain.surrogate import SurrogateModel
from training import measures as tm
from training.model import Surrogate
from training.module import StrainRegressor
from training.normalization import Normalizer
from training.onnx_graph import export_onnx, parity_inputs
from training.physics import Physics, mirror_x

U = DEFAULT_APPLIED_STRAIN
PLANES = ("stress", "strain")


def _physical(net, norm, physics=None):
    """The surrogate of the physics (all options off: the plain composition), eval mode."""
    return Surrogate(net, norm, physics or Physics(), error_estimate=True).eval()


def _net(seed: int = 0) -> nn.Module:
    """A small random conv net: nothing in it is mirror-symmetric."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 5, padding=2)
    ).eval()


def _normalizer(output: str) -> Normalizer:
    """Constants of the size real data gives (strain for ū = 0.1, or stress in MPa)."""
    norm = Normalizer(output)
    norm.input_mean.fill_(30_000.0)
    norm.input_std.fill_(38_000.0)
    mean, std = (
        ((0.1, -0.03, 0.0), (0.05, 0.02, 0.04))
        if output == "strain"
        else (
            (600.0, 20.0, 0.0),
            (900.0, 150.0, 200.0),
        )
    )
    norm.set_output_statistics(
        torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    )
    return norm


def _moduli(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(standin_moduli(n, seed))  # [n, 1, 32, 32] MPa


def _model(output_space="strain", mean_strain=False, symmetrize=False, plane="stress"):
    physics = Physics(output_space, mean_strain, symmetrize, plane)
    return _physical(_net(), _normalizer(output_space), physics)


def _mirror_error(out: torch.Tensor | np.ndarray, out_of_mirror: torch.Tensor | np.ndarray):
    """max |f(E) − R f(M E)| / max |f(E)|."""
    a, b = (torch.as_tensor(np.asarray(x)) for x in (out, out_of_mirror))
    _, mirrored = mirror_x(torch.zeros(1), b)  # R, as the data module mirrors samples
    return float((a - mirrored).abs().max() / a.abs().max())


# --- each map alone ---------------------------------------------------------------------------
@pytest.mark.parametrize("plane", PLANES)
def test_compliance_inverts_the_stress_law_exactly(plane):
    youngs_modulus = _moduli().double()
    torch.manual_seed(2)
    strain = 0.05 * torch.randn(6, 3, 32, 32, dtype=torch.float64)
    sigma = tm.stress(youngs_modulus, strain, plane)  # the §9 law: C(E, ν, plane) ε
    back = Physics("stress", plane=plane).strain_of_stress(youngs_modulus, sigma)
    torch.testing.assert_close(back, strain, rtol=1e-12, atol=1e-15)


def test_the_plain_model_is_the_plain_composition():
    physics = Physics()
    assert physics.is_identity and not list(physics.state_dict())
    model = _model()
    assert model.physics.is_identity  # the exported graph stays normalizer ∘ net ∘ denormalizer
    e = _moduli()
    with torch.no_grad():
        want = model.normalizer.decode_output(model.net(model.normalizer.encode_input(e)))
        torch.testing.assert_close(model.strain(e), want, rtol=0, atol=0)


def _plain(model: Surrogate, e: torch.Tensor) -> torch.Tensor:
    """The network's decoded output, without any option."""
    return model.normalizer.decode_output(model.net(model.normalizer.encode_input(e)))


@torch.no_grad()
def test_mean_strain_only_rescales_the_plain_field():
    e = _moduli()
    model = _model(mean_strain=True)
    plain, out = _plain(model, e), model.strain(e)
    scale = U / plain[:, 0].mean(dim=(1, 2))  # [N]
    torch.testing.assert_close(out, plain * scale.view(-1, 1, 1, 1), rtol=1e-6, atol=0)
    mean = out[:, 0].double().mean(dim=(1, 2))
    torch.testing.assert_close(mean, torch.full_like(mean, U), rtol=1e-6, atol=0)


@torch.no_grad()
def test_symmetrize_only_averages_with_the_mirrored_prediction():
    e = _moduli()
    model = _model(symmetrize=True)
    e_mirror, _ = mirror_x(e, torch.zeros(1, 3, 1, 1))
    _, back = mirror_x(e, _plain(model, e_mirror))  # R f(M E)
    want = 0.5 * (_plain(model, e) + back)
    torch.testing.assert_close(
        model.strain(e), want, rtol=1e-6, atol=1e-7 * float(want.abs().max())
    )
    assert _mirror_error(_plain(model, e), _plain(model, e_mirror)) > 0.01  # the net alone is not


@torch.no_grad()
def test_symmetrize_only_in_eval_mode_trains_the_plain_network():
    """``symmetrize_training=False``: in train mode one plain pass (each half supervised by
    itself), in eval mode (validation, export) the exact symmetrization of the same weights."""
    e = _moduli()
    physics = Physics("strain", False, True, "stress", symmetrize_training=False)
    model = Surrogate(_net(), _normalizer("strain"), physics)
    symmetric = _model(symmetrize=True)  # same seed: the same net
    model.train()
    torch.testing.assert_close(model.strain(e), _plain(model, e), rtol=0, atol=0)
    model.eval()
    torch.testing.assert_close(model.strain(e), symmetric.strain(e), rtol=0, atol=0)
    e_mirror, _ = mirror_x(e, torch.zeros(1, 3, 1, 1))
    assert _mirror_error(model.strain(e), model.strain(e_mirror)) < 1e-6


@pytest.mark.parametrize("plane", PLANES)
@torch.no_grad()
def test_stress_space_predicts_the_stress_the_network_outputs(plane):
    e = _moduli()
    model = _model("stress", plane=plane)
    sigma = _plain(model, e)  # what the network says, in MPa
    strain = model.strain(e)
    scale = float(sigma.abs().max())
    torch.testing.assert_close(tm.stress(e, strain, plane), sigma, rtol=1e-5, atol=1e-6 * scale)


def test_mean_guard_keeps_the_field_finite():
    physics = Physics(mean_strain=True)
    zero = torch.zeros(2, 3, 32, 32)
    assert torch.equal(physics.scale_to_mean(zero), zero)  # no 0/0
    field = torch.randn(2, 3, 32, 32)
    field[:, 0] -= field[:, 0].mean(dim=(1, 2), keepdim=True)  # mean ε_xx ≈ 0 (round-off)
    assert torch.isfinite(physics.scale_to_mean(field)).all()
    negative = -0.05 + 0.01 * torch.randn(2, 3, 32, 32)  # a clearly wrong sign is still rescaled
    mean = physics.scale_to_mean(negative)[:, 0].double().mean(dim=(1, 2))
    torch.testing.assert_close(mean, torch.full_like(mean, U), rtol=1e-6, atol=0)


@pytest.mark.parametrize("plane", PLANES)
@torch.no_grad()
def test_all_options_together_are_exactly_equivariant_in_torch(plane):
    e = _moduli()
    model = _model("stress", mean_strain=True, symmetrize=True, plane=plane)
    e_mirror, _ = mirror_x(e, torch.zeros(1, 3, 1, 1))
    assert _mirror_error(model.strain(e), model.strain(e_mirror)) <= 1e-6
    mean = model.strain(e)[:, 0].double().mean(dim=(1, 2))
    torch.testing.assert_close(mean, torch.full_like(mean, U), rtol=1e-6, atol=0)


# --- the exported graph -------------------------------------------------------------------------
def _nodes(path) -> tuple[list, list]:
    """The graph without its debug metadata (stack traces carry source line numbers)."""
    graph = onnx.load(str(path)).graph
    nodes = [(n.op_type, list(n.input), list(n.output), str(n.attribute)) for n in graph.node]
    return nodes, [(i.name, i.SerializeToString()) for i in graph.initializer]


class _Plain(nn.Module):
    """``normalizer ∘ net ∘ denormalizer`` written out: the graph exported before the options
    (answering by output name, as a :class:`Surrogate` does)."""

    output_names = (ONNX_OUTPUT,)

    def __init__(self, net: nn.Module, normalizer: Normalizer) -> None:
        super().__init__()
        self.net, self.normalizer = net, normalizer
        self.physics = Physics()  # all options off

    def forward(self, youngs_modulus: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.net(self.normalizer.encode_input(youngs_modulus))
        return {ONNX_OUTPUT: self.normalizer.decode_output(y)}


@pytest.mark.slow
def test_default_options_export_the_plain_graph(tmp_path):
    torch.manual_seed(0)
    regressor = StrainRegressor("course-cnn")
    regressor.normalizer.load_state_dict(_normalizer("strain").state_dict())
    model = regressor.physical_model()
    export_onnx(model, tmp_path / "options.onnx")
    export_onnx(_Plain(model.net, model.normalizer).eval(), tmp_path / "plain.onnx")  # type: ignore[arg-type]
    assert _nodes(tmp_path / "options.onnx") == _nodes(tmp_path / "plain.onnx")


@pytest.fixture(scope="module")
def physics_graph(tmp_path_factory) -> tuple[Surrogate, SurrogateModel]:
    """All options on, plane strain (the less common plane), exported and opened as the
    serving code opens a graph."""
    model = _model("stress", mean_strain=True, symmetrize=True, plane="strain")
    path = tmp_path_factory.mktemp("physics") / "model.onnx"
    export_onnx(model, path)
    return model, SurrogateModel.from_onnx(path)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 7])
def test_exported_graph_is_mirror_equivariant_and_keeps_the_mean(physics_graph, batch):
    model, surrogate = physics_graph
    e = parity_inputs(batch, seed=batch)  # [b, 1, 32, 32] random two-phase microstructures
    out = surrogate.predict(e)
    assert out.shape == (batch, 3, 32, 32)
    assert _mirror_error(out, surrogate.predict(np.ascontiguousarray(e[..., ::-1]))) <= 1e-6
    mean = out[:, 0].astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(mean, U, rtol=1e-6)
    with torch.no_grad():
        reference = model.strain(torch.from_numpy(e)).numpy()
    assert np.abs(out - reference).max() <= 1e-5 * np.abs(reference).max()  # export's parity
