"""A small builder over ``onnx.helper``: nodes and constants with unique, readable names."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32
F64 = np.float64
FLOAT, DOUBLE, INT64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64


class Graph:
    """Collects the nodes and initializers of one ONNX graph; every method returns the name
    of the tensor it made, so converters read like the NumPy code they mirror."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._used: Counter[str] = Counter()
        self._consts: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    def name(self, hint: str) -> str:
        """A tensor name not used before, derived from ``hint``."""
        self._used[hint] += 1
        count = self._used[hint]
        return hint if count == 1 else f"{hint}_{count}"

    def const(self, hint: str, value: Any, dtype: type | None = None) -> str:
        """An initializer holding ``value`` (a NumPy array or number) in ``dtype``; equal
        constants are stored once."""
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = self.name(hint)
            self.initializers.append(numpy_helper.from_array(array, self._consts[key]))
        return self._consts[key]

    def op(self, op_type: str, *inputs: str, hint: str | None = None, out: str | None = None,
           **attrs: Any) -> str:
        """One node with a single output; ``out`` fixes the output's name (graph outputs)."""
        output = out or self.name(hint or op_type.lower())
        if out:
            self._used[out] += 1
        self.nodes.append(helper.make_node(op_type, list(inputs), [output],
                                           name=f"{op_type}:{output}", **attrs))
        return output

    # -- shorthands for the element-wise arithmetic the converters use ------------------
    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def div(self, a: str, b: str) -> str:
        return self.op("Div", a, b)

    def where(self, cond: str, a: str, b: str) -> str:
        return self.op("Where", cond, a, b)

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", x, to=to)
