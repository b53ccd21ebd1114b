"""Services the tests start for themselves: a throw-away PostgreSQL server on loopback.

`make test` installs the server programs (Debian's ``postgresql``); the fixtures in
conftest.py start a server only when a test asks for one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from glob import glob
from pathlib import Path

from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from athanor.store.database import database_url

#: A database URL to use instead of starting a server (its role needs CREATEDB).
POSTGRES_URL = "ATHANOR_TEST_POSTGRES"
#: Services a developer opts out of, e.g. ``postgres``: their tests skip (never in CI).
SKIP = "ATHANOR_SKIP_SERVICES"

#: A test server keeps nothing, so it need not write anything safely either.
_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{folder}'
fsync = off
synchronous_commit = off
full_page_writes = off
"""


class ServiceError(Exception):
    """A service the tests need is not installed or would not start."""


def skipped(service: str) -> bool:
    """Whether the developer opted out of ``service`` with ATHANOR_SKIP_SERVICES; never in CI."""
    names = os.environ.get(SKIP, "").replace(",", " ").split()
    return service in names and not os.environ.get("CI")


def postgres_programs() -> Path:
    """The folder of PostgreSQL's server programs (the newest Debian version, else PATH)."""
    debian = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    pg_ctl = debian[-1] if debian else shutil.which("pg_ctl")
    if pg_ctl is None:
        raise ServiceError(
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed: `make test` "
            "installs them (as root: apt-get install postgresql). Or set "
            f"{POSTGRES_URL}=postgresql://user@host/db to use a server you run, or "
            f"{SKIP}=postgres to skip these tests"
        )
    return Path(pg_ctl).parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """A new PostgreSQL server on a free loopback port, its files in a temporary folder,
    for as long as the block runs; yields the URL of its (empty) database ``athanor``."""
    programs = postgres_programs()
    folder = Path(tempfile.mkdtemp(prefix="athanor-pg-"))
    data, log, port = folder / "data", folder / "server.log", _free_port()
    as_owner = _unprivileged(folder)
    pg_ctl = [*as_owner, str(programs / "pg_ctl"), "--pgdata", str(data)]
    try:
        _run(
            *as_owner, str(programs / "initdb"), "--pgdata", str(data), "--username", "athanor",
            "--auth", "trust", "--encoding", "UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(_SETTINGS.format(port=port, folder=folder))
        _run(*pg_ctl, "--log", str(log), "--wait", "start", log=log)
        try:
            _run(str(programs / "createdb"), "--host", "127.0.0.1", "--port", str(port),
                 "--username", "athanor", "athanor")  # fmt: skip
            yield f"postgresql+psycopg://athanor@127.0.0.1:{port}/athanor"
        finally:
            _run(*pg_ctl, "--mode", "immediate", "--wait", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new empty database on the server of ``url``, dropped afterwards; yields its URL."""
    server_url, name = make_url(database_url(url)), f"athanor_test_{uuid.uuid4().hex[:12]}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with server.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield server_url.set(database=name).render_as_string(hide_password=False)
        finally:
            with server.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        server.dispose()


def _unprivileged(folder: Path) -> list[str]:
    """The command prefix that runs the server programs as a user other than root (they
    refuse root): Debian's ``postgres`` user, given ``folder``; nothing when not root."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceError(
            "as root, PostgreSQL needs the user 'postgres' to run as (Debian's postgresql "
            "package makes it)"
        ) from None
    os.chown(folder, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    """A loopback port that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*command: str, log: Path | None = None) -> None:
    """Run a program; ServiceError with what it (and the server ``log``) said if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = done.stderr.strip() + (f"\n{log.read_text()}" if log and log.exists() else "")
        raise ServiceError(f"{' '.join(command)} failed ({done.returncode}):\n{said}")
