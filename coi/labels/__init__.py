"""Labels and barcodes: payloads and pictures in, bytes or text out. Knows nothing of
requests or tables. Rendering (PNG, PDF, ZPL) arrives with the labels issue; decoding is
here already because /healthz reports which decoders this installation has."""

from coi.labels.decoders import Decoder, Symbol, available_decoders, decode_image

__all__ = ["Decoder", "Symbol", "available_decoders", "decode_image"]
