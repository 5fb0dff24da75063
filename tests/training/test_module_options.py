"""The StrainRegressor's options: loss, output space, mean strain, symmetry, plane, §9 measures.

Plumbing on the stand-in file (``support.datasets``), tiny networks, one or two epochs. The
physics of each option is tested in test_physics.py; here: that the module uses each option as
it says, that the defaults compute the bare network's MSE step, and what is logged and restored.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from support.cli import invoke
from support.datasets import write_standin_dataset
from torch.nn import functional as F

from microstrain.errors import MicrostrainError
from microstrain.measures import ErrorAccumulator
from microstrain.quantities import quantities
from microstrain.surrogate import SurrogateModel
from training import measures as tm
from training.batch import StrainBatch
from training.data import StrainDataModule
from training.export import ExportConfig, export_checkpoint
from training.measures import LOGGED_MEASURES
from training.module import MONITOR, StrainRegressor
from training.normalization import Normalizer, fit_normalizer
from training.onnx_graph import PARITY_TOLERANCE, parity_inputs

REPO = Path(__file__).resolve().parents[2]
ALL_OPTIONS = {"output_space": "stress", "mean_strain": True, "symmetrize": True}
QUIET = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}


def _trainer(tmp_path, **kw) -> pl.Trainer:
    kw = {"max_epochs": 1, "accelerator": "cpu", "default_root_dir": tmp_path, **QUIET, **kw}
    return pl.Trainer(**kw)


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


class _Today(StrainRegressor):
    """The bare network's training step written out by hand: MSE on normalized strain."""

    def _step(self, batch):
        youngs_modulus, strain, _ = batch
        y = self.net(self.normalizer.encode_input(youngs_modulus))
        loss = F.mse_loss(y.float(), self.normalizer.encode_output(strain))
        return loss, self.normalizer.decode_output(y.float())


def _fit(cls, tmp_path, h5, epochs=2, **model_kw):
    pl.seed_everything(0)
    model = cls("course-cnn", lr=3e-3, **model_kw)
    losses = _Losses()
    trainer = _trainer(tmp_path, max_epochs=epochs, enable_checkpointing=False, callbacks=[losses])
    trainer.fit(model, StrainDataModule(str(h5), batch_size=8))
    return model, losses.values


# --- defaults ---------------------------------------------------------------------------------
def test_defaults_train_as_the_bare_network_does(tmp_path, standin_h5):
    model, losses = _fit(StrainRegressor, tmp_path, standin_h5)
    _, reference = _fit(_Today, tmp_path, standin_h5)
    # the surrogate compares encode(decode(y)) where the hand-written step compares y: the
    # same steps to float32 round-off (a few ulps of the loss), not a different training
    assert len(losses) == 10
    np.testing.assert_allclose(losses, reference, rtol=1e-6)
    assert model.physics.is_identity and model.hparams.loss == "mse"
    state = set(model.state_dict())
    assert state == set(StrainRegressor("course-cnn", **ALL_OPTIONS).state_dict())
    # the weights and units of the surrogate, nothing else
    assert all(k.startswith(("surrogate.net.", "surrogate.normalizer.")) for k in state)


# --- losses -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def batch(standin_h5) -> StrainBatch:
    dm = StrainDataModule(str(standin_h5))
    dm.setup("fit")
    assert dm.train_set is not None
    return dm.train_set.batch(list(range(8)))


@pytest.mark.parametrize(
    "loss", ["energy", "stress", "energy+stress", "strain", "energy+stress+strain"]
)
def test_a_loss_option_changes_the_loss_and_nothing_else(batch, loss):
    torch.manual_seed(0)
    plain = StrainRegressor("course-cnn")
    other = StrainRegressor("course-cnn", loss=loss)
    other.load_state_dict(plain.state_dict())
    with torch.no_grad():
        mse, pred = plain._step(batch)
        value, pred_other = other._step(batch)
    torch.testing.assert_close(pred_other, pred, rtol=0, atol=0)
    _, strain, fiber = batch
    energy = tm.energy_norm_loss(fiber, pred, strain, "stress")
    stress = tm.stress_loss(fiber, pred, strain, "stress")
    rel = ((pred - strain).square().sum(dim=(1, 2, 3)) / strain.square().sum(dim=(1, 2, 3))).mean()
    want = {
        "energy": energy,
        "stress": stress,
        "energy+stress": energy + stress,
        "strain": rel,
        "energy+stress+strain": energy + stress + rel,
    }[loss]
    torch.testing.assert_close(value, want, rtol=1e-6, atol=0)
    assert float(value) != pytest.approx(float(mse))
    assert float(other._loss(strain, strain, fiber)) == 0.0  # the exact field costs nothing


def test_mse_of_a_stress_space_model_compares_normalized_stress(batch):
    torch.manual_seed(0)
    model = StrainRegressor("course-cnn", output_space="stress")
    _, strain, fiber = batch
    with torch.no_grad():
        loss, pred = model._step(batch)
    encode = model.normalizer.encode_output
    sigma, sigma_true = tm.stress(fiber, pred, "stress"), tm.stress(fiber, strain, "stress")
    torch.testing.assert_close(loss, F.mse_loss(encode(sigma), encode(sigma_true)))


# --- output space and plane from the data -----------------------------------------------------
def test_stress_space_normalizes_with_the_training_stresses(tmp_path, standin_h5):
    model = StrainRegressor("course-cnn", output_space="stress")
    dm = StrainDataModule(str(standin_h5), batch_size=8)
    _trainer(tmp_path, fast_dev_run=1).fit(model, dm)
    assert dm.train_set is not None
    e, strain = dm.train_set.youngs_modulus.numpy(), dm.train_set.strain.numpy()
    sigma = quantities(e, strain, "stress", 0.1)["stress"].astype(np.float64)  # the numpy core
    norm = model.normalizer
    np.testing.assert_allclose(norm.output_mean.flatten(), sigma.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(norm.output_std.flatten(), sigma.std(axis=(0, 2, 3)), rtol=1e-6)
    strain_units = fit_normalizer(dm.training_pieces())
    assert float(norm.input_mean) == float(strain_units.input_mean)  # the input is as before
    card = norm.to_dict()
    assert list(card["output"]) == ["sigma_xx", "sigma_yy", "tau_xy"]
    assert "stress" in card["output_quantity"]


@pytest.fixture(scope="module")
def plane_strain_h5(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("strain") / "plane_strain.h5"
    return str(write_standin_dataset(path, n=24, plane="strain"))


def test_the_plane_comes_from_the_data_and_is_recorded(tmp_path, plane_strain_h5):
    model = StrainRegressor("course-cnn", loss="energy", output_space="stress")
    assert model.hparams.plane is None
    _trainer(tmp_path, fast_dev_run=1).fit(model, StrainDataModule(plane_strain_h5, batch_size=8))
    assert model.hparams.plane == "strain"  # saved with the checkpoint
    assert model.physics.plane == model.val_measures.plane == model.test_measures.plane == "strain"
    assert model.physics.output_space == "stress"


def test_a_plane_contradicting_the_data_is_refused(tmp_path, plane_strain_h5):
    model = StrainRegressor("course-cnn", plane="stress")
    with pytest.raises(MicrostrainError, match=r"plane stress.*plane strain"):
        _trainer(tmp_path, fast_dev_run=1).fit(model, StrainDataModule(plane_strain_h5))


def test_unknown_options_are_refused():
    with pytest.raises(MicrostrainError, match="loss"):
        StrainRegressor("course-cnn", loss="l1")  # type: ignore[arg-type]
    with pytest.raises(MicrostrainError, match="output_space"):
        StrainRegressor("course-cnn", output_space="displacement")  # type: ignore[arg-type]
    # the network's own options: one MicrostrainError naming the problem, not a traceback
    with pytest.raises(MicrostrainError, match="unknown norm 'nope'"):
        StrainRegressor("res-unet", arch_kwargs={"norm": "nope"})
    with pytest.raises(MicrostrainError, match="unexpected keyword argument 'widht'"):
        StrainRegressor("res-unet", arch_kwargs={"widht": [8, 16]})
    with pytest.raises(MicrostrainError, match="unknown architecture 'nope'"):
        StrainRegressor("nope")


# --- measures logged, and a model with every option restored -----------------------------------
def _numpy_measures(model, samples, plane="stress") -> dict:
    acc = ErrorAccumulator(plane)
    with torch.no_grad():
        pred = model.eval().predict_strain(samples.youngs_modulus)
    acc.update(samples.youngs_modulus.numpy(), pred.numpy(), samples.strain.numpy())
    return acc.compute_flat()


def test_section9_measures_are_logged_on_validation_and_test(tmp_path, standin_h5):
    pl.seed_everything(0)
    model = StrainRegressor("course-cnn", loss="energy+stress", **ALL_OPTIONS)
    dm = StrainDataModule(str(standin_h5), batch_size=8)
    trainer = _trainer(tmp_path, max_epochs=2, enable_checkpointing=False)
    trainer.fit(model, dm)
    logged = trainer.callback_metrics
    assert dm.val_set is not None and dm.test_set is not None
    expected = _numpy_measures(model, dm.val_set)  # the last validation saw these weights
    for key in LOGGED_MEASURES:
        assert float(logged[f"val/{key}"]) == pytest.approx(expected[key], rel=1e-5), key
        assert model.val_results[key] == pytest.approx(expected[key], rel=1e-5), key
    assert MONITOR == "val/strain_relative_l2" and MONITOR in logged  # the default monitor
    trainer.test(model, dm, verbose=False)
    expected = _numpy_measures(model, dm.test_set)
    for key in LOGGED_MEASURES:
        assert model.test_results[key] == pytest.approx(expected[key], rel=1e-5), key
        assert f"test/{key}" in trainer.callback_metrics
    assert "strain_relative_l2_eps_xx" in model.test_results


def test_a_model_with_every_option_restores_from_its_checkpoint(tmp_path, plane_strain_h5):
    pl.seed_everything(0)
    model = StrainRegressor("course-cnn", loss="energy", **ALL_OPTIONS)
    dm = StrainDataModule(plane_strain_h5, batch_size=8)
    trainer = _trainer(tmp_path, enable_checkpointing=False)
    trainer.fit(model, dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = StrainRegressor.load_from_checkpoint(tmp_path / "m.ckpt", map_location="cpu")
    expected = {**ALL_OPTIONS, "plane": "strain", "symmetrize_training": True}
    assert loaded.physics.options() == model.physics.options() == expected
    assert isinstance(loaded.normalizer, Normalizer) and loaded.normalizer.output == "stress"
    assert dm.val_set is not None
    e = dm.val_set.youngs_modulus
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.physical_model()(e), model.physical_model()(e), rtol=0, atol=0
        )


# --- the config and the checkpoint monitor through `microstrain train` ------------------------
@pytest.mark.slow
def test_physics_config_trains_and_selects_by_the_energy_norm(tmp_path, standin_h5):
    runs = tmp_path / "runs"
    result = invoke(
        "train",
        "--config", REPO / "configs" / "res-unet-physics.yaml",
        "--model.arch_kwargs", '{"widths": [8, 16], "groups": 4}',
        "--data.path", standin_h5,
        "--data.batch_size", "16",
        "--trainer.max_epochs", "2",
        "--runs_dir", runs,
        "--name", "physics",
        "--images.n_samples", "0",
        "--checkpoint.filename", "best-{epoch:03d}-{val/energy_norm_error:.4f}",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    best = re.search(r"best checkpoint: (\S+)", result.stdout)
    assert best, result.output
    path = runs / "physics" / "version_0" / "checkpoints"
    # the '/' of the metric name is not in the file name: only its value is
    assert re.fullmatch(r"best-\d{3}-0\.\d{4}\.ckpt", best.group(1).split("/")[-1])
    assert (path / best.group(1).split("/")[-1]).is_file()
    raw = torch.load(best.group(1), map_location="cpu", weights_only=False)
    hp = raw["hyper_parameters"]
    assert (hp["loss"], hp["output_space"], hp["mean_strain"], hp["symmetrize"]) == (
        "energy",
        "stress",
        True,
        True,
    )
    assert hp["symmetrize_training"] is False  # symmetrized in eval only: halves supervised
    assert hp["plane"] == "stress"  # the stand-in file's
    callback = next(v for k, v in raw["callbacks"].items() if "ModelCheckpoint" in k)
    assert callback["monitor"] == "val/energy_norm_error"
    # the score it was selected by is its own validation energy-norm error
    own = raw["microstrain"]["val_metrics"]["energy_norm_error"]
    assert float(callback["best_model_score"]) == pytest.approx(own, rel=1e-6)

    # export: the card says which options the model was trained with, the graph keeps them
    card = export_checkpoint(
        best.group(1),
        tmp_path / "model",
        config=ExportConfig(timing_batch_size=8, timing_budget_s=0.05, timing_threads=(1,)),
    )
    options = card["training"]["config"]["model"]
    assert {k: options[k] for k in (*ALL_OPTIONS, "loss", "plane")} == {
        **ALL_OPTIONS,
        "loss": "energy",
        "plane": "stress",
    }
    assert list(card["normalization"]["output"]) == ["sigma_xx", "sigma_yy", "tau_xy"]
    surrogate = SurrogateModel.load(tmp_path / "model")
    assert surrogate.has_error_estimate  # on by default for halves trained by themselves
    assert card["onnx"]["parity_max_rel_error"] <= PARITY_TOLERANCE  # the estimate included
    e = parity_inputs(3)
    out, mirrored = surrogate.predict(e), surrogate.predict(np.ascontiguousarray(e[..., ::-1]))
    back = mirrored[..., ::-1] * np.array([1, 1, -1], dtype=np.float32).reshape(1, 3, 1, 1)
    assert np.abs(out - back).max() <= 1e-6 * np.abs(out).max()
    np.testing.assert_allclose(out[:, 0].astype(np.float64).mean(axis=(1, 2)), 0.1, rtol=1e-6)


# --- init_from: a run that starts from another run's weights ----------------------------------
TINY = {"widths": [8, 16], "groups": 4}


class _Start(pl.Callback):
    """The module's state when training starts (after setup, before the first step)."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.state = {k: v.clone() for k, v in pl_module.state_dict().items()}


@pytest.fixture(scope="module")
def group_checkpoint(tmp_path_factory, standin_h5) -> tuple[Path, dict[str, torch.Tensor]]:
    """A GroupNorm + GELU res-unet trained one epoch in stress space, and its state."""
    tmp = tmp_path_factory.mktemp("init")
    pl.seed_everything(0)
    model = StrainRegressor("res-unet", TINY, output_space="stress")
    trainer = _trainer(tmp, enable_checkpointing=False)
    trainer.fit(model, StrainDataModule(str(standin_h5), batch_size=8))
    path = tmp / "group.ckpt"
    trainer.save_checkpoint(path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def test_init_from_starts_a_batchnorm_run_from_groupnorm_weights(
    tmp_path, standin_h5, group_checkpoint
):
    path, source = group_checkpoint
    pl.seed_everything(1)
    kw = {**TINY, "norm": "batch", "activation": "relu"}
    model = StrainRegressor("res-unet", kw, output_space="stress", init_from=str(path))
    start = _Start()
    _trainer(tmp_path, fast_dev_run=1, callbacks=[start]).fit(
        model, StrainDataModule(str(standin_h5), batch_size=8)
    )
    state = start.state
    params = dict(model.named_parameters())
    assert len(params) > 10 and all(
        f"surrogate.net.{k}" in source for k in dict(model.net.named_parameters())
    )
    for name in params:  # every weight is the checkpoint's, the norms' affine ones included
        torch.testing.assert_close(state[name], source[name], rtol=0, atol=0)
    running = [k for k in state if k.endswith("running_var")]
    assert running and all(bool((state[k] == 1).all()) for k in running)  # fresh statistics
    for k in ("input_mean", "input_std", "output_mean", "output_std"):  # the checkpoint's units
        torch.testing.assert_close(
            state[f"surrogate.normalizer.{k}"], source[f"surrogate.normalizer.{k}"], rtol=0, atol=0
        )
    assert (
        float(source["surrogate.normalizer.output_std"].flatten()[0]) != 1.0
    )  # fitted, not the default
    parent = torch.load(path, weights_only=False)["microstrain"]["train_seconds"]
    assert parent > 0 and model.init_seconds == parent  # the start's cost counts in T_train
    assert model.train_seconds > parent and model.extras()["init_seconds"] == parent


@pytest.mark.parametrize(
    ("model_kw", "message"),
    [
        (
            {"arch_kwargs": {"widths": [8, 32], "groups": 4}, "output_space": "stress"},
            "other shapes of weights",
        ),
        (
            {"arch_kwargs": {"widths": [8, 16, 32], "groups": 4}, "output_space": "stress"},
            "lacks weights",
        ),
        ({"arch_kwargs": TINY, "output_space": "strain"}, "predicts stress, this model strain"),
    ],
)
def test_init_from_refuses_weights_of_another_model(group_checkpoint, model_kw, message):
    path, _ = group_checkpoint
    model = StrainRegressor("res-unet", init_from=str(path), **model_kw)
    with pytest.raises(MicrostrainError, match=f"init_from: .*{message}"):
        model.setup("fit")


def test_init_from_a_missing_or_foreign_file_is_one_error(tmp_path):
    foreign = tmp_path / "notes.ckpt"
    foreign.write_text("not a checkpoint")
    for path, message in (
        (tmp_path / "none.ckpt", "checkpoint not found"),
        (foreign, "cannot read"),
    ):
        model = StrainRegressor("res-unet", TINY, init_from=str(path))
        with pytest.raises(MicrostrainError, match=f"init_from: {message}"):
            model.setup("fit")
