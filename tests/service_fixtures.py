"""The lab service for tests: the simulated lab, sped up, with a manager and users."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from campaign_files import write_campaign

from athanor.campaign.session import open_lab
from athanor.lab_config import load_lab
from athanor.service.app import create_app
from athanor.service.manager import CampaignManager
from athanor.store.service import ServiceRecords


@dataclass
class Service:
    folder: Path
    db: str
    manager: CampaignManager
    tokens: dict[str, str]  # role -> a token of a user with that role

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def campaign_yaml(self, name: str, **changes: object) -> str:
        """A small campaign's YAML text, on the served lab."""
        return write_campaign(self.folder, name, **changes).read_text()  # type: ignore[arg-type]


def add_users(records: ServiceRecords) -> dict[str, str]:
    """One user of each role; their tokens."""
    tokens = {}
    for role in ("viewer", "operator", "admin"):
        records.add_user(f"{role}-1", role)
        tokens[role], _ = records.new_token(f"{role}-1")
    return tokens


@contextmanager
def lab_service(folder: Path, time_scale: float = 20_000) -> Iterator[Service]:
    """A manager on the simulated lab (emulators started) with a user of each role."""
    write_campaign(folder, "unused", time_scale=time_scale)  # writes folder/lab.yaml
    db = str(folder / "service.db")
    with open_lab(load_lab(folder / "lab.yaml"), db, {"test": folder.name}) as session:
        manager = CampaignManager(session)
        try:
            yield Service(folder, db, manager, add_users(manager.records))
        finally:
            manager.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def real_server(manager: CampaignManager) -> Iterator[str]:
    """uvicorn serving the API on a loopback port in a thread; its URL."""
    port = free_port()
    config = uvicorn.Config(create_app(manager), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_for(condition, timeout: float = 120.0, what: str = "the condition") -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition()`` until it is true (bounded; a failure says what did not come)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not come within {timeout:g} s"
        time.sleep(0.1)
