"""The generic LightningModule, the normalizer and the SPEC §9 metrics it logs."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from microstrain.conventions import FIBER, MATRIX
from training.data import StrainDataModule
from training.measures import LOGGED_MEASURES, ErrorMeasures, measures_of, strain_relative_l2
from training.module import CHECKPOINT_KEY, StrainRegressor
from training.normalization import channel_statistics, fit_normalizer


def _trainer(tmp_path, epochs: int, **kw) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )


# --- metrics: the SPEC §9 measures, per sample then the mean ----------------------------------
def test_strain_relative_l2_of_a_scaled_field_is_the_scale_error_per_sample():
    torch.manual_seed(0)
    true = torch.randn(3, 3, 32, 32)
    got = strain_relative_l2(1.25 * true, true)  # float32 fields: 0.25 to float32 round-off
    torch.testing.assert_close(got, torch.full((3,), 0.25, dtype=torch.float64), rtol=1e-6, atol=0)


def test_samples_weigh_the_same_whatever_their_strain():
    """Per sample, then the mean (SPEC §9): a sample of errors 0.1 and one of 0.3 average to 0.2
    however large either's strain is; a pooled ratio would weigh the large one."""
    true = torch.ones(2, 3, 32, 32)
    true[1] *= 100.0  # a hundred times the strain
    pred = true.clone()
    pred[0] *= 1.1
    pred[1] *= 1.3
    fiber = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    got = measures_of(pred, true, fiber)
    assert got["strain_relative_l2"] == pytest.approx(0.2, rel=1e-6)
    assert got["strain_relative_l2_eps_xx"] == pytest.approx(0.2, rel=1e-6)


def test_epoch_measures_equal_the_measures_of_the_concatenated_batches():
    torch.manual_seed(1)
    true, pred = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)
    fiber = torch.rand(6, 1, 32, 32) < 0.3
    metric = ErrorMeasures()
    for i in range(0, 6, 4):
        metric.update(pred[i : i + 4], true[i : i + 4], fiber[i : i + 4])
    got = metric.compute()
    want = measures_of(pred, true, fiber)
    for k in LOGGED_MEASURES:
        assert float(got[k]) == pytest.approx(want[k], rel=1e-6), k


# --- normalizer -----------------------------------------------------------------------------
def test_normalizer_round_trip_and_constants():
    torch.manual_seed(0)
    e = torch.where(torch.rand(5, 1, 32, 32) < 0.3, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    s = torch.randn(5, 3, 32, 32) * torch.tensor([0.05, 0.02, 0.1]).view(1, 3, 1, 1) + 0.1
    norm = fit_normalizer([(e, s)])
    torch.testing.assert_close(norm.decode_output(norm.encode_output(s)), s)
    assert float(norm.encode_input(e).mean()) == pytest.approx(0.0, abs=1e-5)
    constants = norm.to_dict()
    assert constants["output"]["gamma_xy"]["std"] == pytest.approx(
        float(s[:, 2].std(unbiased=False)), rel=1e-4
    )
    assert constants["input"]["mean"] == pytest.approx(float(e.double().mean()), rel=1e-6)


def test_streamed_channel_statistics_equal_the_one_shot_ones():
    rng = np.random.default_rng(0)
    values = rng.normal([[500.0], [-20.0], [3.0]], [[900.0], [150.0], [0.01]], size=(11, 3, 1024))
    values = values.reshape(11, 3, 32, 32)
    chunks = [torch.from_numpy(values[a:b]) for a, b in ((0, 1), (1, 5), (5, 5), (5, 11))]
    mean, std = channel_statistics(iter(chunks))  # a generator: one pass
    np.testing.assert_allclose(mean.flatten(), values.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std.flatten(), values.std(axis=(0, 2, 3)), rtol=1e-12)


# --- training -------------------------------------------------------------------------------
def test_loss_decreases_on_a_tiny_dataset(tmp_path, standin_h5):
    pl.seed_everything(0)
    dm = StrainDataModule(str(standin_h5), batch_size=8)
    model = StrainRegressor("course-cnn", lr=3e-3)
    dm.setup("fit")
    model.normalizer.load_state_dict(fit_normalizer(dm.training_pieces()).state_dict())
    e, s, fiber = dm.train_set.youngs_modulus, dm.train_set.strain, dm.train_set.fiber
    with torch.no_grad():
        before = measures_of(model.eval().predict_strain(e), s, fiber)["strain_relative_l2"]
    model.train()
    trainer = _trainer(tmp_path, epochs=15, enable_checkpointing=False)
    trainer.fit(model, dm)
    with torch.no_grad():
        after = measures_of(model.eval().predict_strain(e), s, fiber)["strain_relative_l2"]
    assert after < 0.5 * before
    assert model.best_val_metrics["strain_relative_l2"] < 1.0
    assert model.train_seconds > 0


@pytest.mark.parametrize("arch", ["course-unet", "res-unet"])
def test_checkpoint_reload_gives_identical_predictions(tmp_path, standin_h5, arch):
    pl.seed_everything(0)
    dm = StrainDataModule(str(standin_h5), batch_size=16)
    kwargs = {"widths": [8, 16, 32], "groups": 4} if arch == "res-unet" else {}
    model = StrainRegressor(arch, arch_kwargs=kwargs, schedule="power")
    trainer = _trainer(tmp_path, epochs=2)
    trainer.fit(model, dm)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = StrainRegressor.load_from_checkpoint(path, map_location="cpu")
    assert loaded.hparams.arch == arch and loaded.hparams.arch_kwargs == kwargs
    e = dm.val_set.youngs_modulus
    with torch.no_grad():
        a, b = model.physical_model().strain(e), loaded.physical_model().strain(e)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not loaded.physical_model().training
    for name, buf in fit_normalizer(dm.training_pieces()).state_dict().items():
        torch.testing.assert_close(loaded.normalizer.state_dict()[name], buf, rtol=0, atol=0)
    extras = torch.load(path, weights_only=False)[CHECKPOINT_KEY]
    assert extras["train_seconds"] > 0 and extras["hardware"].startswith("CPU")
    best, last = extras["best_val_metrics"], extras["val_metrics"]
    assert best["strain_relative_l2"] <= last["strain_relative_l2"]  # the best is no worse
    assert extras["val_metrics"]["epoch"] == 1  # the weights saved are those of the last epoch
    assert loaded.val_results == extras["val_metrics"]


def test_physical_model_maps_raw_modulus_to_raw_strain(standin_h5):
    dm = StrainDataModule(str(standin_h5))
    dm.setup("fit")
    model = StrainRegressor("course-cnn")
    norm = fit_normalizer(dm.training_pieces())
    model.normalizer.load_state_dict(norm.state_dict())
    model.eval()
    e = dm.val_set.youngs_modulus[:3]
    phys = model.physical_model()
    with torch.no_grad():
        want = norm.decode_output(model.net(norm.encode_input(e)))
        torch.testing.assert_close(phys.strain(e), want)


def test_power_schedule_follows_the_lecture_formula(tmp_path, standin_h5):
    model = StrainRegressor(
        "course-cnn", lr=1e-2, schedule="power", schedule_beta=0.5, schedule_alpha=-1.0
    )
    trainer = _trainer(tmp_path, epochs=3, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(model, StrainDataModule(str(standin_h5)))
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(1e-2 * (0.5 * 3 + 1) ** -1.0)


class _Logged(pl.Callback):
    """Every epoch's logged validation values (read after the module has logged them: a
    callback's on_validation_epoch_end runs before the module's)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        logged = trainer.callback_metrics
        self.epochs.append({k: float(v) for k, v in logged.items() if k.startswith("val/")})


@pytest.mark.parametrize(
    ("monitor", "mode"), [("val/energy_norm_error", "min"), ("val/strain_relative_l2", "max")]
)
def test_best_val_metrics_are_best_by_the_configured_monitor(tmp_path, standin_h5, monitor, mode):
    from pytorch_lightning.callbacks import ModelCheckpoint

    pl.seed_everything(0)
    model = StrainRegressor("course-cnn", lr=3e-3)
    logged = _Logged()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor=monitor, mode=mode)
    trainer = _trainer(tmp_path, epochs=4, callbacks=[checkpoint, logged])
    trainer.fit(model, StrainDataModule(str(standin_h5), batch_size=8))
    values = [e[monitor] for e in logged.epochs]
    assert len(values) == 4 and len(set(values)) == 4
    best = values.index(min(values) if mode == "min" else max(values))
    assert model.best_val_metrics["epoch"] == best
    key = monitor.removeprefix("val/")
    assert model.best_val_metrics[key] == pytest.approx(values[best], rel=1e-6)
    assert float(checkpoint.best_model_score) == pytest.approx(values[best], rel=1e-6)
