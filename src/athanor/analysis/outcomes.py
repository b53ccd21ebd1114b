"""What every analysis returns: named outcomes with units and uncertainties, and how.

An :class:`AnalysisResult` records the method's registered name and its parameters, so
a stored result says exactly how it was made and the same measurement can be analysed
again with another method (:func:`athanor.analysis.reanalyse`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class AnalysisError(ValueError):
    """A measurement cannot be analysed: the message names the data and what is wrong."""


@dataclass(frozen=True)
class Quantity:
    """One outcome: ``value ± uncertainty`` (one standard deviation) in ``unit``.

    ``uncertainty`` is None where the method gives none (e.g. a chosen fit range).
    """

    value: float
    uncertainty: float | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))
        if self.uncertainty is not None:
            u = float(self.uncertainty)
            object.__setattr__(self, "uncertainty", u if math.isfinite(u) else None)


@dataclass(frozen=True)
class AnalysisResult:
    """The outcomes of one analysis of one measurement.

    Parameters
    ----------
    method
        Registered method name, e.g. ``"xrd.wpf"`` (see :data:`athanor.analysis.METHODS`).
    params
        The method's parameters, JSON-able: passing them back re-runs the same analysis.
    outcomes
        Named quantities, e.g. ``fraction_BaTiO3``, ``band_gap_ev``.
    flags
        Warnings a user should see, e.g. ``"unexplained_intensity"``.
    rejected
        Why the measurement was not analysed (e.g. a saturated spectrum); None when it was.
    details
        JSON-able diagnostics: fit ranges, identified phases, residual peak positions.
    source
        Where the data came from (a file or a run uid), for messages.
    """

    method: str
    params: dict[str, Any]
    outcomes: dict[str, Quantity] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    rejected: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def ok(self) -> bool:
        """True when the measurement was analysed (not rejected)."""
        return self.rejected is None

    def value(self, name: str) -> float:
        """The value of outcome ``name``; KeyError lists the outcomes there are."""
        try:
            return self.outcomes[name].value
        except KeyError:
            raise KeyError(
                f"{self.method} gave no outcome {name!r}"
                + (f" (rejected: {self.rejected})" if self.rejected else "")
                + f"; outcomes: {', '.join(self.outcomes) or 'none'}"
            ) from None

    def records(self) -> list[dict[str, Any]]:
        """One dict per outcome with the fields of the store's ``Outcome`` rows.

        ``Outcome(**record, experiment_id=..., run_uid=...)`` stores it; a rejected
        result has no records (store its ``rejected`` reason with the experiment).
        """
        return [
            {
                "name": name,
                "value": q.value if math.isfinite(q.value) else None,
                "uncertainty": q.uncertainty,
                "unit": q.unit,
                "method": self.method,
                "method_params": self.params,
            }
            for name, q in self.outcomes.items()
        ]

    @classmethod
    def rejection(
        cls, method: str, params: dict[str, Any], reason: str, source: str = ""
    ) -> AnalysisResult:
        """A result that says why the measurement was not analysed."""
        where = f"{source}: " if source else ""
        return cls(method=method, params=params, rejected=f"{where}{reason}", source=source)
