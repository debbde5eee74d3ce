"""Pictures sent to a digit model -> the 28x28 images it sees, for every front end.

The front end that received the bytes (V1 ``{"b64": ...}`` instances and raw ``image/*``
bodies, V2 ``BYTES`` tensors, the batch scorer's picture folders) calls this: decode with
``service.imaging`` (Pillow, safely), normalise as MNIST was made with
``model.digit_image``. The images then take the core's one validation path like any array.
Errors are the core's ``InvalidRequest`` (``PictureTooLarge`` for the pixel limit), their
details nested at the picture's place in the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model.digit_image import normalize_digit
from model.errors import InputError
from model.interface import ModelInterface

from .core.errors import InvalidRequest, PictureTooLarge
from .core.signature import PICTURE_SHAPE, takes_pictures
from .imaging import ImageTooLargeError, decode_base64, decode_image

#: A picture as a front end received it: file bytes with the claimed content type, or
#: base64 text (a data URL's type is its claim).
Picture = tuple[bytes, str | None] | str


def nested(path: Sequence[str], messages: list[str]) -> dict[str, Any]:
    """{"a": {"b": messages}} from path ("a", "b")."""
    out: Any = messages
    for key in reversed(path):
        out = {key: out}
    return out


def picture_images(iface: ModelInterface, pictures: Sequence[Picture],
                   paths: Sequence[Sequence[str]], max_pixels: int) -> np.ndarray:
    """Float32 (n, 28, 28) images, 0..255, white digit on black: what the model sees.

    ``paths[i]`` is where picture i sits in the request (("instances", "0", "b64")), for
    the error's details. InvalidRequest if the model takes no pictures or a picture is
    unusable; PictureTooLarge (HTTP 413) beyond ``max_pixels``.
    """
    if not takes_pictures(iface):
        raise InvalidRequest(
            "this model does not take pictures; only digit classifiers (28x28 inputs) do",
            nested(paths[0] if paths else (), ["This model does not take pictures."]))
    images = np.empty((len(pictures), *PICTURE_SHAPE), dtype=np.float32)
    for i, (picture, path) in enumerate(zip(pictures, paths, strict=True)):
        where = ".".join(path)
        try:
            if isinstance(picture, str):
                data, claimed = decode_base64(picture)
            else:
                data, claimed = picture
            images[i] = normalize_digit(decode_image(data, claimed, max_pixels=max_pixels))
        except ImageTooLargeError as exc:
            raise PictureTooLarge(f"{where}: {exc.message}",
                                  nested(path, [exc.message])) from None
        except InputError as exc:  # ImageError or "no ink found"
            raise InvalidRequest(f"{where}: {exc.message}", nested(path, [exc.message])) \
                from None
    return images


def as_uint8(images: np.ndarray) -> np.ndarray:
    """The images the model saw as uint8 pixels, for a client that asks for them."""
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)
