"""Tensors between the protocol's JSON and numpy: decoding inputs, encoding outputs."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.config import Limits, is_int
from serving.contract import ONNX_ELEMENT_DATATYPES
from serving.errors import ClientError

Array = npt.NDArray[Any]

NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

# onnxruntime names a tensor's element type "tensor(<onnx name>)".
ONNX_TENSOR_DATATYPES = {f"tensor({name})": datatype for name, datatype in ONNX_ELEMENT_DATATYPES.items()}


@dataclass
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: Array


MAX_DIMENSIONS = 32  # numpy allows 64; no model input needs more than a handful
_NUMBER_TYPES = (int, float)


class _Budget:
    """What one request's inputs have taken of the limits so far, counted before any array exists."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.elements = 0
        self.bytes = 0

    def take_elements(self, name: str, count: int) -> None:
        self.elements += count
        if self.elements > self.limits.elements:
            raise ClientError(
                f"input '{name}' brings the request to {self.elements:,} elements; this server accepts at most "
                f"{self.limits.elements:,} per request (SLIPWAY_MAX_ELEMENTS)",
                413,
            )

    def take_bytes(self, name: str, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.tensor_bytes:
            raise ClientError(
                f"input '{name}' brings the request's tensors to more than {self.limits.tensor_bytes:,} bytes "
                "(SLIPWAY_MAX_TENSOR_BYTES)",
                413,
            )


def decode_inputs(raw_inputs: list[Any], limits: Limits) -> list[InputTensor]:
    """Checks every input against the limits and its own shape and datatype, then builds its array."""
    budget = _Budget(limits)
    return [decode_input(raw, index, budget) for index, raw in enumerate(raw_inputs)]


def decode_input(raw: object, index: int, budget: _Budget) -> InputTensor:
    if not isinstance(raw, dict):
        raise ClientError(f"inputs[{index}] must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ClientError(f"inputs[{index}] needs a non-empty string 'name'")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise ClientError(f"input '{name}' needs a string 'datatype'")
    if datatype not in NUMPY_DTYPES:
        supported = ", ".join(NUMPY_DTYPES)
        raise ClientError(f"input '{name}' has unsupported datatype {datatype!r}; supported: {supported}")
    raw_shape = raw.get("shape")
    if not isinstance(raw_shape, list) or not all(is_int(d) and d >= 0 for d in raw_shape):
        raise ClientError(f"input '{name}' needs 'shape' as a list of non-negative integers")
    if len(raw_shape) > MAX_DIMENSIONS:
        raise ClientError(f"input '{name}' has {len(raw_shape)} dimensions; at most {MAX_DIMENSIONS} are accepted")
    shape = tuple(raw_shape)
    data = raw.get("data")
    if not isinstance(data, list):
        raise ClientError(f"input '{name}' needs 'data' as an array (flat row-major or nested)")
    parameters = raw.get("parameters")
    if isinstance(parameters, dict) and "binary_data_size" in parameters:
        raise ClientError(f"input '{name}' uses the binary tensor extension, which this server does not support")
    expected = math.prod(shape)
    budget.take_elements(name, expected)
    dtype = NUMPY_DTYPES[datatype]
    budget.take_bytes(name, expected * dtype.itemsize)  # BYTES: a reference per element, the text comes later
    values = _flatten(name, data, shape, expected)
    return InputTensor(name, datatype, shape, _to_array(name, datatype, values, budget).reshape(shape))


def _flatten(name: str, data: list[Any], shape: tuple[int, ...], expected: int) -> list[Any]:
    """The elements of flat or nested `data` in row-major order; never more than `expected` of them."""
    values = data
    while values and type(values[0]) is list:
        width = len(values[0])
        if any(type(item) is not list or len(item) != width for item in values):
            raise ClientError(f"input '{name}': nested 'data' is not rectangular")
        if len(values) * width > expected:
            raise ClientError(f"input '{name}': 'data' holds more elements than shape {list(shape)} needs ({expected})")
        values = list(itertools.chain.from_iterable(values))
    if len(values) != expected:
        raise ClientError(
            f"input '{name}': 'data' holds {len(values)} elements but shape {list(shape)} needs {expected}"
        )
    return values


def _to_array(name: str, datatype: str, values: list[Any], budget: _Budget) -> Array:
    """An array of exactly `datatype`, built only after every element was checked to be of its kind.

    numpy left to guess would make strings fixed-width: one long string among many short ones would
    take its length times the element count (a 1 MB request, a 4 GB array).
    """
    dtype = NUMPY_DTYPES[datatype]
    if not values:
        return np.zeros(0, dtype=dtype)
    if any(type(value) is list for value in values):
        raise ClientError(f"input '{name}': nested 'data' is not rectangular")
    if datatype == "BYTES":
        if not all(type(value) is str for value in values):
            raise ClientError(f"input '{name}': datatype BYTES needs strings in 'data'")
        _check_strings(name, values, budget)
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    if datatype == "BOOL":
        if not all(type(value) is bool for value in values):
            raise ClientError(f"input '{name}': datatype BOOL needs booleans in 'data'")
    elif dtype.kind in "iu":
        if not all(type(value) is int for value in values):
            raise ClientError(f"input '{name}': datatype {datatype} needs integers in 'data'")
        limits = np.iinfo(dtype)
        if min(values) < limits.min or max(values) > limits.max:
            raise ClientError(f"input '{name}': values out of range for {datatype}")
    elif not all(type(value) in _NUMBER_TYPES for value in values):
        raise ClientError(f"input '{name}': datatype {datatype} needs numbers in 'data'")
    try:
        return np.array(values, dtype=dtype)
    except OverflowError:  # an integer too large even for a float
        raise ClientError(f"input '{name}': values out of range for {datatype}") from None


def _check_strings(name: str, values: list[str], budget: _Budget) -> None:
    limit = budget.limits.string_bytes
    total = 0
    for value in values:
        size = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise ClientError(
                f"input '{name}' holds a string of {size:,} bytes; this server accepts at most {limit:,} "
                "(SLIPWAY_MAX_STRING_BYTES)",
                413,
            )
        total += size
    budget.take_bytes(name, total)


def datatype_of(array: Array) -> str:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{size * 8}"
    if kind == "f":
        return {2: "FP16", 4: "FP32"}.get(size, "FP64")
    if kind in "USO":
        return "BYTES"
    raise TypeError(f"cannot encode an output of dtype {array.dtype}")


def encode_output(name: str, value: object) -> dict[str, Any]:
    array = np.asarray(value)
    datatype = datatype_of(array)
    flat: list[Any] = array.ravel().tolist()
    if datatype == "BYTES":
        flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    elif datatype == "FP64" and array.dtype.itemsize > 8:
        flat = [float(v) for v in flat]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": flat}


def shape_matches(actual: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    if len(actual) != len(expected):
        return False
    return all(want in (-1, got) for got, want in zip(actual, expected, strict=True))
