"""Checking what a TCP driver is constructed with."""

from __future__ import annotations

from urllib.parse import urlsplit


def tcp_endpoint(url: str, what: str, io_timeout: float) -> tuple[str, int]:
    """(host, port) of ``tcp://HOST:PORT``; ValueError naming ``what`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"{what} connection {url!r} must be tcp://HOST:PORT")
    if not io_timeout > 0:
        raise ValueError(f"io_timeout must be > 0 wall seconds, got {io_timeout!r}")
    return parts.hostname, parts.port
