"""Every registry network: construction, parameter counts, shapes, batch independence."""

import numpy as np
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


def test_res_unet_blocks_per_level():
    # one count per level, finest first: the extra blocks sit at the levels named, on both
    # sides of the U (the bottom level has one side)
    net = build("res-unet", widths=(8, 16, 32), blocks=[1, 2, 3])
    assert [len(stage) for stage in net.down] == [1, 2]
    assert [len(stage) for stage in net.up] == [1, 2]
    assert len(net.bottom) == 3
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    same = build("res-unet", widths=(8, 16, 32), blocks=[2, 2, 2])
    assert parameter_count(same) == parameter_count(build("res-unet", widths=(8, 16, 32), blocks=2))
    for bad in ([1, 2], [1, 0, 1], "[1,2,3]", [1, 1.5, 1]):  # a shell-quoted list stays text
        with pytest.raises(ValueError, match="one per level"):
            build("res-unet", widths=(8, 16, 32), blocks=bad)


def test_coordinate_channels_follow_the_image_convention():
    c = pixel_coordinates(32)  # [1, 2, 32, 32]
    x, y = c[0, 0], c[0, 1]
    assert x[0, 0] < x[0, -1]  # column 0 is the left edge x = 0
    assert y[0, 0] > y[-1, 0]  # row 0 is the top y = 1
    assert float(x[5, 0]) == pytest.approx(0.5 / 32)
    assert float(y[0, 5]) == pytest.approx(1 - 0.5 / 32)


def test_res_unet_batch_norm_option_replaces_every_group_norm():
    net = build("res-unet", widths=(8, 16), groups=4, norm="batch", activation="relu")
    kinds = {type(m) for m in net.modules()}
    assert torch.nn.BatchNorm2d in kinds and torch.nn.GroupNorm not in kinds
    default = build("res-unet", widths=(8, 16), groups=4)
    assert torch.nn.GroupNorm in {type(m) for m in default.modules()}
    assert parameter_count(net) == parameter_count(default)  # both norms have an affine pair
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        build("res-unet", widths=(8, 16), norm="layer")


@pytest.mark.slow
def test_batch_norm_res_unet_exports_with_its_norms_folded(tmp_path):
    """In eval mode a BatchNorm after a convolution is folded into it by the export: the graph
    keeps only the norms that follow a sum or a concatenation, and it computes what torch does
    with non-trivial running statistics."""
    import onnx
    import onnxruntime as ort

    from training.model import Surrogate
    from training.normalization import Normalizer
    from training.onnx_graph import PARITY_TOLERANCE, export_onnx
    from training.physics import Physics

    torch.manual_seed(0)
    net = build("res-unet", widths=(8, 16), groups=4, norm="batch", activation="relu")
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.data.uniform_(0.5, 1.5)
    net.eval()
    path = tmp_path / "bn.onnx"
    export_onnx(Surrogate(net, Normalizer(), Physics()), path)  # identity units and physics
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "InstanceNormalization" not in ops
    assert 0 < ops.count("BatchNormalization") < len(norms)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        expected = net(x).numpy()
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"E": x.numpy()}
    )
    # the export gate's own measure and tolerance (max abs error / output scale)
    assert np.abs(got - expected).max() / np.abs(expected).max() <= PARITY_TOLERANCE
