"""The campaigns of one lab, run at once in threads of their own through one lease pool.

Every campaign's runner shares the lab's devices and one
:class:`~athanor.resources.ResourcePool`: a furnace is never given to two experiments,
and a shared instrument goes to the waiting request of the highest priority (its
campaign's priority added to its own), then to the one that waited longest. The
campaigns the service runs are kept in the store (:class:`ServedCampaign`) with the
operators' last word, so a restart resumes each that was running or paused.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from athanor.campaign.progress import FurnaceReadings
from athanor.campaign.roles import lab_pool
from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import LabSession, check_campaign, parse_campaign, stored_config
from athanor.config import CampaignConfig
from athanor.protocols.contract import holder_campaign
from athanor.service.control import CommandError, Control, Wanted
from athanor.service.schemas import CampaignView, ExperimentView, InstrumentView
from athanor.store import StoreError
from athanor.store.models import ServedCampaign
from athanor.store.service import ServiceRecords

log = logging.getLogger(__name__)
#: Notes kept per campaign for the API (the log has them all).
NOTES_KEPT = 50
#: Wall seconds a closing service waits for each campaign to stop.
CLOSE_WAIT = 60.0


class UnknownCampaign(StoreError):
    """A campaign the service does not run."""


@dataclass
class _Running:
    runner: CampaignRunner
    control: Control
    thread: threading.Thread | None = None


@dataclass
class _Served:
    """What the manager keeps of a campaign it serves, running or not."""

    lock: threading.Lock = field(default_factory=threading.Lock)  # one command at a time
    notes: deque[str] = field(default_factory=lambda: deque(maxlen=NOTES_KEPT))
    running: _Running | None = None


class CampaignManager:
    """Runs the campaigns of the lab in ``session``, each on a thread of its own.

    Call :meth:`resume_all` once at the start, :meth:`close` at the end.
    """

    def __init__(self, session: LabSession) -> None:
        self.session, self.lab, self.store = session, session.lab, session.store
        self.records = ServiceRecords(self.store)
        self._priorities = {s.name: s.priority for s in self.records.served()}
        self.pool = lab_pool(self.lab, standing=self._standing)
        self._served = {name: _Served() for name in self._priorities}
        self._lock = threading.Lock()  # guards the dicts above
        self._readings = FurnaceReadings(self.lab.furnaces, self.lab.clock)
        self._readings_lock = threading.Lock()

    def _standing(self, holder: str) -> int:
        return self._priorities.get(holder_campaign(holder), 0)

    # ------------------------------------------------------------------ starting

    def resume_all(self) -> list[str]:
        """Pick up every served campaign that was running or paused (as ``athanor
        resume`` does), all recovered before any runs; returns notes on what was done."""
        notes, recovered = [], []
        for served in self.records.served():
            status = self.store.campaign(served.name).status
            if served.wanted not in ("running", "paused") or status in ("finished", "aborted"):
                continue
            try:
                recovered.append((self._recover(served.name, served.wanted), served.name))
            except (StoreError, ValueError) as exc:  # ConfigError: the protocol changed
                notes.append(f"campaign {served.name!r} cannot be resumed: {exc}")
                continue
            notes.append(f"campaign {served.name!r} resumed ({served.wanted})")
        for running, name in recovered:
            self._launch(name, running)
        return notes

    def submit(self, text: str, source: str, user: str, priority: int = 0) -> tuple[str, list[str]]:
        """Start a campaign from its YAML ``text`` (errors located in ``source``).

        ConfigError when it is not valid on this lab, StoreError when its name is taken;
        nothing is stored then. Returns its name and notes on what the start did.
        """
        config = parse_campaign(text, source)
        check_campaign(config, self.session.lab_config)
        with self._lock:
            if config.name in self._served:
                raise StoreError(f"campaign {config.name!r} is served here already")
            self._served[config.name] = served = _Served()
        with served.lock:
            try:
                running = self._runner(config, "running")
                notes = running.runner.start(self.session.lab_config)
                self.records.serve(config.name, user, priority)
            except Exception:
                with self._lock:
                    del self._served[config.name]
                raise
            with self._lock:
                self._priorities[config.name] = priority
            self._launch(config.name, running)
        return config.name, notes

    def _recover(self, name: str, wanted: Wanted) -> _Running:
        config, _ = stored_config(self.store, name)
        check_campaign(config, self.session.lab_config)
        running = self._runner(config, wanted)
        served = self._entry(name)
        for note in running.runner.recover():
            served.notes.append(f"resume: {note}")
        return running

    def _runner(self, config: CampaignConfig, wanted: Wanted) -> _Running:
        name = config.name
        notes = self._entry(name).notes

        def notify(note: str) -> None:
            log.info("%s: %s", name, note)
            notes.append(note)

        def record(wanted: Wanted) -> None:
            self.records.update_served(name, wanted=wanted)

        runner = CampaignRunner(config, self.lab, self.store, notify=notify, pool=self.pool)
        control = Control(runner, wanted, record)
        runner.decide = control.decide
        return _Running(runner, control)

    def _launch(self, name: str, running: _Running) -> None:
        running.thread = threading.Thread(
            target=self._run, args=(name, running), name=f"campaign-{name}", daemon=True
        )
        self._entry(name).running = running
        running.thread.start()

    def _run(self, name: str, running: _Running) -> None:
        try:
            summary = running.runner.run()
            log.info("%s: ended %s", name, summary["status"])
        except Exception as exc:
            log.exception("%s: crashed", name)
            self._entry(name).notes.append(f"crashed: {type(exc).__name__}: {exc}")
        finally:
            self._entry(name).running = None

    def _entry(self, name: str) -> _Served:
        with self._lock:
            if name not in self._served:
                known = ", ".join(sorted(self._served)) or "none yet"
                raise UnknownCampaign(f"no campaign named {name!r} is served here; served: {known}")
            return self._served[name]

    # ------------------------------------------------------------------ commands

    def command(self, name: str, what: str) -> None:
        """``pause``, ``resume``, ``stop`` or ``abort`` campaign ``name``; resume picks
        up a campaign that is not running (stopped, crashed) as ``athanor resume`` does.
        CommandError when the campaign cannot take it now."""
        served = self._entry(name)
        with served.lock:
            if served.running is not None:
                served.running.control.command(what)
                return
            status = self.store.campaign(name).status
            if what != "resume" or status in ("finished", "aborted"):
                raise CommandError(f"campaign {name!r} is {status}, not running: it cannot {what}")
            running = self._recover(name, "running")
            self.records.update_served(name, wanted="running")
            self._launch(name, running)

    def set_priority(self, name: str, priority: int) -> None:
        """Change a campaign's priority, at once for the requests already waiting."""
        served = self._entry(name)
        with served.lock:
            self.records.update_served(name, priority=priority)
            with self._lock:
                self._priorities[name] = priority

    def close(self) -> None:
        """Stop every campaign as on 'stop' (what the operators want is kept, so the next
        start resumes them) and wait for each."""
        with self._lock:
            running = [s.running for s in self._served.values() if s.running is not None]
        for r in running:
            r.control.close()
        for r in running:
            if r.thread is not None:
                r.thread.join(CLOSE_WAIT)
                if r.thread.is_alive():
                    log.warning("%s did not stop within %g s", r.runner.config.name, CLOSE_WAIT)

    # ------------------------------------------------------------------ views

    @property
    def running_count(self) -> int:
        with self._lock:
            return sum(1 for s in self._served.values() if s.running is not None)

    def campaigns(self) -> list[CampaignView]:
        return [self._view(served) for served in self.records.served()]

    def campaign(self, name: str) -> CampaignView:
        served = {s.name: s for s in self.records.served()}
        if name not in served:
            self._entry(name)  # UnknownCampaign naming those served
            raise UnknownCampaign(f"campaign {name!r} is being submitted; ask again")
        return self._view(served[name])

    def _view(self, served: ServedCampaign) -> CampaignView:
        name = served.name
        campaign = self.store.campaign(name)
        entry = self._entry(name)
        counts: dict[str, int] = {}
        for exp in self.store.experiments(name):
            counts[exp.state] = counts.get(exp.state, 0) + 1
        return CampaignView(
            name=name, status=campaign.status, wanted=served.wanted, priority=served.priority,
            running=entry.running is not None, waiting=campaign.waiting, counts=counts,
            max_experiments=campaign.config["budget"]["max_experiments"],
            lab_hours=campaign.lab_time / 3600, submitted_by=served.submitted_by,
            submitted_at=served.submitted_at, notes=list(entry.notes),
        )  # fmt: skip

    def experiments(self, name: str) -> list[ExperimentView]:
        self._entry(name)
        outcomes = self.store.outcomes(name)
        return [
            ExperimentView.model_validate(
                {
                    **e.model_dump(),
                    "outcomes": {k: o.value for k, o in outcomes.get(e.id or -1, {}).items()},
                }
            )
            for e in self.store.experiments(name)
        ]

    def instruments(self) -> list[InstrumentView]:
        """Every instrument: who holds it, whether it is in service, its last readings."""
        out = self.pool.out_of_service()
        views = []
        for name, inst in self.lab.config.instruments.items():
            readings = {}
            if name in self.lab.furnaces:
                with self._readings_lock:
                    readings["temperature_c"] = self._readings.temperature(name)
            views.append(
                InstrumentView(
                    name=name, kind=inst.kind, model=inst.model, connection=inst.connection,
                    holder=self.pool.holder(name), out_of_service=out.get(name, ""),
                    readings=readings,
                )
            )  # fmt: skip
        return views
