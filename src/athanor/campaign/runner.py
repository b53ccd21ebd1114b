"""The scheduler: any free furnace takes the next experiment; nothing is lost or run twice.

The store is the source of truth. Every state change of an experiment is one
transaction, and the planner's state is saved in the same transaction as the outcome it
learnt from, so a campaign killed at any moment resumes exactly where it stood.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Literal

from athanor.campaign.collect import Collector, measurements
from athanor.campaign.errors import explain
from athanor.campaign.outcomes import analyse_all, planner_outcomes, stored_outcomes
from athanor.campaign.prior import read_prior, warm_start
from athanor.campaign.progress import FurnaceReadings, Progress, waiting_for
from athanor.campaign.roles import Roles
from athanor.campaign.worker import Event, ExperimentWorker
from athanor.config import CampaignConfig
from athanor.lab import Lab
from athanor.lab_config import LabConfig
from athanor.planner.encoding import PlannerError
from athanor.planner.planner import Planner, Suggestion
from athanor.protocols.contract import holder_id
from athanor.protocols.registry import check_arguments, resolve
from athanor.protocols.requests import check_requests, requests_of
from athanor.store import Experiment, ExperimentState, Store

S = ExperimentState
Decision = Literal["resume", "stop", "abort"]
#: An operator's verdict on a proposal: run it, run these edited parameters, or skip it.
Approval = Callable[[Suggestion], dict[str, Any] | None]
#: Wall seconds the scheduler waits for experiments to pause, to end after a stop or
#: abort, and for a proposal in progress; what is still going then is named in a note.
STOP_WAIT = 30.0


class StopCampaign(Exception):
    """No answer will come (the input is closed, a SIGTERM came): ``approve`` and
    ``decide`` raise this, and the campaign stops as on the operator's stop."""


class CampaignRunner:
    """Runs one campaign on one lab, writing everything to the store.

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
        self._planner_lock = threading.RLock()
        self._proposal_wanted = threading.Event()
        self._closing = threading.Event()
        self.planner_seconds = 0.0  # wall time spent in suggest and ingest
        self.orchestration_seconds = 0.0  # the scheduler's own work, planner excluded
        self.plan = resolve(config.protocol)
        names = [p.name for p in config.search_space.parameters] + list(config.protocol_args)
        check_arguments(self.plan, names, f"campaign {config.name!r}")
        check_requests(self.plan, lab.config)
        self.roles = Roles(requests_of(self.plan), lab)
        self.pool = self.roles.pool(
            lab, on_release=lambda name: self.events.put(Event("freed", -1, state=name))
        )
        # An instrument of the first role (a furnace) frees up once its sample is out;
        # as many more experiments may then wait for the other roles, but no more, so
        # the planner sees results.
        self.max_in_flight = 2 * len(self.roles.starters)
        self.readings = FurnaceReadings(lab.furnaces, self.clock)
        self._activity = ""  # what the campaign waits for: the planner, an answer, a pause
        self._recorded_activity = ""
        self.events: queue.Queue[Event] = queue.Queue()
        self.workers: dict[int, ExperimentWorker] = {}
        self.planner: Planner
        self.ingested: list[int] = []
        self._pause_requested = False
        self._stop_reason: str | None = None  # why the campaign stops without asking
        self._stopping: Literal["stop", "abort"] | None = None
        self._started_wall = time.monotonic()
        self._lab_start = self.clock.now()
        self._lab_before = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self, lab_config: LabConfig | None = None) -> list[str]:
        """Record a new campaign in the store (refused if the name is taken).

        ``lab_config`` is the lab as written (the default: as connected); a simulated lab
        is stored as written, so that resume can start its emulators again. Experiments of
        the campaigns named in ``warm_start`` become the planner's prior data. Returns
        notes for the operator on what the warm start used.
        """
        priors = read_prior(self.store, self.config)
        self.store.create_campaign(
            self.config.name,
            config=self.config.model_dump(mode="json"),
            lab=(lab_config or self.lab.config).model_dump(mode="json"),
            seed=self.config.seed,
        )
        self.planner = Planner(
            self.config.search_space,
            self.config.planner_objectives(),
            self.config.outcome_constraints,
            seed=self.config.seed,
            n_initial=self.config.initial_experiments,
        )
        notes = warm_start(self.planner, priors)
        self._save_planner()
        return notes

    def recover(self) -> list[str]:
        """Pick up a campaign from the store after a pause, a crash or a kill.

        Every furnace is put in its safe state first. Experiments that were in a furnace
        or on an instrument when the campaign died are abandoned (their sample's
        history is unknown) and, by the campaign's ``on_interrupt`` rule, their
        parameters queued again as a new experiment. Runs left without a stop document
        are marked interrupted. Returns what was done, for the operator.
        """
        notes = [f"{name}: could not be made safe: {exc}" for name, exc in self.lab.safe()]
        campaign = self.store.campaign(self.config.name)
        saved = campaign.planner_state or {}
        self.planner = Planner.from_state(saved["planner"])
        self.ingested = list(saved.get("ingested", []))
        self._lab_before = campaign.lab_time
        for run in self.store.runs(self.config.name):
            if run.exit_status is None:
                self.store.mark_run_interrupted(run.uid)
        for exp in self.store.experiments(self.config.name, [S.QUEUED]):
            if exp.sample_id:
                notes.append(
                    f"experiment {exp.number}: its sample {exp.sample_id} never reached the "
                    "anneal; it starts again with a new sample"
                )
        for exp in self.store.experiments(self.config.name, [S.RUNNING, S.MEASURING]):
            reason = f"interrupted while {exp.state} (campaign stopped or crashed)"
            notes += self._interrupted(exp, reason)
        self.store.update_campaign(self.config.name, status="running")
        return notes

    def _interrupted(self, experiment: Experiment, reason: str) -> list[str]:
        """Abandon an experiment cut short and, by ``on_interrupt``, queue its parameters
        again as a new experiment; returns notes on what was done."""
        self._finish(experiment, S.ABANDONED, reason, planner_status="abandoned")
        notes = [f"experiment {experiment.number}: {reason}; abandoned"]
        if self.config.on_interrupt == "requeue":
            again = self.store.add_experiment(
                self.config.name, experiment.params,
                {"model": "requeued", "requeued_from": experiment.number},
                lab_time=self.clock.now(),
            )  # fmt: skip
            notes.append(f"experiment {again.number}: queued again with its parameters")
        return notes

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        """Run until the budget is spent, a stopping rule fires or the operator ends it;
        returns a summary.

        The campaign's status becomes ``finished``, ``stopped`` or ``aborted``; when an
        exception escapes, ``crashed``: the experiments in flight are paused where they
        are and left for :meth:`recover`, as after a kill. Every furnace is made safe.
        """
        self.store.update_campaign(self.config.name, status="running")
        status = "crashed"
        proposer = None
        if not self._inline_proposals:
            proposer = threading.Thread(target=self._proposer, name="proposer", daemon=True)
            proposer.start()
        try:
            while True:
                if self._pause_requested and self._pause() != "resume":
                    break
                with self._orchestrating():
                    if not self._stopping:
                        self._start_what_fits()
                        if not self._inline_proposals:
                            self._propose_ahead()
                    if not self.workers and (self._stopping or not self._can_start()):
                        break
                try:
                    event = self.events.get(timeout=0.1)
                except queue.Empty:
                    self._report()
                    continue
                with self._orchestrating():
                    self._handle(event)
                self._report()
            self._closing.set()
            if proposer is not None:
                proposer.join(STOP_WAIT)
                if proposer.is_alive():
                    self.notify(f"the planner did not finish a proposal within {STOP_WAIT:g} s")
            if self._stopping != "stop":  # a stopped campaign resumes with its queue
                self._abandon_unstarted(
                    "the operator aborted the campaign before it started"
                    if self._stopping == "abort"
                    else "the campaign ended (budget or stopping rule) before it started"
                )
            status = {"stop": "stopped", "abort": "aborted", None: "finished"}[self._stopping]
        finally:
            self._closing.set()
            if status == "crashed":
                self._pause_workers()
            self._make_safe()
            self._save_lab_time()
            self.store.update_campaign(self.config.name, status=status)
        return self.summary()

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
        for exp in self._queued():
            if exp.id not in self.workers:
                self._finish(exp, S.ABANDONED, reason, planner_status="abandoned")

    def request_pause(self) -> None:
        """Pause at the next chance (the Ctrl-C handler calls this)."""
        self._pause_requested = True

    def request_stop(self, reason: str) -> None:
        """Stop at the next chance without asking, as on the operator's stop (the SIGTERM
        handler calls this); ``reason`` is said in a note."""
        self._stop_reason = self._stop_reason or reason
        self._pause_requested = True

    # ------------------------------------------------------------------ starting

    def _budget_left(self) -> int:
        done = self.store.experiments(
            self.config.name, [S.QUEUED, S.RUNNING, S.MEASURING, S.ANALYSED, S.FAILED]
        )
        return self.config.budget.max_experiments - len(done)

    def _lab_hours(self) -> float:
        return (self._lab_before + self.clock.now() - self._lab_start) / 3600.0

    def _can_start(self) -> bool:
        if self._budget_left() <= 0 and not self._queued():
            return False
        limit = self.config.budget.max_lab_hours
        if limit is not None and self._lab_hours() >= limit:
            return False
        return not self._stop_rule_fired()

    def _stop_rule_fired(self) -> bool:
        rules = self.config.stopping
        if len(self.config.objectives) != 1 or (
            rules.objective_reaches is None and rules.no_improvement_for is None
        ):
            return False
        with self._planner_lock:
            best = self.planner.best()
        objective = self.config.objectives[0]
        if rules.objective_reaches is not None and best is not None:
            value = best.outcomes[objective.name]
            goal = rules.objective_reaches
            if value <= goal if objective.goal == "minimize" else value >= goal:
                return True
        if rules.no_improvement_for is not None and best is not None:
            completed = [o for o in self.planner.observations if o.status == "completed"]
            since = len(completed) - 1 - completed.index(best)
            return since >= rules.no_improvement_for
        return False

    def _queued(self) -> list[Experiment]:
        return self.store.experiments(self.config.name, [S.QUEUED])

    def _start_what_fits(self) -> None:
        if self.synchronous and self.workers:
            return
        while self._loadable() and len(self.workers) < self.max_in_flight and self._can_start():
            queued = [e for e in self._queued() if e.id not in self.workers]
            if queued:
                self._launch(queued[0])
            elif self._inline_proposals:
                experiment = self._propose()
                if experiment is None:
                    return
                self._launch(experiment)
            else:
                return  # the proposer thread is on it

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

    def _propose_ahead(self) -> None:
        """Keep the next experiment proposed and queued, so that a furnace that frees up
        starts at once instead of waiting for the planner (which works in its own thread
        while the scheduler goes on)."""
        if not any(e.id not in self.workers for e in self._queued()):
            self._proposal_wanted.set()

    def _proposer(self) -> None:
        while not self._closing.is_set():
            if not self._proposal_wanted.wait(0.1):
                continue
            self._proposal_wanted.clear()
            try:
                with self._planner_lock:
                    if not self._queued() and self._can_start():
                        self._propose()
            except Exception as exc:  # handed to the scheduler, which stops the campaign
                self.events.put(Event("failed", -1, error=exc))
                return
            self.events.put(Event("freed", -1))  # wake the scheduler: a proposal is ready

    def _propose(self) -> Experiment | None:
        if self._budget_left() <= 0:
            return None
        active = self.store.experiments(self.config.name, [S.QUEUED, S.RUNNING, S.MEASURING])
        pending = [e.params for e in active]
        started = time.perf_counter()
        with self._planner_lock, self._doing("planner fitting the next experiment"):
            (suggestion,) = self.planner.suggest(1, pending=pending)
        self.planner_seconds += time.perf_counter() - started
        provenance = suggestion.to_dict()
        params: dict[str, Any] | None = suggestion.params
        decision = "accepted"
        if self.approve is not None:
            try:
                with self._doing("awaiting the operator's approval of a proposal"):
                    self._report()
                    params = self.approve(suggestion)
            except StopCampaign as exc:  # nothing is stored: resume proposes again
                self.request_stop(str(exc))
                return None
            if params is not None and params != suggestion.params:
                try:  # an edit is held to the same space as every proposal
                    params = self.planner.check(params, "edited proposal")
                except PlannerError as exc:
                    self.notify(f"rejected: {exc}")
                    params = None
            decision = (
                "rejected"
                if params is None
                else ("accepted" if params == suggestion.params else "edited")
            )
        self._save_planner()
        if params is None:
            self.store.add_experiment(
                self.config.name, suggestion.params, provenance, decision="rejected",
                state=S.ABANDONED, lab_time=self.clock.now(),
            )  # fmt: skip
            self.planner.ingest(suggestion.params, status="abandoned")
            return None
        return self.store.add_experiment(
            self.config.name, params, provenance, decision=decision, lab_time=self.clock.now()
        )

    def _launch(self, experiment: Experiment) -> None:
        assert experiment.id is not None
        holder = holder_id(self.config.name, experiment.number)
        first = self.roles.requests[self.roles.first]
        granted = self.pool.try_acquire(self._loadable(), holder, first.priority)
        assert granted is not None
        attempt = len(self.store.samples(experiment.id)) + 1  # a new sample every launch
        sample_id = f"{self.config.name}-{experiment.number:03d}-{attempt}"
        self.store.add_sample(sample_id, self.config.name, experiment.id)
        self.store.update_experiment(experiment.id, furnace=granted, sample_id=sample_id)
        ctx = self.roles.context(
            self.pool, granted, campaign=self.config.name, experiment_id=experiment.id,
            number=experiment.number, sample_id=sample_id,
        )  # fmt: skip
        kwargs = {**self.config.protocol_args, **experiment.params}
        worker = ExperimentWorker(
            experiment.id,
            experiment.params,
            lambda: self.plan(ctx, **kwargs),
            self.events,
            [self.store.document_writer(self.config.name)],
            analyse=self._analyse,
        )
        self.workers[experiment.id] = worker
        worker.start()

    # ------------------------------------------------------------------ events

    def _analyse(self, collector: Collector) -> tuple[list[Any], dict[str, float], str]:
        """(analysis results, planner outcomes, why there are none); in the worker."""
        try:
            results = analyse_all(self.config, measurements(collector))
            outcomes, _, why = planner_outcomes(self.config, results)
        except Exception as exc:
            return [], {}, f"analysis failed: {type(exc).__name__}: {exc}"
        return results, outcomes, why

    def _handle(self, event: Event) -> None:
        if event.kind == "failed" and event.experiment_id == -1 and event.error is not None:
            raise event.error  # the planner failed: stop (furnaces are made safe)
        worker = self.workers.get(event.experiment_id)
        if worker is None:
            return
        experiment = self.store.experiment(event.experiment_id)
        now = self.clock.now()
        if event.kind == "state":
            target = S(event.state)
            if target == S.RUNNING and experiment.state == S.QUEUED:
                self.store.transition(experiment.id, S.RUNNING, lab_time=now)  # type: ignore[arg-type]
            elif target == S.MEASURING and experiment.state == S.RUNNING:
                self.store.transition(experiment.id, S.MEASURING, lab_time=now)  # type: ignore[arg-type]
            return
        if event.kind == "paused":
            return
        del self.workers[event.experiment_id]
        self.pool.release_all(holder_id(self.config.name, experiment.number))
        if event.kind == "failed":
            reason = explain(event.error)
            if self._stopping:
                self._cut_short(experiment, reason)
            else:
                self._finish(experiment, S.FAILED, reason, planner_status="failed")
            return
        results, outcomes, why = event.analysed
        if experiment.state == S.RUNNING:
            self.store.transition(experiment.id, S.MEASURING, lab_time=now)  # type: ignore[arg-type]
            experiment = self.store.experiment(event.experiment_id)
        if why:
            self._finish(experiment, S.FAILED, why, planner_status="failed",
                         rows=stored_outcomes(results))  # fmt: skip
        else:
            self._finish(experiment, S.ANALYSED, "", planner_status="completed",
                         outcomes=outcomes, rows=stored_outcomes(results))  # fmt: skip

    def _cut_short(self, experiment: Experiment, why: str) -> None:
        """End an experiment that the operator's stop or abort cut short; after a stop
        its parameters run again (by ``on_interrupt``), as after a kill."""
        if self._stopping == "stop":
            for note in self._interrupted(experiment, f"stopped by the operator ({why})"):
                self.notify(note)
        else:
            self._finish(experiment, S.ABANDONED, f"aborted by the operator ({why})",
                         planner_status="abandoned")  # fmt: skip

    def _finish(
        self,
        experiment: Experiment,
        target: ExperimentState,
        reason: str,
        *,
        planner_status: Literal["completed", "failed", "abandoned"],
        outcomes: dict[str, float] | None = None,
        rows: list[Any] | None = None,
    ) -> None:
        """End an experiment: its state, outcomes and what the planner learnt, together."""
        assert experiment.id is not None
        with self._planner_lock:
            started = time.perf_counter()
            self.planner.ingest(experiment.params, outcomes, status=planner_status)
            self.planner_seconds += time.perf_counter() - started
            self.ingested.append(experiment.id)
            self.store.finish_experiment(
                experiment.id, target, reason, outcomes=rows or [],
                planner_state={"planner": self.planner.state(), "ingested": self.ingested},
                lab_time=self.clock.now(),
            )  # fmt: skip

    def _save_planner(self) -> None:
        with self._planner_lock:
            self.store.update_campaign(
                self.config.name,
                planner_state={"planner": self.planner.state(), "ingested": self.ingested},
            )

    def _save_lab_time(self) -> None:
        self.store.update_campaign(
            self.config.name, lab_time=self._lab_before + self.clock.now() - self._lab_start
        )

    # ------------------------------------------------------------------ pause

    def _pause(self) -> Decision:
        """Pause every experiment (furnaces go safe), ask the operator, carry it out."""
        self._pause_requested = False
        self._pause_workers()
        for experiment_id in sorted(self._await(set(self.workers), "paused")):
            number = self.store.experiment(experiment_id).number
            self.notify(f"experiment {number} did not pause within {STOP_WAIT:g} s")
        self._make_safe()
        self.store.update_campaign(self.config.name, status="paused")
        with self._doing("paused"):
            self._report()
            decision = self._decide()
        self.store.update_campaign(
            self.config.name, status="running" if decision == "resume" else "stopping"
        )
        for worker in list(self.workers.values()):
            worker.command(decision)
        if decision == "resume":
            return decision
        self._stopping = decision
        for experiment_id in sorted(self._await(set(self.workers), "ended")):
            del self.workers[experiment_id]  # what its plan still does is not recorded
            experiment = self.store.experiment(experiment_id)
            self.pool.release_all(holder_id(self.config.name, experiment.number))
            self._cut_short(experiment, f"its plan did not end within {STOP_WAIT:g} s")
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

    def _pause_workers(self) -> None:
        """Ask every experiment's plan to pause (its devices go safe)."""
        for worker in list(self.workers.values()):
            with suppress(RuntimeError):  # its RunEngine stopped running just now
                worker.pause()

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
                self._handle(event)
            elif until == "paused":
                waiting.discard(event.experiment_id)
            waiting &= set(self.workers)
        return waiting

    def _make_safe(self) -> None:
        for name, exc in self.lab.safe():
            self.notify(f"{name}: could not be made safe: {exc}")

    # ------------------------------------------------------------------ reporting

    def _report(self) -> None:
        """Record why experiments wait (the store, for ``athanor status``); show progress."""
        if self.on_progress is not None:
            self.on_progress(self.progress())  # records them too
        else:
            self._record_reasons(self.store.experiments(self.config.name))

    def progress(self) -> Progress:
        experiments = self.store.experiments(self.config.name)
        counts: dict[str, int] = {}
        for exp in experiments:
            counts[exp.state] = counts.get(exp.state, 0) + 1
        waiting = self._record_reasons(experiments)
        best = None
        with self._planner_lock:
            obs = self.planner.best() if len(self.config.objectives) == 1 else None
        if obs is not None:
            best = (obs.outcomes[self.config.objectives[0].name], obs.params)
        return Progress(
            campaign=self.config.name,
            max_experiments=self.config.budget.max_experiments,
            counts=counts,
            furnaces=self.readings.table(self.pool),
            best=best,
            waiting=waiting,
            activity=self._activity,
            lab_time=self._lab_before + self.clock.now() - self._lab_start,
            wall_time=time.monotonic() - self._started_wall,
        )

    @contextmanager
    def _doing(self, activity: str) -> Iterator[None]:
        """What the campaign waits for while the block runs (shown and stored)."""
        self._activity = activity
        try:
            yield
        finally:
            self._activity = ""

    def _reasons(self, experiments: list[Experiment]) -> dict[int, str]:
        """experiment number -> why it is not running (empty for one that runs)."""
        in_pool = waiting_for(self.pool, self.roles.descriptions)
        first = self.roles.requests[self.roles.first]
        reasons = {}
        for exp in experiments:
            if not exp.state.active:
                continue
            if self._activity == "paused":
                reasons[exp.number] = "paused"
            elif exp.id not in self.workers:
                free = self.pool.free(self.roles.starters)
                hot = [n for n in free if not self._safe_to_load(n)]
                reasons[exp.number] = (
                    f"no free {first.kind}"
                    if not free
                    else f"no {first.kind} safe to load ({', '.join(hot)} still hot)"
                    if len(hot) == len(free)
                    else f"{len(self.workers)} experiments in flight, as many as this lab takes"
                )
            else:
                reasons[exp.number] = in_pool.get(exp.number, "")
        return reasons

    def _record_reasons(self, experiments: list[Experiment]) -> dict[int, str]:
        """Store each waiting reason that changed (one transaction each); returns them."""
        reasons = self._reasons(experiments)
        for exp in experiments:
            reason = reasons.get(exp.number, "")
            if exp.waiting != reason and exp.id is not None:
                self.store.update_experiment(exp.id, waiting=reason)
        if self._activity != self._recorded_activity:
            self.store.update_campaign(self.config.name, waiting=self._activity)
            self._recorded_activity = self._activity
        return {n: r for n, r in reasons.items() if r}

    def summary(self) -> dict[str, Any]:
        progress = self.progress()
        return {
            "campaign": self.config.name,
            "counts": progress.counts,
            "best": progress.best,
            "lab_hours": progress.lab_time / 3600,
            "wall_seconds": progress.wall_time,
            "planner_seconds": self.planner_seconds,
            "orchestration_seconds": self.orchestration_seconds,
            "utilisation": {
                name: self.pool.busy_time(name) / max(self.clock.now() - self._lab_start, 1e-9)
                for name in self.pool.instruments
            },
        }
