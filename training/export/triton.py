"""A Triton model repository entry for an exported graph: ``<root>/<name>/config.pbtxt`` and
``<root>/<name>/<version>/model.onnx``, served by Triton's ONNX Runtime backend (and by
KServe's Triton-based ONNX runtime) with dynamic batching.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from model.artifact import write_atomic
from model.interface import ModelInterface, TensorSpec

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.pbtxt"


def _tensor(t: TensorSpec) -> str:
    dims = list(t.shape[1:])  # Triton's dims leave out the batch dimension
    # a tensor that is only the batch ([n]) is declared [1] and reshaped to [] for the model,
    # so clients see [n, 1]; Triton has no zero-rank dims with batching
    reshape = "" if dims else "\n    reshape: { shape: [ ] }"
    return (f"  {{\n    name: \"{t.name}\"\n    data_type: TYPE_{t.datatype}\n"
            f"    dims: [ {', '.join(map(str, dims or [1]))} ]{reshape}\n  }}")


def config_pbtxt(name: str, interface: ModelInterface, max_batch_size: int) -> str:
    """The model configuration (protobuf text format) for Triton's onnxruntime backend."""
    return "\n".join([
        f'name: "{name}"',
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        "input [", ",\n".join(map(_tensor, interface.inputs)), "]",
        "output [", ",\n".join(map(_tensor, interface.outputs)), "]",
        "dynamic_batching { }",
        "version_policy: { all: { } }",  # every version, as the service serves them
        "",
    ])


def write_repository(root: Path, name: str, version: int, model: bytes, config: str) -> Path:
    """Write the version folder (a new one appears whole, by one rename; an existing one gets
    its model file replaced atomically), then the config; returns the model's folder."""
    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version_dir = model_dir / str(version)
    if version_dir.is_dir():
        write_atomic(version_dir / MODEL_FILE, model)
    else:
        # Triton ignores folders whose names are not numbers, such as this one
        tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            write_atomic(tmp / MODEL_FILE, model)
            os.rename(tmp, version_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    write_atomic(model_dir / CONFIG_FILE, config.encode())
    return model_dir
