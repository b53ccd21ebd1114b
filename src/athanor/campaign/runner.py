"""The scheduler: any free furnace takes the next experiment; nothing is lost or run twice.

The campaign's parts: the :class:`~athanor.campaign.ledger.Ledger` writes each
experiment's fate with what the planner learnt from it; proposals come from
:mod:`athanor.campaign.proposals`; instruments are leased from the pool of
:class:`~athanor.campaign.roles.Roles`; :class:`~athanor.campaign.flight.Flight` runs
each experiment's plan on a worker and records what it reports. The runner holds the
loop that starts experiments as instruments free up, and pauses, stops or aborts on the
operator's word.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from athanor.campaign.faults import InstrumentHealth
from athanor.campaign.flight import Flight
from athanor.campaign.ledger import Ledger
from athanor.campaign.leftovers import clear_leftovers
from athanor.campaign.progress import Activity, FurnaceReadings, Progress, waiting_reasons
from athanor.campaign.proposals import Approval, Proposer, ProposerThread, StopCampaign
from athanor.campaign.roles import Roles
from athanor.campaign.worker import Event
from athanor.config import CampaignConfig
from athanor.lab import Lab
from athanor.lab_config import LabConfig
from athanor.planner.planner import Planner
from athanor.protocols.contract import holder_campaign, holder_id
from athanor.protocols.registry import check_arguments, resolve
from athanor.protocols.requests import check_requests, requests_of
from athanor.resources import ResourcePool
from athanor.store import Experiment, ExperimentState, Store

S = ExperimentState
Decision = Literal["resume", "stop", "abort"]
#: Wall seconds the scheduler waits for experiments to pause, to end after a stop or
#: abort, and for a proposal in progress; what is still going then is named in a note.
STOP_WAIT = 30.0


class CampaignRunner:
    """Runs one campaign on one lab, writing everything to the store.

    Call :meth:`start` (a new campaign) or :meth:`recover` (one in the store), then
    :meth:`run`.

    Parameters
    ----------
    config
        The campaign.
    lab
        The connected lab (devices over drivers).
    store
        Where everything goes.
    approve
        Called with each proposal before it runs (``--approve`` mode): return the
        parameters to run (possibly edited) or None to reject it.
    decide
        Called after a pause (Ctrl-C) to choose resume, stop or abort.
    on_progress
        Called with a :class:`Progress` whenever something changes.
    notify
        Called with each note for the operator (a stop without asking, what did not end
        in time, a furnace that could not be made safe).
    synchronous
        Start experiments only in whole batches (one per furnace) once the previous
        batch has finished: the classic batch schedule, kept as a baseline.
    pool
        A pool of the lab's instruments shared with other campaigns running on ``lab``
        at the same time (:func:`~athanor.campaign.roles.lab_pool`). Then this campaign
        makes safe only the furnaces it holds, and free ones while it holds them; by
        default it has the lab to itself.
    """

    def __init__(
        self,
        config: CampaignConfig,
        lab: Lab,
        store: Store,
        *,
        approve: Approval | None = None,
        decide: Callable[[], Decision] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        notify: Callable[[str], None] | None = None,
        synchronous: bool = False,
        pool: ResourcePool | None = None,
    ) -> None:
        self.config, self.lab, self.store = config, lab, store
        self.clock = lab.clock
        self.approve, self.decide = approve, decide or (lambda: "stop")
        self.on_progress = on_progress
        self.notify = notify or (lambda note: None)
        self.synchronous = synchronous
        # Proposals come from a thread of their own, except when an operator approves
        # each one or batches are synchronous.
        self._inline_proposals = synchronous or approve is not None
        self.orchestration_seconds = 0.0  # the scheduler's own work, planner excluded
        self.plan = resolve(config.protocol)
        names = [p.name for p in config.search_space.parameters] + list(config.protocol_args)
        check_arguments(self.plan, names, f"campaign {config.name!r}")
        check_requests(self.plan, lab.config)
        self.roles = Roles(requests_of(self.plan), lab)
        self.shared = pool is not None
        self.pool = pool if pool is not None else self.roles.pool(lab)
        # An instrument of the first role (a furnace) frees up once its sample is out;
        # as many more experiments may then wait for the other roles, but no more, so
        # the planner sees results.
        self.max_in_flight = 2 * len(self.roles.starters)
        self.health = InstrumentHealth(
            lab, self.pool, {what: names for names, what in self.roles.descriptions.items()},
            config.faults.pause_after, pause=self._fault_pause, notify=self.notify,
        )  # fmt: skip
        self.readings = FurnaceReadings(lab.furnaces, self.clock)
        self.activity = Activity()
        self._recorded_activity = ""
        self.events: queue.Queue[Event] = queue.Queue()
        self.ledger: Ledger
        self.flight: Flight
        self._pause_requested = False
        self._stop_reason: str | None = None  # why the campaign stops without asking
        self._fault: str | None = None  # why instrument faults pause the campaign
        self.status = "running"  # the campaign's status once run() has returned
        self.unsafe: dict[str, str] = {}  # furnace: why it could not be made safe
        self._stopping: Literal["stop", "abort"] | None = None
        self._started_wall = time.monotonic()

    @property
    def planner(self) -> Planner:
        return self.ledger.planner

    @property
    def planner_seconds(self) -> float:
        """Wall time spent in the planner (suggest and ingest)."""
        return self.ledger.planner_seconds

    # ------------------------------------------------------------------ lifecycle

    def start(self, lab_config: LabConfig | None = None) -> list[str]:
        """Record a new campaign in the store (refused if the name is taken).

        ``lab_config`` is the lab as written (the default: as connected); a simulated lab
        is stored as written, so that resume can start its emulators again. Experiments of
        the campaigns named in ``warm_start`` become the planner's prior data. Returns
        notes for the operator on what the warm start used.
        """
        ledger, notes = Ledger.create(
            self.config, self.store, self.clock, lab_config or self.lab.config
        )
        self._take(ledger)
        return notes

    def recover(self) -> list[str]:
        """Pick up a campaign from the store after a pause, a crash or a kill.

        Every furnace is put in its safe state first, and what the dead process left in
        the lab is cleared (:func:`~athanor.campaign.leftovers.clear_leftovers`: samples
        on the diffractometer's books, in a furnace once it has cooled, on the bench; a
        latched robot fault). Experiments that were in a furnace or on an instrument
        when the campaign died are abandoned (their sample's history is unknown) and, by
        the campaign's ``on_interrupt`` rule, their parameters queued again as a new
        experiment. Runs left without a stop document
        are marked interrupted. Returns what was done, for the operator.
        """
        notes = [f"{name}: could not be made safe: {exc}" for name, exc in self._safe()]
        self._take(Ledger.load(self.config, self.store, self.clock))
        unfinished = [e for e in self.ledger.experiments() if e.state != S.ANALYSED]
        left = [e.sample_id for e in unfinished if e.sample_id]
        notes += clear_leftovers(self.lab, left, self.notify)
        self._release_all()  # what a crash in this process left held, now cleared
        for run in self.store.runs(self.config.name):
            if run.exit_status is None:
                self.store.mark_run_interrupted(run.uid)
        for exp in self.ledger.queued():
            if exp.sample_id:
                notes.append(
                    f"experiment {exp.number}: its sample {exp.sample_id} never reached the "
                    "anneal; it starts again with a new sample"
                )
        for exp in self.ledger.experiments(S.RUNNING, S.MEASURING):
            reason = f"interrupted while {exp.state} (campaign stopped or crashed)"
            notes += self.ledger.interrupted(exp, reason)
        self.store.update_campaign(self.config.name, status="running")
        return notes

    def _take(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.flight = Flight(
            ledger, self.lab, self.plan, self.roles, self.pool, self.events, self.health,
            self.notify,
        )  # fmt: skip

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        """Run until the budget is spent, a stopping rule fires or the operator ends it;
        returns a summary.

        The campaign's status becomes ``finished``, ``stopped`` or ``aborted``;
        ``paused`` when instrument faults paused it and nobody resumed it (its
        ``waiting`` says why); when an exception escapes, ``crashed``: the experiments
        in flight are paused where they are and left for :meth:`recover`, as after a
        kill (on a shared lab, what they hold is given back but the furnaces, which may
        hold their samples until :meth:`recover`). Every furnace is made safe.
        """
        self.store.update_campaign(self.config.name, status="running")
        status = "crashed"
        unsubscribe = self.pool.subscribe(self._freed)
        proposer = self._proposer()
        thread = None
        if not self._inline_proposals:
            thread = ProposerThread(proposer, self._proposal_wanted, self.events.put)
            thread.start()
        try:
            while True:
                if self._pause_requested and self._pause() != "resume":
                    break
                with self._orchestrating():
                    self.health.check()
                    if not self._stopping and not self._pause_requested:
                        self._start_what_fits(proposer)
                        if thread is not None and self._proposal_wanted():
                            thread.ask()
                    if not self.flight and (self._stopping or not self.ledger.can_start()):
                        break
                try:
                    event = self.events.get(timeout=0.1)
                except queue.Empty:
                    self._report()
                    continue
                with self._orchestrating():
                    self.flight.handle(event, self._stopping)
                self._report()
            if thread is not None and not thread.close(STOP_WAIT):
                self.notify(f"the planner did not finish a proposal within {STOP_WAIT:g} s")
            if self._stopping != "stop":  # a stopped campaign resumes with its queue
                self._abandon_unstarted(
                    "the operator aborted the campaign before it started"
                    if self._stopping == "abort"
                    else "the campaign ended (budget or stopping rule) before it started"
                )
            status = {"stop": "stopped", "abort": "aborted", None: "finished"}[self._stopping]
            if self._fault and status == "stopped":
                status = "paused"
        finally:
            unsubscribe()
            if thread is not None:
                thread.close(0)
            if status == "crashed":
                self.flight.pause()
            self._make_safe()
            if status == "crashed" and self.shared:  # the other campaigns go on
                self._release_all(keep=self.roles.starters)
            self.ledger.save_lab_time()
            self.store.update_campaign(self.config.name, status=status, **self._last_word(status))
            self.status = status
        return self.summary()

    def _freed(self, instrument: str) -> None:
        """An instrument of the pool freed up: the loop looks for work it can start."""
        self.events.put(Event("freed", -1, state=instrument))

    def request_pause(self) -> None:
        """Pause at the next chance (the Ctrl-C handler calls this)."""
        self._pause_requested = True

    def request_stop(self, reason: str) -> None:
        """Stop at the next chance without asking, as on the operator's stop (the SIGTERM
        handler calls this); ``reason`` is said in a note."""
        self._stop_reason = self._stop_reason or reason
        self._pause_requested = True

    def _fault_pause(self, reason: str) -> None:
        """Pause for instrument faults: the operator is asked (without one, the campaign
        ends ``paused`` with the reason; ``athanor resume`` continues after the fix)."""
        if self._fault is None:
            self.notify(f"pausing: {reason}")
        self._fault = self._fault or reason
        self._pause_requested = True

    @contextmanager
    def _orchestrating(self) -> Iterator[None]:
        """Count the scheduler's own wall time (not the planner's) as orchestration."""
        start, planner = time.perf_counter(), self.planner_seconds
        try:
            yield
        finally:
            spent = time.perf_counter() - start - (self.planner_seconds - planner)
            self.orchestration_seconds += spent

    def _abandon_unstarted(self, reason: str) -> None:
        for exp in self.ledger.queued():
            if exp.id not in self.flight:
                self.ledger.abandon(exp, reason)

    # ------------------------------------------------------------------ starting

    def _proposer(self) -> Proposer:
        return Proposer(
            self.ledger, self.activity, approve=self.approve,
            before_asking=self._report, notify=self.notify,
        )  # fmt: skip

    def _proposal_wanted(self) -> bool:
        """Whether the next experiment should be proposed now: nothing is queued that
        waits to start, and the campaign may start another."""
        waiting = any(e.id not in self.flight for e in self.ledger.queued())
        return not waiting and self.ledger.can_start()

    def _start_what_fits(self, proposer: Proposer) -> None:
        if self.synchronous and self.flight:
            return
        while (
            self._loadable() and len(self.flight) < self.max_in_flight and self.ledger.can_start()
        ):
            queued = [e for e in self.ledger.queued() if e.id not in self.flight]
            if queued:
                if not self._launch(queued[0]):
                    return
            elif not self._inline_proposals:
                return  # the proposer thread is on it
            else:
                try:
                    experiment = proposer.propose()
                except StopCampaign as exc:
                    self.request_stop(str(exc))
                    return
                if experiment is None or not self._launch(experiment):
                    return

    def _launch(self, experiment: Experiment) -> bool:
        """Start ``experiment`` on a loadable instrument; False when another campaign on
        a shared lab took the last one first (it stays queued)."""
        holder = holder_id(self.config.name, experiment.number)
        first = self.roles.requests[self.roles.first]
        loadable = self._loadable()
        granted = self.pool.try_acquire(loadable, holder, first.priority) if loadable else None
        if granted is None:
            return False
        self.flight.launch(experiment, granted)
        return True

    def _loadable(self) -> tuple[str, ...]:
        """Free instruments an experiment can start on that are safe to load now (a
        furnace hot from an interrupted run is not, until it has cooled)."""
        return tuple(
            name for name in self.pool.free(self.roles.starters) if self._safe_to_load(name)
        )

    def _safe_to_load(self, name: str) -> bool:
        device = self.roles.candidates[self.roles.first][name]
        check = getattr(device, "safe_to_load", None)
        return check is None or check(self.readings.temperature(name))

    # ------------------------------------------------------------------ pause

    def _pause(self) -> Decision:
        """Pause every experiment (furnaces go safe), ask the operator, carry it out."""
        self._pause_requested = False
        self.flight.pause()
        for experiment_id in sorted(self._await(set(self.flight.workers), "paused")):
            number = self.store.experiment(experiment_id).number
            self.notify(f"experiment {number} did not pause within {STOP_WAIT:g} s")
        self._make_safe()
        self.store.update_campaign(self.config.name, status="paused")
        with self.activity.doing("paused"):
            self._report()
            decision = self._decide()
        self.store.update_campaign(
            self.config.name, status="running" if decision == "resume" else "stopping"
        )
        self.flight.command(decision)
        if decision == "resume":
            if self._fault is not None:
                self.health.restore()
                self._fault = None
            return decision
        self._stopping = decision
        for experiment_id in sorted(self._await(set(self.flight.workers), "ended")):
            self.flight.give_up(experiment_id, f"its plan did not end within {STOP_WAIT:g} s",
                                decision)  # fmt: skip
        return decision

    def _decide(self) -> Decision:
        """The operator's choice; stop when a stop was asked for or no answer comes."""
        try:
            decision = "stop" if self._stop_reason else self.decide()
        except StopCampaign as exc:
            self.request_stop(str(exc))
            decision = "stop"
        if self._stop_reason is None or decision == "abort":
            return decision
        self.notify(f"{self._stop_reason}: stopping as on 'stop'; 'athanor resume' continues")
        return "stop"

    def _await(self, waiting: set[int], until: Literal["paused", "ended"]) -> set[int]:
        """Handle events until each experiment in ``waiting`` has paused (or ended), or
        ended, for at most :data:`STOP_WAIT` wall seconds; returns those that did not."""
        deadline = time.monotonic() + STOP_WAIT
        while waiting and time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event.kind != "paused":
                self.flight.handle(event, self._stopping)
            elif until == "paused":
                waiting.discard(event.experiment_id)
            waiting &= set(self.flight.workers)
        return waiting

    def _make_safe(self) -> None:
        """Every furnace in its safe state; :attr:`unsafe` says which could not be."""
        self.unsafe = {name: str(exc) for name, exc in self._safe()}
        for name, why in self.unsafe.items():
            self.notify(f"NOT SAFE: {name} could not be made safe: {why}")

    def _safe(self) -> list[tuple[str, Exception]]:
        """Put every furnace in its safe state, or on a shared lab those this campaign
        holds and the free ones, each held while it is made safe (another campaign's are
        never touched); returns the ones that failed, with why."""
        if not self.shared:
            return self.lab.safe()
        ours = [
            name
            for name in self.lab.furnaces
            if holder_campaign(self.pool.holder(name) or "") == self.config.name
        ]
        with self.pool.holding_free(self.lab.furnaces, f"{self.config.name}#safe") as free:
            return self.lab.safe([*ours, *free])

    def _release_all(self, keep: Collection[str] = ()) -> None:
        """Give back every instrument this campaign's experiments hold but ``keep``."""
        for name in self.pool.instruments:
            holder = self.pool.holder(name)
            if name not in keep and holder and holder_campaign(holder) == self.config.name:
                self.pool.release(name, holder)

    def _last_word(self, status: str) -> dict[str, str]:
        """What the stored campaign says it waits for once run() ends: furnaces left
        unsafe first, then why faults paused it."""
        if self.unsafe:
            return {"waiting": unsafe_note(self.unsafe)}
        return {"waiting": self._fault or ""} if status == "paused" else {}

    # ------------------------------------------------------------------ reporting

    def _report(self) -> None:
        """Record why experiments wait (the store, for ``athanor status``); show progress."""
        if self.on_progress is not None:
            self.on_progress(self.progress())  # records them too
        else:
            self._record_reasons(self.ledger.experiments())

    def progress(self, record: bool = True) -> Progress:
        """Where the campaign stands; ``record``: store the waiting reasons that changed."""
        experiments = self.ledger.experiments()
        counts: dict[str, int] = {}
        for exp in experiments:
            counts[exp.state] = counts.get(exp.state, 0) + 1
        return Progress(
            campaign=self.config.name,
            max_experiments=self.config.budget.max_experiments,
            counts=counts,
            furnaces=self.readings.table(self.pool),
            best=self.ledger.best(),
            waiting=self._record_reasons(experiments) if record else {},
            activity=self.activity.now,
            lab_time=self.ledger.lab_time(),
            wall_time=time.monotonic() - self._started_wall,
        )

    def _record_reasons(self, experiments: list[Experiment]) -> dict[int, str]:
        """Store each waiting reason that changed (one transaction each); returns them."""
        reasons = waiting_reasons(
            experiments, running=self.flight.workers, paused=self.activity.now == "paused",
            pool=self.pool, roles=self.roles, safe_to_load=self._safe_to_load,
        )  # fmt: skip
        for exp in experiments:
            reason = reasons.get(exp.number, "")
            if exp.waiting != reason and exp.id is not None:
                self.store.update_experiment(exp.id, waiting=reason)
        if self.activity.now != self._recorded_activity:
            self.store.update_campaign(self.config.name, waiting=self.activity.now)
            self._recorded_activity = self.activity.now
        return {n: r for n, r in reasons.items() if r}

    def summary(self) -> dict[str, Any]:
        progress = self.progress(record=False)  # the stored status and reason are final
        elapsed = max(self.clock.now() - self.ledger.started, 1e-9)
        return {
            "campaign": self.config.name,
            "status": self.status,
            "paused_for": self._fault,
            "unsafe": dict(self.unsafe),
            "counts": progress.counts,
            "best": progress.best,
            "lab_hours": progress.lab_time / 3600,
            "wall_seconds": progress.wall_time,
            "planner_seconds": self.planner_seconds,
            "orchestration_seconds": self.orchestration_seconds,
            "utilisation": {
                name: self.pool.busy_time(name) / elapsed for name in self.pool.instruments
            },
        }


def unsafe_note(unsafe: dict[str, str]) -> str:
    """One line naming each furnace that could not be made safe, and why."""
    return "NOT SAFE: " + "; ".join(f"{name}: {why}" for name, why in unsafe.items())
