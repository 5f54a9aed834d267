"""Arrays in and out: numpy's own ``.npy`` writer and reader (``np.save`` / ``np.load``), never a
hand-written codec. The API takes float32, little-endian, C order."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np

#: What the API takes: float32, little-endian.
API_DTYPE = np.dtype("<f4")


def as_api_array(value: Any, what: str = "array") -> np.ndarray:
    """``value`` as a C-ordered little-endian float32 array, or a clear error for what cannot be one.

    Booleans, integers and floats of any width convert (float64 rounds to float32); complex
    numbers, objects, strings and ragged nested lists are refused.
    """
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except ValueError as err:  # numpy >= 1.24: ragged nested sequences
            raise ValueError(
                f"{what}: cannot be made into an array ({err}); is it ragged (rows of different lengths)? "
                "tabgrid sends rectangular float32 arrays"
            ) from None
    if arr.dtype == object:
        raise TypeError(
            f"{what}: dtype object (a ragged nested list, or Python objects) cannot be sent; "
            "tabgrid sends rectangular float32 arrays"
        )
    if arr.dtype.kind == "c":
        raise TypeError(
            f"{what}: complex values ({arr.dtype}) cannot be sent as float32; "
            "send the real and imaginary parts as separate arrays (a.real, a.imag)"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what}: dtype {arr.dtype} is not numeric; tabgrid sends float32 arrays")
    with np.errstate(over="ignore"):  # checked just below
        out = np.ascontiguousarray(arr, dtype=API_DTYPE)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        if (np.isinf(out) & np.isfinite(arr)).any():
            raise ValueError(f"{what}: values beyond float32's range (±3.4e38) would become infinite")
    return out


def to_npy(value: Any, what: str = "array") -> bytes:
    """The ``.npy`` bytes the API takes for ``value`` (see :func:`as_api_array`)."""
    buf = io.BytesIO()
    np.save(buf, as_api_array(value, what), allow_pickle=False)
    return buf.getvalue()


def from_npy(data: bytes) -> np.ndarray:
    """A ``.npy`` answer of the API as an array."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def sha256(data: bytes) -> str:
    """A shard's id: the sha-256 of its exact bytes, as the coordinator computes it."""
    return hashlib.sha256(data).hexdigest()
