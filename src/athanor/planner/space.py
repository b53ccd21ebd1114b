"""Search spaces and objectives as plain data, written the same in YAML and in Python.

A space holds parameters (continuous, optionally log-scaled; integer; ordinal; categorical;
fixed), composition groups whose components sum to a total, linear inequality
constraints written as text (``"temperature + 40*dwell <= 1500"``) and, optionally, a
finite pool of candidate rows to choose from: a CSV file used as it is, each parameter
read from its ``column`` (default: its name), e.g. ``{name: ag, column: "QAgNO3(%)"}``;
objectives and outcome constraints name their column in tables of results the same way.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from athanor.schema import StrictModel

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _column() -> Any:
    return Field(None, min_length=1, description="its column in a pool or results CSV")


class _Param(StrictModel):
    name: str = Field(pattern=f"^{_NAME}$")
    unit: str = ""
    description: str = ""
    column: str | None = _column()

    @property
    def source(self) -> str:
        """The CSV column holding this parameter."""
        return self.column or self.name


class Continuous(_Param):
    type: Literal["continuous"] = "continuous"
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> Continuous:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"{self.name}: bounds must be finite numbers")
        if self.low >= self.high:
            raise ValueError(f"{self.name}: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log-scaled range needs low > 0, got {self.low:g}")
        return self


class Integer(_Param):
    type: Literal["integer"] = "integer"
    low: int
    high: int

    @model_validator(mode="after")
    def _bounds(self) -> Integer:
        if self.low >= self.high:
            raise ValueError(f"{self.name}: low ({self.low}) must be below high ({self.high})")
        return self


class Ordinal(_Param):
    """Ordered choices, e.g. ``[1, 2, 4, 8]`` grinding passes."""

    type: Literal["ordinal"] = "ordinal"
    values: list[float | int | str] = Field(min_length=2)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[Any]) -> list[Any]:
        if len(set(map(str, values))) != len(values):
            raise ValueError(f"values must be distinct, got {values}")
        return values


class Categorical(Ordinal):
    """Unordered choices, e.g. a precursor."""

    type: Literal["categorical"] = "categorical"  # type: ignore[assignment]


class Fixed(_Param):
    type: Literal["fixed"] = "fixed"
    value: float | int | str


Parameter = Annotated[
    Continuous | Integer | Ordinal | Categorical | Fixed, Field(discriminator="type")
]


class Composition(StrictModel):
    """Continuous parameters that always sum to ``total`` (a simplex)."""

    name: str = Field(pattern=f"^{_NAME}$")
    components: list[str] = Field(min_length=2)
    total: float = Field(1.0, gt=0)


_TERM = re.compile(rf"^\s*([+-]?\s*(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)?)\s*\*?\s*({_NAME})\s*$")


class LinearConstraint(StrictModel):
    """``sum(coefficients[name] * x[name]) <op> rhs`` with op ``<=`` or ``>=``."""

    coefficients: dict[str, float]
    op: Literal["<=", ">="]
    rhs: float

    @classmethod
    def parse(cls, text: str) -> LinearConstraint:
        """Parse ``"a*x + b*y <= c"``; the right-hand side must be a number."""
        match = re.fullmatch(r"(.+?)(<=|>=)(.+)", text.strip())
        if not match:
            raise ValueError(f"{text!r} is not 'LINEAR EXPRESSION <= NUMBER' (or >=)")
        lhs, op, rhs = match.groups()
        try:
            bound = float(rhs)
        except ValueError:
            raise ValueError(
                f"{text!r}: the right-hand side {rhs.strip()!r} must be a number"
            ) from None
        coefficients: dict[str, float] = {}
        for raw in re.split(r"(?=[+-])", lhs.replace(" ", "")):
            if not raw:
                continue
            term = _TERM.match(raw)
            if not term:
                raise ValueError(f"{text!r}: cannot read the term {raw!r}; write e.g. '2.5*x'")
            coef, name = term.groups()
            coef = coef.replace(" ", "")
            value = float(coef + "1") if coef in ("", "+", "-") else float(coef)
            coefficients[name] = coefficients.get(name, 0.0) + value
        return cls(coefficients=coefficients, op=op, rhs=bound)

    def __str__(self) -> str:
        lhs = " + ".join(f"{c:g}*{n}" for n, c in self.coefficients.items())
        return f"{lhs} {self.op} {self.rhs:g}"


class SearchSpace(StrictModel):
    parameters: list[Parameter] = Field(min_length=1)
    compositions: list[Composition] = Field(default_factory=list)
    constraints: list[LinearConstraint] = Field(default_factory=list)
    pool: str | None = Field(None, description="CSV file of candidate rows to choose from")

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [LinearConstraint.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpace:
        names = [p.name for p in self.parameters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"parameter names must be unique; repeated: {', '.join(dupes)}")
        columns = [p.source for p in self.parameters]
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise ValueError(
                f"parameter columns must be unique; more than one reads {', '.join(dupes)}"
            )
        kinds = {p.name: p for p in self.parameters}
        for group in self.compositions:
            members: list[Continuous] = []
            for comp in group.components:
                param = kinds.get(comp)
                if param is None:
                    raise ValueError(
                        f"composition {group.name!r} names {comp!r}, which is not a parameter; "
                        f"parameters: {', '.join(names)}"
                    )
                if not isinstance(param, Continuous) or param.log:
                    raise ValueError(
                        f"composition {group.name!r}: component {comp!r} must be a linear "
                        "continuous parameter"
                    )
                members.append(param)
            lows = sum(p.low for p in members)
            highs = sum(p.high for p in members)
            if not lows <= group.total <= highs:
                raise ValueError(
                    f"composition {group.name!r}: no point sums to {group.total:g}; the "
                    f"components' bounds allow sums from {lows:g} to {highs:g}"
                )
        for constraint in self.constraints:
            for name in constraint.coefficients:
                param = kinds.get(name)
                if not isinstance(param, Continuous | Integer):
                    raise ValueError(
                        f"constraint '{constraint}' names {name!r}, which is not a continuous "
                        f"or integer parameter; parameters: {', '.join(names)}"
                    )
        return self

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]


class Desirability(StrictModel):
    """How much one outcome is wanted, in 0..1: its value itself, or closeness to a target.

    With ``target`` the desirability is ``exp(-((value - target) / tolerance)^2 / 2)``;
    without, the value is used as it is (e.g. a phase fraction).
    """

    outcome: str
    target: float | None = None
    tolerance: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _pair(self) -> Desirability:
        if (self.target is None) != (self.tolerance is None):
            raise ValueError(f"{self.outcome}: give both target and tolerance, or neither")
        return self

    def of(self, value: Any) -> Any:
        """The desirability of ``value`` (a number or a torch tensor)."""
        if self.target is None or self.tolerance is None:
            return value
        z = (value - self.target) / self.tolerance
        return (-0.5 * z**2).exp() if hasattr(z, "exp") else math.exp(-0.5 * z * z)


class Objective(StrictModel):
    """What to do with one outcome: maximise, minimise, or reach a target value.

    With ``product`` the objective is composite: the product of the desirabilities of the
    outcomes it names, each modelled on its own (so the planner learns, say, phase
    fraction and band gap separately and combines their predictions), to be maximised.
    """

    name: str = Field(pattern=f"^{_NAME}$")
    goal: Literal["maximize", "minimize", "target"]
    target: float | None = None
    unit: str = ""
    product: list[Desirability] | None = Field(None, min_length=1)
    column: str | None = _column()

    @model_validator(mode="after")
    def _target(self) -> Objective:
        if (self.goal == "target") != (self.target is not None):
            raise ValueError(
                f"objective {self.name!r}: give 'target' exactly when goal is 'target'"
            )
        if self.product is not None and self.goal != "maximize":
            raise ValueError(
                f"objective {self.name!r}: a product of desirabilities is maximised; "
                f"goal {self.goal!r} is not allowed with 'product'"
            )
        return self

    @property
    def modelled(self) -> list[str]:
        """The outcomes the planner models for this objective."""
        return [t.outcome for t in self.product] if self.product else [self.name]

    def value(self, outcomes: Any) -> Any:
        """The objective, "larger is better", from ``outcomes[name]`` of the modelled ones.

        ``outcomes`` maps names to numbers or to tensors of samples.
        """
        if self.product:
            total = 1.0
            for term in self.product:
                total = total * term.of(outcomes[term.outcome])
            return total
        values = outcomes[self.name]
        if self.goal == "maximize":
            return values
        if self.goal == "minimize":
            return -values
        assert self.target is not None
        return -abs(values - self.target)


class OutcomeConstraint(StrictModel):
    """An outcome that must stay on one side of a bound, e.g. purity >= 0.9."""

    name: str = Field(pattern=f"^{_NAME}$")
    op: Literal["<=", ">="]
    bound: float
    column: str | None = _column()
