"""The campaign config: protocol, search space, objectives, analysis, budget, stopping.

Errors name file, line, key, value and what is allowed (:mod:`athanor.config_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from athanor.config_files import SourcedModel, load
from athanor.planner.space import Desirability, Objective, OutcomeConstraint, SearchSpace
from athanor.schema import StrictModel


class Budget(StrictModel):
    max_experiments: int = Field(gt=0, le=100_000)
    max_lab_hours: float | None = Field(None, gt=0, description="stop after this much lab time")


class Stopping(StrictModel):
    """Stop early when an objective reaches a value or stops improving."""

    objective_reaches: float | None = None
    no_improvement_for: int | None = Field(None, gt=0, description="experiments")


class DerivedOutcome(StrictModel):
    """An outcome computed from measured ones: the product of their desirabilities."""

    product: list[Desirability] = Field(min_length=1)


MeasurementKind = Literal["xrd", "transmission"]


def _default_analysis() -> dict[MeasurementKind, str]:
    return {"xrd": "xrd.wpf", "transmission": "spectra.tauc_auto"}


class CampaignConfig(SourcedModel):
    """A campaign: which lab, which protocol, what to vary, what to optimise, how long."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    lab: str = Field(description="lab config YAML, relative to this file")
    protocol: str = Field(description="plan name, or 'package.module:function'")
    protocol_args: dict[str, Any] = Field(default_factory=dict)
    search_space: SearchSpace
    objectives: list[Objective] = Field(min_length=1)
    outcome_constraints: list[OutcomeConstraint] = Field(default_factory=list)
    outcomes: dict[str, str] = Field(
        default_factory=dict, description="objective or constraint name -> analysis outcome"
    )
    derived: dict[str, DerivedOutcome] = Field(default_factory=dict)
    analysis: dict[MeasurementKind, str] = Field(
        default_factory=_default_analysis,
        description="analysis method per measurement kind",
    )
    on_interrupt: Literal["requeue", "abandon"] = Field(
        "requeue",
        description="what resume does with experiments a crash interrupted: run their "
        "parameters again as a new experiment, or only mark them abandoned",
    )
    initial_experiments: int = Field(8, ge=1, le=10_000)
    warm_start: list[str] = Field(
        default_factory=list,
        description="earlier campaigns (same store) the planner starts from",
    )
    budget: Budget
    stopping: Stopping = Field(default_factory=Stopping)
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> CampaignConfig:
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objective names must be unique, got {names}")
        if self.initial_experiments > self.budget.max_experiments:
            raise ValueError(
                f"initial_experiments ({self.initial_experiments}) exceeds "
                f"budget.max_experiments ({self.budget.max_experiments})"
            )
        known = set(names) | {c.name for c in self.outcome_constraints}
        unknown = sorted(set(self.outcomes) - known)
        if unknown:
            raise ValueError(
                f"outcomes maps {', '.join(unknown)}, which are neither objectives nor outcome "
                f"constraints ({', '.join(sorted(known))})"
            )
        return self

    def planner_objectives(self) -> list[Objective]:
        """The objectives as the planner takes them.

        A maximised objective whose outcome is derived (a product of desirabilities)
        becomes composite: the planner models the measured outcomes in the product one
        by one and combines their predictions, instead of modelling the product.
        """
        out = []
        for objective in self.objectives:
            derived = self.derived.get(self.outcomes.get(objective.name, objective.name))
            if derived is not None and objective.goal == "maximize" and not objective.product:
                objective = objective.model_copy(update={"product": derived.product})
            out.append(objective)
        return out

    def lab_path(self) -> Path:
        """The lab config, resolved against the campaign file's folder."""
        base = self.source.path.parent if self.source else Path.cwd()
        return (base / self.lab).resolve()


def load_campaign(path: str | Path) -> CampaignConfig:
    """Read and check a campaign YAML file."""
    return load(path, CampaignConfig, "campaign")
