"""``athanor serve``: hold the lab, resume its campaigns, answer the API until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from athanor.campaign.session import open_lab
from athanor.lab_config import LabConfig
from athanor.service.app import create_app
from athanor.service.manager import CampaignManager
from athanor.store import Store, StoreError
from athanor.store.service import ServiceRecords

log = logging.getLogger(__name__)
INIT_ADMIN = "admin"


def serve(
    lab_config: LabConfig,
    db: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    say: Callable[[str], None] = print,
) -> None:
    """Hold and connect the lab (starting a simulated lab's emulators), resume every
    campaign that was running or paused, and serve the API until SIGINT or SIGTERM;
    then stop each campaign as on 'stop' (the next start resumes them)."""
    holder = {"service": f"http://{host}:{port}", "db": db}
    with open_lab(lab_config, db, holder) as session:
        if not ServiceRecords(session.store).has_admin():
            say(f"no admin yet: 'athanor serve LAB --db {db} --init-admin' makes the first")
        manager = CampaignManager(session)
        try:
            for note in manager.resume_all():
                say(note)
            config = uvicorn.Config(create_app(manager), host=host, port=port, log_level="info")
            with _signals_ignored_after_shutdown():
                uvicorn.Server(config).run()
        finally:
            say("stopping every campaign (they resume when the service starts again) ...")
            manager.close()


@contextmanager
def _signals_ignored_after_shutdown() -> Iterator[None]:
    """uvicorn shuts down on SIGINT or SIGTERM, then raises the signal again for the
    handler it found; that one ignores it, so the campaigns are stopped before the
    process ends (and a second Ctrl-C does not cut their stop short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def init_admin(db: str) -> str:
    """Make the first admin (user ``admin``) and return their token, to be shown once;
    StoreError when the store has an admin already."""
    store = Store(db, "create")
    try:
        records = ServiceRecords(store)
        if records.has_admin():
            raise StoreError(
                f"{db} has an admin already; an admin makes more users and tokens "
                "(POST /users, POST /users/NAME/tokens)"
            )
        records.add_user(INIT_ADMIN, "admin")
        token, _ = records.new_token(INIT_ADMIN, "made by --init-admin")
    finally:
        store.close()
    return token
