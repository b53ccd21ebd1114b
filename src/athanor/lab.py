"""Lab assembly: a lab config becomes drivers and ophyd devices; ``check`` probes them.

Hardware and simulators differ only in the config: the same drivers and devices are
built from each instrument's ``connection``, by its kind's registration
(:mod:`athanor.kinds`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from athanor.clock import Clock, make_clock
from athanor.config_files import located
from athanor.devices.furnace import Furnace
from athanor.drivers.errors import DriverError
from athanor.kinds import InstrumentReport, emulator_factories, kind_of
from athanor.lab_config import InstrumentConfig, LabConfig, is_serial_device
from athanor.simulators.lab import SimulatedLab


class InstrumentUnavailable(DriverError):
    """An instrument that could not be opened when the lab connected: the message names
    it, the connection its lab config gives and what to check."""

    def __init__(self, message: str, *, instrument: str) -> None:
        super().__init__(message)
        self.instrument = instrument


def open_driver(name: str, config: InstrumentConfig, clock: Clock) -> Any:
    """The driver for one instrument of a lab config (nothing is sent yet)."""
    return kind_of(config).open_driver(name, config, clock)


def simulate(
    config: LabConfig, clock: Clock | None = None, *, root: Path | None = None
) -> SimulatedLab:
    """The emulators of a simulated lab config (:class:`SimulatedLab`), not yet started."""
    return SimulatedLab(config, emulator_factories(), clock, root=root)


@dataclass
class Lab:
    """The connected lab: one ophyd device per instrument, grouped by kind."""

    config: LabConfig
    clock: Clock
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> name -> device
    drivers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def connect(cls, config: LabConfig, clock: Clock | None = None) -> Lab:
        """Open every instrument; one that cannot be opened is an
        :class:`InstrumentUnavailable` naming it (and the lab is closed again)."""
        clock = clock or make_clock(config.clock.time_scale)
        lab = cls(config, clock)
        try:
            for name, inst in config.instruments.items():
                try:
                    lab._open(name, inst)
                except DriverError as exc:
                    raise _unavailable(config, name, exc) from exc
        except Exception:
            lab.close()
            raise
        return lab

    def _open(self, name: str, inst: InstrumentConfig) -> None:
        """Open one instrument's driver and make its device."""
        kind = kind_of(inst)
        driver = self.drivers[name] = kind.open_driver(name, inst, self.clock)
        self.devices.setdefault(inst.kind, {})[name] = kind.device(name, inst, driver, self.clock)

    def of_kind(self, kind: str) -> dict[str, Any]:
        """The devices of one kind, by name (empty when the lab has none)."""
        return dict(self.devices.get(kind, {}))

    @property
    def furnaces(self) -> dict[str, Furnace]:
        """The furnaces: what :meth:`safe` makes safe."""
        return self.of_kind("furnace")

    def safe(self, names: Collection[str] | None = None) -> list[tuple[str, Exception]]:
        """Put every furnace (or those of ``names``) in its safe state; returns the ones
        that failed, with why."""
        failed = []
        for name, furnace in self.furnaces.items():
            if names is not None and name not in names:
                continue
            try:
                furnace.safe()
            except Exception as exc:
                failed.append((name, exc))
        return failed

    def close(self) -> None:
        for driver in self.drivers.values():
            close = getattr(driver, "close", None)
            if close is not None:
                close()


def _unavailable(config: LabConfig, name: str, exc: DriverError) -> InstrumentUnavailable:
    """The error for instrument ``name`` of ``config`` that failed with ``exc`` when opened."""
    inst = config.instruments[name]
    where = f" {config.source.path}" if config.source else ""
    message = located(
        config.source, ("instruments", name, "connection"),
        f"{name} ({inst.kind}, {inst.model}) cannot be used at {inst.connection!r}: {exc}. "
        f"{_what_to_check(inst.connection)}; 'athanor check{where}' probes every instrument",
    )  # fmt: skip
    return InstrumentUnavailable(message, instrument=name)


def _what_to_check(connection: str) -> str:
    """What an operator checks when nothing answers at ``connection``."""
    if is_serial_device(connection):
        return (
            f"Check that {connection} exists, its cable is plugged in, no other program holds "
            "it, and the instrument is on with the unit address, baud rate and parity the "
            "lab config gives"
        )
    parts = urlsplit(connection)
    if parts.scheme == "usb":
        return "Check that the instrument is plugged in and its USB backend is installed"
    return f"Check that the instrument is on and {parts.netloc or connection} reachable from here"


# --------------------------------------------------------------------------- check


def probe(name: str, config: InstrumentConfig, clock: Clock) -> InstrumentReport:
    """Connect to one instrument and read its identity, state and live values."""
    report = InstrumentReport(name, config.kind, config.model, config.connection)
    start = time.monotonic()
    driver = None
    try:
        kind = kind_of(config)
        driver = kind.open_driver(name, config, clock)
        kind.probe(driver, report)
        report.lacks += getattr(driver, "lacks", [])
        report.ok = True
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        if driver is not None and hasattr(driver, "close"):
            try:
                driver.close()
            except Exception as exc:
                report.error = report.error or f"closing: {exc}"
        report.seconds = time.monotonic() - start
    return report


def check_lab(config: LabConfig, clock: Clock | None = None) -> list[InstrumentReport]:
    """Probe every instrument at once; one that does not answer does not hold up the rest.

    Each probe is bounded by its instrument's ``io_timeout`` (and the driver's retries);
    a probe still hanging after that is reported as not answering.
    """
    clock = clock or make_clock(config.clock.time_scale)
    reports: dict[str, InstrumentReport] = {}

    def run(name: str, inst: InstrumentConfig) -> None:
        reports[name] = probe(name, inst, clock)

    threads = {
        name: threading.Thread(target=run, args=(name, inst), daemon=True)
        for name, inst in config.instruments.items()
    }
    for thread in threads.values():
        thread.start()
    for name, thread in threads.items():
        inst = config.instruments[name]
        thread.join(timeout=inst.io_timeout * 10 + 2)
        if name not in reports:
            reports[name] = InstrumentReport(
                name, inst.kind, inst.model, inst.connection,
                error=f"no answer within {inst.io_timeout * 10 + 2:g} s",
            )  # fmt: skip
    return [reports[name] for name in config.instruments]
