"""What the platform and the serving runtime agree on, in one place and with the standard library only.

The registry validates signatures against these datatypes, the image builder picks the artifact by
these suffixes, and the runtime inside the image serves the same names. Changing a value here changes
all three together.
"""

# Open Inference Protocol v2 tensor datatypes.
INTEGER_DATATYPES = ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")
FLOAT_DATATYPES = ("FP16", "FP32", "FP64")
DATATYPES = ("BOOL", *INTEGER_DATATYPES, *FLOAT_DATATYPES, "BYTES")

# ONNX element types (the lower-case names of onnx.TensorProto.DataType, which onnxruntime also
# prints as "tensor(<name>)"), as the protocol names them.
ONNX_ELEMENT_DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
}

# Which files of an artifact a framework's loader takes.
SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")
ONNX_SUFFIXES = (".onnx",)
PYTHON_SUFFIXES = (".py",)
# Archives an artifact may be uploaded as; one inspector checks them at upload and at build.
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")

# Health: liveness and readiness paths. Until it is ready, readiness answers 503 with
# {"error": reason, "state": state}; LOAD_FAILED_STATE means the model cannot load and the process
# is about to exit with EXIT_LOAD_FAILED. Whoever waits on readiness (a rollout on either target, the
# build's smoke test) stops waiting at LOAD_FAILED_STATE.
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
LOADING_STATE, LOAD_FAILED_STATE, STOPPING_STATE = "loading", "failed", "stopping"
EXIT_LOAD_FAILED = 3
