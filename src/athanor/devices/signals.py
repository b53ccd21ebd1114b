"""Signals that read from a driver, and signals that hold measured arrays with units."""

from __future__ import annotations

import time
from typing import Any

from ophyd import Signal, SignalRO


def _with_units(description: dict[str, dict[str, Any]], units: str) -> dict[str, dict[str, Any]]:
    if units:
        for entry in description.values():
            entry["units"] = units
    return description


class InstrumentSignal(SignalRO):
    """A read-only signal whose every ``get()`` asks the instrument.

    ``reader`` names a method of the parent device that returns the value.
    """

    def __init__(self, *, reader: str, units: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._reader_name, self.units = reader, units

    def get(self, **kwargs: Any) -> Any:
        value = getattr(self.parent, self._reader_name)()
        self._readback = value
        self._metadata["timestamp"] = time.time()
        return value

    def describe(self) -> dict[str, dict[str, Any]]:
        return _with_units(super().describe(), self.units)


class ValueSignal(Signal):
    """A signal holding a value the device sets (a measured array, a setting), with units."""

    def __init__(self, *, units: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units

    def describe(self) -> dict[str, dict[str, Any]]:
        return _with_units(super().describe(), self.units)
