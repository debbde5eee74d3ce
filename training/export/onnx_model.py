"""One self-contained ONNX model of an artifact: raw inputs in, the service's outputs out.

The graph is what ``model.Predictor.predict_checked`` computes: the stored input pipeline,
the network, then softmax and the arg-max label (classifiers) or the inverse target
transform (regressors). Tensor names are the service's V2 names (``model.interface``).
Input checks (finiteness, value range) stay with the caller, as they do in front of any
ONNX runtime. The same artifact always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json

import onnx
from onnx import helper

from model import Artifact, Predictor
from model.artifact import MANIFEST_FILE
from model.interface import TensorSpec

from .graph import FLOAT, INT64, Graph
from .layers import Value, convert_network
from .steps import convert_steps, convert_target_inverse

#: ONNX operator set of the exported graphs: 17 (ONNX 1.12, 2022) runs on every maintained
#: runtime, Triton's and KServe's included, and has every operator used here.
OPSET = 17
PRODUCER = "numpy-model-server"


_ONNX_TYPES = {"FP32": FLOAT, "INT64": INT64}


def _value_info(t: TensorSpec, doc: str = "") -> onnx.ValueInfoProto:
    shape = ["batch" if d == -1 else d for d in t.shape]
    return helper.make_tensor_value_info(t.name, _ONNX_TYPES[t.datatype], shape, doc)


def metadata(artifact: Artifact) -> dict[str, str]:
    """The graph's metadata_props: where the model came from and how good it is."""
    m = artifact.manifest
    props = {
        "name": m["name"], "version": str(m["version"]), "task": m["task"],
        "weights_sha256": m["weights_sha256"],
        "manifest_sha256": hashlib.sha256((artifact.path / MANIFEST_FILE).read_bytes()
                                          ).hexdigest(),
        "metrics": json.dumps(m["metrics"], sort_keys=True),
        "created_at": m["created_at"],
        "input": json.dumps(m["input"], sort_keys=True),
        "output": json.dumps(m["output"], sort_keys=True),
    }
    if "command" in m.get("training", {}):
        props["training_command"] = str(m["training"]["command"])
    return props


def build_model(artifact: Artifact) -> onnx.ModelProto:
    """The ONNX model of a loaded artifact; raises ExportError for anything it cannot
    express, and checks the result with ``onnx.checker`` (full check, with shapes)."""
    predictor = Predictor(artifact)
    interface = predictor.interface
    (inp,) = interface.inputs
    g = Graph()
    g.name(inp.name)
    x = convert_steps(g, inp.name, predictor.pipeline.steps, predictor.input_shape[-1])
    y = convert_network(g, Value(x), artifact.network)
    if y.nchw:
        y = Value(g.op("Transpose", y.name, perm=[0, 2, 3, 1]))
    if predictor.task == "classification":
        probs, label = interface.outputs
        p = g.op("Softmax", y.name, axis=-1, out=probs.name)
        g.op("ArgMax", p, axis=1, keepdims=0, select_last_index=0, out=label.name)
    else:
        (out,) = interface.outputs
        z = g.op("Squeeze", y.name, g.const("output_axis", [1], "int64"))
        g.op("Identity", convert_target_inverse(g, z, predictor.target), out=out.name)
    m = artifact.manifest
    features = predictor.features
    doc = (f"{len(features)} features in this order: {', '.join(features)}" if features else
           f"{' x '.join(map(str, predictor.input_shape))} values"
           + (f" in [{predictor.value_range[0]:g}, {predictor.value_range[1]:g}]"
              if predictor.value_range else ""))
    graph = helper.make_graph(
        g.nodes, f"{m['name']}_v{m['version']}", [_value_info(inp, doc)],
        [_value_info(t) for t in interface.outputs], g.initializers,
        doc_string=str(m["input"].get("description", "")))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER,
        model_version=int(m["version"]),
        doc_string=f"{m['name']} version {m['version']} ({m['task']}), exported from its "
                   "artifact with preprocessing and output transform inside the graph")
    model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)])
    helper.set_model_props(model, metadata(artifact))
    onnx.checker.check_model(model, full_check=True)
    return model
