"""One service, several models (SPEC §8, §11 REST): lookup by name, GET /models, the periodic
answers (C_eff, unit cases, a macro load's fields) and their refusals, in JSON and .npy.

The in-process service serves the uniaxial fixture (``fixture``, the default) and the periodic
fixture (``periodic``), whose every output is known in closed form (support.models).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from support.models import reference_periodic, reference_strain

from microstrain.conventions import FIBER, MATRIX
from microstrain.quantities import engineering_constants
from serving.npy import write_npy


def post(client, body, path="/predict"):
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def error_of(response, status, *words):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message
    return message


@pytest.fixture
def periodic_e(mask) -> np.ndarray:
    """The disc of ``mask`` cut by the top edge (it wraps around), E in MPa ``[1, 1, 32, 32]``."""
    return np.roll(np.where(mask == 1, FIBER.youngs_modulus, MATRIX.youngs_modulus), 16, 0)[
        None, None
    ].astype(np.float32)


def test_models_lists_both_with_mode_plane_sizes_and_the_default(client):
    listing = client.get("/models").json()
    assert listing["default"] == "fixture"
    by_name = {m["name"]: m for m in listing["models"]}
    assert set(by_name) == {"fixture", "periodic"}
    assert by_name["fixture"]["mode"] == "uniaxial" and by_name["fixture"]["default"] is True
    assert by_name["periodic"]["mode"] == "periodic" and by_name["periodic"]["default"] is False
    assert by_name["periodic"]["plane"] == "strain" and by_name["fixture"]["plane"] == "stress"
    assert by_name["periodic"]["input_sizes"] == [32, 64]
    assert by_name["fixture"]["input_sizes"] == [32]


def test_a_request_without_model_reaches_the_default(client, youngs_modulus):
    plain = post(client, {"E": youngs_modulus.tolist()}).json()
    named = post(client, {"E": youngs_modulus.tolist(), "model": "fixture"}).json()
    assert plain["model"]["name"] == named["model"]["name"] == "fixture"
    expected = reference_strain(youngs_modulus[None, None])
    np.testing.assert_allclose(np.asarray(plain["strain"]), expected, rtol=1e-5, atol=1e-6)
    assert plain["strain"] == named["strain"]


@pytest.mark.parametrize("name", ["nope", "../../etc", "periodic/../fixture", "", "FIXTURE"])
def test_an_unknown_model_is_a_404_naming_the_served_ones(client, mask, name):
    error_of(post(client, {"fiber_mask": mask.tolist(), "model": name}), 404, "fixture", "periodic")
    r = client.post(f"/predict_npy?model={name}", content=write_npy(mask.astype(np.float32)))
    error_of(r, 404, "fixture", "periodic")
    error_of(client.get(f"/model?model={name}"), 404, "fixture")


def test_model_card_and_breakeven_per_model(client):
    assert client.get("/model?model=periodic").json()["input_sizes"] == [32, 64]
    assert client.get("/breakeven?model=periodic").json()["model"] == "periodic"
    assert client.get("/breakeven").json()["model"] == "fixture"


def test_periodic_unit_cases_and_c_eff(client, periodic_e):
    answer = post(client, {"model": "periodic", "E": periodic_e[0, 0].tolist()}).json()
    strain, c_eff, estimate = reference_periodic(periodic_e)
    assert answer["cases"] == ["xx", "yy", "xy"]
    np.testing.assert_allclose(np.asarray(answer["strain"]), strain, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(answer["C_eff"]), c_eff, rtol=1e-6)
    np.testing.assert_allclose(answer["error_estimate"], estimate, rtol=1e-6)
    constants = engineering_constants(np.asarray(answer["C_eff"]))
    for name in ("E_1", "E_2", "nu_12", "G_12"):
        np.testing.assert_allclose(answer["engineering_constants"][name], constants[name])
        reuss, voigt = (answer["bounds"][name][k] for k in ("reuss", "voigt"))
        assert len(reuss) == len(voigt) == 1
    # the fixture's C_eff is the phases' Voigt average: E_1 sits on its Voigt bound
    np.testing.assert_allclose(
        answer["engineering_constants"]["E_1"], answer["bounds"]["E_1"]["voigt"], rtol=1e-5
    )


def test_a_macro_stress_gives_fields_whose_mean_strain_is_its_c_eff_inverse(client, periodic_e):
    stress = [100.0, 0.0, 0.0]
    answer = post(client, {"model": "periodic", "E": periodic_e.tolist(), "macro_stress": stress})
    answer = answer.json()
    c_eff = np.asarray(answer["C_eff"], np.float64)[0]  # [3, 3] as answered
    expected = np.linalg.solve(c_eff, stress)  # [3]
    strain = np.asarray(answer["strain"], np.float64)  # [1, 3, 32, 32]
    assert strain.shape == (1, 3, 32, 32)
    # exact up to the float32 fields (a strain of 4e-3 holds about 7 digits)
    np.testing.assert_allclose(strain[0].mean(axis=(1, 2)), expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(answer["macro_strain"][0], expected, rtol=1e-12)
    np.testing.assert_allclose(answer["macro_stress"][0], stress, atol=1e-9)
    assert answer["load"] == "macro_stress"


def test_a_macro_strain_is_the_superposition_of_the_unit_cases(client, periodic_e):
    load = [0.01, -0.002, 0.005]
    body = {"model": "periodic", "E": periodic_e.tolist(), "macro_strain": load}
    answer = post(client, {**body, "quantities": True}).json()
    cases = reference_periodic(periodic_e)[0].astype(np.float64)  # [1, 3, 3, 32, 32]
    expected = np.einsum("j,jcyx->cyx", np.asarray(load) / 0.1, cases[0])
    np.testing.assert_allclose(np.asarray(answer["strain"])[0], expected, rtol=1e-5, atol=1e-8)
    assert np.asarray(answer["stress"]).shape == (1, 3, 32, 32)
    assert np.asarray(answer["von_mises"]).shape == (1, 32, 32)
    assert answer["max_von_mises"][0] == pytest.approx(np.max(answer["von_mises"][0]), rel=1e-6)


def test_a_64_pixel_rve_is_answered_at_64(client, periodic_e):
    big = np.tile(periodic_e, (1, 1, 2, 2))  # [1, 1, 64, 64]: four periods of the same cell
    answer = post(client, {"model": "periodic", "E": big.tolist(), "macro_strain": [0, 0, 0.01]})
    assert answer.status_code == 200, answer.text
    assert np.asarray(answer.json()["strain"]).shape == (1, 3, 64, 64)
    r = post(client, {"model": "periodic", "E": np.tile(periodic_e, (1, 1, 3, 3)).tolist()})
    error_of(r, 422, "96", "32x32 or 64x64")
    error_of(post(client, {"E": big.tolist()}), 422, "32x32")  # the uniaxial model: 32 only


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"macro_stress": [100, 0]}, ["macro_stress", "three numbers", "2 values"]),
        ({"macro_strain": [0.1, 0, 0, 0]}, ["macro_strain", "three numbers"]),
        ({"macro_strain": "0.1,0,0"}, ["macro_strain", "three numbers"]),
        ({"macro_strain": [0.1, "x", 0]}, ["macro_strain", "numbers"]),
        ({"macro_strain": [0, 0, 0]}, ["zero"]),
        ({"macro_strain": [10, 0, 0]}, ["macro_strain", "percent"]),
        ({"macro_stress": [1e7, 0, 0]}, ["macro strain", "percent"]),
        ({"macro_strain": [0.1, 0, 0], "macro_stress": [1, 0, 0]}, ["not both"]),
        ({"applied_strain": 0.1}, ["periodic", "macro_strain"]),
        ({"plane": "stress"}, ["plane strain", "plane stress"]),
    ],
)
def test_bad_periodic_requests_are_422_naming_the_problem(client, periodic_e, extra, words):
    error_of(post(client, {"model": "periodic", "E": periodic_e.tolist(), **extra}), 422, *words)


def test_non_finite_loads_are_refused(client, periodic_e):
    text = json.dumps({"model": "periodic", "E": periodic_e.tolist(), "macro_stress": [1, 0, 0]})
    r = client.post(
        "/predict",
        content=text.replace("[1, 0, 0]", "[NaN, 0, 0]"),
        headers={"content-type": "application/json"},
    )
    error_of(r, 422, "macro_stress", "finite")


def test_a_load_on_the_uniaxial_model_names_the_periodic_one(client, mask):
    r = post(client, {"fiber_mask": mask.tolist(), "macro_stress": [1, 0, 0]})
    error_of(r, 422, "macro_stress", "periodic", "uniaxial")


def test_the_plane_of_the_model_is_named(client, mask):
    error_of(post(client, {"fiber_mask": mask.tolist(), "plane": "strain"}), 422, "plane stress")
    error_of(post(client, {"fiber_mask": mask.tolist(), "plane": "flat"}), 422, "stress, strain")
    assert post(client, {"fiber_mask": mask.tolist(), "plane": "stress"}).status_code == 200


def test_periodic_npy_with_a_load(client, periodic_e):
    r = client.post(
        "/predict_npy?model=periodic&macro_stress=100,0,0",
        content=write_npy(periodic_e),
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    strain = np.load(io.BytesIO(r.content), allow_pickle=False)  # [1, 3, 32, 32]
    c_eff = np.asarray(json.loads(r.headers["X-Microstrain-C-Eff"]), np.float64)[0]
    np.testing.assert_allclose(
        strain[0].astype(np.float64).mean(axis=(1, 2)),
        np.linalg.solve(c_eff, [100, 0, 0]),
        rtol=1e-5,
        atol=1e-9,
    )
    # the load's macro strain in its header is the one the fields carry
    macro = np.asarray(json.loads(r.headers["X-Microstrain-Macro-Strain"]), np.float64)[0]
    np.testing.assert_allclose(macro, np.linalg.solve(c_eff, [100, 0, 0]), rtol=1e-6)
    cases = client.post("/predict_npy?model=periodic", content=write_npy(periodic_e))
    assert np.load(io.BytesIO(cases.content)).shape == (1, 3, 3, 32, 32)
    error_of(
        client.post(
            "/predict_npy?model=periodic&macro_stress=1,x,0", content=write_npy(periodic_e)
        ),
        422,
        "macro_stress",
        "number",
    )
    error_of(
        client.post("/predict_npy?macro_strain=0.1,0,0", content=write_npy(periodic_e)),
        422,
        "uniaxial",
    )


def test_a_periodic_fe_check_answers_both_stiffnesses(client, periodic_e):
    from microstrain.quantities import effective_stiffness
    from serving.verify import fe_solver_available

    if not fe_solver_available():
        pytest.skip("no FE solver in this installation (dolfinx)")
    r = post(client, {"model": "periodic", "E": periodic_e.tolist()}, "/verify")
    assert r.status_code == 200, r.text
    answer = r.json()
    np.testing.assert_allclose(answer["C_eff"], reference_periodic(periodic_e)[1], rtol=1e-6)
    cases_fe = np.asarray(answer["strain_fe"], np.float64)  # [1, 3, 3, 32, 32]
    # FE's stiffness is the one of its own fields, as its float32 answer gives them
    expected = effective_stiffness(periodic_e, cases_fe, "strain", 0.1)
    np.testing.assert_allclose(answer["C_eff_fe"], expected, rtol=1e-5)
    constants = engineering_constants(np.asarray(answer["C_eff_fe"]))
    for name, values in answer["engineering_constants_fe"].items():
        np.testing.assert_allclose(values, constants[name], rtol=1e-12)


def test_a_macro_stress_on_a_singular_c_eff_is_a_422(periodic_model_dir, periodic_e, monkeypatch):
    """No trained model should predict a singular C_eff, so the fixture's prediction is replaced
    by one whose shear stiffness vanishes: the load cannot be carried, and the answer says so."""
    from microstrain.surrogate import PeriodicPrediction
    from serving import periodic
    from serving.registry import load_model
    from serving.validation import RequestError

    served = load_model(periodic_model_dir, 1, ())
    real = served.run_periodic(periodic_e)
    singular = real.c_eff.copy()
    singular[:, 2, 2] = 0.0  # [1, 3, 3]: no shear stiffness
    fake = PeriodicPrediction(real.strain, singular, real.error_estimate)
    monkeypatch.setattr(served, "run_periodic", lambda e: fake)
    load = periodic.Load("macro_stress", np.array([0.0, 0.0, 50.0]))
    with pytest.raises(RequestError, match="singular or ill-conditioned") as caught:
        periodic.answer(served, periodic_e, load, with_quantities=False)
    assert caught.value.status == 422 and "'periodic'" in str(caught.value)
