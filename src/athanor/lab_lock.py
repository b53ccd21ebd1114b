"""One process per lab: the instruments a campaign drives are locked while it runs.

Two campaign processes on the same furnaces corrupt each other silently (one's exit puts
every furnace in standby under the other's anneals), so until the lab service runs
several campaigns in one process, :func:`hold_lab` refuses a second process, naming who
holds each instrument. The locks are ``flock`` locks on files in the machine's temporary
folder (``ATHANOR_LOCK_DIR`` to choose another), one per instrument address: the kernel
releases them when the holder dies, however it dies. Instruments served by emulators
inside the process (port 0, ``pty://``) are its own and need none. Processes on other
hosts are not seen: give every host the same ``ATHANOR_LOCK_DIR`` on a shared file
system that supports ``flock``, or run one host per lab.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from athanor.lab_config import LabConfig


class LabInUse(Exception):
    """An instrument of the lab is driven by another process."""


def lock_dir() -> Path:
    """Where the lock files are (``ATHANOR_LOCK_DIR``, or the temporary folder's)."""
    return Path(os.environ.get("ATHANOR_LOCK_DIR") or Path(tempfile.gettempdir()) / "athanor-locks")


def addresses(config: LabConfig) -> dict[str, str]:
    """instrument name -> the address that identifies it on its wire (shared ones only)."""
    found = {}
    for name, inst in config.instruments.items():
        connection = inst.connection
        if connection.startswith("pty://") or connection.rstrip("/").endswith(":0"):
            continue  # an emulator inside this process
        unit = getattr(inst, "unit", None)
        found[name] = connection if unit is None else f"{connection} unit {unit}"
    return found


@contextmanager
def hold_lab(config: LabConfig, holder: dict[str, Any]) -> Iterator[None]:
    """Lock every shared instrument of ``config`` for this process while the block runs.

    ``holder`` (e.g. the campaign and the store) is written in each lock file, so that a
    refused process can say who holds it. Raises :class:`LabInUse` naming, for each
    instrument in use, its address and its holder; then nothing is held.
    """
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    about = {**holder, "pid": os.getpid(), "host": socket.gethostname(),
             "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    busy = []
    with ExitStack() as held:
        for name, address in addresses(config).items():
            path = folder / f"{hashlib.sha1(address.encode()).hexdigest()[:16]}.lock"
            file = held.enter_context(path.open("a+"))
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy.append(f"{name} ({address}) is held by {_holder(file)}")
                continue
            held.callback(fcntl.flock, file, fcntl.LOCK_UN)
            _write(file, {**about, "instrument": name, "address": address})
        if busy:
            raise LabInUse(
                "the lab is in use by another process: " + "; ".join(busy) + ". One process "
                "drives a lab at a time: wait for it to end, or stop it ('athanor status' "
                "there says where it stands)."
            )
        yield


def _write(file: IO[str], about: dict[str, Any]) -> None:
    file.seek(0)
    file.truncate()
    file.write(json.dumps(about))
    file.flush()


def _holder(file: IO[str]) -> str:
    file.seek(0)
    try:
        about = json.loads(file.read())
    except ValueError:
        return "a process that did not say who it is"
    what = ", ".join(f"{key} {about[key]}" for key in ("campaign", "db") if key in about)
    return f"{what + ', ' if what else ''}pid {about.get('pid')} on {about.get('host')} " + (
        f"since {about.get('since')}"
    )
