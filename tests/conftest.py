"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A database URL on a PostgreSQL server for the whole session: ATHANOR_TEST_POSTGRES,
    else a throw-away server started now (tests/services.py) and removed at the end."""
    import services  # here: a session with no PostgreSQL test need not load SQLAlchemy

    if url := os.environ.get(services.POSTGRES_URL):
        yield url
        return
    if services.skipped("postgres"):
        pytest.skip(f"{services.SKIP} names postgres")
    try:
        with services.postgres_server() as url:
            yield url
    except services.ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The URL of an empty PostgreSQL database of the test's own, dropped after it."""
    import services

    with services.scratch_database(postgres_server) as url:
        yield url
