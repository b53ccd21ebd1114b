"""Lab assembly: a lab config becomes drivers and ophyd devices; ``check`` probes them.

Hardware and simulators differ only in the config: the same drivers and devices are
built from each instrument's ``connection``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from athanor.clock import Clock, make_clock
from athanor.devices.diffractometer import Diffractometer
from athanor.devices.furnace import Furnace
from athanor.devices.spectrometer import Spectrometer
from athanor.devices.transfer import SampleTransfer
from athanor.drivers.aeris import Aeris
from athanor.drivers.eurotherm import PV, Eurotherm
from athanor.drivers.modbus_link import AddressAbsent
from athanor.drivers.ocean_optics import (
    OceanOpticsSerial,
    SeaBreezeSpectrometer,
    SpectrometerDriver,
)
from athanor.lab_config import (
    DiffractometerConfig,
    FurnaceConfig,
    LabConfig,
    SpectrometerConfig,
    TransferConfig,
)

InstrumentConfig = FurnaceConfig | DiffractometerConfig | SpectrometerConfig | TransferConfig


def open_driver(name: str, config: InstrumentConfig, clock: Clock) -> Any:
    """The driver for one instrument of a lab config (nothing is sent yet)."""
    if isinstance(config, FurnaceConfig):
        return Eurotherm(
            config.connection,
            unit=config.unit,
            model=config.model,
            io_timeout=config.io_timeout,
            baudrate=config.baudrate,
            parity=config.parity,
            name=name,
            programmer=config.programmer,
        )
    if isinstance(config, DiffractometerConfig):
        return Aeris(config.connection, config.exchange_dir, config.io_timeout, name=name)
    if isinstance(config, SpectrometerConfig):
        if config.connection.startswith("usb://"):
            return SeaBreezeSpectrometer(config.connection, name=name)
        return OceanOpticsSerial(
            config.connection,
            model=config.model,
            baudrate=config.baudrate,
            io_timeout=config.io_timeout,
            clock=clock,
            wavelength_coefficients=config.wavelength_coefficients,
            name=name,
        )
    return open_transfer(name, config, clock)


def open_transfer(name: str, config: TransferConfig, clock: Clock) -> Any:
    from athanor.drivers.transfer import ManualTransfer, TransferRobot

    if config.model == "manual":
        return ManualTransfer(name=name, clock=clock)
    return TransferRobot(config.connection, config.io_timeout, clock=clock, name=name)


@dataclass
class Lab:
    """The connected lab: one ophyd device per instrument, grouped by kind."""

    config: LabConfig
    clock: Clock
    furnaces: dict[str, Furnace] = field(default_factory=dict)
    diffractometers: dict[str, Diffractometer] = field(default_factory=dict)
    spectrometers: dict[str, Spectrometer] = field(default_factory=dict)
    transfers: dict[str, SampleTransfer] = field(default_factory=dict)
    drivers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def connect(cls, config: LabConfig, clock: Clock | None = None) -> Lab:
        """Open every instrument; a driver error names the instrument that failed."""
        clock = clock or make_clock(config.clock.time_scale)
        lab = cls(config, clock)
        try:
            for name, inst in config.instruments.items():
                driver = lab.drivers[name] = open_driver(name, inst, clock)
                if isinstance(inst, FurnaceConfig):
                    lab.furnaces[name] = Furnace(driver, clock, name=name, limits=inst.limits)
                elif isinstance(inst, DiffractometerConfig):
                    device = Diffractometer(driver, clock, name=name)
                    device.program.put(inst.program)
                    lab.diffractometers[name] = device
                elif isinstance(inst, SpectrometerConfig):
                    lab.spectrometers[name] = Spectrometer(driver, name=name)
                else:
                    lab.transfers[name] = SampleTransfer(driver, clock, name=name)
        except Exception:
            lab.close()
            raise
        return lab

    def safe(self) -> list[tuple[str, Exception]]:
        """Put every furnace in its safe state; returns the ones that failed, with why."""
        failed = []
        for name, furnace in self.furnaces.items():
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


# --------------------------------------------------------------------------- check


@dataclass
class InstrumentReport:
    """What ``athanor check`` found out about one instrument."""

    name: str
    kind: str
    model: str
    connection: str
    ok: bool = False
    identity: str = ""
    state: str = ""
    readings: dict[str, Any] = field(default_factory=dict)
    lacks: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


def _probe_furnace(driver: Eurotherm, report: InstrumentReport) -> None:
    ident = driver.identify()
    report.identity = (
        f"{ident['model']} unit {ident['unit']} (type {ident['type']}, version {ident['version']})"
    )
    reading = driver.read()
    low, high = driver.setpoint_limits()
    program = f"program {driver.program_state()}" if driver.has_programmer() else "no programmer"
    report.state = f"{driver.mode()}, {program}"
    try:
        full_resolution: float | str = driver.read_float(PV)
    except AddressAbsent:
        full_resolution = "no float area"
        report.lacks.append("IEEE-754 float area (0x8000 + 2*addr): 16-bit reads only")
    report.readings = {
        "temperature °C": reading.pv,
        "temperature, float °C": full_resolution,
        "working setpoint °C": reading.working_setpoint,
        "target setpoint °C": reading.target_setpoint,
        "output %": reading.output,
        "setpoint limits °C": f"{low:g}–{high:g}",
        "alarms": ", ".join(reading.status.alarms) or "none",
    }


def _probe_diffractometer(driver: Aeris, report: InstrumentReport) -> None:
    status = driver.status()
    report.identity = f"Aeris-style, system {status.system}"
    report.state = "ready" if status.ready else "busy"
    report.readings = {"slot 1": driver.slot_state(1)}


def _probe_spectrometer(driver: SpectrometerDriver, report: InstrumentReport) -> None:
    ident = driver.identify()
    report.identity = str(ident)
    wavelengths = driver.wavelengths()
    report.state = "ready"
    report.readings = {
        "pixels": len(wavelengths),
        "range nm": f"{wavelengths[0]:.1f}–{wavelengths[-1]:.1f}",
        "full scale": driver.full_scale,
    }


def _probe_transfer(driver: Any, report: InstrumentReport) -> None:
    status = driver.status()
    report.identity = type(driver).__name__
    report.state = str(status)


_PROBES: dict[str, Callable[[Any, InstrumentReport], None]] = {
    "furnace": _probe_furnace,
    "diffractometer": _probe_diffractometer,
    "spectrometer": _probe_spectrometer,
    "transfer": _probe_transfer,
}


def probe(name: str, config: InstrumentConfig, clock: Clock) -> InstrumentReport:
    """Connect to one instrument and read its identity, state and live values."""
    report = InstrumentReport(name, config.kind, config.model, config.connection)
    start = time.monotonic()
    driver = None
    try:
        driver = open_driver(name, config, clock)
        _PROBES[config.kind](driver, report)
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
