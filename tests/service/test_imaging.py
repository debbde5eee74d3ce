"""service.imaging: every allowed format decodes; every bad picture is a clear ImageError;
no Pillow warning escapes (whatever filters are in force), and decoding is thread-safe."""

import base64
import io
import struct
import sys
import threading
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageOps

from model.errors import InputError
from service.imaging import (
    Base64Error,
    DamagedImageError,
    DisguisedImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    UnsupportedFormatError,
    decode_base64,
    decode_image,
    sniff_format,
)


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    """img saved in fmt, as bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def gradient(mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A picture whose every pixel differs, so orientation and frames can be told apart."""
    w, h = size
    arr = (np.arange(w * h).reshape(h, w) * 7 % 251).astype(np.uint8)
    img = Image.fromarray(arr)
    return img.convert(mode)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height in a valid IHDR, with one tiny IDAT: a bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


# -- formats that work ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt, mode, options, shape", [
    ("PNG", "RGB", {}, (30, 40, 3)),
    ("PNG", "L", {}, (30, 40)),
    ("PNG", "LA", {}, (30, 40, 2)),
    ("PNG", "RGBA", {}, (30, 40, 4)),
    ("PNG", "1", {}, (30, 40)),
    ("JPEG", "RGB", {"quality": 90}, (30, 40, 3)),
    ("JPEG", "L", {}, (30, 40)),
    ("BMP", "RGB", {}, (30, 40, 3)),
    ("WEBP", "RGB", {"lossless": True}, (30, 40, 3)),
    ("WEBP", "RGBA", {"lossless": True}, (30, 40, 4)),
    ("GIF", "L", {}, (30, 40, 3)),  # a palette of greys: colour, like any palette
    ("GIF", "RGB", {}, (30, 40, 3)),
])
def test_allowed_formats_decode_to_uint8_arrays(fmt, mode, options, shape):
    img = gradient(mode)
    if mode == "RGB":  # colour, so that no encoder may store it as grey
        img.paste((200, 30, 30), (0, 0, 10, 10))
    if "A" in mode:  # real transparency, so that no encoder may drop the alpha
        img.putalpha(Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))))
    data = encode(img, fmt, **options)
    assert sniff_format(data) == fmt
    pixels = decode_image(data)
    assert pixels.dtype == np.uint8 and pixels.shape == shape


def test_lossless_pixels_are_exact():
    img = gradient("RGB")
    np.testing.assert_array_equal(decode_image(encode(img, "PNG")), np.asarray(img))


def test_claimed_type_matching_or_generic_is_accepted():
    data = encode(gradient(), "JPEG")
    for claimed in ("image/jpeg", "image/jpg", "IMAGE/JPEG; q=1", "image/*",
                    "application/octet-stream", None, ""):
        assert decode_image(data, claimed).shape == (30, 40, 3)


def test_animated_gif_gives_its_first_frame():
    first = Image.new("L", (20, 10), 30)
    second = Image.new("L", (20, 10), 220)
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    pixels = decode_image(data)
    assert pixels.shape[:2] == (10, 20)
    assert int(pixels.max()) < 100  # the dark first frame, not the light second


def test_16_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    np.testing.assert_array_equal(decode_image(data), [[0, 1, 128, 255]])


def test_palette_png_with_transparency_keeps_its_alpha():
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    data = encode(img, "PNG", transparency=0)
    pixels = decode_image(data)
    assert pixels.shape == (2, 4, 4)
    assert pixels[0, 1, 3] == 255 and pixels[0, 0, 3] == 0  # ink opaque, paper transparent


def test_cmyk_jpeg_becomes_rgb():
    img = Image.new("CMYK", (16, 8), (0, 0, 0, 255))  # black ink
    pixels = decode_image(encode(img, "JPEG"))
    assert pixels.shape == (8, 16, 3) and int(pixels.max()) < 40


def test_exif_orientation_is_applied():
    img = Image.new("L", (40, 20), 255)
    img.paste(0, (0, 0, 10, 20))  # dark left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    pixels = decode_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert pixels.shape == (40, 20)  # turned upright: taller than wide
    assert pixels[:10].mean() < 60 and pixels[-10:].mean() > 200  # left edge now on top


def test_corrupt_exif_is_ignored_without_warnings():
    img = gradient("RGB")
    data = encode(img, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x00")
    assert decode_image(data).shape == (30, 40, 3)


# -- bad pictures --------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"hello, world", b'{"instances": [1, 2]}',
                                  b"\x00" * 100, b"BM"])
def test_not_an_image(data):
    with pytest.raises(NotAnImageError, match="not a picture|empty"):
        decode_image(data)


@pytest.mark.parametrize("data, name", [
    (encode(gradient(), "TIFF"), "TIFF"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
    (b"%PDF-1.7\n", "PDF"),
    (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00", "HEIC"),
    (encode(gradient(), "ICO"), "ICO"),
])
def test_refused_formats_are_named(data, name):
    with pytest.raises(UnsupportedFormatError, match=name):
        decode_image(data)


@pytest.mark.parametrize("fmt, claimed", [("PNG", "image/jpeg"), ("JPEG", "image/png"),
                                          ("GIF", "image/webp"), ("PNG", "image/tiff")])
def test_disguised_format_is_refused(fmt, claimed):
    data = encode(gradient("RGB" if fmt != "GIF" else "P"), fmt)
    with pytest.raises(DisguisedImageError, match=f"is {fmt} but was sent as"):
        decode_image(data, claimed)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_truncated_files_are_refused(fmt):
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3),
                                                              dtype=np.uint8))
    data = encode(noisy if fmt != "GIF" else noisy.convert("P"), fmt)
    with pytest.raises(DamagedImageError, match="truncated|damaged"):
        decode_image(data[:len(data) // 2])


def test_corrupt_png_data_is_refused():
    data = bytearray(encode(gradient(), "PNG"))
    start = data.index(b"IDAT") + 8
    data[start:start + 20] = b"\xff" * 20
    with pytest.raises(DamagedImageError):
        decode_image(bytes(data))


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    bomb = png_header_only(100_000, 100_000)
    assert len(bomb) < 200
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="at most 16 megapixels"):
        decode_image(bomb)
    with pytest.raises(ImageTooLargeError, match="5000x5000 = 25.0 megapixels"):
        decode_image(png_header_only(5_000, 5_000))
    assert time.perf_counter() - started < 0.5


def test_pixel_limit_is_configurable():
    data = encode(gradient(size=(200, 100)), "PNG")
    assert decode_image(data, max_pixels=20_000).shape == (100, 200, 3)
    with pytest.raises(ImageTooLargeError, match="at most 0.019999 megapixels"):
        decode_image(data, max_pixels=19_999)


def test_pillows_bomb_warning_becomes_too_large():
    """Above Pillow's own limit (89 Mpx) Pillow warns: never leaked, always refused."""
    with pytest.raises(ImageTooLargeError, match="10000x10000"):
        decode_image(png_header_only(10_000, 10_000), max_pixels=200_000_000)


CORRUPT_EXIF = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x00"


@pytest.mark.parametrize("shown", ["always", "error"])
def test_pillow_warnings_never_leak_whatever_the_filters(shown):
    """Pillow warns on both pictures (checked), but decode_image lets nothing through, even
    when every warning is shown or made an error; other warnings are still shown."""
    jpeg = encode(gradient("RGB"), "JPEG", exif=CORRUPT_EXIF)
    bomb = png_header_only(10_000, 10_000)  # over Pillow's limit, under twice it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Image.open(io.BytesIO(bomb))
        ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg)))
    assert {w.category for w in caught} == {Image.DecompressionBombWarning, UserWarning}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter(shown)
        assert decode_image(jpeg).shape == (30, 40, 3)
        with pytest.raises(ImageTooLargeError, match="10000x10000"):
            decode_image(bomb, max_pixels=200_000_000)
        assert not caught
        warnings.simplefilter("always")  # warnings from elsewhere still show
        warnings.warn("not Pillow's", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["not Pillow's"]


def _outcome(data: bytes, max_pixels: int) -> tuple[str, object]:
    try:
        return "pixels", decode_image(data, max_pixels=max_pixels).tobytes()
    except ImageError as exc:
        return type(exc).__name__, str(exc)


def test_decoding_from_threads_gives_what_one_thread_gives():
    """Pictures that make Pillow warn (bombs, corrupt EXIF) decoded beside good ones on
    eight threads: each gets its own answer, no warning escapes, the filters are intact."""
    pictures = [
        (encode(gradient("RGB", (1200, 900)), "PNG"), 16_000_000),  # long decodes, GIL
        (encode(gradient("RGB", (1600, 1200)), "JPEG", exif=CORRUPT_EXIF), 16_000_000),
        (png_header_only(10_000, 10_000), 200_000_000),  # Pillow's bomb warning
        (png_header_only(20_000, 20_000), 16_000_000),  # Pillow's bomb error
        (encode(gradient("P", (120, 90)), "GIF"), 16_000_000),
        (encode(gradient("RGBA"), "WEBP", lossless=True), 16_000_000),
        (encode(gradient("L", (400, 300)), "PNG")[:-40], 16_000_000),  # truncated
    ]
    expected = [_outcome(*p) for p in pictures]
    assert {kind for kind, _ in expected} == {"pixels", "ImageTooLargeError",
                                             "DamagedImageError"}
    filters, show = list(warnings.filters), warnings.showwarning
    start = threading.Barrier(8)

    def work(worker: int) -> list[bool]:
        start.wait()
        order = [(worker + k) % len(pictures) for k in range(len(pictures) * 6)]
        return [_outcome(*pictures[i]) == expected[i] for i in order]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads switch often, as on a busy server
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with ThreadPoolExecutor(8) as pool:
                results = [ok for oks in pool.map(work, range(8)) for ok in oks]
            pillow = [w for w in caught if "PIL" in w.filename]
    finally:
        sys.setswitchinterval(interval)
    assert len(results) == 8 * 6 * len(pictures) and all(results), results.count(False)
    assert pillow == []
    assert warnings.showwarning is show and warnings.filters == filters


def test_every_error_is_an_input_error_with_a_message():
    for data in (b"", b"nope", png_header_only(9_000, 9_000)):
        with pytest.raises(InputError) as info:
            decode_image(data)
        assert len(str(info.value)) > 20


# -- base64 --------------------------------------------------------------------------------
def test_base64_round_trip_and_line_breaks():
    data = encode(gradient(), "PNG")
    text = base64.b64encode(data).decode()
    assert decode_base64(text) == (data, None)
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    assert decode_base64(wrapped.encode())[0] == data


def test_data_url_gives_the_claimed_type():
    data = encode(gradient(), "PNG")
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    assert decode_base64(url) == (data, "image/png")
    assert decode_image(*decode_base64(url)).shape == (30, 40, 3)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("   \n", "empty"),
    ("aGVsbG8*", "character '\\*' at position 7"),
    ("aGVsbG8-", "URL-safe"),
    ("aGVsbG8", "multiple of 4"),
    ("aGVs=G8=", "padding"),
    ("aGVsbG8=é", "ASCII"),
    ("data:image/png,notbase64", "data URL"),
    (12345, "expected base64 text"),
])
def test_invalid_base64_is_refused(text, message):
    with pytest.raises(Base64Error, match=message):
        decode_base64(text)


def test_base64_size_limit_before_decoding():
    with pytest.raises(ImageTooLargeError, match="at most 1,000"):
        decode_base64("A" * 4000, max_bytes=1000)
