"""Photos uploaded to the public verify page: opened only when they are what they claim to
be, and small enough to decode safely."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


class PhotoError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def open_photo(data: bytes, *, max_pixels: int) -> Image.Image:
    """The decoded image, or PhotoError for a non-image, an unsupported format, or an image
    larger than `max_pixels` (checked from the header, before any pixel is decoded: a small
    file can declare a huge image, the 'decompression bomb')."""
    if not data:
        raise PhotoError("empty", "The file is empty: choose a photo of the label.")
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse outright.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise PhotoError("not_an_image", "This file is not an image we can read: upload "
                             "a photo (JPEG, PNG or WebP).") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PhotoError("too_many_pixels", _too_large(max_pixels)) from exc
        if image.format not in ALLOWED_FORMATS:
            raise PhotoError("unsupported", f"{image.format} images are not accepted: upload a "
                             "JPEG, PNG or WebP photo.")
        width, height = image.size
        if width * height > max_pixels:
            raise PhotoError("too_many_pixels", _too_large(max_pixels))
        try:
            image.load()
        except (OSError, SyntaxError, Image.DecompressionBombWarning) as exc:
            raise PhotoError("damaged", "The image is damaged or cut short: take the photo "
                             "again.") from exc
    return image


def _too_large(max_pixels: int) -> str:
    return (f"The image is larger than {max_pixels / 1e6:.0f} megapixels: take the photo at a "
            "lower resolution or crop it to the label.")
