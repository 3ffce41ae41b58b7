"""Tensors between the protocol's JSON and numpy: decoding inputs, encoding outputs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.config import is_int
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


def decode_input(raw: object, index: int) -> InputTensor:
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
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(is_int(d) and d >= 0 for d in shape):
        raise ClientError(f"input '{name}' needs 'shape' as a list of non-negative integers")
    data = raw.get("data")
    if not isinstance(data, list):
        raise ClientError(f"input '{name}' needs 'data' as an array (flat row-major or nested)")
    parameters = raw.get("parameters")
    if isinstance(parameters, dict) and "binary_data_size" in parameters:
        raise ClientError(f"input '{name}' uses the binary tensor extension, which this server does not support")
    array = data_to_array(name, datatype, tuple(shape), data)
    return InputTensor(name, datatype, tuple(shape), array)


def data_to_array(name: str, datatype: str, shape: tuple[int, ...], data: list[Any]) -> Array:
    expected = math.prod(shape)
    try:
        values = np.array(data)
    except (ValueError, TypeError) as exc:
        raise ClientError(f"input '{name}': nested 'data' is not rectangular") from exc
    if values.size != expected:
        raise ClientError(
            f"input '{name}': 'data' holds {values.size} elements but shape {list(shape)} needs {expected}"
        )
    target = NUMPY_DTYPES[datatype]
    if expected == 0:
        return np.zeros(shape, dtype=target)
    _check_element_kind(name, datatype, values)
    if datatype == "BYTES":
        return values.astype(object).reshape(shape)
    if values.dtype.kind in "iu" and target.kind in "iu":
        limits = np.iinfo(target)
        if values.min() < limits.min or values.max() > limits.max:
            raise ClientError(f"input '{name}': values out of range for {datatype}")
    return values.astype(target).reshape(shape)


def _check_element_kind(name: str, datatype: str, values: Array) -> None:
    kind = values.dtype.kind
    if datatype == "BOOL":
        ok = kind == "b"
    elif datatype.startswith(("INT", "UINT")):
        ok = kind in "iu"
    elif datatype.startswith("FP"):
        ok = kind in "iuf"
    else:
        ok = kind == "U"
    if not ok:
        wanted = {"BOOL": "booleans", "BYTES": "strings"}.get(datatype, "integers" if "INT" in datatype else "numbers")
        raise ClientError(f"input '{name}': datatype {datatype} needs {wanted} in 'data'")


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
