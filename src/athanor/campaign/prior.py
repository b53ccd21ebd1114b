"""Warm start: what earlier campaigns in the store learnt, as prior data for a new one.

A campaign's ``warm_start`` names earlier campaigns. Their analysed experiments give the
new planner outcomes through the new campaign's own mapping (``outcomes``, ``derived``),
so an earlier campaign that optimised something else still informs this one; their failed
experiments train the feasibility model. Experiments that do not fit the new search space
or lack an outcome it needs are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from athanor.campaign.outcomes import outcomes_from_values
from athanor.config import CampaignConfig
from athanor.config_files import ConfigError
from athanor.planner import Planner
from athanor.planner.encoding import PlannerError
from athanor.store import ExperimentState, Store, StoreError


@dataclass
class PriorCampaign:
    """The usable experiments of one earlier campaign and those left out."""

    name: str
    #: planner records (``params``, ``outcomes``, ``status``) with their ``experiment`` number
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why, one per experiment left out


def read_prior(store: Store, config: CampaignConfig) -> list[PriorCampaign]:
    """Planner records from the campaigns named in ``config.warm_start``.

    Raises
    ------
    ConfigError
        When a named campaign is not in the store.
    """
    found = []
    for name in config.warm_start:
        try:
            store.campaign(name)
        except StoreError as exc:
            raise ConfigError(f"campaign {config.name!r}: warm_start: {exc}") from None
        prior = PriorCampaign(name)
        measured = store.outcomes(name)
        states = [ExperimentState.ANALYSED, ExperimentState.FAILED]
        for exp in store.experiments(name, states):
            if exp.state == ExperimentState.FAILED:
                prior.records.append(
                    {"experiment": exp.number, "params": exp.params, "status": "failed"}
                )
                continue
            values = {
                n: o.value for n, o in measured.get(exp.id or -1, {}).items() if o.value is not None
            }
            outcomes, _, why = outcomes_from_values(config, values)
            if why:
                prior.skipped.append(f"experiment {exp.number}: {why}")
            else:
                prior.records.append(
                    {"experiment": exp.number, "params": exp.params, "outcomes": outcomes}
                )
        found.append(prior)
    return found


def warm_start(planner: Planner, priors: list[PriorCampaign]) -> list[str]:
    """Give ``planner`` the prior records that fit its space; a note per campaign."""
    notes = []
    for prior in priors:
        added = {"completed": 0, "failed": 0}
        skipped = list(prior.skipped)
        for rec in prior.records:
            try:
                planner.warm_start([rec])
            except PlannerError as exc:
                skipped.append(f"experiment {rec['experiment']}: {exc}")
                continue
            added[rec.get("status", "completed")] += 1
        note = (
            f"warm start from {prior.name!r}: {added['completed']} analysed and "
            f"{added['failed']} failed experiments"
        )
        if skipped:
            note += f"; {len(skipped)} left out (first: {skipped[0]})"
        notes.append(note)
    return notes
