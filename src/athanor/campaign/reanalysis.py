"""Analysing a finished campaign again, from its stored Bluesky documents."""

from __future__ import annotations

from dataclasses import dataclass

from athanor.analysis import reanalyse
from athanor.campaign.collect import Collector, measurements
from athanor.campaign.outcomes import stored_outcomes
from athanor.store import ExperimentState, Store


@dataclass
class Change:
    """One outcome of one experiment, before and after re-analysis."""

    experiment: int
    outcome: str
    before: float | None
    after: float | None
    method: str
    rejected: str | None = None


def reanalyse_campaign(
    store: Store, campaign: str, method: str, params: dict | None = None, *, record: bool = True
) -> list[Change]:
    """Re-run ``method`` on every analysed experiment's stored measurements.

    With ``record`` the new outcomes are stored and become current (the old ones stay,
    marked superseded, with the method that made them).
    """
    store.campaign(campaign)  # StoreError naming the known campaigns
    changes: list[Change] = []
    current = store.outcomes(campaign)
    for exp in store.experiments(campaign, [ExperimentState.ANALYSED, ExperimentState.FAILED]):
        assert exp.id is not None
        collector = Collector()
        for run in store.runs(campaign, exp.id):
            store.replay(run.uid, collector)
        results = reanalyse(measurements(collector), method, params)
        for result in results:
            if not result.ok:
                changes.append(Change(exp.number, "-", None, None, result.method, result.rejected))
                continue
            for name, quantity in result.outcomes.items():
                old = current.get(exp.id, {}).get(name)
                before = old.value if old is not None else None
                changes.append(Change(exp.number, name, before, quantity.value, result.method))
        if record and any(r.ok for r in results):
            store.record_outcomes(exp.id, stored_outcomes([r for r in results if r.ok]))
    return changes
