"""The surrogate's home (training/model.py): construction, a stored reference output, reload from
every weights source, ONNX parity at the export gate, and recovery from an exported graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support.datasets import standin_moduli, standin_strain

from microstrain.conventions import CARD_FILE, MODEL_FILE, ONNX_ERROR_ESTIMATE, ONNX_OUTPUT
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of
from training.model import Surrogate, SurrogateConfig
from training.module import StrainRegressor
from training.onnx_graph import PARITY_TOLERANCE, check_graph, check_parity, export_onnx
from training.recover_weights import compare_graphs, recover
from training.weights import WEIGHTS_FILE, save_weights

# not "data/": under pytest a tests/training/data directory would shadow training.data
REFERENCE = Path(__file__).parent / "stored" / "surrogate_reference.npz"
# every uniaxial option on; each half trained by itself, so the estimate is an output
OPTIONS = {
    "output_space": "stress",
    "mean_strain": True,
    "symmetrize": True,
    "symmetrize_training": False,
    "plane": "stress",
}
TINY = {"widths": [8, 16], "groups": 4}


def _config(norm: str = "group", **options: object) -> SurrogateConfig:
    return SurrogateConfig("res-unet", {**TINY, "norm": norm}, "uniaxial", {**OPTIONS, **options})


def _surrogate(norm: str = "group") -> Surrogate:
    """A fixed-seed tiny surrogate with units fitted on stand-in samples, in eval mode."""
    torch.manual_seed(0)
    surrogate = Surrogate.from_config(_config(norm))
    e = torch.from_numpy(standin_moduli(16, seed=3))  # [16, 1, 32, 32] MPa
    surrogate.fit_normalizer([(e, torch.from_numpy(standin_strain(e.numpy())))])
    if norm == "batch":  # running statistics that are not the identity
        for m in surrogate.net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
    return surrogate.eval()


def _inputs() -> torch.Tensor:
    return torch.from_numpy(standin_moduli(3, seed=7))  # [3, 1, 32, 32] MPa


def test_construction_names_the_graph_outputs_and_holds_only_weights_and_units():
    surrogate = _surrogate()
    assert surrogate.output_names == (ONNX_OUTPUT, ONNX_ERROR_ESTIMATE)
    assert surrogate.physics.network_channels == 3 and surrogate.normalizer.output == "stress"
    assert {k.split(".")[0] for k in surrogate.state_dict()} == {"net", "normalizer"}
    with torch.no_grad():
        out = surrogate(_inputs())
    assert list(out) == list(surrogate.output_names)
    assert out[ONNX_OUTPUT].shape == (3, 3, 32, 32) and out[ONNX_ERROR_ESTIMATE].shape == (3,)
    # mean_strain: the domain mean of eps_xx is exactly ū (float32 round-off)
    mean = out[ONNX_OUTPUT][:, 0].double().mean(dim=(1, 2))
    torch.testing.assert_close(mean, torch.full((3,), 0.1, dtype=torch.float64), atol=1e-8, rtol=0)
    plain = Surrogate.from_config(_config(symmetrize=False))
    assert plain.output_names == (ONNX_OUTPUT,) and not plain.error_estimate
    with pytest.raises(MicrostrainError, match="unknown physics"):
        Surrogate.from_config(SurrogateConfig("res-unet", TINY, "biaxial", {}))


def test_a_fixed_seed_surrogate_reproduces_its_stored_reference_output():
    """The outputs of a fixed-seed tiny surrogate were stored once (``stored/``); any change of
    the composition, the physics or the units' fitting shows here. Compared in the export
    gate's measure (max |difference| / output scale)."""
    with torch.no_grad():
        out = _surrogate()(_inputs())
    stored = np.load(REFERENCE)
    assert sorted(stored.files) == sorted(out)
    for name, value in out.items():
        reference = stored[name]
        scale = max(float(np.abs(reference).max()), 1.0 if name == ONNX_ERROR_ESTIMATE else 0.0)
        assert np.abs(value.numpy() - reference).max() / scale <= PARITY_TOLERANCE, name


def test_weights_pt_and_a_model_directory_reload_the_same_surrogate(tmp_path):
    surrogate = _surrogate()
    directory = tmp_path / "model"
    directory.mkdir()
    weights = save_weights(surrogate.state_dict(), _config(), directory / WEIGHTS_FILE)
    (directory / CARD_FILE).write_text(json.dumps({"weights_sha256": sha256_of(weights)}))
    e = _inputs()
    with torch.no_grad():
        expected = surrogate(e)
        for source in (weights, directory):
            got = Surrogate.from_checkpoint(source)(e)
            for name in expected:
                assert torch.equal(got[name], expected[name]), (source, name)
    (directory / CARD_FILE).write_text(json.dumps({"weights_sha256": "0" * 64}))
    with pytest.raises(MicrostrainError, match="does not match the sha256"):
        Surrogate.from_checkpoint(directory)


def test_a_lightning_checkpoint_reloads_the_surrogate_it_trained(tmp_path):
    import pytorch_lightning as pl

    torch.manual_seed(0)
    module = StrainRegressor("res-unet", {**TINY, "norm": "group"}, **OPTIONS)
    trainer = pl.Trainer(max_epochs=0, logger=False, enable_checkpointing=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    e = _inputs()
    with torch.no_grad():
        expected = module.eval().surrogate(e)
        got = Surrogate.from_checkpoint(tmp_path / "run.ckpt")(e)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_onnx_parity_within_the_export_gate(tmp_path, norm):
    surrogate = _surrogate(norm)
    path = tmp_path / MODEL_FILE
    export_onnx(surrogate, path)
    check_graph(path, surrogate.output_names)
    # the gate export applies, with its own tolerance, at every batch size it checks
    assert max(check_parity(surrogate, path, (1, 5), PARITY_TOLERANCE).values()) <= (
        PARITY_TOLERANCE
    )


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["group", "batch"])
def test_a_graph_rebuilt_from_its_own_initializers_exports_bit_identically(tmp_path, norm):
    """recover_weights: weights.pt from model.onnx alone, only when the re-export is
    bit-identical; model.onnx is left byte-identical."""
    surrogate = _surrogate(norm)
    directory = tmp_path / "model"
    directory.mkdir()
    export_onnx(surrogate, directory / MODEL_FILE)
    hparams = {"arch": "res-unet", "arch_kwargs": {**TINY, "norm": norm}, **OPTIONS}
    card = {"training": {"config": {"model": hparams}}}
    (directory / CARD_FILE).write_text(json.dumps(card))
    before = sha256_of(directory / MODEL_FILE)
    result = recover(directory)
    assert result["bit_identical"] and set(result["max_abs_difference"].values()) == {0.0}
    assert sha256_of(directory / MODEL_FILE) == before
    assert json.loads((directory / CARD_FILE).read_text())["weights_sha256"] == sha256_of(
        directory / WEIGHTS_FILE
    )
    rebuilt = Surrogate.from_checkpoint(directory)
    export_onnx(rebuilt, tmp_path / "again.onnx")
    assert set(compare_graphs(directory / MODEL_FILE, tmp_path / "again.onnx").values()) == {0.0}


def test_init_from_a_model_directory_starts_from_its_weights_pt(tmp_path):
    """``--model.init_from models/NAME``: the shipped weights and units, and the model's
    T_train as the start's cost."""
    surrogate = _surrogate()
    directory = tmp_path / "model"
    directory.mkdir()
    weights = save_weights(surrogate.state_dict(), _config(), directory / WEIGHTS_FILE)
    card = {"weights_sha256": sha256_of(weights), "T_train": 12.5}
    (directory / CARD_FILE).write_text(json.dumps(card))
    module = StrainRegressor(
        "res-unet", {**TINY, "norm": "group"}, init_from=str(directory), **OPTIONS
    )
    module.setup("fit")
    started = module.surrogate.state_dict()
    for key, value in surrogate.state_dict().items():
        assert torch.equal(started[key], value), key
    assert module.init_seconds == 12.5
