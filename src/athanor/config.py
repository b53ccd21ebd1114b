"""The campaign config: protocol, search space, objectives, analysis, budget, stopping.

Errors name file, line, key, value and what is allowed (:mod:`athanor.config_files`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from athanor.config_files import ConfigError, SourcedModel, load, located
from athanor.phases import PHASES
from athanor.planner.space import (
    Continuous,
    Desirability,
    Fixed,
    Integer,
    Objective,
    OutcomeConstraint,
    SearchSpace,
)
from athanor.schema import StrictModel

if TYPE_CHECKING:
    from athanor.lab_config import LabConfig


class Budget(StrictModel):
    max_experiments: int = Field(gt=0, le=100_000)
    max_lab_hours: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="stop after this much lab time"
    )


class PlannerOptions(StrictModel):
    """How the planner chooses: by expected improvement, or by improvement per lab hour.

    ``cost: dry_run`` predicts each candidate's lab hours by the protocol's dry run;
    ``cost: measured`` learns them from the durations of the experiments so far. Either
    spends ``budget.max_lab_hours`` (:mod:`athanor.planner.cost`).
    """

    cost: Literal["none", "dry_run", "measured"] = Field(
        "none", description="plan per predicted lab hour: by the dry run or measured durations"
    )


class Stopping(StrictModel):
    """Stop early when an objective reaches a value or stops improving."""

    objective_reaches: float | None = Field(None, allow_inf_nan=False)
    no_improvement_for: int | None = Field(None, gt=0, description="experiments")


class Faults(StrictModel):
    """What the campaign does when an instrument, not the recipe, fails an experiment."""

    pause_after: int = Field(
        2, ge=1, le=100,
        description="consecutive failures of one instrument that pause the campaign",
    )  # fmt: skip
    retries: int = Field(
        2, ge=0, le=10,
        description="times an experiment's parameters run again after an instrument fault",
    )  # fmt: skip


class DerivedOutcome(StrictModel):
    """An outcome computed from measured ones: the product of their desirabilities."""

    product: list[Desirability] = Field(min_length=1)


MeasurementKind = Literal["xrd", "transmission"]


def _default_analysis() -> dict[MeasurementKind, str]:
    return {"xrd": "xrd.wpf", "transmission": "spectra.tauc_auto"}


_XRD_FIT = ("amorphous_fraction", "zero_shift_deg", "sample_displacement_mm", "rwp",
            "chi2_reduced", "unexplained_fraction")  # fmt: skip
_PER_PHASE = ("fraction", "lattice_scale", "crystallite_nm", "detection_limit")
_TAUC = ("band_gap_ev", "tauc_fit_low_ev", "tauc_fit_high_ev", "tauc_points", "tauc_chi2_reduced")
#: The outcomes each analysis method gives (athanor.analysis), by the method's name.
METHOD_OUTCOMES: dict[str, tuple[str, ...]] = {
    "xrd.wpf": (*(f"{q}_{p}" for q in _PER_PHASE for p in PHASES), *_XRD_FIT),
    "xrd.peak_ratio": tuple(f"fraction_{p}" for p in PHASES),
    "spectra.tauc_auto": _TAUC,
    "spectra.tauc_fixed": _TAUC,
    "spectra.pl_gaussian": ("pl_peak_ev", "pl_peak_nm", "pl_fwhm_ev", "pl_area", "pl_chi2_reduced"),
}


class CampaignConfig(SourcedModel):
    """A campaign: which lab, which protocol, what to vary, what to optimise, how long."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    description: str = ""
    lab: str = Field(pattern=r"\.ya?ml$", description="lab config YAML, relative to this file")
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
    planner: PlannerOptions = Field(default_factory=PlannerOptions)
    stopping: Stopping = Field(default_factory=Stopping)
    faults: Faults = Field(default_factory=Faults)
    seed: int = Field(0, ge=0, lt=2**32)

    @field_validator("search_space")
    @classmethod
    def _finite_constraints(cls, space: SearchSpace) -> SearchSpace:
        for constraint in space.constraints:
            numbers = [constraint.rhs, *constraint.coefficients.values()]
            if not all(math.isfinite(n) for n in numbers):
                raise ValueError(
                    f"constraint '{constraint}': its coefficients and bound must be finite numbers"
                )
        return space

    @field_validator("planner")
    @classmethod
    def _cost_needs_lab_hours(cls, planner: PlannerOptions, info: ValidationInfo) -> PlannerOptions:
        budget = info.data.get("budget")
        if planner.cost != "none" and budget is not None and budget.max_lab_hours is None:
            raise ValueError(
                f"cost: {planner.cost!r} plans by lab hours; give budget.max_lab_hours "
                "(or cost: none)"
            )
        return planner

    @field_validator("analysis")
    @classmethod
    def _known_methods(cls, analysis: dict[MeasurementKind, str]) -> dict[MeasurementKind, str]:
        from athanor.analysis import METHODS

        for kind, method in analysis.items():
            fits = [m for m, (k, _) in METHODS.items() if k == kind]
            if method not in fits:
                raise ValueError(
                    f"analysis.{kind}: {method!r} is not a method for {kind} measurements; "
                    f"allowed: {', '.join(fits)}"
                )
        return analysis

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
        self._outcomes_produced()
        return self

    def _outcomes_produced(self) -> None:
        """Every outcome the objectives, constraints and derived outcomes use is one the
        campaign's analyses give (or a derived one); ValueError names the first that is not."""
        measured = {o for m in self.analysis.values() for o in METHOD_OUTCOMES.get(m, ())}
        methods = ", ".join(f"{k}: {m}" for k, m in self.analysis.items())

        def refuse(what: str, outcome: str, allowed: set[str]) -> ValueError:
            return ValueError(
                f"{what} uses the outcome {outcome!r}, which no analysis of this campaign "
                f"gives ({methods}); outcomes: {', '.join(sorted(allowed))}"
            )

        for name, spec in self.derived.items():
            for term in spec.product:
                if term.outcome not in measured:
                    raise refuse(f"derived.{name}", term.outcome, measured)
        usable = measured | set(self.derived)
        for objective in self.objectives:
            source = self.outcome_source(objective.name)
            if objective.product is None and source not in usable:
                raise refuse(f"objective {objective.name!r}", source, usable)
            for term in objective.product or []:
                if term.outcome not in measured:
                    raise refuse(f"objective {objective.name!r}", term.outcome, measured)
        for constraint in self.outcome_constraints:
            source = self.outcome_source(constraint.name)
            if source not in usable:
                raise refuse(f"outcome constraint {constraint.name!r}", source, usable)

    def outcome_source(self, name: str) -> str:
        """The analysis outcome an objective or constraint reads: its ``outcomes`` entry,
        else its ``column``, else its name."""
        named: list[Objective | OutcomeConstraint] = [*self.objectives, *self.outcome_constraints]
        columns = {o.name: o.column for o in named}
        return self.outcomes.get(name) or columns.get(name) or name

    def planner_objectives(self) -> list[Objective]:
        """The objectives as the planner takes them.

        A maximised objective whose outcome is derived (a product of desirabilities)
        becomes composite: the planner models the measured outcomes in the product one
        by one and combines their predictions, instead of modelling the product.
        """
        out = []
        for objective in self.objectives:
            derived = self.derived.get(self.outcome_source(objective.name))
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


def check_with_lab(config: CampaignConfig, lab: LabConfig) -> None:
    """The campaign's protocol values against its plan and lab, before anything moves.

    The plan must take the campaign's parameters and the lab serve its requests; both
    ends of every search-space range, every choice and fixed value, and every
    ``protocol_args`` value must be one the protocol takes on this lab (its types,
    bounds, the furnaces' limits, the diffractometers' programs ...), and the lab's
    folders usable. ConfigError names the file, line, key, value and what is allowed.
    """
    from athanor.lab_config import check_folders
    from athanor.protocols.parameters import ArgumentError, check_value
    from athanor.protocols.registry import PlanError

    check_folders(lab)
    names = [p.name for p in config.search_space.parameters] + list(config.protocol_args)
    try:
        plan = check_plan(config.protocol, names, lab, f"campaign {config.name!r}")
    except PlanError as exc:
        raise ConfigError(located(config.source, ("protocol",), str(exc))) from None
    for loc, name, value in _protocol_values(config):
        try:
            check_value(plan, name, value, lab)
        except ArgumentError as exc:
            raise ConfigError(located(config.source, loc, str(exc))) from None


def check_plan(
    protocol: str, names: Iterable[str], lab: LabConfig, what: str
) -> Callable[..., Any]:
    """The plan ``protocol`` names, once it takes exactly the parameters ``names`` and
    ``lab`` can serve its requests; PlanError, starting with ``what``, if not."""
    from athanor.protocols.registry import check_arguments, resolve
    from athanor.protocols.requests import check_requests

    plan = resolve(protocol)
    check_arguments(plan, names, what)
    check_requests(plan, lab)
    return plan


def _protocol_values(config: CampaignConfig) -> Iterator[tuple[Sequence[str | int], str, Any]]:
    """(where in the file, parameter, value) for every value the campaign may give its plan."""
    for i, param in enumerate(config.search_space.parameters):
        where = ("search_space", "parameters", i)
        if isinstance(param, Continuous | Integer):
            yield (*where, "low"), param.name, param.low
            yield (*where, "high"), param.name, param.high
        elif isinstance(param, Fixed):
            yield (*where, "value"), param.name, param.value
        else:
            for j, value in enumerate(param.values):
                yield (*where, "values", j), param.name, value
    for name, value in config.protocol_args.items():
        yield ("protocol_args", name), name, value
