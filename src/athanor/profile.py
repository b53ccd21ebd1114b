"""Temperature profiles: the ramp/dwell/step recipes a furnace controller runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from athanor.drivers.errors import LimitError


@dataclass(frozen=True)
class Ramp:
    """Ramp to ``target`` °C at ``rate`` °C per minute."""

    target: float
    rate: float


@dataclass(frozen=True)
class Dwell:
    """Hold the setpoint for ``minutes``."""

    minutes: float


@dataclass(frozen=True)
class Step:
    """Jump the setpoint to ``target`` °C."""

    target: float


Segment = Ramp | Dwell | Step


def anneal(
    temperature: float,
    dwell_hours: float,
    ramp_rate: float,
    cool_rate: float | None = None,
    cool_to: float = 25.0,
) -> tuple[Segment, ...]:
    """Ramp up, dwell, ramp down: the shape of a solid-state anneal.

    Examples
    --------
    >>> round(duration(anneal(900, dwell_hours=4, ramp_rate=10), start=25) / 3600, 2)
    6.92
    """
    return (
        Ramp(temperature, ramp_rate),
        Dwell(dwell_hours * 60.0),
        Ramp(cool_to, cool_rate or ramp_rate),
    )


def duration(segments: Sequence[Segment], start: float) -> float:
    """Lab seconds a profile takes from a furnace at ``start`` °C (steps take no time)."""
    total, temperature = 0.0, start
    for segment in segments:
        if isinstance(segment, Ramp):
            total += abs(segment.target - temperature) / segment.rate * 60.0
            temperature = segment.target
        elif isinstance(segment, Step):
            temperature = segment.target
        else:
            total += segment.minutes * 60.0
    return total


def peak(segments: Sequence[Segment]) -> float:
    """The highest temperature a profile asks for."""
    return max((s.target for s in segments if not isinstance(s, Dwell)), default=-math.inf)


def check(
    segments: Sequence[Segment],
    low: float,
    high: float,
    max_rate: float | None = None,
    instrument: str = "",
) -> None:
    """Refuse (LimitError, ValueError) a profile outside ``low``–``high`` °C or too fast."""
    if not segments:
        raise ValueError("a profile needs at least one segment")
    for segment in segments:
        if isinstance(segment, Dwell):
            if not (math.isfinite(segment.minutes) and segment.minutes >= 0):
                raise ValueError(f"dwell must be >= 0 minutes, got {segment.minutes!r}")
            continue
        if not low <= segment.target <= high:
            raise LimitError("setpoint", segment.target, low, high, "°C", instrument=instrument)
        if isinstance(segment, Ramp):
            top = math.inf if max_rate is None else max_rate
            if not 0 < segment.rate <= top:
                raise LimitError("ramp rate", segment.rate, 0, top, "°C/min", instrument=instrument)


def final_target(segments: Sequence[Segment]) -> float:
    """The setpoint a profile ends on."""
    targets = [s.target for s in segments if not isinstance(s, Dwell)]
    if not targets:
        raise ValueError("a profile needs at least one ramp or step")
    return targets[-1]


def describe(segments: Sequence[Segment]) -> str:
    """A profile in words: ``ramp 10 °C/min → 900 °C, dwell 4 h, ...``."""
    parts = []
    for s in segments:
        if isinstance(s, Ramp):
            parts.append(f"ramp {s.rate:g} °C/min → {s.target:g} °C")
        elif isinstance(s, Dwell):
            parts.append(f"dwell {s.minutes / 60:g} h")
        else:
            parts.append(f"step → {s.target:g} °C")
    return ", ".join(parts)
