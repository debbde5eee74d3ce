"""A model's interface in protocol terms: how one instance is described to a person, and the
Open Inference Protocol model metadata that carries the interface whole.

The metadata's ``parameters`` hold what the tensors cannot say (task, feature names, value
range, labels), so a client such as the batch scorer's remote mode rebuilds the same
``ModelInterface`` from it and validates exactly as the server does.
"""

from __future__ import annotations

from typing import Any

from model.interface import ModelInterface, TensorSpec

SERVER_NAME = "numpy-model-server"
SERVER_VERSION = "0.1.0"
PLATFORM = "numpy-model-server"
#: what a digit model sees of a picture, and what a client asking for it gets back
PICTURE_SHAPE = (28, 28)
#: the V2 input of digit models taking encoded picture files, one per element
PICTURE_INPUT = TensorSpec("image", "BYTES", (-1,))
#: the V2 output a client asks for to get the 28x28 pictures the model saw
PICTURE_OUTPUT = TensorSpec("image", "UINT8", (-1, *PICTURE_SHAPE))


def takes_pictures(iface: ModelInterface) -> bool:
    """True for a classifier of 28x28 pixels (an MNIST-style digit model)."""
    return (iface.task == "classification" and iface.features is None
            and iface.input_size == PICTURE_SHAPE[0] * PICTURE_SHAPE[1])


def describe_instance(iface: ModelInterface) -> str:
    """A person's description of one valid instance, for error messages."""
    if iface.features:
        n = len(iface.features)
        return (f"an object with the {n} numbers {', '.join(iface.features)} or a list of "
                f"{n} numbers in that order")
    if len(iface.input_shape) == 1:
        return f"a list of {iface.input_size} numbers"
    nested = " of ".join(f"{d} lists" for d in iface.input_shape[:-1])
    return (f"a list of {iface.input_size} numbers or {nested} of {iface.input_shape[-1]} "
            "numbers")


def metadata_parameters(iface: ModelInterface) -> dict[str, Any]:
    """What the tensor metadata cannot say: task, feature names, value range, labels."""
    out: dict[str, Any] = {"task": iface.task}
    if iface.features is not None:
        out["features"] = list(iface.features)
    if iface.value_range is not None:
        out["value_range"] = list(iface.value_range)
    if iface.labels is not None:
        out["labels"] = list(iface.labels)
    return out


def model_metadata(name: str, versions: list[int], iface: ModelInterface) -> dict[str, Any]:
    """The Open Inference Protocol model metadata of ``iface``: digit models list a second
    input, ``image`` (BYTES), that takes picture files instead of pixels."""
    pictures = [PICTURE_INPUT] if takes_pictures(iface) else []
    return {"name": name, "versions": [str(v) for v in versions], "platform": PLATFORM,
            "inputs": [t.as_dict() for t in (*iface.inputs, *pictures)],
            "outputs": [t.as_dict() for t in iface.outputs],
            "parameters": metadata_parameters(iface)}


def interface_from_metadata(meta: dict[str, Any]) -> ModelInterface:
    """The ModelInterface a server describes in its V2 model metadata (see ``parameters``).

    Raises ValueError (with the reason) for metadata this server would not have written.
    """
    try:
        params = meta["parameters"]
        task = params["task"]
        shape = tuple(int(d) for d in meta["inputs"][0]["shape"][1:])
        features = tuple(map(str, params["features"])) if "features" in params else None
        rng = params.get("value_range")
        value_range = (float(rng[0]), float(rng[1])) if rng is not None else None
        labels = tuple(map(str, params.get("labels", ()))) \
            if task == "classification" else None
        iface = ModelInterface.build(task, shape, features, value_range, labels,
                                     str(meta["inputs"][0]["name"]),
                                     str(meta["outputs"][0]["name"]))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"unexpected model metadata ({type(exc).__name__}: {exc})") from None
    pictures = [PICTURE_INPUT.as_dict()] if takes_pictures(iface) else []
    if [t.as_dict() for t in iface.inputs] + pictures != meta["inputs"] or \
            [t.as_dict() for t in iface.outputs] != meta["outputs"]:
        raise ValueError("model metadata inputs/outputs do not match its parameters")
    return iface
