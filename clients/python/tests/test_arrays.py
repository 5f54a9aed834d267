"""Arrays to the API's float32 .npy and back (numpy's own writer and reader), and what is refused."""

import io

import numpy as np
import pytest

from tabgrid.arrays import as_api_array, from_npy, to_npy


def test_converts_to_little_endian_float32_c_order():
    a = np.arange(12, dtype=np.float64).reshape(3, 4).T  # Fortran-ordered view
    out = as_api_array(a)
    assert out.dtype == np.dtype("<f4") and out.flags.c_contiguous
    np.testing.assert_array_equal(out, a)
    for value in ([[1, 2], [3, 4]], np.array([[True, False]]), np.arange(6, dtype=">f8").reshape(2, 3), np.int64(7)):
        out = as_api_array(value)
        assert out.dtype == np.dtype("<f4") and out.flags.c_contiguous
        np.testing.assert_array_equal(out, np.asarray(value, dtype=np.float64))


def test_npy_round_trip_uses_numpys_format():
    a = np.random.default_rng(0).standard_normal((5, 7))
    data = to_npy(a)
    assert data.startswith(b"\x93NUMPY")
    assert np.load(io.BytesIO(data)).dtype == np.dtype("<f4")
    np.testing.assert_array_equal(from_npy(data), a.astype(np.float32))


@pytest.mark.parametrize(
    "value, error, words",
    [
        (np.ones((2, 2), dtype=np.complex64), TypeError, "complex"),
        (np.array([{"a": 1}, None], dtype=object), TypeError, "dtype object"),
        ([[1.0, 2.0], [3.0]], ValueError, "ragged"),
        (np.array(["a", "b"]), TypeError, "not numeric"),
        (np.array([1e300]), ValueError, "float32's range"),
    ],
)
def test_refuses_what_cannot_be_float32(value, error, words):
    with pytest.raises(error, match=words):
        as_api_array(value, "a")
