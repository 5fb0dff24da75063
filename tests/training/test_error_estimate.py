"""The mirror's disagreement as an error estimate (training/physics.py): its formula in torch,
the exported graph's second output, and that the strain output does not change with it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import scipy.stats
import torch
from support.datasets import standin_moduli, write_standin_dataset
from torch import nn

from microstrain import measures
from microstrain.conventions import ONNX_ERROR_ESTIMATE, ONNX_OUTPUT
from microstrain.dataset import load_samples
from microstrain.scoring import score_file
from microstrain.surrogate import ERROR_ESTIMATE_WARNING, SurrogateModel
from training.model import Surrogate
from training.normalization import Normalizer
from training.onnx_graph import (
    PARITY_TOLERANCE,
    check_graph,
    export_onnx,
    parity_errors,
    parity_inputs,
)
from training.physics import Physics, mirror_x


def _physical(net, norm, physics=None):
    """The surrogate of the physics (all options off: the plain composition), eval mode."""
    return Surrogate(net, norm, physics or Physics(), error_estimate=True).eval()


def _model(symmetrize: bool, mean_strain: bool = True, plane: str = "stress") -> Surrogate:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 5, padding=2))
    norm = Normalizer("strain")
    norm.input_mean.fill_(30_000.0)
    norm.input_std.fill_(38_000.0)
    norm.set_output_statistics(
        torch.tensor((0.1, -0.03, 0.0)).view(1, 3, 1, 1),
        torch.tensor((0.05, 0.02, 0.04)).view(1, 3, 1, 1),
    )
    physics = Physics("strain", mean_strain, symmetrize, plane)
    return _physical(net.eval(), norm, physics)


@pytest.mark.parametrize("plane", ("stress", "strain"))
@torch.no_grad()
def test_estimate_is_the_energy_norm_disagreement_of_the_two_halves(plane):
    """Against an independent statement: the data module's mirror and the §9 energy-norm error
    of :mod:`microstrain.measures` (f(E) measured against the reference R f(M E) is
    ‖f − Rf(ME)‖ / ‖Rf(ME)‖; with f_sym as the reference's norm it is the estimate)."""
    model = _model(symmetrize=True, mean_strain=False, plane=plane)
    e = torch.from_numpy(standin_moduli(5, 3))  # [5, 1, 32, 32] MPa
    strain, estimate = model.forward_with_estimate(e)
    torch.testing.assert_close(strain, model.strain(e), rtol=0, atol=0)
    plain = model.normalizer.decode_output(model.net(model.normalizer.encode_input(e)))
    e_mirror, _ = mirror_x(e, torch.zeros(1, 3, 1, 1))
    raw_mirror = model.normalizer.decode_output(model.net(model.normalizer.encode_input(e_mirror)))
    _, back = mirror_x(e, raw_mirror)  # R f(M E)
    e64 = e.double().numpy()
    d = measures.per_sample_measures(
        e64,
        (plain - back).double().numpy() + strain.double().numpy(),
        strain.double().numpy(),
        plane,
    )["energy_norm_error"]
    np.testing.assert_allclose(estimate.double().numpy(), d, rtol=1e-4)
    assert (estimate > 0.01).all()  # a random net is far from equivariant


@torch.no_grad()
def test_with_mean_strain_the_halves_are_compared_after_their_own_scaling():
    """With ``mean_strain`` the output is f_sym scaled to mean ε_xx = ū, so the estimate compares
    the halves as they would be output: each scaled to ū (numpy here), relative to the output.
    A difference of scale alone between the halves is no error of the output: the estimate of a
    net whose halves differ only in scale is zero, where the unscaled comparison is not."""
    e = torch.from_numpy(standin_moduli(4, 5))  # [4, 1, 32, 32] MPa
    model = _model(symmetrize=True, mean_strain=True)
    strain, estimate = model.forward_with_estimate(e)
    plain = model.normalizer.decode_output(model.net(model.normalizer.encode_input(e)))
    e_mirror, _ = mirror_x(e, torch.zeros(1, 3, 1, 1))
    raw_mirror = model.normalizer.decode_output(model.net(model.normalizer.encode_input(e_mirror)))
    _, back = mirror_x(e, raw_mirror)  # R f(M E)

    def to_mean(x: np.ndarray) -> np.ndarray:  # [N, 3, 32, 32] scaled to mean eps_xx = 0.1
        return x * (0.1 / x[:, 0].mean(axis=(1, 2)))[:, None, None, None]

    s = strain.double().numpy()
    d = to_mean(plain.double().numpy()) - to_mean(back.double().numpy())
    expected = measures.per_sample_measures(e.double().numpy(), d + s, s, "stress")
    np.testing.assert_allclose(estimate.numpy(), expected["energy_norm_error"], rtol=1e-4)

    # halves equal up to a factor: R f(M E) = 3 f(E) for a 1×1 convolution scaled by 3 on the
    # mirrored half (the second half of the batch) -- exactly equivariant up to scale
    class ScaledOnMirror(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 1)
            self.conv.weight.data[2] = 0.0
            self.conv.bias.data[2] = -model.normalizer.output_mean[0, 2, 0, 0] / 0.04

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)  # normalized; decoded = mean + std * y, so scale the decoded halves
            n = x.shape[0] // 2
            mean, std = model.normalizer.output_mean, model.normalizer.output_std
            decoded = mean + std * y
            decoded = torch.cat([decoded[:n], 3.0 * decoded[n:]])
            return (decoded - mean) / std

    model.net = ScaledOnMirror().eval()
    _, scaled_halves = model.forward_with_estimate(e)
    assert float(scaled_halves.abs().max()) <= 1e-5
    unscaled_model = _model(symmetrize=True, mean_strain=False)
    unscaled_model.net = model.net
    assert float(unscaled_model.forward_with_estimate(e)[1].min()) > 0.5  # |1 - 3| / 2


@torch.no_grad()
def test_estimate_is_zero_for_an_equivariant_net():
    e = torch.from_numpy(standin_moduli(4, 5))
    model = _model(symmetrize=True)
    model.net = nn.Conv2d(1, 3, 1).eval()  # 1×1 convolution: exactly x-mirror equivariant in ε
    model.net.weight.data[2] = 0.0  # γ_xy must flip sign under R: a pointwise map gives 0
    model.net.bias.data[2] = -model.normalizer.output_mean[0, 2, 0, 0] / 0.04
    _, estimate = model.forward_with_estimate(e)
    assert float(estimate.abs().max()) <= 1e-6


def test_plain_model_has_no_estimate():
    model = _model(symmetrize=False)
    assert not model.physics.has_error_estimate and not model.error_estimate
    assert model.output_names == (ONNX_OUTPUT,)
    assert model.forward_with_estimate(torch.from_numpy(standin_moduli(1, 0)))[1] is None


@pytest.mark.slow
def test_exported_estimate_keeps_the_strain_bit_identical(tmp_path):
    model = _model(symmetrize=True)
    with_path, without_path = tmp_path / "with.onnx", tmp_path / "without.onnx"
    export_onnx(model, with_path)
    model.error_estimate = False
    export_onnx(model, without_path)
    model.error_estimate = True
    check_graph(with_path, (ONNX_OUTPUT, ONNX_ERROR_ESTIMATE))
    check_graph(without_path, (ONNX_OUTPUT,))
    assert [o.name for o in onnx.load(str(with_path)).graph.output] == [
        ONNX_OUTPUT,
        ONNX_ERROR_ESTIMATE,
    ]
    with_estimate = SurrogateModel.from_onnx(with_path)
    without = SurrogateModel.from_onnx(without_path)
    assert with_estimate.has_error_estimate and not without.has_error_estimate
    e = parity_inputs(9, seed=4)  # [9, 1, 32, 32]
    strain, estimate = with_estimate.predict_with_estimate(e, batch_size=4)
    assert np.array_equal(strain, without.predict(e))  # bit for bit
    assert np.array_equal(strain, with_estimate.predict(e, batch_size=4))
    assert without.predict_with_estimate(e)[1] is None
    assert estimate is not None and estimate.shape == (9,) and estimate.dtype == np.float32
    whole = with_estimate.predict_with_estimate(e)[1]  # chunked = all at once
    np.testing.assert_allclose(estimate, whole, rtol=1e-6)
    assert max(parity_errors(model, with_path, (1, 5)).values()) <= PARITY_TOLERANCE
    with torch.no_grad():
        reference = model.forward_with_estimate(torch.from_numpy(e))[1].numpy()
    np.testing.assert_allclose(estimate, reference, rtol=1e-5)


def test_scoring_a_file_reports_how_well_the_estimate_ranks_the_errors(tmp_path):
    """``score_file`` (evaluate, export --judge-on) adds the estimate's quality on the file:
    Spearman's ρ against the true per-sample energy-norm error (checked against scipy), the
    medians and the flagged count; a model without an estimate adds nothing."""
    model = _model(symmetrize=True)
    export_onnx(model, tmp_path / "with.onnx")
    model.error_estimate = False
    export_onnx(model, tmp_path / "without.onnx")
    model.error_estimate = True
    data = write_standin_dataset(tmp_path / "d.h5", n=12, seed=5)
    with_estimate = SurrogateModel.from_onnx(tmp_path / "with.onnx")
    scored = score_file(with_estimate, data, chunk=5)  # chunks are gathered
    assert "error_estimate" not in score_file(
        SurrogateModel.from_onnx(tmp_path / "without.onnx"), data
    )
    samples = load_samples(data)
    strain, estimate = with_estimate.predict_with_estimate(samples.youngs_modulus)
    true = measures.per_sample_measures(
        samples.youngs_modulus, strain, samples.strain, samples.info.plane
    )["energy_norm_error"]
    quality = scored["error_estimate"]
    assert quality["spearman_energy_norm"] == pytest.approx(
        scipy.stats.spearmanr(estimate, true).statistic, abs=1e-9
    )
    assert quality["median_estimate"] == pytest.approx(float(np.median(estimate)), rel=1e-6)
    assert quality["median_energy_norm_error"] == pytest.approx(float(np.median(true)), rel=1e-6)
    assert quality["flagged"] == int((estimate > ERROR_ESTIMATE_WARNING).sum())
