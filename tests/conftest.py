"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

from athanor.clock import ManualClock
from athanor.simulators.hosting import BackgroundLoop

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def loop():
    """An asyncio loop in a background thread that hosts emulators for a test module."""
    with BackgroundLoop() as background:
        yield background


@pytest.fixture
def clock() -> ManualClock:
    """A lab clock that moves only when the test advances it."""
    return ManualClock()


@pytest.fixture
def write_yaml(tmp_path):
    """Write a YAML text to a file in the test's folder and return its path."""

    def write(text: str, name: str = "config.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
