"""The ledger: each experiment's fate and what the planner learnt from it, written together.

The store is the source of truth. Every state change of an experiment is one
transaction, and the planner's state is saved in the same transaction as the outcome it
learnt from, so a campaign killed at any moment resumes exactly where it stood. The
ledger also says whether the campaign may start another experiment: budget, lab hours
and stopping rules.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from athanor.campaign.costs import cost_planning
from athanor.campaign.prior import read_prior, warm_start
from athanor.clock import Clock
from athanor.config import CampaignConfig
from athanor.lab_config import LabConfig
from athanor.planner.planner import Planner, Suggestion
from athanor.store import Experiment, ExperimentState, Store

S = ExperimentState
PlannerStatus = Literal["completed", "failed", "abandoned"]
#: How the reason of an experiment an instrument failed begins.
INSTRUMENT_FAULT = "instrument fault"


class Ledger:
    """One campaign's experiments and planner in the store.

    Use :meth:`create` for a new campaign and :meth:`load` to pick one up. The planner
    is used under :attr:`lock` (the proposer thread and the scheduler share it);
    :attr:`planner_seconds` counts the wall time spent in it.
    """

    def __init__(
        self, config: CampaignConfig, store: Store, clock: Clock, planner: Planner,
        ingested: list[int], lab_before: float = 0.0,
    ) -> None:  # fmt: skip
        self.config, self.store, self.clock = config, store, clock
        self.name = config.name
        self.planner = planner
        self.ingested = ingested  # experiment ids the planner has learnt from, in order
        self.lock = threading.RLock()
        self.planner_seconds = 0.0
        self._lab_before = lab_before  # lab seconds of earlier runs of this campaign
        self.started = clock.now()  # lab time this run began

    @classmethod
    def create(
        cls, config: CampaignConfig, store: Store, clock: Clock, lab: LabConfig
    ) -> tuple[Ledger, list[str]]:
        """Record a new campaign (refused if the name is taken) with a fresh planner,
        warm-started from the campaigns named in ``warm_start``, in one transaction;
        returns the ledger and notes on what the warm start used."""
        priors = read_prior(store, config)
        settings, cost = cost_planning(config, lab)
        planner = Planner(
            config.search_space, config.planner_objectives(), config.outcome_constraints,
            seed=config.seed, n_initial=config.initial_experiments, settings=settings,
            cost=cost,
        )  # fmt: skip
        ledger = cls(config, store, clock, planner, [])
        notes = warm_start(planner, priors)
        store.create_campaign(
            config.name, config=config.model_dump(mode="json"),
            lab=lab.model_dump(mode="json"), seed=config.seed,
            planner_state=ledger._planner_state(),
        )  # fmt: skip
        return ledger, notes

    @classmethod
    def load(cls, config: CampaignConfig, store: Store, clock: Clock) -> Ledger:
        """The campaign as the store holds it, planner state included."""
        campaign = store.campaign(config.name)
        saved = campaign.planner_state or {}
        _, cost = cost_planning(config, LabConfig.model_validate(campaign.lab))
        planner = Planner.from_state(saved["planner"], cost=cost)
        return cls(config, store, clock, planner, list(saved.get("ingested", [])),
                   lab_before=campaign.lab_time)  # fmt: skip

    # ------------------------------------------------------------------ experiments

    def experiments(self, *states: ExperimentState) -> list[Experiment]:
        return self.store.experiments(self.name, list(states) if states else None)

    def queued(self) -> list[Experiment]:
        return self.experiments(S.QUEUED)

    def active(self) -> list[Experiment]:
        """Queued, running or measuring."""
        return self.experiments(S.QUEUED, S.RUNNING, S.MEASURING)

    def suggest(self, pending: list[dict[str, Any]]) -> Suggestion:
        """The planner's next proposal, ``pending`` counted as running."""
        with self._timed():
            (suggestion,) = self.planner.suggest(1, pending=pending)
        return suggestion

    def add(self, params: dict[str, Any], provenance: dict[str, Any], decision: str) -> Experiment:
        """Queue a proposal (its planner state saved first: its random draws are spent)."""
        self.save_planner()
        return self.store.add_experiment(
            self.name, params, provenance, decision=decision, lab_time=self.clock.now()
        )

    def reject(self, suggestion: Suggestion) -> None:
        """Record a proposal the operator rejected; the planner learns not to offer it."""
        self.save_planner()
        self.store.add_experiment(
            self.name, suggestion.params, suggestion.to_dict(), decision="rejected",
            state=S.ABANDONED, lab_time=self.clock.now(),
        )  # fmt: skip
        with self._timed():
            self.planner.ingest(suggestion.params, status="abandoned")

    def finish(
        self,
        experiment: Experiment,
        target: ExperimentState,
        reason: str,
        *,
        planner_status: PlannerStatus,
        outcomes: dict[str, float] | None = None,
        rows: list[Any] | None = None,
    ) -> None:
        """End an experiment: its state, outcomes and what the planner learnt, together."""
        assert experiment.id is not None
        hours = self._lab_hours(experiment) if planner_status == "completed" else None
        with self._timed():
            self.planner.ingest(experiment.params, outcomes, status=planner_status, cost=hours)
            self.ingested.append(experiment.id)
            self.store.finish_experiment(
                experiment.id, target, reason, outcomes=rows or [],
                planner_state=self._planner_state(), lab_time=self.clock.now(),
            )  # fmt: skip

    def _lab_hours(self, experiment: Experiment) -> float | None:
        """Lab hours from the experiment's start to now (what a cost model learns)."""
        assert experiment.id is not None
        started = [
            change.lab_time for change in self.store.state_history(experiment.id)
            if change.target == S.RUNNING and change.lab_time is not None
        ]  # fmt: skip
        return (self.clock.now() - started[0]) / 3600 if started else None

    def abandon(self, experiment: Experiment, reason: str) -> None:
        self.finish(experiment, S.ABANDONED, reason, planner_status="abandoned")

    def interrupted(self, experiment: Experiment, reason: str) -> list[str]:
        """Abandon an experiment cut short and, by ``on_interrupt``, queue its parameters
        again as a new experiment; returns notes on what was done."""
        self.abandon(experiment, reason)
        notes = [f"experiment {experiment.number}: {reason}; abandoned"]
        if self.config.on_interrupt == "requeue":
            notes.append(self._queue_again(experiment, {"model": "requeued"}))
        return notes

    def retry(self, experiment: Experiment, reason: str) -> list[str]:
        """Abandon an experiment an instrument failed (the planner learns nothing of its
        parameters) and queue them again, up to ``faults.retries`` times; returns notes."""
        attempt = 1 + sum(
            e.params == experiment.params and e.reason.startswith(INSTRUMENT_FAULT)
            for e in self.experiments(S.ABANDONED)
        )
        self.abandon(experiment, f"{INSTRUMENT_FAULT}, attempt {attempt}: {reason}")
        note = f"experiment {experiment.number}: failed by an instrument ({reason})"
        if attempt > self.config.faults.retries:
            return [f"{note}; its parameters were tried {attempt} times: given up"]
        provenance = {"model": "retried", "attempt": attempt + 1}
        return [f"{note}; not counted", self._queue_again(experiment, provenance)]

    def _queue_again(self, experiment: Experiment, provenance: dict[str, Any]) -> str:
        again = self.store.add_experiment(
            self.name, experiment.params, {**provenance, "requeued_from": experiment.number},
            lab_time=self.clock.now(),
        )  # fmt: skip
        return f"experiment {again.number}: queued again with its parameters"

    def save_planner(self) -> None:
        with self.lock:
            self.store.update_campaign(self.name, planner_state=self._planner_state())

    def _planner_state(self) -> dict[str, Any]:
        return {"planner": self.planner.state(), "ingested": self.ingested}

    @contextmanager
    def _timed(self) -> Iterator[None]:
        with self.lock:
            started = time.perf_counter()
            try:
                yield
            finally:
                self.planner_seconds += time.perf_counter() - started

    # ------------------------------------------------------------------ limits

    def lab_time(self) -> float:
        """Lab seconds this campaign has run, earlier runs included."""
        return self._lab_before + self.clock.now() - self.started

    def save_lab_time(self) -> None:
        self.store.update_campaign(self.name, lab_time=self.lab_time())

    def budget_left(self) -> int:
        """Experiments the budget still allows (abandoned ones do not count)."""
        spent = self.experiments(S.QUEUED, S.RUNNING, S.MEASURING, S.ANALYSED, S.FAILED)
        return self.config.budget.max_experiments - len(spent)

    def can_start(self) -> bool:
        """Whether another experiment may start: something queued or budget left, lab
        hours left, and no stopping rule fired."""
        if self.budget_left() <= 0 and not self.queued():
            return False
        limit = self.config.budget.max_lab_hours
        if limit is not None and self.lab_time() / 3600.0 >= limit:
            return False
        return not self.stop_rule_fired()

    def best(self) -> tuple[float, dict[str, Any]] | None:
        """(objective value, parameters) of the best experiment, for one objective."""
        if len(self.config.objectives) != 1:
            return None
        with self.lock:
            obs = self.planner.best()
        return None if obs is None else (obs.outcomes[self.config.objectives[0].name], obs.params)

    def stop_rule_fired(self) -> bool:
        rules = self.config.stopping
        if len(self.config.objectives) != 1 or (
            rules.objective_reaches is None and rules.no_improvement_for is None
        ):
            return False
        with self.lock:
            best = self.planner.best()
            completed = [o for o in self.planner.observations if o.status == "completed"]
        if best is None:
            return False
        objective = self.config.objectives[0]
        if rules.objective_reaches is not None:
            value, goal = best.outcomes[objective.name], rules.objective_reaches
            if value <= goal if objective.goal == "minimize" else value >= goal:
                return True
        if rules.no_improvement_for is not None:
            since = len(completed) - 1 - completed.index(best)
            return since >= rules.no_improvement_for
        return False
