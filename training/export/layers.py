"""The network's own layer objects (as the artifact loader built them) as ONNX nodes.

Images are NHWC in ``model/``; ONNX's Conv and MaxPool are NCHW. A tensor is moved to NCHW
when a Conv2D or MaxPool2D needs it and back to NHWC only where the order of values matters
(Flatten, Reshape, the network's output), so a stack of conv blocks pays two transposes.
Dropout is the identity at inference and leaves no node. A layer with no converter here is
an ExportError naming it: never a graph that computes something else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from model.activations import ReLU, Sigmoid, Softmax, Tanh
from model.conv import Conv2D, MaxPool2D
from model.layers import Dense, Dropout, Flatten, Layer, Reshape
from model.network import Average, Sequential

from ..errors import ExportError
from .graph import F32, Graph

TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


@dataclass(frozen=True)
class Value:
    """A tensor of the graph; ``nchw`` if it is an image batch held channels-first."""

    name: str
    nchw: bool = False


def _nhwc(g: Graph, v: Value) -> Value:
    return Value(g.op("Transpose", v.name, perm=TO_NHWC, hint="nhwc")) if v.nchw else v


def _nchw(g: Graph, v: Value) -> Value:
    return v if v.nchw else Value(g.op("Transpose", v.name, perm=TO_NCHW, hint="nchw"), True)


def _window_attrs(layer: Conv2D | MaxPool2D) -> dict[str, list[int]]:
    """Kernel, strides and explicit pads [top, left, bottom, right] from the layer's config
    and input shape: Keras's 'same' puts the odd row or column of padding after. Checked
    against the output shape the layer itself computed."""
    config = layer.get_config()
    window = config["kernel_size"] if isinstance(layer, Conv2D) else config["pool_size"]
    strides, before, after = list(config["strides"]), [], []
    for size, k, s, out in zip(layer.input_shape[:2], window, strides, layer.output_shape[:2],
                               strict=True):
        total = max((-(-size // s) - 1) * s + k - size, 0) if config["padding"] == "same" else 0
        if (size + total - k) // s + 1 != out:
            raise ExportError(f"{layer!r}: cannot reproduce its output size {out} from input "
                              f"size {size} with padding {config['padding']!r}")
        before.append(total // 2)
        after.append(total - total // 2)
    return {"kernel_shape": list(window), "strides": strides, "pads": before + after}


def _dense(g: Graph, v: Value, layer: Dense) -> Value:
    y = g.op("MatMul", v.name, g.const("dense_W", layer.params["W"], F32), hint="dense")
    if layer.use_bias:
        y = g.op("Add", y, g.const("dense_b", layer.params["b"], F32), hint="dense")
    return Value(y)


def _conv(g: Graph, v: Value, layer: Conv2D) -> Value:
    # (kh, kw, in, out) -> ONNX's (out, in, kh, kw); cross-correlation in both
    w = g.const("conv_W", layer.params["W"].transpose(3, 2, 0, 1), F32)
    inputs = [_nchw(g, v).name, w]
    if layer.use_bias:
        inputs.append(g.const("conv_b", layer.params["b"], F32))
    return Value(g.op("Conv", *inputs, hint="conv", dilations=[1, 1], group=1,
                      **_window_attrs(layer)), nchw=True)


def _max_pool(g: Graph, v: Value, layer: MaxPool2D) -> Value:
    # ONNX pads never win a max, as model/'s -inf padding never does
    return Value(g.op("MaxPool", _nchw(g, v).name, hint="maxpool", ceil_mode=0,
                      **_window_attrs(layer)), nchw=True)


def _elementwise(op_type: str) -> Callable[[Graph, Value, Layer], Value]:
    def convert(g: Graph, v: Value, layer: Layer) -> Value:
        return Value(g.op(op_type, v.name), v.nchw)
    return convert


def _softmax(g: Graph, v: Value, layer: Softmax) -> Value:
    # over the last NHWC axis: the channels, axis 1 when channels-first
    return Value(g.op("Softmax", v.name, axis=1 if v.nchw else -1), v.nchw)


def _dropout(g: Graph, v: Value, layer: Dropout) -> Value:
    return v


def _flatten(g: Graph, v: Value, layer: Flatten) -> Value:
    return Value(g.op("Flatten", _nhwc(g, v).name, axis=1))


def _reshape(g: Graph, v: Value, layer: Reshape) -> Value:
    # 0 keeps the batch dimension, whatever it is
    shape = g.const("reshape_shape", [0, *layer.target_shape], np.int64)
    return Value(g.op("Reshape", _nhwc(g, v).name, shape))


def _average(g: Graph, v: Value, layer: Average) -> Value:
    """Sum of the members' outputs times float32(1 / members), as ``Average.infer``."""
    outputs = [_nhwc(g, convert_network(g, v, member)).name for member in layer.members]
    total = outputs[0] if len(outputs) == 1 else g.op("Sum", *outputs, hint="ensemble_sum")
    scale = g.const("ensemble_scale", 1.0 / len(layer.members), F32)
    return Value(g.op("Mul", total, scale, hint="ensemble_mean"))


LAYER_CONVERTERS: dict[type[Layer], Callable[[Graph, Value, Layer], Value]] = {
    Dense: _dense, Conv2D: _conv, MaxPool2D: _max_pool, ReLU: _elementwise("Relu"),
    Sigmoid: _elementwise("Sigmoid"), Tanh: _elementwise("Tanh"), Softmax: _softmax,
    Dropout: _dropout, Flatten: _flatten, Reshape: _reshape, Average: _average,
}


def convert_network(g: Graph, x: Value, network: Sequential) -> Value:
    """The layers of a built network applied to x; raises ExportError for a layer type
    without a converter (an exact type match: a subclass may compute something else)."""
    for i, layer in enumerate(network.layers):
        converter = LAYER_CONVERTERS.get(type(layer))
        if converter is None:
            raise ExportError(
                f"layer {i} ({type(layer).__name__}) has no ONNX form in this exporter; "
                f"exportable layers: {', '.join(sorted(c.__name__ for c in LAYER_CONVERTERS))}")
        x = converter(g, x, layer)
    return x
