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


def as_vector(value: Any, what: str) -> np.ndarray:
    """``value`` as a 1-D float32 array (see :func:`as_api_array`), or a ValueError naming `what`."""
    arr = as_api_array(value, what)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got shape {arr.shape}")
    return arr


def as_token_ids(value: Any, vocab: int, what: str = "tokens") -> np.ndarray:
    """``value`` as 1-D token ids, each a whole number in [0, vocab), or a ValueError that names the
    first one that is not (float32 holds every id exactly: vocab is at most 65536)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what}: dtype {arr.dtype} is not numeric; token ids are whole numbers in [0, {vocab})")
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of token ids, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr >= vocab)) if arr.dtype.kind == "f" else np.flatnonzero((arr < 0) | (arr >= vocab))
    if bad.size:
        raise ValueError(f"{what}: token ids must be whole numbers in [0, {vocab}) (vocab); position {bad[0]} has {arr[bad[0]]}")
    return as_api_array(arr, what)


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
