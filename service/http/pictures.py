"""Pictures on the HTTP routes: V1 ``{"b64": ...}`` instances (TF Serving's convention for
binary data), a raw ``image/*`` body on V1 ``:predict``, and the ``return_image`` flag of a
query string. Decoding and normalising are ``service.pictures``'.
"""

from __future__ import annotations

from typing import Any

from flask import request

from ..core.errors import InvalidRequest


def is_picture_body() -> bool:
    """True when the request's body is declared as a picture (``Content-Type: image/*``)."""
    return request.mimetype.startswith("image/")


def b64_instances(instances: list[Any]) -> list[str] | None:
    """The base64 texts of instances ``{"b64": "<base64>"}``, None if there are none;
    InvalidRequest if some instances are pictures and others not, or a b64 is no string."""
    flags = [type(inst) is dict and "b64" in inst for inst in instances]
    if not any(flags):
        return None
    texts: list[str] = []
    for i, (inst, is_b64) in enumerate(zip(instances, flags, strict=True)):
        if not is_b64:
            raise InvalidRequest(
                f"instance {i} is not a picture but instance {flags.index(True)} is; all "
                'instances of a request must be pictures {"b64": "<base64>"} or none',
                {"instances": {str(i): ["Instances mix layouts."]}})
        if inst.keys() != {"b64"} or type(inst["b64"]) is not str:
            raise InvalidRequest(
                f'instance {i}: a picture instance is {{"b64": "<base64 of the file>"}} '
                "and nothing else", {"instances": {str(i): {"b64": [
                    "Expected an object with one string field, b64."]}}})
        texts.append(inst["b64"])
    return texts


def query_flag(name: str) -> bool:
    """A boolean query parameter (``?return_image=true``); false when absent."""
    value = request.args.get(name)
    if value is None:
        return False
    if value.lower() not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"query parameter {name} must be true or false, got {value!r}",
                             {"query": {name: ["Not a valid boolean."]}})
    return value.lower() in ("true", "1")
