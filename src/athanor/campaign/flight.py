"""Experiments in flight: each launched on a worker, what it reports written to the ledger.

An experiment is launched holding an instrument of its protocol's first role (a
furnace) with a new sample; its worker's events become the store's state transitions,
and its end (analysed, failed, or cut short by the operator) one ledger entry with what
the planner learns from it. A failed experiment's sample is cleared off the instruments
it holds (:mod:`athanor.campaign.leftovers`), then every instrument it holds is
released. One an instrument failed runs again and the instrument is probed
(:mod:`athanor.campaign.faults`).
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Generator
from contextlib import suppress
from typing import Any, Literal

from athanor.campaign.collect import Collector, measurements
from athanor.campaign.errors import explain
from athanor.campaign.faults import InstrumentHealth, blamed
from athanor.campaign.ledger import Ledger
from athanor.campaign.leftovers import clear_leftovers
from athanor.campaign.outcomes import analyse_all, planner_outcomes, stored_outcomes
from athanor.campaign.roles import Roles
from athanor.campaign.worker import Command, Event, ExperimentWorker
from athanor.lab import Lab
from athanor.protocols.contract import holder_id
from athanor.resources import ResourcePool
from athanor.store import Experiment, ExperimentState

S = ExperimentState
Ending = Literal["stop", "abort"]


class Flight:
    """The experiments in flight of one campaign, by experiment id (:attr:`workers`).

    Parameters
    ----------
    ledger
        The campaign's experiments and planner.
    lab
        The lab, cleared of what a failed experiment left in it.
    plan
        The campaign's protocol, called with an experiment's context and arguments.
    roles, pool
        The instruments each role may take, and the pool they are leased from.
    events
        Where the workers report.
    health
        Told which instrument failed an experiment, and which served one analysed.
    notify
        Called with notes for the operator.
    """

    def __init__(
        self,
        ledger: Ledger,
        lab: Lab,
        plan: Callable[..., Generator[Any, Any, Any]],
        roles: Roles,
        pool: ResourcePool,
        events: queue.Queue[Event],
        health: InstrumentHealth,
        notify: Callable[[str], None],
    ) -> None:
        self.ledger, self.lab, self.plan, self.roles, self.pool = ledger, lab, plan, roles, pool
        self.config, self.store = ledger.config, ledger.store
        self.events, self.health, self.notify = events, health, notify
        self.workers: dict[int, ExperimentWorker] = {}

    def __len__(self) -> int:
        return len(self.workers)

    def __contains__(self, experiment_id: object) -> bool:
        return experiment_id in self.workers

    def launch(self, experiment: Experiment, granted: str) -> None:
        """Start ``experiment`` with a new sample on ``granted``, which it holds."""
        assert experiment.id is not None
        attempt = len(self.store.samples(experiment.id)) + 1
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
            clean_up=lambda: self._clear(experiment.number, sample_id),
        )
        self.workers[experiment.id] = worker
        worker.start()

    def _analyse(self, collector: Collector) -> tuple[list[Any], dict[str, float], str]:
        """(analysis results, planner outcomes, why there are none); in the worker."""
        try:
            results = analyse_all(self.config, measurements(collector))
            outcomes, _, why = planner_outcomes(self.config, results)
        except Exception as exc:
            return [], {}, f"analysis failed: {type(exc).__name__}: {exc}"
        return results, outcomes, why

    def _clear(self, number: int, sample_id: str) -> None:
        """After a failure, in the worker: clear what the experiment left on the
        instruments it holds and on the robot, before they go to the next one."""
        holder = holder_id(self.config.name, number)
        held = {name for name in self.pool.instruments if self.pool.holder(name) == holder}
        for note in clear_leftovers(self.lab, [sample_id], self.notify, held):
            self.notify(f"experiment {number}: {note}")

    def handle(self, event: Event, ending: Ending | None) -> None:
        """Record what a worker reported; ``ending`` says whether the operator is
        stopping or aborting the campaign (a plan that fails then was cut short)."""
        if event.kind == "failed" and event.experiment_id == -1 and event.error is not None:
            raise event.error  # the planner failed: stop (furnaces are made safe)
        if event.experiment_id not in self.workers or event.kind == "paused":
            return
        experiment = self.store.experiment(event.experiment_id)
        if event.kind == "state":
            self._advance(experiment, S(event.state))
            return
        used = self._release(experiment)
        if event.kind == "failed":
            reason = explain(event.error)
            if ending:
                self.cut_short(experiment, reason, ending)
            elif (fault := blamed(event.error)) is not None:
                for note in self.ledger.retry(experiment, reason):
                    self.notify(note)
                self.health.failed(fault.instrument, reason)
            else:
                self.ledger.finish(experiment, S.FAILED, reason, planner_status="failed")
            return
        self.health.succeeded(used)
        results, outcomes, why = event.analysed
        experiment = self._advance(experiment, S.MEASURING)
        if why:
            self.ledger.finish(experiment, S.FAILED, why, planner_status="failed",
                               rows=stored_outcomes(results))  # fmt: skip
        else:
            self.ledger.finish(experiment, S.ANALYSED, "", planner_status="completed",
                               outcomes=outcomes, rows=stored_outcomes(results))  # fmt: skip

    def _advance(self, experiment: Experiment, target: ExperimentState) -> Experiment:
        """Queued → running → measuring, each step once; returns the experiment as now."""
        assert experiment.id is not None
        before = {S.RUNNING: S.QUEUED, S.MEASURING: S.RUNNING}.get(target)
        if experiment.state != before:
            return experiment
        return self.store.transition(experiment.id, target, lab_time=self.ledger.clock.now())

    def _release(self, experiment: Experiment) -> set[str]:
        """Release what ``experiment`` holds; returns every instrument it leased."""
        del self.workers[experiment.id]  # type: ignore[arg-type]
        holder = holder_id(self.config.name, experiment.number)
        self.pool.release_all(holder)
        return {record.resource for record in self.pool.log if record.holder == holder}

    def cut_short(self, experiment: Experiment, why: str, ending: Ending) -> None:
        """End an experiment that the operator's stop or abort cut short; after a stop
        its parameters run again (by ``on_interrupt``), as after a kill."""
        if ending == "stop":
            for note in self.ledger.interrupted(experiment, f"stopped by the operator ({why})"):
                self.notify(note)
        else:
            self.ledger.abandon(experiment, f"aborted by the operator ({why})")

    def give_up(self, experiment_id: int, why: str, ending: Ending) -> None:
        """End an experiment whose plan did not end when told to; what the plan still
        does is not recorded."""
        experiment = self.store.experiment(experiment_id)
        self._release(experiment)
        self.cut_short(experiment, why, ending)

    def pause(self) -> None:
        """Ask every experiment's plan to pause (its devices go safe)."""
        for worker in list(self.workers.values()):
            with suppress(RuntimeError):  # its RunEngine stopped running just now
                worker.pause()

    def command(self, what: Command) -> None:
        """Tell every paused plan to resume, stop or abort."""
        for worker in list(self.workers.values()):
            worker.command(what)
