"""Pictures sent by clients (bytes or base64) -> NumPy pixel arrays, safely, with Pillow.

The service decodes at the edge and hands the pixels to ``model.digit_image``; this module
knows nothing of HTTP, so the V1, V2, raw-body and batch front ends share it. Its rules:

- **allow-list**: PNG, JPEG, GIF (first frame), BMP and WebP, recognised by their magic
  bytes, never by a file name or a claimed type; anything else is refused before Pillow
  parses it. TIFF, PSD, ICO, SVG, PDF, HEIC... are refused on purpose: they are rare from
  clients and are large attack surfaces (TIFF alone has dozens of codecs and sub-formats);
  Pillow is also told to try only the one plugin of the sniffed format.
- **disguise**: a claimed ``image/*`` content type that disagrees with the bytes is an error.
- **size before decoding**: the header's width x height is checked against ``max_pixels``
  before any pixel is decoded (decompression bombs: a 50 kB PNG can claim 10 gigapixels);
  ``ImageTooLarge`` lets the HTTP layer answer 413.
- **damaged files**: truncated or corrupt data is an error, never a partly grey picture
  (Pillow's ``LOAD_TRUNCATED_IMAGES`` stays off).
- **no warnings escape, thread-safely**: Pillow's warnings (a decompression bomb between
  Pillow's two limits, corrupt EXIF, a malformed MPO or APNG) describe pictures that are
  refused anyway or still decode correctly. One process-wide filter ignores every warning
  raised from Pillow's modules; ``decode_image`` puts it first again if anything removed it
  or placed another filter before it. ``warnings.catch_warnings`` is not used: it swaps the
  process's filter list and ``showwarning``, so decodes on several threads (gRPC) would
  lose or misattribute warnings, and could leave the filters changed. A picture above
  Pillow's own limit (``Image.MAX_IMAGE_PIXELS``) is refused as ``ImageTooLarge`` whatever
  ``max_pixels`` allows, from its header, as above.
- **orientation**: the EXIF orientation tag is applied, as photo viewers do.
- **modes**: 1-bit, palette (with transparency), grey + alpha, CMYK, YCbCr and 16-bit grey
  come back as uint8 grey, grey + alpha, RGB or RGBA.

Every error is an ``ImageError`` (a ``model.errors.InputError``) whose message says what is
wrong and what to send instead.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import InputError

#: at most this many pixels (width x height) are decoded unless the caller says otherwise
DEFAULT_MAX_PIXELS = 16_000_000
#: Pillow format name -> the content type a client should send it as
FORMATS: dict[str, str] = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif",
                           "BMP": "image/bmp", "WEBP": "image/webp"}
#: content types clients use for the allowed formats besides the standard ones
TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg",
                "image/x-png": "image/png", "image/x-bmp": "image/bmp",
                "image/x-ms-bmp": "image/bmp"}
#: magic bytes of formats we refuse, to name them in the error
REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"8BPS", "PSD"), (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"\xff\x0a", "JPEG XL"), (b"qoif", "QOI"),
)
ALLOWED_NAMES = "PNG, JPEG, GIF, BMP or WebP"


class ImageError(InputError):
    """A picture cannot be used; the message says why and what to send instead."""


class NotAnImageError(ImageError):
    """The bytes are not a picture in any format we know (or are empty)."""


class UnsupportedFormatError(ImageError):
    """A real picture, in a format outside the allow-list (TIFF, PSD, HEIC, SVG...)."""


class DisguisedImageError(ImageError):
    """The claimed content type names another format than the bytes are."""


class DamagedImageError(ImageError):
    """The file is truncated or corrupt: its pixels cannot all be decoded."""


class ImageTooLargeError(ImageError):
    """Too many pixels (from the header, before decoding) or too many bytes: HTTP 413."""


class Base64Error(ImageError):
    """Text that should be base64 (or a base64 data URL) is not."""


# -- format ------------------------------------------------------------------------------
def sniff_format(data: bytes) -> str | None:
    """The allowed format the bytes start with ("PNG", "JPEG", ...), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _refused_name(data: bytes) -> str | None:
    """The name of a picture format we refuse that the bytes look like, else None."""
    for magic, name in REFUSED_MAGIC:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return "AVIF" if brand.startswith(b"avi") else "HEIC/HEIF" \
            if brand[:3] in (b"hei", b"hev", b"mif") else None
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096]):
        return "SVG"
    return None


def content_type_format(content_type: str | None) -> str | None:
    """The allowed format an ``image/*`` content type names, "" for another image type or
    a wildcard we cannot check, None when it is absent or not an image type."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    media = TYPE_ALIASES.get(media, media)
    if not media.startswith("image/"):
        return None
    for name, standard in FORMATS.items():
        if media == standard:
            return name
    return "" if media == "image/*" else media


def check_format(data: bytes, content_type: str | None = None) -> str:
    """The format of the picture in ``data``, or ImageError: empty, not a picture, a refused
    format, or disguised as another ``image/*`` type than ``content_type`` claims."""
    if not data:
        raise NotAnImageError(f"no picture: the body is empty; send a {ALLOWED_NAMES} file")
    found = sniff_format(data)
    if found is None:
        refused = _refused_name(data)
        if refused:
            raise UnsupportedFormatError(f"{refused} pictures are not accepted; send "
                                         f"{ALLOWED_NAMES}")
        raise NotAnImageError(f"not a picture: the bytes are not {ALLOWED_NAMES} "
                              f"(they start with {data[:8]!r})")
    claimed = content_type_format(content_type)
    if claimed and claimed != found:
        shown = FORMATS.get(claimed, claimed)
        raise DisguisedImageError(f"the picture is {found} but was sent as {shown}; send it "
                                  f"as {FORMATS[found]} (or send the file it claims to be)")
    return found


# -- decoding ----------------------------------------------------------------------------
#: the module names Pillow warns from (PIL.Image, PIL.TiffImagePlugin, ...)
PILLOW_MODULES = r"PIL(\.|$)"


def _pillow_filter() -> Any:
    """The entry ``warnings.filterwarnings("ignore", module=PILLOW_MODULES)`` makes."""
    return ("ignore", None, Warning, re.compile(PILLOW_MODULES), 0)


_PILLOW_FILTER = _pillow_filter()


def quiet_pillow() -> None:
    """Make Pillow's warnings ignored, process-wide: the filter first in ``warnings.filters``.

    Cheap when it is already first (the usual case: one comparison); otherwise
    ``warnings.filterwarnings`` moves or adds it, an atomic list change, safe from any thread.
    """
    filters = warnings.filters
    if not filters or filters[0] != _PILLOW_FILTER:
        warnings.filterwarnings("ignore", module=PILLOW_MODULES)


quiet_pillow()


def decode_image(data: bytes, content_type: str | None = None, *,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode one picture to uint8 pixels: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3)
    RGB or (H, W, 4) RGBA, upright per its EXIF orientation; GIFs give their first frame.

    ``content_type``, if given, is what the client claimed (checked against the bytes).
    Raises an ImageError subclass; ImageTooLargeError when width x height > max_pixels
    (or Pillow's own limit, if lower), found from the header before decoding. Safe to call
    from several threads at once; never lets a Pillow warning through.
    """
    fmt = check_format(data, content_type)
    quiet_pillow()
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    try:
        img = _open_checked(data, fmt, limit)
        img.load()
        return _as_array(_upright(img))
    except ImageError:
        raise
    except Image.DecompressionBombError:  # over twice Pillow's limit, from the header
        raise ImageTooLargeError(_too_many(None, limit)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
            KeyError, struct.error) as exc:
        raise DamagedImageError(_damage_message(fmt, exc)) from None


def _too_many(size: tuple[int, int] | None, max_pixels: int) -> str:
    """The message for a picture with more than max_pixels pixels (size if known)."""
    what = f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:,.1f} megapixels" if size \
        else "larger than Pillow will decode safely"
    return (f"the picture is {what}; at most {max_pixels / 1e6:g} megapixels are accepted: "
            "send a smaller picture")


def _open_checked(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Pillow's lazy image of ``data`` (header parsed, pixels not decoded), its pixel
    count checked against max_pixels."""
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
    except UnidentifiedImageError:
        raise DamagedImageError(f"the {fmt} picture's header is damaged: it cannot be "
                                "read") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise DamagedImageError(f"the {fmt} picture is {width}x{height}: it has no pixels")
    if width * height > max_pixels:
        raise ImageTooLargeError(_too_many((width, height), max_pixels))
    return img


def _damage_message(fmt: str, exc: BaseException) -> str:
    """A message for a picture Pillow could not decode."""
    text = str(exc).lower()
    if "truncat" in text or isinstance(exc, EOFError) or "broken data stream" in text:
        return f"the {fmt} picture is truncated: part of the file is missing"
    return f"the {fmt} picture is damaged and cannot be decoded ({exc.__class__.__name__})"


def _upright(img: Image.Image) -> Image.Image:
    """img turned per its EXIF orientation tag; unchanged if the EXIF cannot be read."""
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
        return img  # a damaged EXIF block is common in photos whose pixels are fine


def _as_array(img: Image.Image) -> np.ndarray:
    """img as a uint8 array: grey, grey + alpha, RGB or RGBA (see decode_image)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grey: Pillow's convert("L") clips at 255, so scale in NumPy instead
        values = np.asarray(img).astype(np.uint32)
        return (np.clip(values, 0, 65535) // 257).astype(np.uint8)
    if mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0)
        return np.clip(values, 0, 255).astype(np.uint8)
    if mode == "P":
        mode_to = "RGBA" if "transparency" in img.info or img.palette.mode == "RGBA" \
            else "RGB"
    elif mode in ("1", "L"):
        mode_to = "L"
    elif mode in ("LA", "La", "PA"):
        mode_to = "LA" if mode != "PA" else "RGBA"
    elif mode in ("RGBA", "RGBa"):
        mode_to = "RGBA"
    else:  # RGB, CMYK, YCbCr, LAB, HSV, RGBX
        mode_to = "RGB"
    if mode != mode_to:
        img = img.convert(mode_to)
    return np.array(img, dtype=np.uint8)


# -- base64 ------------------------------------------------------------------------------
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,",
                       re.IGNORECASE)
_B64_CHARS = re.compile(rb"[^A-Za-z0-9+/=]")


def decode_base64(text: str | bytes, *, max_bytes: int | None = None
                  ) -> tuple[bytes, str | None]:
    """(bytes, claimed content type or None) from standard base64 text, optionally a
    ``data:image/png;base64,...`` URL as a browser canvas makes.

    Line breaks and spaces are ignored (MIME wraps lines); any other character outside the
    standard alphabet, or wrong padding, is a Base64Error. More than ``max_bytes`` decoded
    bytes (judged from the text's length, before decoding) is ImageTooLargeError.
    """
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise Base64Error("base64 text must be ASCII: it has other characters") from None
    elif isinstance(text, bytes | bytearray):
        raw = bytes(text)
    else:
        raise Base64Error(f"expected base64 text, got {type(text).__name__}")
    claimed = None
    if raw[:5].lower() == b"data:":
        head = _DATA_URL.match(raw[:256].decode("ascii", "replace"))
        if head is None:
            raise Base64Error("a data URL must look like data:image/png;base64,<base64>")
        claimed = head.group("type")
        raw = raw[head.end():]
    raw = b"".join(raw.split())
    if not raw:
        raise Base64Error("the base64 text is empty: no picture")
    if max_bytes is not None and len(raw) // 4 * 3 > max_bytes:
        raise ImageTooLargeError(f"the base64 picture is about {len(raw) // 4 * 3:,} bytes; at "
                                 f"most {max_bytes:,} are accepted")
    bad = _B64_CHARS.search(raw)
    if bad:
        where = bad.start()
        char = raw[where:where + 1].decode("ascii", "replace")
        hint = " (URL-safe base64? use + and / instead of - and _)" if char in "-_" else ""
        raise Base64Error(f"invalid base64: character {char!r} at position {where}{hint}")
    if len(raw) % 4:
        raise Base64Error(f"invalid base64: its length ({len(raw)}) is not a multiple of 4 "
                          "(missing '=' padding?)")
    try:
        return base64.b64decode(raw, validate=True), claimed
    except (binascii.Error, ValueError):
        raise Base64Error("invalid base64: '=' padding in the wrong place") from None
