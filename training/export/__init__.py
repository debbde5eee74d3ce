"""Export a saved artifact for other runtimes: ``python -m training export``.

- ``onnx``: one ONNX file (``onnx_model``): the preprocessing, network and output
  transform of the artifact, checked with ``onnx.checker`` and, unless told not to, run
  with onnxruntime beside ``Predictor`` before it is written (``verify``).
- ``triton``: the same graph in a Triton model repository with its ``config.pbtxt``
  (``triton``).
Outputs are written atomically. Needs the ``export`` extra (onnx, onnxruntime), which the
service image does not install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from model import Predictor, load_artifact
from model.artifact import write_atomic

from ..errors import ExportError, MissingExtraError

FORMATS = ("onnx", "triton")


def export(model_dir: str | os.PathLike, fmt: str, out: str | os.PathLike,
           max_batch_size: int = 1024, verify: bool = True) -> dict[str, Any]:
    """Export the artifact at ``model_dir`` as ``fmt`` to ``out`` and describe the result.

    Raises ArtifactError (missing or damaged artifact), ExportError (a format, layer or
    step it cannot express, a graph that disagrees with the model, an unwritable output)
    or MissingExtraError.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    artifact = load_artifact(model_dir)
    try:
        from . import onnx_model, triton
        from . import verify as verifier
    except ModuleNotFoundError as exc:
        raise MissingExtraError(f"{exc.name} is not installed: the export needs the optional "
                                "extra, pip install '.[export]'") from None
    model = onnx_model.build_model(artifact)
    checked = verifier.verify(model, artifact) if verify else None
    data = model.SerializeToString()
    interface = Predictor(artifact).interface
    out = Path(out)
    try:
        if fmt == "onnx":
            written = [write_atomic(out, data)]
        else:
            config = triton.config_pbtxt(artifact.name, interface, max_batch_size)
            folder = triton.write_repository(out, artifact.name, artifact.version, data, config)
            written = [folder / str(artifact.version) / triton.MODEL_FILE,
                       folder / triton.CONFIG_FILE]
    except OSError as exc:
        # named by --out: the file that failed may be a temporary one beside it
        raise ExportError(f"{out}: cannot write the export: {exc.strerror or exc}") from None
    return {
        "format": fmt, "model": artifact.name, "version": artifact.version,
        "written": [str(p) for p in written], "bytes": len(data), "opset": onnx_model.OPSET,
        "inputs": [t.as_dict() for t in interface.inputs],
        "outputs": [t.as_dict() for t in interface.outputs],
        **({"verified": checked} if checked is not None else {}),
    }
