"""`microstrain predict`: offline prediction with an exported model (onnxruntime, no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
import pytest
from support.cli import invoke
from support.models import make_model_dir, reference_strain

from microstrain.conventions import CARD_FILE, FIBER, MATRIX, MODEL_FILE, ONNX_INPUT, ONNX_OUTPUT
from microstrain.domain import out_of_distribution
from microstrain.quantities import QUANTITY_NAMES, quantities


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("models") / "fixture")


def _mask(n: int = 3, fraction: float = 0.35, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 32, 32)) < fraction).astype(np.float64)


def _as_modulus(mask: np.ndarray) -> np.ndarray:
    return np.where(mask > 0, FIBER.youngs_modulus, MATRIX.youngs_modulus)


def _predict(argv: list[str]) -> tuple[int, str, str]:
    result = invoke("predict", *argv)
    return result.exit_code, result.stdout, result.stderr


def test_mask_and_modulus_give_the_same_prediction(model_dir, tmp_path):
    mask = _mask()
    np.save(tmp_path / "mask.npy", mask)
    np.save(tmp_path / "E.npy", _as_modulus(mask)[:, None])  # [N, 1, 32, 32] form
    for name in ("mask", "E"):
        code, _, err = _predict(
            [
                str(model_dir),
                str(tmp_path / f"{name}.npy"),
                "-o",
                str(tmp_path / f"{name}_out.npy"),
            ]
        )
        assert code == 0, err
    from_mask = np.load(tmp_path / "mask_out.npy")
    assert from_mask.shape == (3, 3, 32, 32) and from_mask.dtype == np.float32
    np.testing.assert_array_equal(from_mask, np.load(tmp_path / "E_out.npy"))


def test_output_equals_a_direct_onnxruntime_call(model_dir, tmp_path):
    e = _as_modulus(_mask(5)).astype(np.float32)  # [5, 32, 32]
    np.save(tmp_path / "in.npy", e)
    code, _, err = _predict(
        [str(model_dir), str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.npy")]
    )
    assert code == 0, err
    session = ort.InferenceSession(str(model_dir / MODEL_FILE), providers=["CPUExecutionProvider"])
    (direct,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: e[:, None]})
    got = np.load(tmp_path / "o.npy")
    np.testing.assert_array_equal(got, direct)
    np.testing.assert_allclose(got, reference_strain(e[:, None]), rtol=1e-5, atol=1e-6)


def test_applied_strain_scales_the_prediction(model_dir, tmp_path):
    np.save(tmp_path / "in.npy", _mask(2))
    for u, name in ((0.1, "a.npy"), (0.025, "b.npy")):
        code, _, err = _predict(
            [str(model_dir), str(tmp_path / "in.npy"), "-o", str(tmp_path / name), "-u", str(u)]
        )
        assert code == 0, err
    np.testing.assert_allclose(
        np.load(tmp_path / "b.npy"), 0.25 * np.load(tmp_path / "a.npy"), rtol=1e-6
    )


def test_h5_in_and_out(model_dir, tmp_path):
    mask = _mask(1)[0]  # a single [32, 32] microstructure
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("fiber_mask", data=mask)
    code, stdout, err = _predict(
        [str(model_dir), str(tmp_path / "in.h5"), "-o", str(tmp_path / "out.h5")]
    )
    assert code == 0, err
    assert "1 sample," in stdout
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["strain"].shape == (1, 3, 32, 32)
        np.testing.assert_array_equal(f["E"][0, 0], _as_modulus(mask))
        assert f.attrs["model"] == "fixture"
        np.testing.assert_allclose(
            f["strain"][()], reference_strain(f["E"][()]), rtol=1e-5, atol=1e-6
        )
        # SPEC §7/§9: the quantities of the stored strain, in the card's plane, at ū
        assert f.attrs["plane"] == "stress" and f.attrs["applied_strain"] == 0.1
        expected = quantities(f["E"][()], f["strain"][()], "stress", 0.1)
        for name in QUANTITY_NAMES:
            np.testing.assert_array_equal(f[name][()], expected[name])
            assert f[name].attrs["unit"] in ("MPa", "1")


def test_h5_quantities_follow_the_plane_of_the_card(tmp_path):
    card_plane = make_model_dir(tmp_path / "plane-strain")
    card = json.loads((card_plane / CARD_FILE).read_text())
    card["training_data"]["load_case"]["plane"] = "strain"
    (card_plane / CARD_FILE).write_text(json.dumps(card))
    np.save(tmp_path / "in.npy", _mask(2))
    out = tmp_path / "out.h5"
    code, _, err = _predict(
        [str(card_plane), str(tmp_path / "in.npy"), "-o", str(out), "-u", "0.05"]
    )
    assert code == 0, err
    with h5py.File(out, "r") as f:
        assert f.attrs["plane"] == "strain" and f.attrs["applied_strain"] == 0.05
        expected = quantities(f["E"][()], f["strain"][()], "strain", 0.05)
        np.testing.assert_array_equal(f["E_x"][()], expected["E_x"])
        in_stress = quantities(f["E"][()], f["strain"][()], "stress", 0.05)
        assert not np.array_equal(f["E_x"][()], in_stress["E_x"])  # the plane mattered


def test_png_shows_strain_and_beneath_von_mises_and_stress(model_dir, tmp_path):
    np.save(tmp_path / "in.npy", _mask(2))
    png = tmp_path / "pic.png"
    code, _, err = _predict(
        [
            str(model_dir),
            str(tmp_path / "in.npy"),
            "-o",
            str(tmp_path / "o.npy"),
            "--png",
            str(png),
        ]
    )
    assert code == 0, err
    from PIL import Image

    with Image.open(png) as image:
        width, height = image.size
    assert 1.4 * height < width < 2.6 * height  # two rows of four panels


def test_out_of_distribution_warnings_are_the_ones_rest_gives(model_dir, tmp_path):
    masks = _mask(2, fraction=0.9)  # training range of the fixture: 0.2-0.5
    masks[1] = 0  # all matrix
    np.save(tmp_path / "in.npy", masks)
    code, _, err = _predict(
        [str(model_dir), str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.npy")]
    )
    card = json.loads((model_dir / CARD_FILE).read_text())
    warnings = out_of_distribution(_as_modulus(masks)[:, None], card)
    assert code == 0 and len(warnings) == 2
    assert err == "".join(f"warning: {w}\n" for w in warnings)
    assert "outside the training range [0.200, 0.500] for sample #0" in warnings[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.full((2, 32, 32), 5.0), "E values"),
        (np.zeros((2, 31, 32)), "32x32"),
        (np.array([[np.nan] * 32] * 32), "NaN"),
    ],
)
def test_bad_input_is_one_line_exit_1_and_no_output(model_dir, tmp_path, data, message):
    np.save(tmp_path / "bad.npy", data)
    out = tmp_path / "o.npy"
    code, _, err = _predict([str(model_dir), str(tmp_path / "bad.npy"), "-o", str(out)])
    assert code == 1 and err.startswith("error: ") and err.strip().count("\n") == 0
    assert message in err
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.npy"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{model}", "{tmp}/absent.npy", "-o", "{tmp}/o.npy"], "not found"),
        (["{tmp}/nomodel", "{tmp}/in.npy", "-o", "{tmp}/o.npy"], "model.onnx"),
        (["{model}", "{tmp}/in.npy", "-o", "{tmp}/o.txt"], "output format"),
        (["{model}", "{tmp}/in.npy", "-o", "{tmp}/nodir/o.npy"], "does not exist"),
        (["{model}", "{tmp}/in.npy", "-o", "{tmp}/o.npy", "-u", "nan"], "outside"),
        # the one rule of REST: |ū| ≤ 1 catches a percent given for a fraction
        (["{model}", "{tmp}/in.npy", "-o", "{tmp}/o.npy", "-u", "10"], "percent"),
        (["{model}", "{tmp}/in.npy", "-o", "{tmp}/o.npy", "-u", "0"], "outside 0 < |ū|"),
        (["{model}", "{tmp}/in.npy", "-o", "{tmp}/o.npy", "--plane", "strain"], "plane stress"),
        (["{model}", "{tmp}/in.npy", "-o", "{tmp}/o.npy", "--plane", "flat"], "stress, strain"),
        (["{model}", "{tmp}/in.png", "-o", "{tmp}/o.npy"], "not a readable PNG"),
    ],
)
def test_bad_arguments_are_one_line(model_dir, tmp_path, args, message):
    np.save(tmp_path / "in.npy", _mask(1))
    (tmp_path / "in.png").write_bytes(b"not a picture")
    argv = [a.format(model=model_dir, tmp=tmp_path) for a in args]
    code, _, err = _predict(argv)
    assert code == 1 and err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert message in err
    assert not (tmp_path / "o.npy").exists() and not (tmp_path / "o.txt").exists()


def test_a_png_mask_predicts_as_rest_reads_it(model_dir, tmp_path):
    from serving.images import mask_from_png, mask_to_png

    mask = _mask(1)[0]
    (tmp_path / "mask.png").write_bytes(mask_to_png(mask))
    np.save(tmp_path / "mask.npy", mask)
    for name in ("png", "npy"):
        code, _, err = _predict(
            [str(model_dir), str(tmp_path / f"mask.{name}"), "-o", str(tmp_path / f"{name}.npy")]
        )
        assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "png.npy"), np.load(tmp_path / "npy.npy"))
    e = mask_from_png((tmp_path / "mask.png").read_bytes())  # what /predict_image predicts for
    np.testing.assert_allclose(np.load(tmp_path / "png.npy"), reference_strain(e), atol=1e-6)


def test_the_models_plane_is_accepted(model_dir, tmp_path):
    np.save(tmp_path / "in.npy", _mask(1))
    out = tmp_path / "o.npy"
    code, _, err = _predict(
        [str(model_dir), str(tmp_path / "in.npy"), "-o", str(out), "--plane", "stress"]
    )
    assert code == 0 and out.is_file(), err


def test_predict_imports_no_torch(model_dir, tmp_path):
    np.save(tmp_path / "in.npy", _mask(1))
    code = (
        "import sys\n"
        "from microstrain_cli import main\n"
        "try:\n"
        f"    main(['predict', {str(model_dir)!r}, {str(tmp_path / 'in.npy')!r}, "
        f"'-o', {str(tmp_path / 'o.npy')!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('HEAVY:' + ','.join(m for m in ('torch', 'dolfinx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.rstrip().endswith("HEAVY:"), out.stdout
    assert (tmp_path / "o.npy").is_file()


def test_large_inputs_run_in_chunks_with_the_same_result(model_dir, tmp_path):
    e = _as_modulus(_mask(300)).astype(np.float32)[:, None]  # more than one chunk of 256
    np.save(tmp_path / "in.npy", e)
    out = tmp_path / "o.npy"
    code, _, err = _predict([str(model_dir), str(tmp_path / "in.npy"), "-o", str(out)])
    assert code == 0, err
    session = ort.InferenceSession(str(model_dir / MODEL_FILE), providers=["CPUExecutionProvider"])
    (direct,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: e})
    np.testing.assert_array_equal(np.load(out), direct)


def test_predict_leaves_the_model_directory_byte_identical(model_dir, tmp_path):
    before = {p.name: p.read_bytes() for p in Path(model_dir).iterdir()}
    np.save(tmp_path / "mask.npy", _mask())
    code, _, err = _predict(
        [str(model_dir), str(tmp_path / "mask.npy"), "-o", str(tmp_path / "out.h5"), "--png",
         str(tmp_path / "out.png")]
    )  # fmt: skip
    assert code == 0, err
    assert {p.name: p.read_bytes() for p in Path(model_dir).iterdir()} == before
