"""Photos uploaded to the public verify page: opened only when they are what they claim to
be, and small enough to decode safely. Anyone may upload anything here, so every way a file
can be broken ends as a PhotoError with a sentence for the person, never as a crash."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

# Only these decoders ever see an upload: the others (EPS hands files to Ghostscript, and
# dozens more) are never tried on it. MPO is the JPEG of many phone cameras (a JPEG with a
# second, depth or preview, picture), opened by the JPEG decoder.
ALLOWED_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP", "TIFF")
TRY_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


class PhotoError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


NOT_AN_IMAGE = "This file is not an image we can read: upload a photo (JPEG, PNG or WebP)."
DAMAGED = "The image is damaged or cut short: take the photo again."


def open_photo(data: bytes, *, max_pixels: int) -> Image.Image:
    """The decoded image, or PhotoError for a non-image, an unsupported format, a damaged or
    truncated file, or an image larger than `max_pixels` (checked from the header, before any
    pixel is decoded: a small file can declare a huge image, the 'decompression bomb'; PNG
    text and colour-profile chunks that inflate past Pillow's limits are refused the same
    way)."""
    if not data:
        raise PhotoError("empty", "The file is empty: choose a photo of the label.")
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse outright.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=TRY_FORMATS)
        except UnidentifiedImageError as exc:
            raise PhotoError("not_an_image", NOT_AN_IMAGE) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PhotoError("too_many_pixels", _too_large(max_pixels)) from exc
        except Exception as exc:  # noqa: BLE001 - see _damaged
            raise _damaged(exc) from exc
        if image.format not in ALLOWED_FORMATS:
            raise PhotoError("unsupported", f"{image.format} images are not accepted: upload a "
                             "JPEG, PNG or WebP photo.")
        width, height = image.size
        if width * height > max_pixels:
            raise PhotoError("too_many_pixels", _too_large(max_pixels))
        try:
            image.load()
        except Image.DecompressionBombWarning as exc:
            raise PhotoError("too_many_pixels", _too_large(max_pixels)) from exc
        except Exception as exc:  # noqa: BLE001 - see _damaged
            raise _damaged(exc) from exc
    return image


def _damaged(error: Exception) -> PhotoError:
    """Pillow's decoders answer hostile bytes with many kinds of error: OSError for a
    truncated file ("image file is truncated", "Truncated File Read"), ValueError for a PNG
    text chunk that inflates past PngImagePlugin.MAX_TEXT_CHUNK, SyntaxError, EOFError,
    struct.error for a bad header. Whatever the kind, the photo cannot be read. (A truncated
    image is never half-decoded: ImageFile.LOAD_TRUNCATED_IMAGES stays False.)"""
    return PhotoError("damaged", DAMAGED)


def _too_large(max_pixels: int) -> str:
    return (f"The image is larger than {max_pixels / 1e6:.0f} megapixels: take the photo at a "
            "lower resolution or crop it to the label.")
