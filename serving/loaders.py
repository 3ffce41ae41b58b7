"""One loader per framework. Each imports its framework here, lazily, so the server starts without it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from serving.codec import NUMPY_DTYPES, ONNX_TENSOR_DATATYPES, Array, shape_matches
from serving.config import ModelConfig
from serving.contract import ONNX_SUFFIXES, SKLEARN_SUFFIXES
from serving.docstrings import keep_scipy_docstrings
from serving.errors import ClientError

# The "platform" each framework reports in the model metadata, as KServe names them.
PLATFORMS = {"sklearn": "sklearn", "onnx": "onnxruntime_onnx", "python": "python"}
# Loaded once, before the workers are forked, so they share its memory: an unpickled estimator is plain
# Python objects and numpy arrays, and loading it starts no thread. An onnxruntime session owns thread
# pools that a fork would not copy, and a user's model.py may start threads: those load in each worker.
LOADED_BEFORE_FORK = ("sklearn",)

TensorMetadata = dict[str, Any]


class LoadedModel:
    platform = ""

    def output_names(self) -> list[str] | None:
        """Names the model can produce, or None when only a prediction can tell (python models)."""
        return None

    def metadata(self) -> tuple[list[TensorMetadata], list[TensorMetadata]] | None:
        return None

    def predict(self, inputs: dict[str, Array], requested: list[str] | None) -> dict[str, Any]:
        raise NotImplementedError


def find_artifact(model_dir: Path, artifact: str, suffixes: tuple[str, ...]) -> Path:
    root = model_dir.resolve()
    path = (model_dir / artifact).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"artifact {artifact!r} points outside the model directory")
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"artifact {artifact!r} not found in {model_dir}")
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if len(found) != 1:
        raise FileNotFoundError(f"expected exactly one {'/'.join(suffixes)} file in {path}, found {len(found)}")
    return found[0]


class SklearnModel(LoadedModel):
    platform = PLATFORMS["sklearn"]

    def __init__(self, path: Path, config: ModelConfig) -> None:
        joblib = importlib.import_module("joblib")
        self.estimator: Any = joblib.load(path)
        if not callable(getattr(self.estimator, "predict", None)):
            raise TypeError(f"{path.name} holds a {type(self.estimator).__name__}, which has no predict()")
        names = [spec.name for spec in config.outputs]
        self.predict_name = names[0] if names else "predict"
        self.proba_name = names[1] if len(names) > 1 else "predict_proba"
        self.has_proba = callable(getattr(self.estimator, "predict_proba", None))

    def output_names(self) -> list[str]:
        return [self.predict_name, self.proba_name] if self.has_proba else [self.predict_name]

    def predict(self, inputs: dict[str, Array], requested: list[str] | None) -> dict[str, Any]:
        if len(inputs) != 1:
            raise ClientError(f"a scikit-learn model takes exactly one input tensor, got {len(inputs)}")
        (features,) = inputs.values()
        expected = getattr(self.estimator, "n_features_in_", None)
        # Estimators without n_features_in_ (text pipelines, for one) may take 1-D input: leave those be.
        if expected is not None and features.ndim != 2:
            raise ClientError(f"input must be 2-D [rows, {expected} features], got shape {list(features.shape)}")
        if expected is not None and features.shape[1] != expected:
            raise ClientError(f"input has {features.shape[1]} features per row, the model expects {expected}")
        results: dict[str, Any] = {}
        for name in requested or [self.predict_name]:
            method = self.estimator.predict if name == self.predict_name else self.estimator.predict_proba
            results[name] = method(features)
        return results


class OnnxModel(LoadedModel):
    platform = PLATFORMS["onnx"]

    def __init__(self, path: Path, threads: int) -> None:
        onnxruntime = importlib.import_module("onnxruntime")
        options = onnxruntime.SessionOptions()
        # Workers already use every CPU; a session per worker sized for all of them would oversubscribe.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session: Any = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs: dict[str, Any] = {meta.name: meta for meta in self.session.get_inputs()}
        self.outputs: dict[str, Any] = {meta.name: meta for meta in self.session.get_outputs()}

    def output_names(self) -> list[str]:
        return list(self.outputs)

    def metadata(self) -> tuple[list[TensorMetadata], list[TensorMetadata]]:
        def describe(meta: Any) -> TensorMetadata:
            datatype = ONNX_TENSOR_DATATYPES.get(meta.type, meta.type)
            shape = [d if isinstance(d, int) else -1 for d in (meta.shape or [])]
            return {"name": meta.name, "datatype": datatype, "shape": shape}

        return [describe(m) for m in self.inputs.values()], [describe(m) for m in self.outputs.values()]

    def predict(self, inputs: dict[str, Array], requested: list[str] | None) -> dict[str, Any]:
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise ClientError(f"unknown input(s) {unknown}; the model takes {sorted(self.inputs)}")
        missing = sorted(set(self.inputs) - set(inputs))
        if missing:
            raise ClientError(f"missing input(s) {missing}")
        feed = {name: self._prepare(name, array) for name, array in inputs.items()}
        # ZipMap and other sequence outputs are not tensors: only computed when asked for.
        names = requested or [n for n, meta in self.outputs.items() if meta.type.startswith("tensor(")]
        values = self.session.run(names, feed)
        return {name: _to_tensor(value) for name, value in zip(names, values, strict=True)}

    def _prepare(self, name: str, array: Array) -> Array:
        meta = self.inputs[name]
        expected = [d if isinstance(d, int) else -1 for d in (meta.shape or [])]
        if meta.shape is not None and not shape_matches(array.shape, tuple(expected)):
            raise ClientError(f"input '{name}' has shape {list(array.shape)}, the model expects {expected}")
        datatype = ONNX_TENSOR_DATATYPES.get(meta.type)
        if datatype is None:
            return array
        dtype = NUMPY_DTYPES[datatype]
        if (dtype.kind == "O") != (array.dtype.kind == "O"):
            raise ClientError(f"input '{name}' must be {datatype} for this model")
        return array.astype(dtype, copy=False)


def _to_tensor(value: object) -> Array:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = sorted(value[0])
        return np.array([[row[key] for key in keys] for row in value])
    return np.asarray(value)


class PythonModel(LoadedModel):
    platform = PLATFORMS["python"]

    def __init__(self, folder: Path, config: ModelConfig) -> None:
        module_path = folder / "model.py"
        if not module_path.is_file():
            raise FileNotFoundError(f"no model.py in {folder}")
        sys.path.insert(0, str(folder))
        spec = importlib.util.spec_from_file_location("model", module_path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {module_path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["model"] = module
        spec.loader.exec_module(module)
        model_class = getattr(module, "Model", None)
        if not isinstance(model_class, type):
            raise TypeError("model.py defines no class Model")
        self.model: Any = model_class()
        if callable(getattr(self.model, "load", None)):
            self.model.load(str(folder))
        self.default_output = config.outputs[0].name if config.outputs else "output0"
        # User code is not known to be thread-safe; serialise it.
        self.lock = threading.Lock()

    def predict(self, inputs: dict[str, Array], requested: list[str] | None) -> dict[str, Any]:
        with self.lock:
            result = self.model.predict(inputs)
        outputs = {str(k): v for k, v in result.items()} if isinstance(result, dict) else {self.default_output: result}
        if not requested:
            return outputs
        missing = [name for name in requested if name not in outputs]
        if missing:
            raise ClientError(f"unknown output(s) {missing}; the model produced {sorted(outputs)}")
        return {name: outputs[name] for name in requested}


def load_model(config: ModelConfig, model_dir: Path, *, threads: int = 1) -> LoadedModel:
    keep_scipy_docstrings()  # before any framework imports SciPy
    if config.framework == "sklearn":
        return SklearnModel(find_artifact(model_dir, config.artifact, SKLEARN_SUFFIXES), config)
    if config.framework == "onnx":
        return OnnxModel(find_artifact(model_dir, config.artifact, ONNX_SUFFIXES), threads)
    folder = (model_dir / config.artifact).resolve()
    if not folder.is_relative_to(model_dir.resolve()):
        raise ValueError(f"artifact {config.artifact!r} points outside the model directory")
    return PythonModel(folder if folder.is_dir() else folder.parent, config)
