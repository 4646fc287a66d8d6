"""Sending ZPL to a Zebra printer: raw TCP on port 9100, the way every Zebra network
printer accepts jobs."""

from __future__ import annotations

import socket


class PrinterError(OSError):
    """The printer could not be reached or did not take the job; the message says which."""


def send_zpl(address: tuple[str, int], zpl: bytes, *, timeout: float = 5.0) -> None:
    host, port = address
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(zpl)
    except TimeoutError as exc:
        raise PrinterError(f"The printer at {host}:{port} did not answer within "
                           f"{timeout:g} s. Is it on and connected?") from exc
    except OSError as exc:
        raise PrinterError(f"The printer at {host}:{port} cannot be reached "
                           f"({exc.strerror or exc}).") from exc
