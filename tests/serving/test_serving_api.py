"""REST rules of SPEC §8 against the service in-process (BentoML's ASGI app, real onnxruntime)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from support.models import FIBER_FRACTION_RANGE, reference_strain

from microstrain.breakeven import format_tau
from microstrain.conventions import MAX_BATCH, STRAIN_CHANNELS, STRESS_CHANNELS
from microstrain.fields import fiber_fraction, to_youngs_modulus
from microstrain.measures import error_measures
from microstrain.quantities import (
    QUANTITY_NAMES,
    quantities,
    reuss_bound,
    uniform_strain_bound,
    voigt_bound,
)
from serving.images import mask_to_png
from serving.middleware import DEFAULT_MAX_BODY_BYTES


def post(client: Any, body: Any, path: str = "/predict") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=raw, headers={"content-type": "application/json"})


def strain_of(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["strain"], np.float32)


# --- happy paths -------------------------------------------------------------------------------


def test_single_E_map_matches_the_graph(client, youngs_modulus):
    r = post(client, {"E": youngs_modulus.tolist()})
    strain = strain_of(r)  # [1, 3, 32, 32]
    assert strain.shape == (1, 3, 32, 32)
    expected = reference_strain(to_youngs_modulus(youngs_modulus))
    np.testing.assert_allclose(strain, expected, rtol=1e-5, atol=1e-6)
    body = r.json()
    assert body["channels"] == list(STRAIN_CHANNELS)
    assert body["applied_strain"] == 0.1
    assert set(body["model"]) == {"name", "version", "sha256"}
    assert body["model"]["version"] == "test-1"
    assert body["warnings"] == []


@pytest.mark.parametrize("layout", ["N,32,32", "N,1,32,32"])
def test_batches_in_both_layouts(client, youngs_modulus, layout):
    batch = np.stack([youngs_modulus, youngs_modulus.T, np.fliplr(youngs_modulus)])  # [3,32,32]
    data = batch if layout == "N,32,32" else batch[:, None]
    strain = strain_of(post(client, {"E": data.tolist()}))
    assert strain.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(strain, reference_strain(batch[:, None]), rtol=1e-5, atol=1e-6)


def test_fiber_mask_gives_the_same_answer_as_E(client, mask, youngs_modulus):
    from_mask = strain_of(post(client, {"fiber_mask": mask.tolist()}))
    from_e = strain_of(post(client, {"E": youngs_modulus.tolist()}))
    np.testing.assert_array_equal(from_mask, from_e)


@pytest.mark.parametrize("applied", [0.05, -0.02, 1.0])
def test_applied_strain_scales_linearly(client, youngs_modulus, applied):
    base = strain_of(post(client, {"E": youngs_modulus.tolist()}))
    r = post(client, {"E": youngs_modulus.tolist(), "applied_strain": applied})
    np.testing.assert_allclose(strain_of(r), base * (applied / 0.1), rtol=1e-5, atol=1e-7)
    assert r.json()["applied_strain"] == applied


def test_integer_applied_strain_is_accepted(client, mask):
    assert post(client, {"fiber_mask": mask.tolist(), "applied_strain": 1}).status_code == 200


def test_out_of_distribution_fiber_fraction_is_a_warning(client):
    _, high = FIBER_FRACTION_RANGE
    dense = np.ones((32, 32), int)
    dense[:, :4] = 0  # fiber fraction 0.875 > high
    r = post(client, {"fiber_mask": [dense.tolist(), np.zeros((32, 32), int).tolist()]})
    assert r.status_code == 200
    warnings = r.json()["warnings"]
    assert any("fiber fraction outside" in w and "#0 (0.875)" in w for w in warnings), warnings
    assert any("single phase" in w for w in warnings), warnings
    assert f"{high:.3f}" in warnings[0]


def test_quantities_are_the_cores_for_the_requests_applied_strain(client, mask):
    masks = np.stack([mask, mask.T])  # [2, 32, 32]
    e = to_youngs_modulus(masks)
    E_x = {}
    for u in (0.1, -0.04):
        r = post(client, {"fiber_mask": masks.tolist(), "applied_strain": u, "quantities": True})
        body = r.json()
        strain = strain_of(r)
        expected = quantities(e, strain, "stress", u)  # the fixture card's plane
        for name in QUANTITY_NAMES:
            np.testing.assert_array_equal(np.asarray(body[name]), expected[name])
        assert body["stress_channels"] == list(STRESS_CHANNELS) and body["plane"] == "stress"
        f = fiber_fraction(e).astype(np.float64)
        assert body["fiber_fraction"] == f.tolist()
        assert body["voigt_bound"] == voigt_bound(f, "stress").tolist()
        assert body["reuss_bound"] == reuss_bound(f, "stress").tolist()
        E_x[u] = np.asarray(body["E_x"])
    # the problem is linear: the apparent modulus does not depend on ū
    np.testing.assert_allclose(E_x[-0.04], E_x[0.1], rtol=1e-6)


def test_no_quantities_unless_asked(client, mask):
    body = post(client, {"fiber_mask": mask.tolist()}).json()
    assert not set(QUANTITY_NAMES) & set(body)
    r = post(client, {"fiber_mask": mask.tolist(), "quantities": "yes"})
    assert_error(r, 400, "quantities")


def test_largest_batch_is_served(client, mask):
    masks = np.broadcast_to(mask, (MAX_BATCH, 32, 32))
    assert strain_of(post(client, {"fiber_mask": masks.tolist()})).shape == (MAX_BATCH, 3, 32, 32)


# --- every validation rule: 4xx naming the problem ----------------------------------------------


def assert_error(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    message = json.dumps(response.json())
    for word in words:
        assert word in message, message


def test_both_inputs_refused(client, mask, youngs_modulus):
    r = post(client, {"E": youngs_modulus.tolist(), "fiber_mask": mask.tolist()})
    assert_error(r, 422, "not both")


def test_no_input_refused(client):
    assert_error(post(client, {"applied_strain": 0.1}), 422, "missing input")
    assert_error(post(client, {}), 422, "missing input")
    assert_error(post(client, b""), 422, "missing input")  # BentoML reads an empty body as {}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (np.full((31, 32), 3000.0).tolist(), ["shape", "32x32"]),
        (np.full((2, 2, 32, 32), 3000.0).tolist(), ["shape"]),
        ([3000.0] * 32, ["shape"]),
        ([], ["shape"]),
        ([[3000.0] * 32] * 31 + [[3000.0] * 31], ["ragged"]),
        ([["3000"] * 32] * 32, ["numbers"]),
        ([[True] * 32] * 32, ["numbers"]),
        ([[None] * 32] * 32, ["numbers"]),
        ([[{"a": 1}] * 32] * 32, ["numbers"]),
        (np.full((32, 32), 3001.0).tolist(), ["3000", "85000", "3001"]),
        (np.full((32, 32), 1.0).tolist(), ["E values", "found 1"]),
    ],
)
def test_bad_E_arrays(client, data, words):
    assert_error(post(client, {"E": data}), 422, "E", *words)


def test_bad_mask_values(client, mask):
    bad = mask.copy()
    bad[3, 4] = 2
    assert_error(post(client, {"fiber_mask": bad.tolist()}), 422, "fiber_mask", "0", "found 2")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_values_in_E_refused(client, youngs_modulus, literal):
    text = json.dumps({"E": youngs_modulus.tolist()}).encode()
    text = text.replace(b"85000.0", literal, 1)
    assert_error(post(client, text), 422, "NaN or infinite")


@pytest.mark.parametrize(
    ("value", "status", "words"),
    [
        (b"NaN", 422, ["applied_strain", "nan", "outside"]),
        (b"Infinity", 422, ["applied_strain", "inf", "outside"]),
        (b"1e400", 422, ["applied_strain", "inf", "outside"]),
        (b"0", 422, ["outside"]),
        (b"10", 422, ["outside", "percent"]),
        (b"-1.5", 422, ["outside"]),
        (b'"0.1"', 400, ["applied_strain"]),
        (b"true", 400, ["applied_strain"]),
        (b"[0.1]", 400, ["applied_strain"]),
    ],
)
def test_bad_applied_strain(client, mask, value, status, words):
    body = b'{"fiber_mask": ' + json.dumps(mask.tolist()).encode() + b', "applied_strain": '
    assert_error(post(client, body + value + b"}"), status, *words)


def test_batch_over_the_limit_refused(client):
    masks = np.zeros((MAX_BATCH + 1, 32, 32), np.int8)
    assert_error(post(client, {"fiber_mask": masks.tolist()}), 422, str(MAX_BATCH + 1), "at most")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"E": [[1, 2]', ["Invalid JSON"]),
        (b"[1, 2, 3]", ["object"]),
        (b'"E"', ["object"]),
        (b'{"E": 5}', ["E"]),
        (b'{"E": "map"}', ["E"]),
        (b'{"E": {"a": 1}}', ["E"]),
        (b'{"fiber_mask": [[0]], "applied_strian": 0.2}', ["applied_strian", "Extra"]),
    ],
)
def test_malformed_json_is_400(client, body, words):
    r = post(client, body)
    assert r.status_code == 400, r.text
    assert_error(r, 400, *words)


def test_oversized_body_is_413(client):
    r = post(client, b" " * (DEFAULT_MAX_BODY_BYTES + 1))
    assert_error(r, 413, "exceeds the limit", str(DEFAULT_MAX_BODY_BYTES))


def test_oversized_chunked_body_is_413(client):
    def chunks():
        for _ in range(DEFAULT_MAX_BODY_BYTES // (1 << 20) + 2):
            yield b" " * (1 << 20)

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "exceeds the limit")


def test_pickle_media_type_refused(client, mask):
    r = client.post(
        "/predict", content=b"x", headers={"content-type": "application/vnd.bentoml+pickle"}
    )
    assert_error(r, 415, "unsupported Content-Type")


# --- PNG path ----------------------------------------------------------------------------------


def test_png_mask_gives_the_json_answer(client, mask):
    png = mask_to_png(mask)
    r = client.post("/predict_image", files={"image": ("mask.png", png, "image/png")})
    from_json = strain_of(post(client, {"fiber_mask": mask.tolist()}))
    np.testing.assert_array_equal(strain_of(r), from_json)


def test_png_picture_answer(client, mask):
    from PIL import Image

    png = mask_to_png(mask)
    r = client.post(
        "/predict_image",
        files={"image": ("mask.png", png, "image/png")},
        data={"picture": "true", "applied_strain": "0.05"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    import io

    with Image.open(io.BytesIO(r.content)) as img:
        assert img.format == "PNG"
        # the figure of `predict --png`: two rows of four titled 3.5 x 3.0 in panels at 110 dpi
        assert img.size == (4 * 385, round((2 * 3.0 + 0.4) * 110))


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"not a png", ["not a readable PNG"]),
        ("gif", ["must be a PNG"]),
        ("16x16", ["16x16", "32x32"]),
    ],
)
def test_bad_png_refused(client, payload, words):
    import io

    from PIL import Image

    if payload == "gif":
        buf = io.BytesIO()
        Image.new("L", (32, 32)).save(buf, "GIF")
        payload = buf.getvalue()
    elif payload == "16x16":
        buf = io.BytesIO()
        Image.new("L", (16, 16)).save(buf, "PNG")
        payload = buf.getvalue()
    r = client.post("/predict_image", files={"image": ("m.png", payload, "image/png")})
    assert_error(r, 422, *words)


def test_png_as_url_encoded_form_is_415(client):
    assert client.post("/predict_image", data={"picture": "true"}).status_code == 415


# --- model card, breakeven, health -------------------------------------------------------------


def test_model_card(client, model_dir):
    r = client.get("/model")
    assert r.status_code == 200
    assert r.json() == json.loads((model_dir / "card.json").read_text())


def test_breakeven_counts_predictions(client, mask):
    before = client.get("/breakeven").json()
    masks = np.broadcast_to(mask, (5, 32, 32))
    assert post(client, {"fiber_mask": masks.tolist()}).status_code == 200
    assert post(client, {"fiber_mask": [[0]]}).status_code == 422  # refused: not counted
    after = client.get("/breakeven").json()
    assert after["predictions"] == before["predictions"] + 5
    card = client.get("/model").json()
    assert after["tau"] == card["tau"]  # read from the card, not recomputed
    assert after["tau_text"] == f"{format_tau(card['tau'])} predictions"
    assert after["fraction_of_tau"] == after["predictions"] / card["tau"]
    gain = card["T_simulation"] - card["T_surrogate"]
    saved = after["predictions"] * gain - card["T_data"] - card["T_train"]
    assert after["seconds_saved"] == pytest.approx(saved, rel=1e-12)
    assert after["paid_off"] is (after["predictions"] >= card["tau"])


def test_the_page_and_everything_it_loads_are_served_offline(client):
    import re
    from pathlib import Path

    import serving.routes

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    loaded = re.findall(r'(?:src|href)="\./([^"]+)"', page.text)
    docs = client.get("/docs")
    loaded += re.findall(r'(?:src|href)="\./([^"]+)"', docs.text)
    assert "static/app.js" in loaded and "static_content/swagger-ui-bundle.js" in loaded
    for path in loaded:
        assert client.get("/" + path).status_code == 200, path
    # nothing is fetched from elsewhere: these machines and many users' networks are offline
    for file in Path(serving.routes.STATIC).iterdir():
        text = file.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name only
        assert not re.search(r"https?://", text), file.name


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/docs.json"])
def test_bentoml_infrastructure_routes(client, path):
    assert client.get(path).status_code == 200


def test_openapi_lists_every_route(client):
    paths = client.get("/docs.json").json()["paths"]
    routes = {"/predict", "/predict_npy", "/predict_image", "/verify", "/model", "/models", "/"}
    assert routes | {"/breakeven"} <= set(paths), routes - set(paths)
    npy = paths["/predict_npy"]["post"]
    assert "application/octet-stream" in npy["requestBody"]["content"]
    # the query parameters documented are the ones the route takes
    from serving.routes import NPY_QUERY

    assert [p["name"] for p in npy["parameters"]] == list(NPY_QUERY)
    for field in ("quantities", "model", "macro_strain", "macro_stress", "C_eff", "plane"):
        assert field in json.dumps(paths["/predict"]), field


# --- verify ------------------------------------------------------------------------------------


def test_verify_without_solver_is_501(client, mask, monkeypatch):
    import serving.verify

    monkeypatch.setattr(serving.verify, "fe_solver_available", lambda: False)
    assert_error(post(client, {"fiber_mask": mask.tolist()}, "/verify"), 501, "no FE solver")


def test_verify_batch_limit(client, mask):
    from serving.verify import MAX_VERIFY_BATCH, fe_solver_available

    if not fe_solver_available():
        pytest.skip("no FE solver here")
    masks = np.broadcast_to(mask, (MAX_VERIFY_BATCH + 1, 32, 32))
    assert_error(post(client, {"fiber_mask": masks.tolist()}, "/verify"), 422, "at most")


@pytest.mark.slow
def test_verify_against_the_fe_solver(client, mask):
    from serving.verify import fe_solver_available

    if not fe_solver_available():
        pytest.skip("dolfinx or data_gen not installed")
    r = post(client, {"fiber_mask": mask.tolist(), "quantities": True}, "/verify")
    assert r.status_code == 200, r.text
    body = r.json()
    fe = np.asarray(body["strain_fe"])
    assert fe.shape == (1, 3, 32, 32)
    # physics check of the real solve: the domain mean of eps_xx is exactly ū (SPEC §1); the
    # pixel strains are float32
    assert fe[0, 0].mean() == pytest.approx(0.1, rel=1e-5)
    surrogate = np.asarray(body["strain"])
    rel = np.linalg.norm(surrogate - fe) / np.linalg.norm(fe)
    assert body["relative_l2"] == pytest.approx(rel, rel=1e-12)  # the same numbers, in float64
    assert body["speedup"] == body["fe_seconds"] / max(body["surrogate_seconds"], 1e-9)
    assert body["fe_discretization"] == {"mode": "refined", "k": 4, "plane": "stress"}
    # SPEC §9 measures of the surrogate against FE: those of the core on the fields answered
    e = to_youngs_modulus(mask)
    expected = error_measures(e, surrogate.astype(np.float32), fe.astype(np.float32), "stress")
    per_channel = expected.pop("strain_relative_l2_per_channel")
    got = dict(body["measures"])
    assert got.pop("strain_relative_l2_per_channel") == pytest.approx(per_channel, rel=1e-12)
    assert got == pytest.approx(expected, rel=1e-12) and got["n"] == 1
    # the quantities of the FE field: the core's, and E_x within the rigorous bounds
    fe_q = body["quantities_fe"]
    q = quantities(e, fe.astype(np.float32), "stress", 0.1)
    np.testing.assert_array_equal(np.asarray(fe_q["von_mises"]), q["von_mises"])
    f = fiber_fraction(e).astype(np.float64)
    assert reuss_bound(f, "stress")[0] <= fe_q["E_x"][0] <= uniform_strain_bound(f, "stress")[0]


def test_verify_comparison_pools_the_samples_and_lists_each():
    from serving.verify import comparison

    reference = np.ones((2, 3, 32, 32), np.float32)
    surrogate = reference * np.array([1.1, 0.8], np.float32)[:, None, None, None]  # 10 %, 20 %
    result = comparison(surrogate, reference)
    assert result["relative_l2_per_sample"] == pytest.approx([0.1, 0.2], rel=1e-6)
    pooled = np.sqrt((0.1**2 + 0.2**2) / 2)  # equal reference norms
    assert result["relative_l2"] == pytest.approx(pooled, rel=1e-6)
    assert result["relative_l2_per_channel"] == pytest.approx(
        dict.fromkeys(STRAIN_CHANNELS, pooled), rel=1e-6
    )
