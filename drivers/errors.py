"""Typed errors every driver raises, so callers can tell what to do about a failure.

Only :class:`InstrumentTimeout` and :class:`ConnectionLost` may be retried, and only for
requests that are safe to repeat (reads, and writes of an absolute value).
"""

from __future__ import annotations


class DriverError(Exception):
    """Something went wrong talking to an instrument."""

    def __init__(self, message: str, *, instrument: str = "") -> None:
        self.instrument = instrument
        super().__init__(f"{instrument}: {message}" if instrument else message)


class InstrumentTimeout(DriverError):
    """No (complete) reply within the timeout."""


class ConnectionLost(DriverError):
    """The transport failed: port gone, connection refused or dropped."""


class ProtocolError(DriverError):
    """A reply that breaks the protocol: bad checksum, wrong length, garbage, unexpected."""


class InstrumentFault(DriverError):
    """The instrument answered, and what it said is a fault (sensor break, fatal, NAK...).

    ``reason`` is the decoded fault, e.g. ``"sensor break"`` or ``"illegal data value"``.
    """

    def __init__(self, reason: str, *, instrument: str = "", detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}{f' ({detail})' if detail else ''}", instrument=instrument)


class LimitError(DriverError, ValueError):
    """A request outside the instrument's or the lab's limits, refused before the wire."""

    def __init__(
        self,
        name: str,
        value: float,
        low: float,
        high: float,
        unit: str = "",
        *,
        instrument: str = "",
    ) -> None:
        self.name, self.value, self.low, self.high = name, value, low, high
        u = f" {unit}" if unit else ""
        super().__init__(
            f"{name} = {value:g}{u} is outside the allowed range {low:g}–{high:g}{u}; refused",
            instrument=instrument,
        )


class Unsupported(DriverError):
    """The instrument lacks the option a request needs (e.g. a controller without programmer)."""


class NotSafe(DriverError):
    """Making an instrument safe did not complete: ``failed`` maps each step to why.

    Every step was attempted; ``done`` lists the ones that succeeded.
    """

    def __init__(
        self, failed: dict[str, DriverError], done: list[str], *, instrument: str = ""
    ) -> None:
        self.failed, self.done = failed, done
        steps = "; ".join(f"{step} failed ({exc})" for step, exc in failed.items())
        super().__init__(
            f"NOT SAFE: {steps}; done: {', '.join(done) or 'nothing'}", instrument=instrument
        )


class SettingNotApplied(InstrumentFault):
    """The instrument acknowledged a setting, then reported working with another value."""
