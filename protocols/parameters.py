"""The values a protocol's parameters may take, declared in its signature.

A plan annotates each keyword parameter with its type and, through ``Annotated``, with
pydantic constraints and with limits it takes from the lab::

    Temperature = Annotated[
        float, Field(gt=0, allow_inf_nan=False),
        LabLimit("furnace", "limits.max_temperature", "max", "°C"),
    ]

    def my_protocol(ctx, *, temperature_c: Temperature, ...): ...

:func:`check_value` checks one value against all of them; the campaign checks its
search space (both ends of every range, every choice) and ``protocol_args`` with it,
and ``athanor plan check`` its ``--param`` values, so a value no instrument of the lab
can run is refused before anything moves. An instrument serves any experiment, so a
lab limit is the tightest over the instruments the protocol may be given.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from athanor.config_files import shorten
from athanor.lab_config import InstrumentConfig, LabConfig
from athanor.protocols.registry import PlanError
from athanor.protocols.requests import candidates, requests_of


class ArgumentError(PlanError):
    """A value a protocol parameter does not take; ``name``, ``value`` and ``reason``."""

    def __init__(self, plan: Callable[..., Any], name: str, value: Any, reason: str) -> None:
        self.name, self.value, self.reason = name, value, reason
        super().__init__(
            f"protocol {_name(plan)!r}, parameter {name}: {shorten(value)} is not allowed: {reason}"
        )


@dataclass(frozen=True)
class LabLimit:
    """A bound from the lab: ``attribute`` (dotted) of each instrument of ``kind``.

    ``side="max"``: the value may be at most the lowest of them; ``"min"``: at least
    the highest.
    """

    kind: str
    attribute: str
    side: Literal["max", "min"]
    unit: str = ""

    def bound(self, instruments: Mapping[str, InstrumentConfig]) -> tuple[float, str] | None:
        """The tightest value over ``instruments`` and the one that sets it (None: none)."""
        bounds = [(_attribute(inst, self.attribute), name) for name, inst in instruments.items()]
        if not bounds:
            return None
        return min(bounds) if self.side == "max" else max(bounds)


#: (instrument config, whether the lab is simulated) -> the names it offers, None: unknown
Offers = Callable[[InstrumentConfig, bool], Collection[str] | None]


@dataclass(frozen=True)
class LabChoice:
    """The value must be one that every instrument of ``kind`` offers (``None``: its default)."""

    kind: str
    offers: Offers
    what: str

    def check(
        self, value: Any, instruments: Mapping[str, InstrumentConfig], sim: bool
    ) -> str | None:
        """Why ``value`` is not on offer (None when it is, or when no instrument says)."""
        if value is None:
            return None
        for name, inst in instruments.items():
            offered = self.offers(inst, sim)
            if offered is not None and value not in offered:
                return f"{name} has no such {self.what}; it has {', '.join(offered)}"
        return None


def check_value(plan: Callable[..., Any], name: str, value: Any, lab: LabConfig) -> Any:
    """``value`` as the plan takes it for ``name``; ArgumentError says what is allowed.

    A parameter without annotations takes anything; one the plan does not name is left
    to :func:`~athanor.protocols.registry.check_arguments`.
    """
    annotation = _annotations(plan).get(name)
    if annotation is None:
        return value
    try:
        checked = TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        reasons = "; ".join(_reason(e["msg"]) for e in exc.errors(include_url=False))
        raise ArgumentError(plan, name, value, reasons) from None
    if isinstance(checked, float) and not math.isfinite(checked):
        raise ArgumentError(plan, name, value, "it must be a finite number")
    rules = getattr(annotation, "__metadata__", ())
    limits = [r for r in rules if isinstance(r, LabLimit)]
    if limits and isinstance(checked, int | float):
        _check_limits(plan, name, value, checked, limits, lab)
    for rule in rules:
        if isinstance(rule, LabChoice):
            reason = rule.check(checked, _instruments(plan, rule.kind, lab), lab.simulated)
            if reason:
                raise ArgumentError(plan, name, value, reason)
    return checked


def _check_limits(
    plan: Callable[..., Any],
    name: str,
    value: Any,
    number: float,
    limits: list[LabLimit],
    lab: LabConfig,
) -> None:
    """ArgumentError, with the range the lab allows, if ``number`` breaks a lab limit."""
    bounds = {r: r.bound(_instruments(plan, r.kind, lab)) for r in limits}
    lows = [b for r, b in bounds.items() if b is not None and r.side == "min"]
    highs = [b for r, b in bounds.items() if b is not None and r.side == "max"]
    for rule, found in bounds.items():
        if found is None:
            continue
        bound, instrument = found
        if (number > bound) if rule.side == "max" else (number < bound):
            allowed = (
                f"{lows[0][0]:g}–{highs[0][0]:g}{rule.unit}"
                if lows and highs
                else f"{'at most' if rule.side == 'max' else 'at least'} {bound:g}{rule.unit}"
            )
            raise ArgumentError(
                plan, name, value,
                f"limit violation: {rule.attribute} of {instrument} is {bound:g}{rule.unit}; "
                f"allowed: {allowed} (what every {rule.kind} of the lab can run)",
            )  # fmt: skip


def check_values(
    plan: Callable[..., Any], values: Mapping[str, Any], lab: LabConfig
) -> dict[str, Any]:
    """Every value of ``values`` checked with :func:`check_value`."""
    return {name: check_value(plan, name, value, lab) for name, value in values.items()}


def _reason(msg: str) -> str:
    """pydantic's "Input should be greater than 0" as "it must be greater than 0"."""
    return msg.replace("Input should be", "it must be", 1)


def _annotations(plan: Callable[..., Any]) -> dict[str, Any]:
    return _hints(inspect.unwrap(plan))


@cache
def _hints(plan: Callable[..., Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(plan, include_extras=True)
    except Exception:  # a plan whose annotations do not resolve: its values are not checked
        return {}
    hints.pop("return", None)
    return hints


def _instruments(plan: Callable[..., Any], kind: str, lab: LabConfig) -> dict[str, Any]:
    """The instruments of ``kind`` that the plan's requests may be given."""
    names = {n for r in requests_of(plan).values() if r.kind == kind for n in candidates(r, lab)}
    return {n: i for n, i in lab.instruments.items() if n in names}


def _attribute(config: Any, dotted: str) -> float:
    for part in dotted.split("."):
        config = getattr(config, part)
    return float(config)


def _name(plan: Callable[..., Any]) -> str:
    return str(getattr(plan, "__name__", plan))


def diffractometer_programs(config: InstrumentConfig, simulated: bool) -> list[str] | None:
    """The scan programs a diffractometer has: in a simulated lab its emulator's; None
    for a real one (unknown here: the instrument refuses a program it lacks)."""
    if not simulated:
        return None
    from athanor.simulators.aeris import AerisSimSettings

    try:
        settings = AerisSimSettings.model_validate(config.sim)
    except ValidationError:  # the emulator refuses its own settings, naming them
        return None
    return [*settings.programs, *settings.named_programs]
