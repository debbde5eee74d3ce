"""ONNX and Triton export: the graph computes what the service computes, for the committed
models on real data and for every layer type and preprocessing step; errors exit 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import DIGITS, HOUSING, ROOT
from onnx import helper

from model import (
    Average,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    Predictor,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    load_artifact,
    save_artifact,
)
from model.layers import LAYER_TYPES, register
from model.preprocessing import Clip, Pipeline, QuantileNormal, Scale, SignedLog, Standardize
from tests.factories import make_classifier, make_regressor, random_images
from training.__main__ import main
from training.datasets import housing_split, load_housing, read_idx
from training.export import layers as export_layers
from training.export.graph import Graph
from training.export.onnx_model import OPSET, build_model
from training.export.steps import STEP_CONVERTERS, convert_steps
from training.export.triton import config_pbtxt
from training.export.verify import session

HOUSING_MODEL = ROOT / "artifacts" / "housing" / "1"
MNIST_MODEL = ROOT / "artifacts" / "mnist" / "1"


def export_cli(capsys, *argv):
    code = main(["export", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def run_onnx(path_or_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """All outputs by name, onnxruntime on one thread."""
    model = path_or_model if isinstance(path_or_model, onnx.ModelProto) \
        else onnx.load(str(path_or_model))
    sess = session(model, threads=1)
    names = [o.name for o in sess.get_outputs()]
    outputs = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})
    return dict(zip(names, outputs, strict=True))


@pytest.fixture(scope="module")
def housing_onnx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "housing.onnx"
    assert main(["export", "--format", "onnx", "--model", str(HOUSING_MODEL),
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def mnist_onnx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "mnist.onnx"
    assert main(["export", "--format", "onnx", "--model", str(MNIST_MODEL),
                 "--out", str(out)]) == 0
    return out


# -- the committed models on real data ---------------------------------------------------
def test_housing_graph_predicts_the_test_rows_as_the_service(housing_onnx):
    data = load_housing(HOUSING)
    test_rows = data.X[housing_split(len(data.y)).test]
    assert len(test_rows) == 102
    predictor = Predictor.from_artifact(HOUSING_MODEL)
    want = predictor.predict(test_rows)
    got = run_onnx(housing_onnx, test_rows)
    assert list(got) == ["MEDV"] and got["MEDV"].shape == (102,)
    assert got["MEDV"].dtype == np.float32
    np.testing.assert_allclose(got["MEDV"], want, rtol=0, atol=1e-4)
    # and every row of the file, training rows included
    np.testing.assert_allclose(run_onnx(housing_onnx, data.X)["MEDV"],
                               predictor.predict(data.X), rtol=0, atol=1e-4)


def test_mnist_graph_predicts_the_bundled_digits_as_the_service(mnist_onnx):
    images = read_idx(DIGITS / "train-images-idx3-ubyte.gz")[:2000]
    want = Predictor.from_artifact(MNIST_MODEL).predict(images)
    got = run_onnx(mnist_onnx, images.astype(np.float32))
    assert list(got) == ["probabilities", "label"]
    assert got["probabilities"].shape == (2000, 10) and got["label"].dtype == np.int64
    np.testing.assert_allclose(got["probabilities"], want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got["label"], want.argmax(axis=1))


@pytest.mark.parametrize("n", [1, 3, 256])
def test_any_batch_size_gives_each_row_the_same_answer(housing_onnx, mnist_onnx, n):
    rows = load_housing(HOUSING).X[:n]
    alone = np.concatenate([run_onnx(housing_onnx, r[None])["MEDV"] for r in rows[:3]])
    np.testing.assert_allclose(run_onnx(housing_onnx, rows)["MEDV"][:3], alone[:n],
                               rtol=1e-6)
    images = random_images(n).astype(np.float32)
    assert run_onnx(mnist_onnx, images)["probabilities"].shape == (n, 10)


@pytest.mark.parametrize("model_dir", [HOUSING_MODEL, MNIST_MODEL], ids=["housing", "mnist"])
def test_graph_carries_the_models_identity_and_metrics(model_dir, housing_onnx, mnist_onnx):
    path = housing_onnx if model_dir == HOUSING_MODEL else mnist_onnx
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    assert OPSET >= 17
    manifest = json.loads((model_dir / "manifest.json").read_text())
    props = {p.key: p.value for p in model.metadata_props}
    assert props["name"] == manifest["name"] and props["version"] == str(manifest["version"])
    assert props["weights_sha256"] == manifest["weights_sha256"]
    assert json.loads(props["metrics"]) == manifest["metrics"]
    assert model.model_version == manifest["version"]
    # self-contained: every weight is inside the file
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


@pytest.mark.parametrize("model_dir", [HOUSING_MODEL, MNIST_MODEL], ids=["housing", "mnist"])
def test_inputs_and_outputs_are_the_services_v2_tensors(model_dir, housing_onnx, mnist_onnx):
    path = housing_onnx if model_dir == HOUSING_MODEL else mnist_onnx
    sig = Predictor.from_artifact(model_dir).interface   # what the service serves
    graph = onnx.load(str(path)).graph
    types = {onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.INT64: "INT64"}

    def spec(v):
        dims = [-1 if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim]
        return {"name": v.name, "datatype": types[v.type.tensor_type.elem_type], "shape": dims}

    assert [spec(v) for v in graph.input] == [t.as_dict() for t in sig.inputs]
    assert [spec(v) for v in graph.output] == [t.as_dict() for t in sig.outputs]


def test_the_same_artifact_gives_the_same_bytes(housing_onnx, tmp_path, capsys):
    code, _, err = export_cli(capsys, "--format", "onnx", "--model", HOUSING_MODEL,
                              "--out", tmp_path / "again.onnx")
    assert code == 0, err
    assert (tmp_path / "again.onnx").read_bytes() == housing_onnx.read_bytes()


# -- every preprocessing step, exactly --------------------------------------------------
def run_steps(steps, x: np.ndarray) -> np.ndarray:
    g = Graph()
    out = convert_steps(g, "x", steps, x.shape[-1])
    g.op("Identity", out, out="y")
    graph = helper.make_graph(
        g.nodes, "steps", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, x.shape)], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = helper.find_min_ir_version_for(model.opset_import)
    sess = session(model)
    return sess.run(None, {"x": x})[0]


def test_quantile_transform_matches_numpy_on_its_edge_cases():
    """Real quantiles (ties: ZN's zeros, CHAS's 0/1), values on the quantiles, between them,
    far outside them."""
    step = Predictor.from_artifact(HOUSING_MODEL).pipeline.steps[0]
    assert isinstance(step, QuantileNormal)
    q = step.quantiles
    rng = np.random.default_rng(1)
    x = np.concatenate([
        q.T, (q.T[1:] + q.T[:-1]) / 2, q.T[:1] - 1e3, q.T[-1:] + 1e3, q.T[:1] - 1e-3,
        load_housing(HOUSING).X, rng.uniform(q[:, 0], q[:, -1], (500, 13)),
    ]).astype(np.float32)
    want = Pipeline([step]).transform(x)
    got = run_steps([step], x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.mean(got == want) > 0.99  # bit for bit nearly everywhere


def test_the_other_preprocessing_steps_match_numpy():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((300, 5)) * [1, 1e-9, 1e4, 3, 0.5]).astype(np.float32)
    x[:5, 1] = [0.0, -0.0, 1e-38, -1e-30, 1.0]
    steps = [SignedLog([0, 1, 2]), Standardize([0.5, 0, 1, -2, 0.1], [2, 1, 3, 0.5, 1]),
             Clip(-2.5, 2.5), Scale(3.0, 0.25), Scale(0.5)]
    assert {type(s) for s in steps} | {QuantileNormal} == set(STEP_CONVERTERS)
    want = Pipeline(steps).transform(x)
    got = run_steps(steps, x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_regressor_with_signed_log_standardize_clip_and_linear_target(tmp_path, capsys):
    model_dir = make_regressor(tmp_path / "artifacts")
    x = load_housing(HOUSING).X
    out = tmp_path / "r.onnx"
    code, _, err = export_cli(capsys, "--format", "onnx", "--model", model_dir, "--out", out)
    assert code == 0, err
    np.testing.assert_allclose(run_onnx(out, x)["MEDV"],
                               Predictor.from_artifact(model_dir).predict(x), rtol=0, atol=1e-4)


# -- every layer type -------------------------------------------------------------------
def _cfg(*layers: Layer) -> list[dict]:
    return [layer.get_config() for layer in layers]


NETWORKS = {
    # strided 'same' convolution without bias (odd padding), overlapping 'same' pooling,
    # non-square kernels, Tanh, Sigmoid, Dropout at inference
    "conv-same-strided": lambda: [
        Reshape([28, 28, 1]), Conv2D(3, 5, strides=2, padding="same", use_bias=False), Tanh(),
        MaxPool2D(3, strides=2, padding="same"), Conv2D(4, [3, 2], padding="valid"),
        Sigmoid(), Dropout(0.3), Flatten(), Dense(10)],
    # Softmax over the channels of an image, a Dense without bias, a Softmax output layer
    "softmax-on-images": lambda: [
        Reshape([28, 28, 1]), Conv2D(4, 3, padding="same"), Softmax(), MaxPool2D(2),
        Flatten(), Dense(12), ReLU(), Dense(10, use_bias=False), Softmax()],
    # images made by a Dense layer and flattened again by a Reshape: layout round trips
    "reshape-between": lambda: [
        Flatten(), Dense(196), Reshape([14, 14, 1]), Conv2D(2, 3), ReLU(), MaxPool2D(2),
        Reshape([72]), Dense(10)],
    # an ensemble of two different members, one of them convolutional
    "average": lambda: [Average([
        _cfg(Flatten(), Dense(8), ReLU(), Dense(10)),
        _cfg(Reshape([28, 28, 1]), Conv2D(2, 3, strides=2), ReLU(), Flatten(), Dense(10))])],
}


def test_every_layer_type_of_the_library_has_a_converter_and_a_test():
    converters = {cls.__name__ for cls in export_layers.LAYER_CONVERTERS}
    assert set(LAYER_TYPES) == converters
    tested = set()
    for build in NETWORKS.values():
        for layer in build():
            tested.add(type(layer).__name__)
            if isinstance(layer, Average):
                tested |= {type(m).__name__ for member in layer.members for m in member.layers}
    assert tested == converters


@pytest.mark.parametrize("arch", sorted(NETWORKS))
def test_each_layer_type_exports_exactly(arch, tmp_path, capsys):
    net = Sequential(NETWORKS[arch](), input_shape=(28, 28)).build(seed=3)
    model_dir = make_classifier(tmp_path / "artifacts", network=net)
    out = tmp_path / "m.onnx"
    code, _, err = export_cli(capsys, "--format", "onnx", "--model", model_dir, "--out", out)
    assert code == 0, err
    images = random_images(50, seed=4)
    want = Predictor.from_artifact(model_dir).predict(images)
    got = run_onnx(out, images.astype(np.float32))
    np.testing.assert_allclose(got["probabilities"], want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got["label"], want.argmax(axis=1))


def test_a_layer_without_a_converter_is_a_clear_error(tmp_path, capsys, monkeypatch):
    class Doubled(Layer):
        """x * 2: a layer type the exporter has never heard of."""

        def infer(self, x):
            return x * 2

    monkeypatch.setitem(LAYER_TYPES, "Doubled", Doubled)
    register(Doubled)
    net = Sequential([Flatten(), Dense(10), Doubled()], input_shape=(28, 28)).build(seed=0)
    model_dir = make_classifier(tmp_path / "artifacts", network=net)
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    code, stdout, err = export_cli(capsys, "--format", "onnx", "--model", model_dir,
                                   "--out", out)
    assert code == 2 and stdout == ""
    assert err.strip().splitlines() == [err.strip()]
    assert "layer 2 (Doubled) has no ONNX form" in err
    assert list(out.parent.iterdir()) == []


def test_a_graph_that_disagrees_with_the_model_is_not_written(tmp_path, capsys, monkeypatch):
    """The check before writing: a deliberately wrong converter (ReLU as Sigmoid)."""
    monkeypatch.setitem(export_layers.LAYER_CONVERTERS, ReLU,
                        export_layers.LAYER_CONVERTERS[Sigmoid])
    out = tmp_path / "h.onnx"
    code, _, err = export_cli(capsys, "--format", "onnx", "--model", HOUSING_MODEL,
                              "--out", out)
    assert code == 2 and "disagrees with the model" in err
    assert list(tmp_path.iterdir()) == []


# -- Triton -----------------------------------------------------------------------------
def test_triton_repository_serves_the_same_graph(tmp_path, capsys, mnist_onnx):
    repo = tmp_path / "repo"
    code, out, err = export_cli(capsys, "--format", "triton", "--model", MNIST_MODEL,
                                "--out", repo, "--max-batch-size", "64")
    assert code == 0, err
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == \
        ["mnist", "mnist/1", "mnist/1/model.onnx", "mnist/config.pbtxt"]
    assert (repo / "mnist/1/model.onnx").read_bytes() == mnist_onnx.read_bytes()
    config = (repo / "mnist/config.pbtxt").read_text()
    assert 'name: "mnist"' in config and 'backend: "onnxruntime"' in config
    assert "max_batch_size: 64" in config and "dynamic_batching {" in config
    # inputs and outputs as the graph declares them, the batch dimension left out
    graph = onnx.load(str(repo / "mnist/1/model.onnx")).graph
    for v in [*graph.input, *graph.output]:
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim][1:]
        block = config[config.index(f'name: "{v.name}"'):].split("}")[0]
        assert f"dims: [ {', '.join(map(str, dims or [1]))} ]" in block
        assert ("reshape: { shape: [ ] " in block) == (not dims)
    summary = json.loads(out)
    assert summary["written"] == [str(repo / "mnist/1/model.onnx"),
                                  str(repo / "mnist/config.pbtxt")]


def test_triton_adds_versions_and_replaces_a_version_in_place(tmp_path, capsys):
    repo = tmp_path / "repo"
    first = make_regressor(tmp_path / "artifacts", seed=1)
    second = make_regressor(tmp_path / "artifacts", seed=2)
    assert second.name == "2"
    for model_dir in (first, second, first):
        code, _, err = export_cli(capsys, "--format", "triton", "--model", model_dir,
                                  "--out", repo)
        assert code == 0, err
    assert sorted(p.name for p in (repo / "housing").iterdir()) == ["1", "2", "config.pbtxt"]
    assert sorted(p.name for p in (repo / "housing" / "1").iterdir()) == ["model.onnx"]
    x = load_housing(HOUSING).X[:20]
    for version, model_dir in (("1", first), ("2", second)):
        got = run_onnx(repo / "housing" / version / "model.onnx", x)["MEDV"]
        np.testing.assert_allclose(got, Predictor.from_artifact(model_dir).predict(x),
                                   rtol=0, atol=1e-4)


def test_config_for_a_regressor_declares_the_batch_only_output():
    text = config_pbtxt("housing", Predictor.from_artifact(HOUSING_MODEL).interface, 8)
    assert 'name: "features"\n    data_type: TYPE_FP32\n    dims: [ 13 ]\n' in text
    assert ('name: "MEDV"\n    data_type: TYPE_FP32\n    dims: [ 1 ]\n'
            "    reshape: { shape: [ ] }") in text


# -- errors: exit 2, one line, nothing written ------------------------------------------
def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_artifact(tmp_path, capsys):
    code, out, err = export_cli(capsys, "--format", "onnx", "--model", tmp_path / "nope" / "1",
                                "--out", tmp_path / "m.onnx")
    assert code == 2 and out == ""
    assert "not an artifact folder" in _one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_weights_are_refused_by_their_checksum(tmp_path, capsys, regressor_dir):
    weights = regressor_dir / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = export_cli(capsys, "--format", "triton", "--model", regressor_dir,
                              "--out", out)
    assert code == 2
    assert "checksum mismatch" in _one_error_line(err)
    assert list(out.iterdir()) == []


def test_unknown_format_exits_2_naming_the_choices(tmp_path):
    run = subprocess.run([sys.executable, "-m", "training", "export", "--format", "tflite",
                          "--model", str(HOUSING_MODEL), "--out", str(tmp_path / "m")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    last = run.stderr.strip().splitlines()[-1]  # argparse's usage, then its error line
    assert "argument --format: invalid choice: 'tflite'" in last
    assert "onnx" in last and "triton" in last
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_through_the_function(tmp_path):
    from training.errors import ExportError
    from training.export import export

    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export(HOUSING_MODEL, "tflite", tmp_path / "m")


@pytest.mark.parametrize("fmt", ["onnx", "triton"])
def test_unwritable_output(tmp_path, capsys, fmt):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "sub" / "m.onnx" if fmt == "onnx" else blocker
    code, _, err = export_cli(capsys, "--format", fmt, "--model", HOUSING_MODEL, "--out", out)
    assert code == 2
    assert "cannot write the export" in _one_error_line(err)
    assert list(tmp_path.iterdir()) == [blocker] and blocker.read_text() == "not a folder"


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(
        tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous export")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", failing_replace)
    code, _, err = export_cli(capsys, "--format", "onnx", "--model", HOUSING_MODEL,
                              "--out", out)
    assert code == 2 and "No space left on device" in _one_error_line(err)
    assert list(tmp_path.iterdir()) == [out] and out.read_bytes() == b"previous export"


def test_an_output_that_is_a_folder_is_refused(tmp_path, capsys):
    code, _, err = export_cli(capsys, "--format", "onnx", "--model", HOUSING_MODEL,
                              "--out", tmp_path)
    assert code == 2 and "cannot write the export" in _one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_help_names_both_formats():
    run = subprocess.run([sys.executable, "-m", "training", "export", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert "{onnx,triton}" in run.stdout and "config.pbtxt" in run.stdout


def test_export_keeps_the_loaded_artifact_unchanged():
    """The exporter reads the network's own layer objects: their weights go into the graph
    as they are, and nothing is modified on the way."""
    artifact = load_artifact(MNIST_MODEL)
    before = {k: v.copy() for k, v in artifact.network.get_weights().items()}
    model = build_model(artifact)
    after = artifact.network.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    conv = artifact.network.layers[1]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert any(v.shape == (32, 1, 3, 3) and np.array_equal(v, conv.params["W"].transpose(
        3, 2, 0, 1)) for v in inits.values())


def test_save_artifact_roundtrip_still_works_for_export(tmp_path):
    """A network the trainer would save (an ensemble of Dense members) exports as saved."""
    net = Sequential([Average([_cfg(Dense(4), ReLU(), Dense(1)),
                               _cfg(Dense(3), Tanh(), Dense(1))])],
                     input_shape=(13,)).build(seed=5)
    manifest = {"task": "regression", "input": {"features": [f"f{i}" for i in range(13)]},
                "output": {"name": "price"}, "metrics": {}, "training": {},
                "preprocessing": {"input": [{"type": "Standardize", "mean": [1.0] * 13,
                                             "std": [2.0] * 13}],
                                  "target": {"type": "TargetScaler", "mean": 1.0, "std": 0.5,
                                             "log": True}}}
    model_dir = save_artifact(tmp_path, "prices", net, manifest)
    model = build_model(load_artifact(model_dir))
    assert [o.name for o in model.graph.output] == ["price"]
    x = np.random.default_rng(0).normal(1, 2, (40, 13)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(model, x)["price"],
                               Predictor.from_artifact(model_dir).predict(x),
                               rtol=1e-5, atol=0)
