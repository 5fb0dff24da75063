"""POST /predict_npy (SPEC §8): .npy in, .npy out, and a JSON 4xx naming every bad body."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from support.models import reference_strain

from microstrain.conventions import MAX_BATCH
from microstrain.fields import to_youngs_modulus
from serving.middleware import DEFAULT_MAX_BODY_BYTES


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...], dtype: Any) -> bytes:
    """A .npy header (format 1.0) claiming ``shape`` and ``dtype``, whatever data follow."""
    buf = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    np.lib.format.write_array_header_1_0(
        buf, {"shape": shape, "fortran_order": False, "descr": descr}
    )
    return buf.getvalue()


def post_npy(client: Any, body: bytes, query: str = "", **headers: str) -> Any:
    headers = {"content-type": "application/octet-stream", **headers}
    return client.post(f"/predict_npy{query}", content=body, headers=headers)


def strain_of(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def assert_error(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    for word in words:
        assert word in message, message


# --- happy paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, ">f4"])
def test_E_maps_in_any_numeric_dtype(client, youngs_modulus, dtype):
    strain = strain_of(post_npy(client, npy_bytes(youngs_modulus.astype(dtype))))
    assert strain.dtype == np.float32 and strain.shape == (1, 3, 32, 32)
    expected = reference_strain(to_youngs_modulus(youngs_modulus))
    np.testing.assert_allclose(strain, expected, rtol=1e-5, atol=1e-6)


def test_the_same_numbers_as_json_predict(client, youngs_modulus, mask):
    batch = np.stack([mask, mask.T, np.fliplr(mask)])  # [3, 32, 32] 0/1 masks
    for layout in (batch, batch[:, None], np.asfortranarray(batch), batch.astype(bool)):
        binary = strain_of(post_npy(client, npy_bytes(layout)))
        body = json.dumps({"fiber_mask": batch.tolist()})
        r = client.post("/predict", content=body, headers={"content-type": "application/json"})
        np.testing.assert_array_equal(binary, np.asarray(r.json()["strain"], np.float32))


def test_applied_strain_from_the_query_scales_linearly(client, mask):
    body = npy_bytes(mask)
    base = strain_of(post_npy(client, body))
    scaled = strain_of(post_npy(client, body, "?applied_strain=-0.025"))
    np.testing.assert_allclose(scaled, base * -0.25, rtol=1e-6)


def test_warnings_travel_in_a_header(client):
    dense = np.ones((32, 32), np.uint8)  # fiber fraction 1: outside the range, single phase
    r = post_npy(client, npy_bytes(dense))
    strain_of(r)
    warnings = json.loads(r.headers["x-microstrain-warnings"])
    assert any("fiber fraction outside" in w for w in warnings), warnings
    assert any("single phase" in w for w in warnings), warnings
    assert r.headers["x-microstrain-model"].startswith("fixture ")


def test_largest_batch_is_served(client, mask):
    masks = np.broadcast_to(mask.astype(np.uint8), (MAX_BATCH, 32, 32))
    strain = strain_of(post_npy(client, npy_bytes(np.ascontiguousarray(masks))))
    assert strain.shape == (MAX_BATCH, 3, 32, 32)
    np.testing.assert_array_equal(strain[0], strain[-1])


def test_any_content_type_is_read_by_its_magic(client, mask):
    # curl --data-binary sends application/x-www-form-urlencoded unless told otherwise
    r = client.post(
        "/predict_npy",
        content=npy_bytes(mask),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert strain_of(r).shape == (1, 3, 32, 32)


# --- every bad body: a JSON 4xx that names the problem ----------------------------------------


def test_a_body_that_is_not_npy(client, mask):
    assert_error(post_npy(client, b""), 400, "not a .npy file")
    assert_error(post_npy(client, json.dumps(mask.tolist()).encode()), 400, "numpy.save")


def test_a_pickled_object_array_is_never_loaded(client):
    body = npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert_error(post_npy(client, body), 422, "Python objects", "pickle")


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.full((32, 32), 3000 + 0j), ["dtype", "'<c16'"]),
        (np.full((32, 32), "3000"), ["dtype", "'<U4'"]),
        (np.zeros((32, 32), [("a", "f4"), ("b", "f4")]), ["dtype"]),
    ],
)
def test_non_numeric_dtypes(client, array, words):
    assert_error(post_npy(client, npy_bytes(array)), 422, *words)


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.full((31, 32), 3000.0), ["shape", "32x32"]),
        (np.full((2, 2, 32, 32), 3000.0), ["shape"]),
        (np.full((32,), 3000.0), ["shape"]),
        (np.full((0, 32, 32), 3000.0), ["no microstructure"]),
        (np.full((32, 32), 3001.0), ["3000", "85000", "3001"]),
        (np.full((32, 32), 2, np.int8), ["E values", "found 2"]),
    ],
)
def test_wrong_shapes_and_values(client, array, words):
    assert_error(post_npy(client, npy_bytes(array)), 422, *words)


def test_nan_is_refused(client, youngs_modulus):
    e = youngs_modulus.astype(np.float32)
    e[5, 7] = np.nan
    assert_error(post_npy(client, npy_bytes(e)), 422, "NaN or infinite")


def test_a_batch_over_the_limit_is_refused_by_its_header(client):
    body = npy_bytes(np.zeros((MAX_BATCH + 1, 32, 32), np.uint8))
    assert_error(post_npy(client, body), 422, str(MAX_BATCH + 1), "at most")


def test_a_header_that_promises_more_than_the_body_holds(client, mask):
    body = npy_bytes(mask.astype(np.float32))
    assert_error(post_npy(client, body[:-4]), 400, "4092 bytes", "needs 4096")
    # claims checked before any array memory is taken
    huge = npy_header((10**9,), np.float32) + b"\0" * 16
    assert_error(post_npy(client, huge), 400, "holds 16 bytes", "needs 4000000000")
    many = npy_header((10**9, 32, 32), np.uint8) + b"\0" * 16
    assert_error(post_npy(client, many), 422, str(10**9), "at most")
    assert_error(post_npy(client, b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}"), 400, "header")


def test_bad_query(client, mask):
    body = npy_bytes(mask)
    assert_error(post_npy(client, body, "?applied_strain=abc"), 422, "'abc'")
    assert_error(post_npy(client, body, "?applied_strain=10"), 422, "outside", "percent")
    assert_error(post_npy(client, body, "?applied_strian=0.1"), 422, "applied_strian")


def test_an_oversized_body_is_413(client):
    r = post_npy(client, b"\x93NUMPY" + b" " * DEFAULT_MAX_BODY_BYTES)
    assert_error(r, 413, "exceeds the limit")


def test_get_is_not_allowed(client):
    assert client.get("/predict_npy").status_code == 405
