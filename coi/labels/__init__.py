"""Labels and barcodes: payloads and pictures in, bytes out. Knows nothing of requests or
tables (a test enforces it).

- `layout`: label templates (versioned), one layout plan per label and resolution, rendered
  to a 1-bit image and to ZPL from that same plan;
- `writers.WRITERS`: {"png", "pdf", "zpl"} -> writer(labels, open binary file, dpi);
- `payload`: the Ed25519-signed claim in a label's QR code and its verification link;
- `decoders`: zxing-cpp and pyzbar on one picture; `photo`: safe intake of uploaded photos;
- `printer`: ZPL to a Zebra printer on raw port 9100.
"""

from coi.labels.decoders import Decoder, Symbol, available_decoders, decode_image
from coi.labels.layout import DPIS, SIZES, TEMPLATES, Label, LabelTooSmall, render_image, render_zpl
from coi.labels.payload import Claim, PayloadError, verification_url
from coi.labels.writers import MEDIA_TYPES, WRITERS

__all__ = [
    "DPIS",
    "MEDIA_TYPES",
    "SIZES",
    "TEMPLATES",
    "WRITERS",
    "Claim",
    "Decoder",
    "Label",
    "LabelTooSmall",
    "PayloadError",
    "Symbol",
    "available_decoders",
    "decode_image",
    "render_image",
    "render_zpl",
    "verification_url",
]
