"""Every registry network: construction, parameter counts, shapes, batch independence."""

import pytest
import torch

from training.architectures import REGISTRY, build, parameter_count
from training.architectures.resunet import pixel_coordinates

# The lecture's slide (NN1, NN2, NN3): these counts are part of the contract.
LECTURE_COUNTS = {"course-cnn": 38_405, "course-unet": 94_978, "course-unet-cnn": 154_471}


@pytest.mark.parametrize("name", sorted(LECTURE_COUNTS))
def test_lecture_parameter_counts_are_exact(name):
    assert parameter_count(REGISTRY[name]()) == LECTURE_COUNTS[name]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_entry_maps_modulus_to_three_strain_channels(name):
    torch.manual_seed(0)
    net = REGISTRY[name]()
    x = torch.randn(3, 1, 32, 32)
    net.train()
    y = net(x)
    assert y.shape == (3, 3, 32, 32)
    assert torch.isfinite(y).all()
    y.square().mean().backward()  # every entry trains
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_eval_mode_predictions_do_not_depend_on_the_rest_of_the_batch(name):
    """Exported models are called with any batch: sample i must not see sample j."""
    torch.manual_seed(0)
    net = REGISTRY[name]().eval()
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        together = net(x)
        alone = torch.cat([net(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_unknown_architecture_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        build("nope")


def test_res_unet_options_change_the_network():
    small = parameter_count(build("res-unet", widths=(8, 16, 32), blocks=1))
    bigger = parameter_count(build("res-unet", widths=(8, 16, 32), blocks=2))
    assert bigger > small
    net = build("res-unet", widths=(8, 16), coords=False, groups=4, activation="silu")
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_coordinate_channels_follow_the_image_convention():
    c = pixel_coordinates(32)  # [1, 2, 32, 32]
    x, y = c[0, 0], c[0, 1]
    assert x[0, 0] < x[0, -1]  # column 0 is the left edge x = 0
    assert y[0, 0] > y[-1, 0]  # row 0 is the top y = 1
    assert float(x[5, 0]) == pytest.approx(0.5 / 32)
    assert float(y[0, 5]) == pytest.approx(1 - 0.5 / 32)
